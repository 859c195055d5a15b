//! Starting `xhad` so that it outlives the agent, and finding it again
//! after an agent restart (docs/ha-enable.md, "The launcher").
//!
//! - `process` (the lab): `xhad --config <dir>/xhad.toml` is started in a
//!   session of its own (`setsid`: it is its process group's leader, the
//!   group its fence action kills), then `xha-supervisor run --pgid <that
//!   group>` in another session; both log to files in the configuration
//!   directory and their pids go to pidfiles there. Neither is killed when
//!   the agent dies. A restarted agent re-finds them by pidfile, checking
//!   that the pid still runs the same program with the same configuration
//!   (`/proc/<pid>/cmdline`), so a reused pid is never taken for `xhad`.
//! - `systemd` (production): `systemctl start <unit>`; the unit
//!   (`packaging/xhad.service`) runs `xhad --config /etc/xhad/xhad.toml`
//!   and is found again with `systemctl is-active`.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::config::XhadLauncher;
use crate::ha_link::files::CONFIG_FILE;
use crate::ha_link::xhad_config::Fencing;

/// Where the daemon's files are, for one launcher and configuration
/// directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XhadPaths {
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The control socket the agent talks to.
    pub control_socket: PathBuf,
    /// `Some` for the process launcher (inside `dir`); `None`: xhad's
    /// default.
    pub control_socket_key: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub fencing: Fencing,
}

/// xhad's default control socket (docs/daemon.md).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xhad/control.sock";
const XHAD_PIDFILE: &str = "xhad.pid";
const SUPERVISOR_PIDFILE: &str = "supervisor.pid";
const XHAD_LOG: &str = "xhad.log";
const SUPERVISOR_LOG: &str = "supervisor.log";

impl XhadPaths {
    #[must_use]
    pub fn new(launcher: &XhadLauncher, dir: &Path) -> XhadPaths {
        let config = dir.join(CONFIG_FILE);
        match launcher {
            XhadLauncher::Systemd { .. } => XhadPaths {
                dir: dir.to_path_buf(),
                config,
                control_socket: PathBuf::from(DEFAULT_CONTROL_SOCKET),
                control_socket_key: None,
                state_dir: None,
                fencing: Fencing::Linux,
            },
            XhadLauncher::Process { .. } => XhadPaths {
                dir: dir.to_path_buf(),
                config,
                control_socket: dir.join("control.sock"),
                control_socket_key: Some(dir.join("control.sock")),
                state_dir: Some(dir.join("state")),
                fencing: Fencing::Supervisor {
                    socket: dir.join("supervisor.sock"),
                },
            },
        }
    }

    /// The files an enable leaves in the configuration directory (removed
    /// by a disable or a rollback).
    #[must_use]
    pub fn created_files(&self) -> Vec<PathBuf> {
        let mut v = vec![
            self.config.clone(),
            self.dir.join(crate::ha_link::files::SECRET_FILE),
            self.dir.join(XHAD_PIDFILE),
            self.dir.join(SUPERVISOR_PIDFILE),
        ];
        v.extend(self.control_socket_key.iter().cloned());
        v.extend(self.state_dir.iter().cloned());
        if let Fencing::Supervisor { socket } = &self.fencing {
            v.push(socket.clone());
        }
        v
    }

    /// The daemon's log (process launcher), for error messages.
    #[must_use]
    pub fn xhad_log(&self) -> PathBuf {
        self.dir.join(XHAD_LOG)
    }
}

/// Why `xhad` could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct LaunchError {
    pub what: String,
    pub reason: String,
}

type Status = Arc<Mutex<Option<ExitStatus>>>;

/// One detached process: its pid and, when this agent started it, its
/// exit status once reaped.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub pid: i32,
    status: Option<Status>,
}

impl Tracked {
    /// `Some(status)` once it has exited (`None` inside when it was not
    /// this agent's child, so its status is unknown).
    #[must_use]
    pub fn exited(&self) -> Option<Option<ExitStatus>> {
        if let Some(s) = &self.status {
            return s.lock().unwrap_or_else(PoisonError::into_inner).map(Some);
        }
        (!running(self.pid)).then_some(None)
    }

    /// Waits up to `timeout` for the exit.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_group(&self, sig: Signal) {
        if self.exited().is_none() {
            let _ = kill(Pid::from_raw(-self.pid), sig);
        }
    }
}

/// A running (or exited) `xhad` and how it was started.
#[derive(Debug, Clone)]
pub enum Daemon {
    Process { xhad: Tracked, supervisor: Tracked },
    Systemd { unit: String },
}

/// Whether `pid` runs (a zombie counts as gone).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn cmdline(pid: i32) -> Vec<OsString> {
    use std::os::unix::ffi::OsStringExt;
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

fn spawn_detached(program: &Path, args: &[OsString], log: &Path) -> Result<Tracked, LaunchError> {
    let what = format!("start {}", program.display());
    let err = |e: std::io::Error| LaunchError {
        what: what.clone(),
        reason: e.to_string(),
    };
    let log = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(err)?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(err)?)
        .stderr(log);
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setsid(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(err)?;
    let pid = i32::try_from(child.id()).map_err(|e| LaunchError {
        what: what.clone(),
        reason: e.to_string(),
    })?;
    let status: Status = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&status);
    // Reaps the child while this agent lives (after an agent restart, init
    // reaps it instead).
    std::thread::Builder::new()
        .name(format!("xhad-reaper-{pid}"))
        .spawn(move || {
            let s = child
                .wait()
                .unwrap_or_else(|_| ExitStatus::from_raw(0x7f00));
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
        })
        .map_err(err)?;
    Ok(Tracked {
        pid,
        status: Some(status),
    })
}

