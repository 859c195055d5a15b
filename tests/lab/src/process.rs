//! One child process of the lab (a host's `xhad` or its `xha-supervisor`),
//! the leader of its own process group, reaped by a thread of its own.
//!
//! The reaper waits with `waitid(WEXITED | WNOWAIT)`, which leaves the
//! zombie in place, then takes the lock, reaps and records the status. A
//! signal sent under the same lock while no status is recorded therefore
//! always reaches this process (alive or a zombie): its pid cannot have been
//! reused. Reaping at once matters for fencing too: `xha-supervisor` reports
//! "group gone" only once the killed daemon has been reaped by its parent.

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::RawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

type Slot = Arc<(Mutex<Option<ExitStatus>>, Condvar)>;

/// How to start one process.
pub struct Launch<'a> {
    /// Prefix (e.g. `ip netns exec NAME`); empty to run `program` directly.
    pub wrapper: &'a [OsString],
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub env: &'a [(OsString, OsString)],
    /// stdout and stderr go here (appended).
    pub log: &'a Path,
    /// Kill the process with SIGKILL when the thread that started it ends.
    pub die_with_parent: bool,
    /// A descriptor the child inherits as descriptor [`PASSED_FD`] (the
    /// daemon's already-bound heartbeat socket).
    pub pass_fd: Option<RawFd>,
}

/// The descriptor number a passed descriptor has in the child.
pub const PASSED_FD: RawFd = 3;

/// A running (or exited) child.
pub struct Proc {
    pid: i32,
    slot: Slot,
    reaper: Option<JoinHandle<()>>,
}

