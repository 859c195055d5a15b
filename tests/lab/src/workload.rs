//! Faults that take one process of a host, not its whole group, and a
//! stand-in workload in a host's group (what a VM is under the pool agent):
//! the tests of "whatever dies first, the host's group is gone before the
//! peers may act" (issue 9, `docs/daemon.md`, "Losing the watchdog").

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::Signal;

use super::{Lab, LabError, SUPERVISOR, XHAD};

impl Lab {
    /// Start `cmd` in host `i`'s process group (stdin and stdout closed).
    /// The caller owns the child; it dies with the host.
    pub fn spawn_in_host(&self, i: usize, cmd: &mut Command) -> Result<Child, LabError> {
        let host = self.host(i)?;
        let pgid = self.pgid(i).ok_or(LabError::HostGone {
            host: i,
            uuid: host.info.uuid,
        })?;
        cmd.process_group(pgid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|source| LabError::Spawn {
                host: i,
                program: "workload",
                path: cmd.get_program().into(),
                source,
            })
    }

    /// Send `signal` to host `i`'s `xhad` alone (not its group).
    pub fn signal_daemon(&self, i: usize, signal: Signal) -> Result<(), LabError> {
        let host = self.host(i)?;
        self.signal_one(i, host.daemon.as_ref(), XHAD, signal)
    }

    /// Send `signal` to host `i`'s `xha-supervisor` alone.
    pub fn signal_supervisor(&self, i: usize, signal: Signal) -> Result<(), LabError> {
        let host = self.host(i)?;
        self.signal_one(i, host.supervisor.as_ref(), SUPERVISOR, signal)
    }

    fn signal_one(
        &self,
        i: usize,
        proc: Option<&super::process::Proc>,
        what: &'static str,
        signal: Signal,
    ) -> Result<(), LabError> {
        let gone = LabError::HostGone {
            host: i,
            uuid: self.hosts[i].info.uuid,
        };
        match proc.map(|p| p.signal(signal)) {
            Some(Ok(true)) => {
                tracing::info!(host = i, signal = signal.as_str(), what, "signalled");
                Ok(())
            }
            None | Some(Ok(false)) => Err(gone),
            Some(Err(errno)) => Err(LabError::Signal {
                host: i,
                signal: signal.as_str(),
                errno,
            }),
        }
    }
}
