//! The Linux backend: a `/dev/watchdog`-style device, armed by opening it
//! and `WDIOC_SETTIMEOUT`, kicked with `WDIOC_KEEPALIVE`, disarmed only by
//! the magic close.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::libc;

use super::{ArmReport, Watchdog, WatchdogError};

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
        super::backend_name::LINUX
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
}
