//! The keeper: the parent of one VM process (`xha-vm-keeper DIR -- PROGRAM ARGS...`).
//!
//! Why a keeper: the agent may restart or crash while VMs run. A VM that were
//! the agent's child would be reparented to init on the agent's death and its
//! exit status lost. The keeper starts a new session (setsid: no controlling
//! terminal, no signals aimed at the agent's process group), spawns the VM in
//! a process group of its own (so a stop signals the VM and its children, and
//! never the keeper), records both pids with their start times, waits, and
//! writes the exit status into the VM's run directory. It costs about two
//! MiB per VM. A pidfd would give the status only to a living agent.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ExitStatus;
use crate::error::{DriverError, io};
use crate::rundir::{ExitRecord, ProcId, VmDir};

/// Runs the keeper in the current process; returns once the VM has exited
/// and its status is recorded.
pub fn run(dir: &Path, program: &OsString, args: &[OsString]) -> Result<ExitRecord, DriverError> {
    let dir = VmDir::at(dir.to_path_buf());
    // Fails only when we already lead a process group, which the driver
    // never arranges; the keeper still works then, so carry on.
    let _ = nix::unistd::setsid();
    let me = std::process::id() as i32;
    if let Some(p) = ProcId::of(me) {
        dir.write_proc("keeper.pid", p)?;
    }
    let log = |name: &str| {
        let path = dir.file(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))
    };
    let spawned = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log("stdout.log")?)
        .stderr(log("stderr.log")?)
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let rec = ExitRecord::SpawnFailed(format!("{}: {e}", program.to_string_lossy()));
            dir.write_exit(&rec)?;
            return Ok(rec);
        }
    };
    // The child cannot be reaped before we wait, so /proc/PID holds its start
    // time even if it has already exited.
    let recorded = match ProcId::of(child.id() as i32) {
        Some(p) => dir.write_proc("vm.pid", p),
        None => Err(DriverError::Io {
            path: dir.file("vm.pid"),
            source: std::io::Error::other("the VM's /proc entry is gone"),
        }),
    };
    if let Err(e) = recorded {
        // A VM nobody can find again must not run: end it.
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let status = child.wait().map_err(io(dir.file("vm.pid")))?;
    let rec = ExitRecord::Status(match (status.code(), status.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Code(-1),
    });
    dir.write_exit(&rec)?;
    Ok(rec)
}
