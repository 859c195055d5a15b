//! The supervisor's second watcher: a small reaper process that kills the
//! host's process group if the supervisor dies while its countdown is armed.
//!
//! The daemon and the supervisor watch each other: if the daemon dies or
//! freezes, the supervisor's countdown kills the host; if the supervisor
//! dies, the daemon's next kick fails and the daemon fences its own host.
//! Neither covers both dying at once (one `kill -9` of both pids, an OOM
//! kill of several processes), nor a frozen daemon whose supervisor is then
//! killed: the host's workload would run on unwatched while the peers,
//! seeing no more slot writes, take it over. So at start-up the supervisor
//! starts a reaper (`xha-supervisor reap --pgid PGID`, the same binary
//! through `/proc/self/exe`):
//!
//! - in a process group of its own, neither the host's nor the
//!   supervisor's, so a signal to either group does not reach it, and it
//!   ignores SIGTERM, SIGINT and SIGHUP;
//! - its standard input is the read end of a pipe whose only write end the
//!   supervisor holds (close-on-exec, so no other process inherits it). The
//!   supervisor writes `A` before it answers `ok` to `arm` and `D` before it
//!   answers `ok` to `disarm`, and `D` once it has fenced the host itself;
//! - when the pipe reaches end of file the supervisor is gone (the kernel
//!   closes the write end however the supervisor ended, SIGKILL included).
//!   If the last state was `A`, the reaper sends SIGKILL to the host's group
//!   at once and exits 3; otherwise it exits 0.
//!
//! Why a pipe and a child, rather than `PR_SET_PDEATHSIG` or a pidfd: the
//! death signal would go to a process the supervisor started, but the
//! workload is started by the host and cannot be given one; a pidfd needs
//! Linux 5.3 and still a process to poll it. End of file on a pipe needs no
//! polling, no clock and no privileges, reports every kind of death at
//! once, and carries the armed state with it. Killing at once (not at the
//! countdown's end) is always safe: fencing early never lets a peer act
//! too soon.
//!
//! If the reaper itself dies, the supervisor sees `POLLERR` on the pipe,
//! logs it and starts a new one with the current state.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, Signal};

use super::fence;

/// The byte that says "armed".
const ARMED: u8 = b'A';
/// The byte that says "disarmed" (or "already fenced").
const DISARMED: u8 = b'D';

/// The supervisor's handle on its reaper.
#[derive(Debug)]
pub struct Reaper {
    pgid: i32,
    child: Child,
    pipe: std::fs::File,
    armed: bool,
}

impl Reaper {
    /// Start a reaper for group `pgid`, armed or not.
    pub fn spawn(pgid: i32, armed: bool) -> std::io::Result<Reaper> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let child = Command::new("/proc/self/exe")
            .args(["reap", "--pgid", &pgid.to_string()])
            .stdin(Stdio::from(read))
            // Its log lines go to the supervisor's stderr; nothing else is
            // inherited that could keep a caller's pipe open.
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let mut r = Reaper {
            pgid,
            child,
            pipe: std::fs::File::from(write),
            armed: !armed,
        };
        r.set_armed(armed)?;
        tracing::info!(pid = r.child.id(), pgid, "reaper started");
        Ok(r)
    }

    /// Tell the reaper the countdown's state (before replying to the daemon).
    pub fn set_armed(&mut self, armed: bool) -> std::io::Result<()> {
        if armed == self.armed {
            return Ok(());
        }
        // One byte on a pipe nobody else writes: atomic, and a pipe buffer
        // holds thousands before a write could block.
        self.pipe
            .write_all(&[if armed { ARMED } else { DISARMED }])?;
        self.armed = armed;
        Ok(())
    }

    /// The pipe's write end, polled for `POLLERR` (the reaper died).
    #[must_use]
    pub fn pipe_fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// The reaper's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The reaper died: reap it and start a new one in the same state.
    pub fn replace(self) -> std::io::Result<Reaper> {
        let Reaper {
            pgid,
            mut child,
            armed,
            ..
        } = self;
        let status = child.try_wait().ok().flatten();
        tracing::error!(
            pid = child.id(),
            ?status,
            "the reaper died: starting a new one (until then, the death of this supervisor would leave the host unwatched)"
        );
        Reaper::spawn(pgid, armed)
    }
}

/// `xha-supervisor reap --pgid PGID`: the reaper's main. Returns the exit
/// status: 3 when it killed the host's group, 0 when the supervisor ended
/// disarmed, 2 when the kill failed.
#[must_use]
pub fn reap_main(pgid: i32) -> i32 {
    // Blocked, these stay pending and never end the reaper (single-threaded,
    // so the thread's mask is the process's).
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(sig);
    }
    if let Err(e) = mask.thread_block() {
        tracing::warn!("reaper: cannot block SIGTERM, SIGINT and SIGHUP: {e}");
    }
    let _ = super::realtime::request();
    let armed = wait_for_end(&mut std::io::stdin().lock());
    if !armed {
        return 0;
    }
    match fence::kill_process_group(pgid) {
        Ok(()) => {
            tracing::error!(
                pgid,
                "FENCED host process group {pgid} with SIGKILL: the supervisor died while armed (reaper)"
            );
            3
        }
        Err(e) => {
            tracing::error!(
                pgid,
                "FAILED to fence host process group {pgid} after the supervisor died while armed (reaper): {e}"
            );
            2
        }
    }
}

/// Read state bytes until end of file; returns the last state. A read error
/// counts as end of file: the supervisor can no longer be heard.
fn wait_for_end(input: &mut impl Read) -> bool {
    let mut armed = false;
    let mut buf = [0u8; 64];
    loop {
        match input.read(&mut buf) {
            Ok(0) => return armed,
            Ok(n) => {
                for &b in &buf[..n] {
                    match b {
                        ARMED => armed = true,
                        DISARMED => armed = false,
                        _ => {}
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::error!("reaper: reading from the supervisor failed: {e}");
                return armed;
            }
        }
    }
}

/// Whether `fd`'s poll events say the reader (the reaper) is gone.
#[must_use]
pub fn reader_gone(revents: Option<nix::poll::PollFlags>) -> bool {
    revents.is_some_and(|r| {
        r.intersects(nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLHUP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_state_before_end_of_file_decides() {
        assert!(!wait_for_end(&mut &b""[..]));
        assert!(wait_for_end(&mut &b"A"[..]));
        assert!(!wait_for_end(&mut &b"AD"[..]));
        assert!(wait_for_end(&mut &b"ADA"[..]));
        assert!(wait_for_end(&mut &b"A\nx"[..]), "unknown bytes are ignored");
    }
}
