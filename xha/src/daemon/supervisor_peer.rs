//! Who may drive an `xha-supervisor`: only the host's own daemon.
//!
//! The supervisor kills the process group it was given (`--pgid`). A client
//! that is not in that group could arm a countdown for a host it does not
//! belong to, disarm it, or end the supervisor with a stray line; a daemon
//! started with the wrong group would be "watched" by a supervisor that
//! kills some other group. So every connection is checked by the kernel's
//! word on who is at the other end (`SO_PEERCRED`, taken at `connect(2)`):
//!
//! - the peer's pid must be in the host's process group (`getpgid(pid)`);
//! - its uid must be root, the supervisor's own uid, or the uid given with
//!   `--uid` (the socket is mode 0600, so this is a second line of defence).
//!
//! Anything else is refused before the supervisor's state machine sees it:
//! the client gets one `error <reason>` line, the connection is closed, the
//! refusal is logged, and the supervisor keeps waiting for its daemon.

use std::os::unix::net::UnixStream;

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use nix::unistd::{Pid, getpgid};

/// What the kernel says about a connected client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The pid of the process that connected (0 if it is in a pid
    /// namespace the supervisor cannot see into).
    pub pid: i32,
    pub uid: u32,
    /// The peer's process group now; `None` when the process is gone.
    pub pgid: Option<i32>,
}

/// Which clients are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The host's process group (`--pgid`).
    pub pgid: i32,
    /// The supervisor's own effective uid.
    pub own_uid: u32,
    /// An extra uid allowed (`--uid`).
    pub extra_uid: Option<u32>,
}

/// Why a client was refused. Every variant names the peer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerRefusal {
    /// `SO_PEERCRED` failed (not expected on a connected Unix socket).
    #[error("cannot read the client's credentials (SO_PEERCRED): {0}")]
    NoCredentials(Errno),
    /// The peer's pid is not visible from here (another pid namespace).
    #[error("the client's pid is not visible to the supervisor (another pid namespace)")]
    NoPid,
    /// The process exited before it could be checked.
    #[error("client process {pid} exited before it could be checked")]
    Gone { pid: i32 },
    /// The process is not in the host's group.
    #[error(
        "client process {pid} is in process group {actual}, not in the host's group {expected}: only the host's own daemon may connect"
    )]
    WrongGroup {
        pid: i32,
        actual: i32,
        expected: i32,
    },
    /// The process runs as a user that may not drive the supervisor.
    #[error("client process {pid} runs as uid {uid}; allowed: {allowed}")]
    WrongUser { pid: i32, uid: u32, allowed: String },
}

/// Read the credentials of the process at the other end of `stream`.
pub fn peer_of(stream: &UnixStream) -> Result<Peer, PeerRefusal> {
    let cred = getsockopt(stream, PeerCredentials).map_err(PeerRefusal::NoCredentials)?;
    let pid = cred.pid();
    let pgid = if pid > 0 {
        getpgid(Some(Pid::from_raw(pid))).ok().map(Pid::as_raw)
    } else {
        None
    };
    Ok(Peer {
        pid,
        uid: cred.uid(),
        pgid,
    })
}

impl Policy {
    /// Accept `peer` or say why not. Pure: a function of its arguments.
    pub fn check(&self, peer: &Peer) -> Result<(), PeerRefusal> {
        if peer.pid <= 0 {
            return Err(PeerRefusal::NoPid);
        }
        let Some(actual) = peer.pgid else {
            return Err(PeerRefusal::Gone { pid: peer.pid });
        };
        if actual != self.pgid {
            return Err(PeerRefusal::WrongGroup {
                pid: peer.pid,
                actual,
                expected: self.pgid,
            });
        }
        let allowed = [Some(0), Some(self.own_uid), self.extra_uid];
        if !allowed.contains(&Some(peer.uid)) {
            let mut names: Vec<String> = vec!["root".into(), format!("uid {}", self.own_uid)];
            if let Some(u) = self.extra_uid {
                names.push(format!("uid {u}"));
            }
            return Err(PeerRefusal::WrongUser {
                pid: peer.pid,
                uid: peer.uid,
                allowed: names.join(", "),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        pgid: 500,
        own_uid: 1000,
        extra_uid: Some(42),
    };

    fn peer(pid: i32, uid: u32, pgid: Option<i32>) -> Peer {
        Peer { pid, uid, pgid }
    }

    #[test]
    fn only_a_process_of_the_host_group_with_an_allowed_uid_passes() {
        for uid in [0, 1000, 42] {
            assert_eq!(POLICY.check(&peer(501, uid, Some(500))), Ok(()));
        }
        assert_eq!(
            POLICY.check(&peer(501, 7, Some(500))),
            Err(PeerRefusal::WrongUser {
                pid: 501,
                uid: 7,
                allowed: "root, uid 1000, uid 42".into()
            })
        );
        assert_eq!(
            POLICY.check(&peer(600, 0, Some(600))),
            Err(PeerRefusal::WrongGroup {
                pid: 600,
                actual: 600,
                expected: 500
            })
        );
        assert_eq!(
            POLICY.check(&peer(600, 0, None)),
            Err(PeerRefusal::Gone { pid: 600 })
        );
        assert_eq!(POLICY.check(&peer(0, 0, None)), Err(PeerRefusal::NoPid));
        let err = POLICY.check(&peer(600, 0, Some(7))).unwrap_err();
        assert!(
            err.to_string().contains("not in the host's group 500"),
            "{err}"
        );
    }

    #[test]
    fn credentials_of_a_real_connection_are_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let p = peer_of(&a).unwrap();
        assert_eq!(p.pid, std::process::id() as i32);
        assert_eq!(p.uid, nix::unistd::geteuid().as_raw());
        assert_eq!(p.pgid, Some(nix::unistd::getpgrp().as_raw()));
    }
}
