//! Watchdog backends behind one trait.
//!
//! A watchdog resets (or kills) the host unless it is kicked at least once
//! per timeout. The core decides when to arm, kick and disarm
//! (`Action::ArmWatchdog` / `KickWatchdog` / `DisarmWatchdog`); a backend only
//! carries those out:
//!
//! - [`LinuxWatchdog`]: a `/dev/watchdog`-style device. Armed by opening it
//!   and `WDIOC_SETTIMEOUT`; kicked with `WDIOC_KEEPALIVE`; disarmed only by
//!   the magic close (write `V`, then close). It is never closed while armed:
//!   closing pings it, and a close without the magic character leaves it
//!   running anyway, so dropping an armed backend deliberately leaks the
//!   descriptor until the process exits.
//! - [`SupervisorWatchdog`]: a client of the external `xha-supervisor`
//!   process (see `daemon::supervisor`), for hosts without a watchdog device
//!   and for the lab. If this process dies or freezes, the supervisor kills
//!   the host's whole process group; if the supervisor dies, the next kick
//!   fails and the daemon fences (and the supervisor's reaper kills the
//!   group anyway).
//! - [`NoWatchdog`]: nothing at all, for development; every arm is logged
//!   at error level.
//!
//! Parts: this file holds the trait, its errors and the deadline rules for
//! the core's kicks; `linux`, `supervisor_client` and `none` the backends.

mod linux;
mod none;
mod supervisor_client;

/// The backends' names, written once: `watchdog.backend` in the
/// configuration (checked against them in `config`), [`Watchdog::backend`],
/// and so the `watchdog` field of the liveset report.
pub mod backend_name {
    pub const LINUX: &str = "linux";
    pub const SUPERVISOR: &str = "supervisor";
    pub const NONE: &str = "none";
}

pub use linux::LinuxWatchdog;
pub use none::NoWatchdog;
pub use supervisor_client::{SUPERVISOR_LATENCY_MARGIN, SupervisorWatchdog};

use std::path::PathBuf;
use std::time::Duration;

use super::config::WatchdogConfig;

/// Why a watchdog operation failed (arming: the daemon exits with code 4;
/// once armed: the daemon fences).
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The device could not be opened.
    #[error("cannot open watchdog device {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A kick or the magic close could not be written to the device.
    #[error("watchdog device {path}: {op} failed: {source}")]
    Device {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// The timeout is outside what the backend can represent.
    #[error("watchdog timeout {timeout:?} is outside {min:?}..={max:?}")]
    BadTimeout {
        timeout: Duration,
        min: Duration,
        max: Duration,
    },
    /// `kick` before `arm`, or `arm` twice (a bug in the caller).
    #[error("watchdog is {state}; cannot {op}")]
    WrongState {
        state: &'static str,
        op: &'static str,
    },
    /// The supervisor could not be reached.
    #[error("watchdog supervisor at {path}: {op}: {source}")]
    Supervisor {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// The supervisor answered with an error.
    #[error("watchdog supervisor at {path} refused {op}: {reply}")]
    SupervisorRefused {
        path: PathBuf,
        op: &'static str,
        reply: String,
    },
}

/// What arming achieved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmReport {
    /// The timeout the watchdog actually runs with, when known.
    pub effective_timeout: Option<Duration>,
    /// Conditions worth a warning (e.g. the device ignored the timeout).
    pub warnings: Vec<String>,
}

/// One watchdog. Contract: `arm` once, then `kick` before the countdown
/// runs out, then `disarm` only when fencing is disarmed or the daemon stops
/// cleanly.
///
/// Every kick carries its own timeout: the core asks for the watchdog to
/// fire at its lease end (`Action::KickWatchdog { until }`), so the daemon
/// passes `until - now`. A backend may round it down (fire earlier), never
/// up. A kick refused with [`WatchdogError::BadTimeout`] changes nothing:
/// the countdown of the previous kick, which ends no later, stays in force.
pub trait Watchdog: Send {
    /// The backend's name as in the configuration (`linux`, `supervisor`, `none`).
    fn backend(&self) -> &'static str;
    /// Start the countdown with `timeout`.
    fn arm(&mut self, timeout: Duration) -> Result<ArmReport, WatchdogError>;
    /// Restart the countdown so that it runs out after `timeout`.
    fn kick(&mut self, timeout: Duration) -> Result<(), WatchdogError>;
    /// Stop the countdown cleanly (magic close). Idempotent.
    fn disarm(&mut self) -> Result<(), WatchdogError>;
    /// Whether a countdown is running.
    fn is_armed(&self) -> bool;
    /// Kill the host now through the watchdog itself, when the backend can
    /// (the supervisor kills the host's process group). `None`: it cannot;
    /// the caller carries out the fence action itself.
    fn fence_now(&mut self) -> Option<Result<(), WatchdogError>> {
        None
    }
}

