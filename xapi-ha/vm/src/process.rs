//! The process driver: a VM is a command (`driver-config:command`, run by
//! `/bin/sh -c`) in its own process group under a keeper. Memory is recorded
//! (`XHA_VM_MEMORY`), not enforced. A clean stop is SIGTERM to the group,
//! then SIGKILL after the timeout.
//!
//! The command's environment says which VM it is, so `xha-stamp` needs no
//! arguments: `XHA_VM_UUID`, `XHA_VM_NAME`, `XHA_HOST`, `XHA_VM_MEMORY`
//! (bytes), `XHA_VM_VCPUS`, `XHA_VM_DISKS` (paths joined by `:`),
//! `XHA_STAMP_SLOT`, `XHA_STAMP_T0_MS` (the start time).

use std::ffi::OsString;

use nix::sys::signal::Signal;
use uuid::Uuid;

use crate::spec::KEY_STAMP_SLOT;
use crate::supervise::Fleet;
use crate::{
    DriverContext, DriverError, PowerState, RunningVm, StopMode, StopRequest, VmDriver, VmEvent,
    VmSpec, now_ms,
};

pub const NAME: &str = "process";
/// The command to run.
pub const KEY_COMMAND: &str = "command";
const KEYS: &[&str] = &[KEY_COMMAND, KEY_STAMP_SLOT];

pub struct ProcessDriver {
    fleet: Fleet,
}

impl ProcessDriver {
    pub fn new(ctx: DriverContext) -> Self {
        Self {
            fleet: Fleet::new(ctx, NAME),
        }
    }
}

/// The environment a VM's command runs with (also used by the QEMU driver's
/// tests to describe a VM the same way).
pub fn vm_env(spec: &VmSpec, host: &str) -> Result<Vec<(String, String)>, DriverError> {
    let disks: Vec<String> = spec.disks.iter().map(|d| d.display().to_string()).collect();
    let regions: Vec<String> = (0..spec.disks.len())
        .map(|i| {
            spec.disk_region(i)
                .map_or_else(String::new, |r| format!("{}+{}", r.offset, r.size))
        })
        .collect();
    Ok(vec![
        ("XHA_VM_UUID".into(), spec.uuid.hyphenated().to_string()),
        ("XHA_VM_NAME".into(), spec.name.clone()),
        ("XHA_HOST".into(), host.into()),
        ("XHA_VM_MEMORY".into(), spec.memory_bytes.to_string()),
        ("XHA_VM_VCPUS".into(), spec.vcpus.to_string()),
        ("XHA_VM_DISKS".into(), disks.join(":")),
        ("XHA_VM_DISK_REGIONS".into(), regions.join(":")),
        ("XHA_STAMP_SLOT".into(), spec.stamp_slot()?.to_string()),
        ("XHA_STAMP_T0_MS".into(), now_ms().to_string()),
    ])
}

impl VmDriver for ProcessDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, spec: &VmSpec) -> Result<RunningVm, DriverError> {
        spec.check_common(NAME)?;
        spec.check_keys(KEYS)?;
        let command = spec
            .get(KEY_COMMAND)
            .ok_or_else(|| DriverError::BadConfig {
                key: KEY_COMMAND.into(),
                reason: "missing: the process driver needs the command to run".into(),
            })?;
        let env = vm_env(spec, &self.fleet.ctx.host)?;
        let args = [OsString::from("-c"), OsString::from(command)];
        let t = self
            .fleet
            .spawn(spec, &OsString::from("/bin/sh"), &args, &env)?;
        tracing::info!(vm = %spec.uuid, pid = t.vm.pid, "process VM started");
        Ok(t.running_vm())
    }

    fn stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<StopRequest, DriverError> {
        self.fleet.stop_with(uuid, mode, |t| {
            t.signal(Signal::SIGTERM);
            Ok(())
        })
    }

    fn request_stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<(), DriverError> {
        self.fleet.request_stop_with(uuid, mode, |t| {
            t.signal(Signal::SIGTERM);
            Ok(())
        })
    }

    fn state(&mut self, uuid: Uuid) -> Result<PowerState, DriverError> {
        Ok(self.fleet.proc_state(uuid))
    }

    fn memory_used(&mut self, uuid: Uuid) -> Result<u64, DriverError> {
        self.fleet.memory_used(uuid)
    }

    fn adopt(&mut self) -> Result<Vec<RunningVm>, DriverError> {
        self.fleet.adopt()
    }

    fn running(&self) -> Vec<RunningVm> {
        self.fleet.running()
    }

    fn poll_events(&mut self) -> Vec<VmEvent> {
        self.fleet.poll()
    }
}