fn lock(slot: &Slot) -> MutexGuard<'_, Option<ExitStatus>> {
    // A poisoned lock only means a thread panicked while holding it; the
    // status inside is still the truth.
    slot.0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Proc {
    /// Start `launch` as the leader of a new process group.
    pub fn spawn(launch: &Launch<'_>) -> std::io::Result<Proc> {
        let log = File::options().create(true).append(true).open(launch.log)?;
        let (program, args) = match launch.wrapper.split_first() {
            Some((first, rest)) => {
                let mut args: Vec<OsString> = rest.to_vec();
                args.push(launch.program.as_os_str().to_owned());
                args.extend(launch.args.iter().cloned());
                (first.clone(), args)
            }
            None => (launch.program.as_os_str().to_owned(), launch.args.clone()),
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let die_with_parent = launch.die_with_parent;
        let pass_fd = launch.pass_fd;
        let parent = std::process::id();
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only prctl(2), getppid(2), dup2(2) and fcntl(2), which are
        // async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if die_with_parent {
                    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                        .map_err(std::io::Error::from)?;
                    // The parent may have died before the prctl: then no
                    // signal will come, so do not start at all.
                    if nix::unistd::getppid().as_raw() as u32 != parent {
                        return Err(std::io::Error::other("the lab exited during start"));
                    }
                }
                if let Some(fd) = pass_fd {
                    if fd == PASSED_FD {
                        // dup2 onto itself keeps close-on-exec: clear it.
                        nix::fcntl::fcntl(
                            fd,
                            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                        )
                        .map_err(std::io::Error::from)?;
                    } else {
                        // The new descriptor does not have close-on-exec.
                        nix::unistd::dup2(fd, PASSED_FD).map_err(std::io::Error::from)?;
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).map_err(std::io::Error::other)?;
        let slot: Slot = Arc::new((Mutex::new(None), Condvar::new()));
        let reaper_slot = Arc::clone(&slot);
        let reaper = std::thread::Builder::new()
            .name(format!("lab-reaper-{pid}"))
            .spawn(move || {
                // Wait for the exit without reaping (see the module doc);
                // a signal handler of the caller may interrupt the wait.
                while let Err(Errno::EINTR) = waitid(
                    Id::Pid(Pid::from_raw(pid)),
                    WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT,
                ) {}
                let mut status = lock(&reaper_slot);
                let reaped = child
                    .wait()
                    .unwrap_or_else(|_| ExitStatus::from_raw(0x7f00)); // exit 127: unknown
                *status = Some(reaped);
                reaper_slot.1.notify_all();
            })?;
        Ok(Proc {
            pid,
            slot,
            reaper: Some(reaper),
        })
    }

    /// The pid, which is also the process group id.
    #[must_use]
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The exit status, if the process has exited (and been reaped).
    #[must_use]
    pub fn status(&self) -> Option<ExitStatus> {
        *lock(&self.slot)
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut status = lock(&self.slot);
        while status.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            status = self
                .slot
                .1
                .wait_timeout(status, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *status
    }

    /// Send `signal` to the whole process group. `Ok(false)` when the
    /// process has already exited (nothing is sent).
    pub fn signal_group(&self, signal: Signal) -> Result<bool, Errno> {
        let status = lock(&self.slot);
        if status.is_some() {
            return Ok(false);
        }
        // Under the lock with no status recorded: the leader is not reaped,
        // so the group id is still ours.
        match kill(Pid::from_raw(-self.pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Send `signal` to this process alone. `Ok(false)` when it has
    /// already exited (nothing is sent).
    pub fn signal(&self, signal: Signal) -> Result<bool, Errno> {
        let status = lock(&self.slot);
        if status.is_some() {
            return Ok(false);
        }
        // Under the lock with no status recorded: the pid is still ours.
        match kill(Pid::from_raw(self.pid), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// SIGKILL the group and wait for the reaper. Never panics.
    pub fn kill_and_reap(&mut self) -> Option<ExitStatus> {
        let _ = self.signal_group(Signal::SIGKILL);
        let status = self.wait_timeout(Duration::from_secs(10));
        if status.is_some()
            && let Some(reaper) = self.reaper.take()
        {
            let _ = reaper.join();
        }
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Never leave a process behind, even on a path that forgot to stop.
        let _ = self.kill_and_reap();
    }
}

/// "exit status 3", "signal 9 (SIGKILL)": for messages.
#[must_use]
pub fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by signal {sig} ({})", s.as_str()),
            Err(_) => format!("killed by signal {sig}"),
        },
        None => format!("{status}"),
    }
}

/// The last `lines` lines of a log file ("" if it cannot be read).
#[must_use]
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch<'a>(dir: &'a Path, log: &'a Path, script: &str) -> Proc {
        let _ = dir;
        Proc::spawn(&Launch {
            wrapper: &[],
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env: &[],
            log,
            die_with_parent: true,
            pass_fd: None,
        })
        .unwrap()
    }

    #[test]
    fn a_passed_descriptor_arrives_as_descriptor_3() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = Proc::spawn(&Launch {
            wrapper: &[],
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), "readlink /proc/$$/fd/3".into()],
            env: &[],
            log: &log,
            die_with_parent: true,
            pass_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&socket)),
        })
        .unwrap();
        assert_eq!(
            p.wait_timeout(Duration::from_secs(10)).unwrap().code(),
            Some(0)
        );
        let out = std::fs::read_to_string(&log).unwrap();
        assert!(out.starts_with("socket:["), "{out}");
    }

    #[test]
    fn exit_status_and_log_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let p = launch(dir.path(), &log, "echo one; echo two >&2; exit 3");
        let status = p.wait_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(describe(status), "exit status 3");
        assert_eq!(log_tail(&log, 1), "two");
        assert_eq!(log_tail(&log, 5), "one\ntwo");
        assert_eq!(p.signal_group(Signal::SIGKILL), Ok(false));
    }

    #[test]
    fn group_kill_reaches_children_and_stopped_processes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let pidfile = dir.path().join("child");
        // The shell starts a grandchild in the same group and waits.
        let script = format!("sleep 600 & echo $! > {}; wait", pidfile.display());
        let mut p = launch(dir.path(), &log, &script);
        let deadline = Instant::now() + Duration::from_secs(10);
        let grandchild = loop {
            if let Ok(s) = std::fs::read_to_string(&pidfile)
                && let Ok(pid) = s.trim().parse::<i32>()
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "no grandchild");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            nix::unistd::getpgid(Some(Pid::from_raw(p.pid())))
                .unwrap()
                .as_raw(),
            p.pid()
        );
        assert_eq!(p.signal_group(Signal::SIGSTOP), Ok(true));
        assert!(p.wait_timeout(Duration::from_millis(200)).is_none());
        let status = p.kill_and_reap().unwrap();
        assert_eq!(describe(status), "killed by signal 9 (SIGKILL)");
        // The grandchild got SIGKILL too (it is reparented and reaped by
        // init or a subreaper; give it a moment).
        let deadline = Instant::now() + Duration::from_secs(10);
        while kill(Pid::from_raw(grandchild), None).is_ok()
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .is_ok_and(|s| s.contains(") Z"))
        {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn wrapper_prefix_runs_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let p = Proc::spawn(&Launch {
            wrapper: &["/usr/bin/env".into(), "LAB_X=7".into()],
            program: Path::new("/bin/sh"),
            args: vec!["-c".into(), "echo x=$LAB_X y=$LAB_Y".into()],
            env: &[("LAB_Y".into(), "8".into())],
            log: &log,
            die_with_parent: false,
            pass_fd: None,
        })
        .unwrap();
        assert_eq!(
            p.wait_timeout(Duration::from_secs(10)).unwrap().code(),
            Some(0)
        );
        assert_eq!(log_tail(&log, 1), "x=7 y=8");
    }
}