fn systemctl(args: &[&str]) -> Result<bool, LaunchError> {
    let out = Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LaunchError {
            what: format!("systemctl {}", args.join(" ")),
            reason: e.to_string(),
        })?;
    Ok(out.status.success())
}

/// Starts `xhad` (and its supervisor) for the configuration in `paths`.
pub fn start(
    launcher: &XhadLauncher,
    xhad: &Path,
    paths: &XhadPaths,
) -> Result<Daemon, LaunchError> {
    match launcher {
        XhadLauncher::Systemd { unit } => {
            if !systemctl(&["start", unit])? {
                return Err(LaunchError {
                    what: format!("systemctl start {unit}"),
                    reason: "failed (see journalctl -u for the unit)".into(),
                });
            }
            Ok(Daemon::Systemd { unit: unit.clone() })
        }
        XhadLauncher::Process { supervisor_path } => {
            let daemon = spawn_detached(
                xhad,
                &["--config".into(), paths.config.clone().into_os_string()],
                &paths.dir.join(XHAD_LOG),
            )?;
            write_pidfile(&paths.dir.join(XHAD_PIDFILE), daemon.pid)?;
            let Fencing::Supervisor { socket } = &paths.fencing else {
                return Err(LaunchError {
                    what: "start xha-supervisor".into(),
                    reason: "no supervisor socket configured".into(),
                });
            };
            let supervisor = match spawn_detached(
                supervisor_path,
                &[
                    "run".into(),
                    "--socket".into(),
                    socket.clone().into_os_string(),
                    "--pgid".into(),
                    daemon.pid.to_string().into(),
                ],
                &paths.dir.join(SUPERVISOR_LOG),
            ) {
                Ok(s) => s,
                Err(e) => {
                    daemon.signal_group(Signal::SIGKILL);
                    return Err(e);
                }
            };
            write_pidfile(&paths.dir.join(SUPERVISOR_PIDFILE), supervisor.pid)?;
            Ok(Daemon::Process {
                xhad: daemon,
                supervisor,
            })
        }
    }
}

fn write_pidfile(path: &Path, pid: i32) -> Result<(), LaunchError> {
    crate::ha_link::files::write_atomic(path, format!("{pid}\n").as_bytes()).map_err(|e| {
        LaunchError {
            what: "write the pidfile".into(),
            reason: e.to_string(),
        }
    })
}

fn read_pidfile(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Finds a daemon started earlier (by this agent or one before it).
#[must_use]
pub fn find(launcher: &XhadLauncher, xhad: &Path, paths: &XhadPaths) -> Option<Daemon> {
    match launcher {
        XhadLauncher::Systemd { unit } => systemctl(&["is-active", "--quiet", unit])
            .ok()
            .filter(|a| *a)
            .map(|_| Daemon::Systemd { unit: unit.clone() }),
        XhadLauncher::Process { supervisor_path } => {
            let config = paths.config.as_os_str();
            let found = |pidfile: &str, program: &Path, marker: &std::ffi::OsStr| {
                let pid = read_pidfile(&paths.dir.join(pidfile))?;
                let args = cmdline(pid);
                let same_program = args.first().map(Path::new) == Some(program);
                (running(pid) && same_program && args.iter().any(|a| a == marker))
                    .then_some(Tracked { pid, status: None })
            };
            let daemon = found(XHAD_PIDFILE, xhad, config)?;
            let pid = daemon.pid.to_string();
            let supervisor = found(SUPERVISOR_PIDFILE, supervisor_path, pid.as_ref())?;
            Some(Daemon::Process {
                xhad: daemon,
                supervisor,
            })
        }
    }
}

impl Daemon {
    /// `Some` once `xhad` has exited: its status if known.
    #[must_use]
    pub fn exited(&self) -> Option<Option<ExitStatus>> {
        match self {
            Daemon::Process { xhad, .. } => xhad.exited(),
            Daemon::Systemd { unit } => match systemctl(&["is-active", "--quiet", unit]) {
                Ok(false) => Some(None),
                _ => None,
            },
        }
    }

    /// After `stop` was asked: waits for `xhad` and its supervisor to end,
    /// and kills whichever has not within `timeout`. Returns whether they
    /// ended by themselves.
    pub fn finish(&self, timeout: Duration) -> bool {
        match self {
            Daemon::Process { xhad, supervisor } => {
                let mut clean = xhad.wait_exit(timeout);
                if !clean {
                    tracing::warn!(pid = xhad.pid, "xhad did not stop: killing its group");
                    xhad.signal_group(Signal::SIGKILL);
                    xhad.wait_exit(timeout);
                }
                if !supervisor.wait_exit(timeout) {
                    clean = false;
                    tracing::warn!(
                        pid = supervisor.pid,
                        "xha-supervisor did not stop: killing it"
                    );
                    supervisor.signal_group(Signal::SIGKILL);
                    supervisor.wait_exit(timeout);
                }
                clean
            }
            Daemon::Systemd { unit } => systemctl(&["stop", unit]).unwrap_or(false),
        }
    }

    /// Kills the daemon and its supervisor at once (a failed enable whose
    /// daemon never armed).
    pub fn kill(&self) {
        match self {
            Daemon::Process { xhad, supervisor } => {
                xhad.signal_group(Signal::SIGKILL);
                supervisor.signal_group(Signal::SIGKILL);
                xhad.wait_exit(Duration::from_secs(10));
                supervisor.wait_exit(Duration::from_secs(10));
            }
            Daemon::Systemd { unit } => {
                let _ = systemctl(&["stop", unit]);
            }
        }
    }
}
