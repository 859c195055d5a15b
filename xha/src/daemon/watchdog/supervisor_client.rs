//! The client of the external `xha-supervisor` (see `daemon::supervisor`),
//! for hosts without a watchdog device and for the lab.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{ArmReport, Watchdog, WatchdogError};

/// How long a request to the supervisor may take before the supervisor
/// counts as unreachable. Generous: it only matters when arming or disarming.
const SUPERVISOR_REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of `xha-supervisor`.
#[derive(Debug)]
pub struct SupervisorWatchdog {
    path: PathBuf,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    armed: bool,
}

impl SupervisorWatchdog {
    /// Connect to the supervisor listening at `path`.
    pub fn connect(path: &Path) -> Result<SupervisorWatchdog, WatchdogError> {
        let err = |op, source| WatchdogError::Supervisor {
            path: path.to_path_buf(),
            op,
            source,
        };
        let stream = UnixStream::connect(path).map_err(|e| err("connect", e))?;
        stream
            .set_read_timeout(Some(SUPERVISOR_REPLY_TIMEOUT))
            .map_err(|e| err("set timeout", e))?;
        stream
            .set_write_timeout(Some(SUPERVISOR_REPLY_TIMEOUT))
            .map_err(|e| err("set timeout", e))?;
        let reader = BufReader::new(stream.try_clone().map_err(|e| err("clone", e))?);
        Ok(SupervisorWatchdog {
            path: path.to_path_buf(),
            stream,
            reader,
            armed: false,
        })
    }

    fn send(&mut self, line: &str, op: &'static str) -> Result<(), WatchdogError> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        let Err(source) = self.stream.write_all(&bytes) else {
            return Ok(());
        };
        // A supervisor that refuses a connection writes `error <reason>`
        // and closes it, so the write fails; the reason is still readable.
        let mut reply = String::new();
        if self.reader.read_line(&mut reply).is_ok_and(|n| n > 0) {
            return Err(WatchdogError::SupervisorRefused {
                path: self.path.clone(),
                op,
                reply: reply.trim_end().to_owned(),
            });
        }
        Err(WatchdogError::Supervisor {
            path: self.path.clone(),
            op,
            source,
        })
    }

    fn request(&mut self, line: &str, op: &'static str) -> Result<(), WatchdogError> {
        self.send(line, op)?;
        let mut reply = String::new();
        let n = self
            .reader
            .read_line(&mut reply)
            .map_err(|source| WatchdogError::Supervisor {
                path: self.path.clone(),
                op,
                source,
            })?;
        if n == 0 {
            return Err(WatchdogError::Supervisor {
                path: self.path.clone(),
                op,
                source: std::io::ErrorKind::UnexpectedEof.into(),
            });
        }
        if reply.trim_end() == "ok" {
            Ok(())
        } else {
            Err(WatchdogError::SupervisorRefused {
                path: self.path.clone(),
                op,
                reply: reply.trim_end().to_owned(),
            })
        }
    }

    /// Ask the supervisor to kill the host's process group now (the
    /// `kill-host` fence action). This process is in that group, so on
    /// success it does not return for long.
    pub fn fence(&mut self) -> Result<(), WatchdogError> {
        tracing::error!("asking the supervisor to kill this host now");
        self.send("fence", "fence")
    }

    /// Like [`SupervisorWatchdog::fence`], for a caller outside the host
    /// group: waits for the supervisor's `ok` (sent just before the kill)
    /// or its refusal (`error ...`, e.g. another daemon is connected).
    pub fn fence_and_confirm(&mut self) -> Result<(), WatchdogError> {
        self.request("fence", "fence")
    }
}

/// Subtracted from every timeout sent to the supervisor: it starts the
/// countdown when it reads the line, slightly after the daemon computed the
/// timeout, and a watchdog must fire early rather than late.
pub const SUPERVISOR_LATENCY_MARGIN: Duration = Duration::from_millis(50);

/// The countdown to send, in whole milliseconds rounded down, after the
/// latency margin; refused outside the supervisor's range.
fn supervisor_ms(timeout: Duration) -> Result<u64, WatchdogError> {
    let (min, max) = (
        crate::daemon::supervisor::MIN_TIMEOUT + SUPERVISOR_LATENCY_MARGIN,
        crate::daemon::supervisor::MAX_TIMEOUT,
    );
    if timeout < min || timeout > max {
        return Err(WatchdogError::BadTimeout { timeout, min, max });
    }
    let sent = timeout - SUPERVISOR_LATENCY_MARGIN;
    Ok(u64::try_from(sent.as_millis()).unwrap_or(u64::MAX))
}

impl Watchdog for SupervisorWatchdog {
    fn backend(&self) -> &'static str {
        super::backend_name::SUPERVISOR
    }

    fn arm(&mut self, timeout: Duration) -> Result<ArmReport, WatchdogError> {
        if self.armed {
            return Err(WatchdogError::WrongState {
                state: "armed",
                op: "arm",
            });
        }
        let ms = supervisor_ms(timeout)?;
        self.request(&format!("arm {ms}"), "arm")?;
        self.armed = true;
        tracing::info!(socket = %self.path.display(), ?timeout, "supervisor watchdog armed");
        Ok(ArmReport {
            effective_timeout: Some(Duration::from_millis(ms)),
            warnings: Vec::new(),
        })
    }

    fn kick(&mut self, timeout: Duration) -> Result<(), WatchdogError> {
        if !self.armed {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op: "kick",
            });
        }
        let ms = supervisor_ms(timeout)?;
        self.send(&format!("kick {ms}"), "kick")
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        if !self.armed {
            return Ok(());
        }
        self.request("disarm", "disarm")?;
        self.armed = false;
        tracing::info!(socket = %self.path.display(), "supervisor watchdog disarmed");
        Ok(())
    }

    fn is_armed(&self) -> bool {
        self.armed
    }
    fn fence_now(&mut self) -> Option<Result<(), WatchdogError>> {
        Some(self.fence())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn supervisor_timeouts_fire_early_never_late() {
        assert_eq!(
            supervisor_ms(Duration::from_micros(1_000_999)).unwrap(),
            950
        );
        assert_eq!(supervisor_ms(Duration::from_millis(150)).unwrap(), 100);
        assert!(matches!(
            supervisor_ms(Duration::from_millis(149)),
            Err(WatchdogError::BadTimeout { .. })
        ));
        assert!(supervisor_ms(Duration::from_secs(3601)).is_err());
    }
}
