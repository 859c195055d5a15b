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

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;

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

nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

/// Longest timeout passed to a device (the ioctl takes seconds in an int;
/// real devices allow far less).
const LINUX_MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// A Linux watchdog device.
#[derive(Debug)]
pub struct LinuxWatchdog {
    path: PathBuf,
    file: Option<File>,
    /// The device rejected `WDIOC_KEEPALIVE` (not a watchdog driver, e.g. a
    /// FIFO in tests): kick by writing instead, which every driver accepts.
    kick_by_write: bool,
    /// Whether `WDIOC_SETTIMEOUT` works (false once it failed with ENOTTY).
    settimeout_supported: bool,
    /// The timeout last set on the device, in seconds.
    device_timeout_s: Option<libc::c_int>,
}

impl LinuxWatchdog {
    /// A backend for `path`; nothing is opened until `arm`.
    #[must_use]
    pub fn new(path: &Path) -> LinuxWatchdog {
        LinuxWatchdog {
            path: path.to_path_buf(),
            file: None,
            kick_by_write: false,
            settimeout_supported: true,
            device_timeout_s: None,
        }
    }

    fn device_err(&self, op: &'static str, source: std::io::Error) -> WatchdogError {
        WatchdogError::Device {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn write_byte(&mut self, byte: u8, op: &'static str) -> Result<(), WatchdogError> {
        let Some(f) = self.file.as_mut() else {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op,
            });
        };
        let r = f.write_all(&[byte]);
        r.map_err(|e| self.device_err(op, e))
    }
}

impl LinuxWatchdog {
    fn check_timeout(timeout: Duration) -> Result<libc::c_int, WatchdogError> {
        let min = Duration::from_secs(1);
        if timeout < min || timeout > LINUX_MAX_TIMEOUT {
            return Err(WatchdogError::BadTimeout {
                timeout,
                min,
                max: LINUX_MAX_TIMEOUT,
            });
        }
        // Whole seconds, rounded down: firing early is safe, late is not.
        Ok(timeout.as_secs() as libc::c_int)
    }

    /// `WDIOC_SETTIMEOUT`, which also pings an active watchdog. Returns
    /// `false` when nothing was set (same timeout as before, or the device
    /// does not support it): then the caller pings.
    fn set_timeout(&mut self, requested: libc::c_int) -> Result<bool, WatchdogError> {
        if !self.settimeout_supported || self.device_timeout_s == Some(requested) {
            return Ok(false);
        }
        let Some(f) = self.file.as_ref() else {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op: "set timeout",
            });
        };
        let mut secs: libc::c_int = requested;
        // SAFETY: the descriptor is open (owned by `self.file`) and `secs`
        // is a valid, writable c_int for the duration of the call, as
        // WDIOC_SETTIMEOUT requires.
        match unsafe { wdioc_settimeout(f.as_raw_fd(), &mut secs) } {
            Ok(_) => {
                if secs > requested {
                    tracing::warn!(
                        device = %self.path.display(),
                        "asked for a {requested} s watchdog, the device runs with {secs} s: a hung host lives longer than the timeline assumes"
                    );
                }
                // Remember what was asked, so an unchanged request is a
                // plain keepalive.
                self.device_timeout_s = Some(requested);
                Ok(true)
            }
            Err(Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                tracing::warn!(
                    device = %self.path.display(),
                    "WDIOC_SETTIMEOUT not supported; the device keeps its own timeout"
                );
                self.settimeout_supported = false;
                Ok(false)
            }
            Err(e) => Err(self.device_err("WDIOC_SETTIMEOUT", e.into())),
        }
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let Some(f) = self.file.as_ref() else {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op: "kick",
            });
        };
        if !self.kick_by_write {
            let mut dummy: libc::c_int = 0;
            // SAFETY: the descriptor is open (owned by `self.file`) and
            // `dummy` is a valid c_int the ioctl may write.
            match unsafe { wdioc_keepalive(f.as_raw_fd(), &mut dummy) } {
                Ok(_) => return Ok(()),
                Err(Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP) => {
                    tracing::warn!(
                        device = %self.path.display(),
                        "WDIOC_KEEPALIVE not supported; kicking by write"
                    );
                    self.kick_by_write = true;
                }
                Err(e) => return Err(self.device_err("WDIOC_KEEPALIVE", e.into())),
            }
        }
        // Any byte but 'V' is a keepalive (and clears a pending magic close).
        self.write_byte(b'\n', "keepalive write")
    }
}

