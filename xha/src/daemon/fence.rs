//! The fence actions: reboot now, or kill the host's process group.
//!
//! Both act at once; neither syncs file systems or waits for anything, since
//! a host that must fence may be the one with a hung disk. The caller logs
//! one line (stderr is unbuffered) before calling them.

use std::convert::Infallible;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgrp};

use super::config::FenceAction;

/// Why a process group was not signalled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// Group ids 0 and 1 mean "my own group" and "every process" to
    /// `kill(2)`; neither is ever a host's group.
    #[error("process group {0} cannot be a host's group (must be 2 or more)")]
    BadGroup(i32),
    /// The system call failed.
    #[error("{op} failed: {errno}")]
    Sys { op: &'static str, errno: Errno },
}

/// Send SIGKILL to every process of group `pgid`. SIGKILL also ends stopped
/// (SIGSTOPped) processes. `Ok` when the group is already gone too.
pub fn kill_process_group(pgid: i32) -> Result<(), FenceError> {
    if pgid < 2 {
        return Err(FenceError::BadGroup(pgid));
    }
    match killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(FenceError::Sys {
            op: "killpg(SIGKILL)",
            errno,
        }),
    }
}

/// Whether any process (zombies included) is still in group `pgid`.
#[must_use]
pub fn group_exists(pgid: i32) -> bool {
    if pgid < 2 {
        return false;
    }
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// Carry out a fence action. Returns only if it failed.
pub fn execute(action: FenceAction) -> FenceError {
    match action {
        FenceAction::Reboot => {
            match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT) {
                Ok(never) => match never {},
                Err(errno) => FenceError::Sys {
                    op: "reboot(RB_AUTOBOOT)",
                    errno,
                },
            }
        }
        FenceAction::KillHost => match kill_own_group() {
            Ok(never) => match never {},
            Err(e) => e,
        },
    }
}

/// Kill this process's own group (this process included).
fn kill_own_group() -> Result<Infallible, FenceError> {
    let pgid = getpgrp().as_raw();
    kill_process_group(pgid)?;
    // The signal is delivered to this process too, at the latest when it
    // next returns to user space; wait for it.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn refuses_the_special_groups() {
        assert_eq!(kill_process_group(0), Err(FenceError::BadGroup(0)));
        assert_eq!(kill_process_group(1), Err(FenceError::BadGroup(1)));
        assert_eq!(kill_process_group(-5), Err(FenceError::BadGroup(-5)));
        assert!(!group_exists(1));
    }

    /// Kills the group on drop, so a failed assertion leaves no process.
    struct GroupGuard(i32);
    impl Drop for GroupGuard {
        fn drop(&mut self) {
            let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }

    #[test]
    fn kills_a_whole_group_even_when_stopped() {
        let mut leader = Command::new("sleep")
            .arg("600")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let guard = GroupGuard(pgid);
        let mut member = Command::new("sleep")
            .arg("600")
            .process_group(pgid)
            .spawn()
            .unwrap();
        nix::sys::signal::kill(Pid::from_raw(pgid), Signal::SIGSTOP).unwrap();
        assert!(group_exists(pgid));
        kill_process_group(pgid).unwrap();
        // SIGKILL ends a stopped process: both exit, killed by signal 9.
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(leader.wait().unwrap().signal(), Some(9));
        assert_eq!(member.wait().unwrap().signal(), Some(9));
        assert!(!group_exists(pgid));
        // An empty group is not an error.
        kill_process_group(pgid).unwrap();
        // The group is gone: its id may be reused, so the guard must not fire.
        std::mem::forget(guard);
    }
}
