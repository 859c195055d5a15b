//! No watchdog at all (development): every arm is logged at error level.

use std::time::Duration;

use super::{ArmReport, Watchdog, WatchdogError};

/// No watchdog at all (development).
#[derive(Debug, Default)]
pub struct NoWatchdog {
    armed: bool,
    kicks: u64,
}

impl NoWatchdog {
    #[must_use]
    pub fn new() -> NoWatchdog {
        tracing::warn!(
            "watchdog backend \"none\": a hung daemon will NOT be fenced; development only"
        );
        NoWatchdog::default()
    }

    /// Kicks since arming (for tests and the liveset query).
    #[must_use]
    pub fn kicks(&self) -> u64 {
        self.kicks
    }
}

impl Watchdog for NoWatchdog {
    fn backend(&self) -> &'static str {
        super::backend_name::NONE
    }
    fn arm(&mut self, timeout: Duration) -> Result<ArmReport, WatchdogError> {
        tracing::error!(
            ?timeout,
            "fencing armed WITHOUT a watchdog (backend \"none\"): a hung host keeps running"
        );
        self.armed = true;
        self.kicks = 0;
        Ok(ArmReport {
            effective_timeout: None,
            warnings: vec!["no watchdog: a hung host keeps running".into()],
        })
    }
    fn kick(&mut self, _timeout: Duration) -> Result<(), WatchdogError> {
        if !self.armed {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op: "kick",
            });
        }
        self.kicks += 1;
        Ok(())
    }
    fn disarm(&mut self) -> Result<(), WatchdogError> {
        self.armed = false;
        Ok(())
    }
    fn is_armed(&self) -> bool {
        self.armed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn none_backend_counts_kicks() {
        let mut w = NoWatchdog::new();
        assert!(w.kick(Duration::from_secs(1)).is_err());
        w.arm(Duration::from_secs(1)).unwrap();
        w.kick(Duration::from_secs(1)).unwrap();
        assert_eq!(w.kicks(), 1);
        w.disarm().unwrap();
        assert!(!w.is_armed());
        assert_eq!(w.backend(), super::super::backend_name::NONE);
    }
}