impl Watchdog for LinuxWatchdog {
    fn backend(&self) -> &'static str {
        "linux"
    }

    fn arm(&mut self, timeout: Duration) -> Result<ArmReport, WatchdogError> {
        if self.file.is_some() {
            return Err(WatchdogError::WrongState {
                state: "armed",
                op: "arm",
            });
        }
        let secs = Self::check_timeout(timeout)?;
        // Opening starts the countdown with the driver's default timeout;
        // ours is set at once.
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|source| WatchdogError::Open {
                path: self.path.clone(),
                source,
            })?;
        self.file = Some(file);
        self.device_timeout_s = None;
        let mut report = ArmReport::default();
        if self.set_timeout(secs)? {
            report.effective_timeout = Some(Duration::from_secs(secs as u64));
        } else {
            report.warnings.push(format!(
                "watchdog {}: the device does not take a timeout (WDIOC_SETTIMEOUT); it keeps its own",
                self.path.display()
            ));
            self.keepalive()?;
        }
        tracing::info!(device = %self.path.display(), ?timeout, "watchdog armed");
        Ok(report)
    }

    fn kick(&mut self, timeout: Duration) -> Result<(), WatchdogError> {
        if self.file.is_none() {
            return Err(WatchdogError::WrongState {
                state: "not armed",
                op: "kick",
            });
        }
        let secs = Self::check_timeout(timeout)?;
        if self.set_timeout(secs)? {
            return Ok(());
        }
        self.keepalive()
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        if self.file.is_none() {
            return Ok(());
        }
        // The magic close: 'V' then close tells the driver the stop is
        // intended. On a `nowayout` driver the watchdog keeps running (the
        // kernel's choice); we cannot do better.
        self.write_byte(b'V', "magic close")?;
        if let Some(f) = self.file.take() {
            drop(f);
        }
        tracing::info!(device = %self.path.display(), "watchdog disarmed (magic close)");
        Ok(())
    }

    fn is_armed(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for LinuxWatchdog {
    fn drop(&mut self) {
        if let Some(f) = self.file.take() {
            // Never close an armed watchdog: keep the descriptor open until
            // the process exits so the countdown is not extended by a close.
            tracing::error!(
                device = %self.path.display(),
                "armed watchdog dropped without disarm: keeping it open until exit"
            );
            std::mem::forget(f);
        }
    }
}

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
        "none"
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
        super::supervisor::MIN_TIMEOUT + SUPERVISOR_LATENCY_MARGIN,
        super::supervisor::MAX_TIMEOUT,
    );
    if timeout < min || timeout > max {
        return Err(WatchdogError::BadTimeout { timeout, min, max });
    }
    let sent = timeout - SUPERVISOR_LATENCY_MARGIN;
    Ok(u64::try_from(sent.as_millis()).unwrap_or(u64::MAX))
}

impl Watchdog for SupervisorWatchdog {
    fn backend(&self) -> &'static str {
        "supervisor"
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
    use std::io::Read;

    /// A FIFO stands in for /dev/watchdog: keepalives arrive as writes,
    /// the ioctls fail with ENOTTY (reported as warnings, not errors).
    #[test]
    fn linux_backend_on_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("watchdog");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader_path = fifo.clone();
        let reader = std::thread::spawn(move || {
            let mut f = File::open(reader_path).unwrap();
            let mut got = Vec::new();
            f.read_to_end(&mut got).unwrap();
            got
        });
        let mut w = LinuxWatchdog::new(&fifo);
        assert!(matches!(
            w.kick(Duration::from_secs(2)),
            Err(WatchdogError::WrongState { .. })
        ));
        assert!(matches!(
            w.arm(Duration::from_millis(500)),
            Err(WatchdogError::BadTimeout { .. })
        ));
        let report = w.arm(Duration::from_millis(2500)).unwrap();
        assert_eq!(report.effective_timeout, None);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("WDIOC_SETTIMEOUT"));
        assert!(w.is_armed());
        w.kick(Duration::from_millis(1500)).unwrap();
        w.kick(Duration::from_secs(7)).unwrap();
        assert!(matches!(
            w.kick(Duration::from_millis(999)),
            Err(WatchdogError::BadTimeout { .. })
        ));
        w.disarm().unwrap();
        assert!(!w.is_armed());
        w.disarm().unwrap();
        // One kick at arm, two kicks, then the magic close; EOF proves the
        // device was closed only after 'V'.
        assert_eq!(reader.join().unwrap(), b"\n\n\nV");
    }

    fn open_fds_to(path: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|t| t == path)
            .count()
    }

    #[test]
    fn an_armed_linux_watchdog_is_never_closed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("watchdog");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let reader_path = fifo.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let (opened_tx, opened_rx) = std::sync::mpsc::channel();
        // The reader keeps its end open until told, so writes never fail.
        let reader = std::thread::spawn(move || {
            let f = File::open(reader_path).unwrap();
            opened_tx.send(()).unwrap();
            rx.recv().unwrap();
            drop(f);
        });
        let mut w = LinuxWatchdog::new(&fifo);
        w.arm(Duration::from_secs(3)).unwrap();
        opened_rx.recv().unwrap();
        let before = open_fds_to(&fifo);
        assert_eq!(before, 2, "writer and reader ends open");
        drop(w);
        assert_eq!(open_fds_to(&fifo), 2, "the armed descriptor stays open");
        tx.send(()).unwrap();
        reader.join().unwrap();
    }

    #[test]
    fn missing_device_is_an_open_error() {
        let mut w = LinuxWatchdog::new(Path::new("/nonexistent/watchdog"));
        assert!(matches!(
            w.arm(Duration::from_secs(5)),
            Err(WatchdogError::Open { .. })
        ));
        assert!(!w.is_armed());
    }

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

    #[test]
    fn none_backend_counts_kicks() {
        let mut w = NoWatchdog::new();
        assert!(w.kick(Duration::from_secs(1)).is_err());
        w.arm(Duration::from_secs(1)).unwrap();
        w.kick(Duration::from_secs(1)).unwrap();
        assert_eq!(w.kicks(), 1);
        w.disarm().unwrap();
        assert!(!w.is_armed());
        assert_eq!(w.backend(), "none");
    }
}
