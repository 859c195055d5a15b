//! The VM host: the `xapi_vm` drivers this agent owns (the process driver
//! always, QEMU when `vm.drivers` lists it), the start/stop effects of the
//! power calls, the drivers' events and the adoption of running VMs at
//! agent start (docs/api.md, "The VM lifecycle").
//!
//! The drivers are blocking; every call here runs on a blocking thread.
//! Lock order: the database store first, then the VM host, in both the
//! call path (effects) and the event path ([`super::Agent::poll_vms`]).

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;
use xapi_vm::process::ProcessDriver;
use xapi_vm::qemu::{QemuConfig, QemuDriver};
use xapi_vm::{DriverContext, DriverError, PowerState, StopMode, VmDriver, VmEvent, VmSpec};

/// How long a clean shutdown waits before the driver kills the VM.
pub const CLEAN_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the agent polls the drivers for stopped VMs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A failed start or stop.
#[derive(Debug, thiserror::Error)]
pub enum VmHostError {
    #[error("no VM driver {0:?} on this host")]
    NoDriver(String),
    #[error("VM {0} is not running on this host")]
    NotRunning(Uuid),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// The drivers of this host.
pub struct VmHost {
    process: ProcessDriver,
    qemu: Option<QemuDriver>,
}

impl VmHost {
    /// The process driver, plus QEMU when `names` lists it; per-VM state
    /// under `run_dir`.
    pub fn new(host: String, run_dir: PathBuf, keeper: PathBuf, names: &[String]) -> VmHost {
        let ctx = DriverContext {
            host,
            run_dir,
            keeper,
        };
        let process = ProcessDriver::new(ctx.clone());
        let qemu = names
            .iter()
            .any(|n| n == xapi_vm::qemu::NAME)
            .then(|| QemuDriver::new(ctx, QemuConfig::default()));
        VmHost { process, qemu }
    }

    fn drivers(&mut self) -> Vec<&mut dyn VmDriver> {
        let mut out: Vec<&mut dyn VmDriver> = vec![&mut self.process];
        if let Some(q) = self.qemu.as_mut() {
            out.push(q);
        }
        out
    }

    fn driver(&mut self, name: &str) -> Result<&mut dyn VmDriver, VmHostError> {
        self.drivers()
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| VmHostError::NoDriver(name.to_owned()))
    }

    /// The driver running `uuid`, if any.
    fn running_driver(&mut self, uuid: Uuid) -> Option<&mut dyn VmDriver> {
        self.drivers()
            .into_iter()
            .find(|d| d.running().iter().any(|r| r.uuid == uuid))
    }

    /// The QEMU driver (live migration), when this host offers it.
    pub fn qemu(&mut self) -> Result<&mut QemuDriver, VmHostError> {
        self.qemu
            .as_mut()
            .ok_or_else(|| VmHostError::NoDriver(xapi_vm::qemu::NAME.to_owned()))
    }

    /// Starts a VM. One that already runs here is left as it is and the
    /// start succeeds: a start asked again (a new master resuming the last
    /// one's start, whose answer was lost) learns the truth and never makes
    /// a second instance; the caller records it running here either way.
    pub fn start(&mut self, spec: &VmSpec) -> Result<(), VmHostError> {
        if self.is_running(spec.uuid) {
            tracing::info!(vm = %spec.uuid, "VM already runs here: the start succeeds");
            return Ok(());
        }
        let vm = self.driver(&spec.driver)?.start(spec)?;
        tracing::info!(vm = %spec.uuid, pid = vm.pid, driver = %spec.driver, "VM started");
        Ok(())
    }

    /// Stops a VM and waits until it is gone.
    pub fn stop(&mut self, uuid: Uuid, hard: bool) -> Result<(), VmHostError> {
        let mode = if hard {
            StopMode::Hard
        } else {
            StopMode::Clean {
                timeout: CLEAN_STOP_TIMEOUT,
            }
        };
        let d = self
            .running_driver(uuid)
            .ok_or(VmHostError::NotRunning(uuid))?;
        let how = d.stop(uuid, mode)?;
        tracing::info!(vm = %uuid, how = ?how, "VM stopped");
        Ok(())
    }

    /// Whether the VM runs on this host now.
    pub fn is_running(&mut self, uuid: Uuid) -> bool {
        self.drivers()
            .into_iter()
            .any(|d| matches!(d.state(uuid), Ok(PowerState::Running | PowerState::Paused)))
    }

    /// Adopts the VMs still running from an earlier agent; their uuids.
    pub fn adopt(&mut self) -> Vec<Uuid> {
        let mut out = Vec::new();
        for d in self.drivers() {
            match d.adopt() {
                Ok(vms) => {
                    for vm in vms {
                        tracing::info!(vm = %vm.uuid, pid = vm.pid, driver = d.name(), "VM adopted");
                        out.push(vm.uuid);
                    }
                }
                Err(e) => tracing::error!(driver = d.name(), error = %e, "adopting VMs failed"),
            }
        }
        out
    }

    /// The VMs that stopped since the last poll.
    pub fn poll(&mut self) -> Vec<VmEvent> {
        self.drivers()
            .into_iter()
            .flat_map(|d| d.poll_events())
            .collect()
    }
}
