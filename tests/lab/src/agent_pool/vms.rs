//! The lab's VMs: process VMs running the stamp workload (`xha-stamp`) on
//! a disk file of their own in the shared SR, as the failover tests make
//! them (each boot also appends `HOST SPAWN_MS` to a boots file beside
//! the disk); or QEMU VMs of the test guest (`guest`), whose init runs the
//! stamp workload on its disk, a VDI of the shared SR.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::AgentPool;
use super::guest::{QEMU_VM_MEMORY, QemuGuest};
use crate::LabError;

/// One VM of the lab.
#[derive(Clone, Debug)]
pub struct LabVm {
    pub name: String,
    pub r#ref: String,
    pub uuid: String,
    /// Its stamp disk (read by the double-run checker).
    pub disk: PathBuf,
    /// Process VMs: one line per boot, `HOST SPAWN_MS`.
    pub boots: Option<PathBuf>,
}

impl AgentPool {
    /// Creates a halted, unprotected process VM running the stamp workload,
    /// with start order `order`, its disk `disk_bytes` long (the caller
    /// knows the stamp region's size: `xapi_vm::stamp::region::REGION_BYTES`).
    pub fn create_stamp_vm(
        &self,
        name: &str,
        order: i64,
        disk_bytes: u64,
    ) -> Result<LabVm, LabError> {
        let disk = self.sr_dir.join(format!("{name}.disk"));
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(disk_bytes))
            .map_err(|source| LabError::Io {
                step: "make a stamp disk",
                path: disk.clone(),
                source,
            })?;
        let boots = self.sr_dir.join(format!("{name}.boots"));
        let command = format!(
            "echo \"$XHA_HOST $XHA_STAMP_T0_MS\" >> {boots}; exec {stamp} --disk {disk}",
            boots = boots.display(),
            stamp = self.stamp.display(),
            disk = disk.display(),
        );
        let r = self
            .call(
                "VM.create",
                json!([{
                    "name_label": name,
                    "memory_static_max": 64 << 20,
                    "driver": "process",
                    "driver_config": {"command": command},
                    "order": order,
                }]),
            )?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.lab_vm(name, r, disk, Some(boots))
    }

    /// Creates a halted, unprotected QEMU VM of the test guest `guest`
    /// with start order `order`: its disk a VDI of `disk_bytes` on the
    /// lab's SR (a `VBD`), where the guest writes its stamps.
    pub fn create_qemu_stamp_vm(
        &self,
        name: &str,
        order: i64,
        disk_bytes: u64,
        guest: &QemuGuest,
    ) -> Result<LabVm, LabError> {
        let vdi = self.call(
            "VDI.create",
            json!([{"SR": self.sr_ref, "virtual_size": disk_bytes, "name_label": format!("{name}-disk")}]),
        )?;
        let location = self.call("VDI.get_location", json!([vdi]))?;
        let disk = self.sr_dir.join(location.as_str().unwrap_or_default());
        let r = self
            .call(
                "VM.create",
                json!([{
                    "name_label": name,
                    "memory_static_max": QEMU_VM_MEMORY,
                    "driver": "qemu",
                    "driver_config": {
                        "kernel": guest.kernel.display().to_string(),
                        "initrd": guest.initrd.display().to_string(),
                    },
                    "order": order,
                }]),
            )?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.call(
            "VBD.create",
            json!([{"VM": r, "VDI": vdi, "userdevice": "0", "bootable": true, "mode": "RW", "type": "Disk"}]),
        )?;
        self.lab_vm(name, r, disk, None)
    }

    /// `VM.get_<field>` of `vm`.
    pub fn vm_field(&self, vm: &LabVm, field: &str) -> Result<Value, LabError> {
        self.call(&format!("VM.get_{field}"), json!([vm.r#ref]))
    }

    /// The host number `vm` is resident on (`None`: halted, or not a lab
    /// host).
    pub fn resident_host(&self, vm: &LabVm) -> Result<Option<usize>, LabError> {
        let r = self.vm_field(vm, "resident_on")?;
        let Some(r) = r.as_str() else { return Ok(None) };
        if r == "OpaqueRef:NULL" {
            return Ok(None);
        }
        let uuid = self.call("host.get_uuid", json!([r]))?;
        Ok(self.hosts.iter().position(|h| json!(h.uuid) == uuid))
    }

    /// The lab's record of VM `r` (its UUID read from the pool).
    fn lab_vm(
        &self,
        name: &str,
        r: String,
        disk: PathBuf,
        boots: Option<PathBuf>,
    ) -> Result<LabVm, LabError> {
        let uuid = self
            .call("VM.get_uuid", json!([r]))?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(LabVm {
            name: name.to_owned(),
            r#ref: r,
            uuid,
            disk,
            boots,
        })
    }
}