/// Build the backend named by the configuration. The supervisor backend
/// connects at once (so a missing supervisor is found before arming).
pub fn from_config(config: &WatchdogConfig) -> Result<Box<dyn Watchdog>, WatchdogError> {
    Ok(match config {
        WatchdogConfig::Linux { device } => Box::new(LinuxWatchdog::new(device)),
        WatchdogConfig::Supervisor { socket } => Box::new(SupervisorWatchdog::connect(socket)?),
        WatchdogConfig::None => Box::new(NoWatchdog::new()),
    })
}

/// What became of one of the core's `KickWatchdog { until }` actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KickOutcome {
    /// Kicked: the watchdog now fires at `until` or earlier.
    Kicked,
    /// `until` had already passed when the kick was executed: dropped, since
    /// it could keep a host alive past its lease.
    TooLate { late_by: Duration },
    /// Less time is left than the backend can count: dropped; the previous
    /// kick's deadline, which is earlier, stands.
    TooShort { left: Duration },
}

/// Arm for the core's `ArmWatchdog { until }` at `now` (the daemon's clock
/// in the core's time base).
pub fn arm_until(
    watchdog: &mut dyn Watchdog,
    now: crate::core::Instant,
    until: crate::core::Instant,
) -> Result<ArmReport, WatchdogError> {
    watchdog.arm(until.saturating_since(now))
}

/// Kick for the core's `KickWatchdog { until }` at `now`: the watchdog is
/// set to fire after `until - now` (rounded down by the backend). A kick
/// after `until`, or with less left than the backend can count, is dropped;
/// any other failure is an error, which the daemon answers with a fence
/// (docs/daemon.md, "Losing the watchdog while armed").
pub fn kick_until(
    watchdog: &mut dyn Watchdog,
    now: crate::core::Instant,
    until: crate::core::Instant,
) -> Result<KickOutcome, WatchdogError> {
    if now >= until {
        return Ok(KickOutcome::TooLate {
            late_by: now.saturating_since(until),
        });
    }
    let left = until.saturating_since(now);
    match watchdog.kick(left) {
        Ok(()) => Ok(KickOutcome::Kicked),
        Err(WatchdogError::BadTimeout { timeout, min, .. }) if timeout < min => {
            Ok(KickOutcome::TooShort { left })
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Read;
    #[test]
    fn kicks_for_the_core_are_dropped_when_late_or_too_short() {
        use crate::core::Instant;
        let t = |ms: u64| Instant::from_nanos(ms * 1_000_000);
        let mut w = NoWatchdog::new();
        arm_until(&mut w, t(0), t(7000)).unwrap();
        assert_eq!(
            kick_until(&mut w, t(100), t(7100)).unwrap(),
            KickOutcome::Kicked
        );
        assert_eq!(
            kick_until(&mut w, t(7200), t(7100)).unwrap(),
            KickOutcome::TooLate {
                late_by: Duration::from_millis(100)
            }
        );
        assert_eq!(w.kicks(), 1);
        // The linux backend counts whole seconds: 999 ms left is too short.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("watchdog");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            File::open(reader_path)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            got
        });
        let mut l = LinuxWatchdog::new(&fifo);
        arm_until(&mut l, t(0), t(7000)).unwrap();
        assert_eq!(
            kick_until(&mut l, t(6001), t(7000)).unwrap(),
            KickOutcome::TooShort {
                left: Duration::from_millis(999)
            }
        );
        assert_eq!(
            kick_until(&mut l, t(5000), t(7000)).unwrap(),
            KickOutcome::Kicked
        );
        l.disarm().unwrap();
        assert_eq!(reader.join().unwrap(), b"\n\nV");
    }
}
