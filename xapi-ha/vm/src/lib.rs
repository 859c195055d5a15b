//! VM drivers of the pool agent: one interface ([`VmDriver`]) over two
//! drivers, [`qemu::QemuDriver`] (real virtual machines, QEMU started and
//! owned directly, QMP over a Unix socket) and [`process::ProcessDriver`] (a
//! VM is a supervised command). Both keep their per-VM state in a run
//! directory, so a restarted agent finds (adopts) the VMs that kept running.
//!
//! Every VM process is the child of a small keeper process (`xha-vm-keeper`,
//! [`keeper`]) in its own session, not of the agent: the VM survives the
//! agent, and the keeper records the exit status in the run directory even
//! while no agent runs. Design and driver-config keys: docs/vm-drivers.md.
//!
//! The drivers are blocking (a start waits for QEMU's QMP socket, a clean
//! stop waits up to its timeout); an async agent calls them from a blocking
//! thread. Events are polled ([`VmDriver::poll_events`]).

pub mod error;
pub mod keeper;
pub mod process;
pub mod procfs;
pub mod qemu;
pub mod qmp;
pub mod rundir;
pub mod spec;
pub mod stamp;
mod supervise;

use std::path::PathBuf;
use std::time::Duration;

pub use error::DriverError;
pub use spec::VmSpec;
use uuid::Uuid;

/// Where and as whom a driver runs: the same for both drivers.
#[derive(Debug, Clone)]
pub struct DriverContext {
    /// This host's name, written into stamps and records.
    pub host: String,
    /// The run directory: one subdirectory per VM (must survive an agent
    /// restart, so not a private temporary directory; cleared by a host reboot
    /// is fine since the VMs are gone then too).
    pub run_dir: PathBuf,
    /// The `xha-vm-keeper` binary.
    pub keeper: PathBuf,
}

impl DriverContext {
    /// `xha-vm-keeper` next to the running executable, the way the agent is installed.
    pub fn keeper_next_to_current_exe() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let k = exe.parent()?.join("xha-vm-keeper");
        k.exists().then_some(k)
    }
}

/// A VM running on this host, as started or adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningVm {
    pub uuid: Uuid,
    pub name: String,
    /// The VM's process (QEMU, or the command).
    pub pid: i32,
    /// Wall clock at start, Unix ms.
    pub started_ms: u64,
}

/// The power state a driver reports (XenAPI `power_state` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerState {
    Running,
    Paused,
    Halted,
}

/// How to stop a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Ask it (QEMU: ACPI power button; process: SIGTERM); kill it when it
    /// has not stopped after `timeout`.
    Clean { timeout: Duration },
    /// Kill it now (SIGKILL).
    Hard,
}

/// What a stop we asked for came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopRequest {
    /// A clean stop that finished within its timeout.
    Clean,
    /// A clean stop that timed out and ended in SIGKILL.
    CleanForced,
    Hard,
    /// The VM moved to another host by live migration.
    Migrated,
}

/// How the VM's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// We stopped it (a stop through this driver, possibly by an earlier
    /// agent process: the request is recorded in the run directory first).
    Requested(StopRequest),
    /// It stopped by itself: the guest shut down, the command exited, it
    /// crashed or was killed by someone else.
    ByItself {
        /// None when nobody saw the exit status (keeper gone, host rebooted).
        exit: Option<ExitStatus>,
        /// QEMU: the `reason` of a `SHUTDOWN` event with `guest: true`
        /// (`guest-shutdown`, `guest-reset`, `guest-panic`).
        guest_shutdown: Option<String>,
    },
}

impl StopCause {
    /// True for a shutdown from inside the guest (QEMU) or a command that
    /// exited with status 0 (process).
    pub fn is_clean_exit(&self) -> bool {
        matches!(
            self,
            StopCause::ByItself {
                exit: Some(ExitStatus::Code(0)),
                ..
            }
        ) || matches!(self, StopCause::ByItself { guest_shutdown: Some(r), .. } if r == "guest-shutdown")
    }
}

/// An event a driver reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEvent {
    /// The VM is no longer running on this host. Reported once per run.
    Stopped { uuid: Uuid, cause: StopCause },
}

/// One interface over the VM drivers. Every VM started or adopted ends in
/// exactly one [`VmEvent::Stopped`].
pub trait VmDriver: Send {
    /// The driver's name as VM records spell it (`qemu`, `process`).
    fn name(&self) -> &'static str;
    /// Starts the VM on this host; returns once it runs.
    fn start(&mut self, spec: &VmSpec) -> Result<RunningVm, DriverError>;
    /// Stops the VM and waits until it is gone. The `Stopped` event follows
    /// from [`VmDriver::poll_events`].
    fn stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<StopRequest, DriverError>;
    /// Starts a stop and returns at once; the `Stopped` event comes from
    /// [`VmDriver::poll_events`], which also kills a VM still running when a
    /// clean stop's timeout has passed (poll at least every few hundred ms).
    /// For an agent that must not block on a 30 s clean shutdown.
    fn request_stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<(), DriverError>;
    /// The VM's power state (Halted for a VM this driver does not run).
    fn state(&mut self, uuid: Uuid) -> Result<PowerState, DriverError>;
    /// Resident memory of the VM's process, bytes.
    fn memory_used(&mut self, uuid: Uuid) -> Result<u64, DriverError>;
    /// Finds the VMs of the run directory that still run and takes them
    /// over; VMs that stopped while nobody watched become events. Never
    /// starts or kills anything.
    fn adopt(&mut self) -> Result<Vec<RunningVm>, DriverError>;
    /// The VMs running now.
    fn running(&self) -> Vec<RunningVm>;
    /// Checks every VM and returns what happened since the last call.
    fn poll_events(&mut self) -> Vec<VmEvent>;
}

/// Wall clock, Unix ms (records and stamps; never used for decisions).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
