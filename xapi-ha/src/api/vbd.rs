//! `VBD.create(record)` and `VBD.destroy(self)`: a VM's disks
//! (docs/vm-drivers.md, "VM disks"), and [`vm_disks`], the disks a VM
//! starts with.
//!
//! - `VBD.create`: the record gives `VM` and `VDI` (existing objects; `VDI`
//!   may be null only with `empty = true`), `userdevice` (a device number
//!   `0`, `1`, ... or `autodetect` for the lowest free one), `bootable`,
//!   `mode` (`RW` default, `RO`), `type` (`Disk` default, `CD`, `Floppy`)
//!   and `other_config`. The VM must be Halted (`VM_BAD_POWER_STATE`):
//!   disks are attached when the VM starts, there is no hot-plug. A
//!   device number the VM already uses is `DEVICE_ALREADY_EXISTS
//!   [userdevice]`; anything else is `INVALID_VALUE [userdevice; value]`.
//! - `VBD.destroy`: the VM must be Halted; the VDI stays.

use std::path::PathBuf;

use crate::db::{Change, Class, Database};
use crate::value::{Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::vm::record_pairs;
use super::{ApiError, Caller, Outcome, vdi};

fn vm_state(db: &Database, vm: Ref) -> String {
    db.field(Class::Vm, vm, "power_state")
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

fn halted(db: &Database, vm: Ref) -> Result<(), ApiError> {
    let state = vm_state(db, vm);
    if state == "Halted" {
        Ok(())
    } else {
        Err(ApiError::vm_bad_power_state(
            &vm.to_string(),
            "halted",
            &state.to_lowercase(),
        ))
    }
}

/// The VBDs of `vm`.
fn vbds_of(db: &Database, vm: Ref) -> Vec<Ref> {
    match db.field(Class::Vm, vm, "VBDs") {
        Some(Value::Set(items)) => items.iter().filter_map(Value::as_ref).collect(),
        _ => Vec::new(),
    }
}

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    db.field(class, r, name)
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

pub fn create(db: &Database, caller: &Caller, arg: &Value) -> Result<Outcome, ApiError> {
    let mut given: Vec<(String, Value)> = Vec::new();
    for (name, v) in record_pairs(arg)? {
        let Some(f) = Class::Vbd.field(&name) else {
            continue;
        };
        if !(f.access.in_constructor() || name == "bootable")
            || given.iter().any(|(n, _)| *n == name)
        {
            continue;
        }
        given.push((name, coerce::field_value(db, f, v)?));
    }
    let value = |given: &[(String, Value)], name: &str| {
        given
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let vm = match value(&given, "VM") {
        Some(Value::Ref(r)) if !r.is_null() => r,
        _ => return Err(ApiError::invalid_value("VM", "")),
    };
    let empty = value(&given, "empty") == Some(Value::Bool(true));
    match value(&given, "VDI") {
        Some(Value::Ref(r)) if !r.is_null() => {}
        _ if empty => {}
        _ => return Err(ApiError::invalid_value("VDI", "")),
    }
    halted(db, vm)?;
    let used: Vec<String> = vbds_of(db, vm)
        .into_iter()
        .map(|b| text(db, Class::Vbd, b, "userdevice"))
        .collect();
    let asked = value(&given, "userdevice")
        .map(|v| to_text(&v))
        .unwrap_or_default();
    let device = if asked == "autodetect" {
        (0u32..)
            .map(|n| n.to_string())
            .find(|n| !used.contains(n))
            .unwrap_or_default()
    } else if !asked.is_empty() && asked.len() <= 3 && asked.bytes().all(|b| b.is_ascii_digit()) {
        // One spelling per number: "01" and "1" would be the same device.
        let n: u32 = asked
            .parse()
            .map_err(|_| ApiError::invalid_value("userdevice", &asked))?;
        n.to_string()
    } else {
        return Err(ApiError::invalid_value("userdevice", &asked));
    };
    if used.contains(&device) {
        return Err(ApiError::new("DEVICE_ALREADY_EXISTS", [device]));
    }
    given.retain(|(n, _)| n != "userdevice");
    given.push(("userdevice".to_owned(), Value::String(device)));
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    given.push(("uuid".to_owned(), Value::String(fresh.uuid())));
    Ok(Outcome {
        changes: vec![Change::Create {
            class: Class::Vbd,
            r#ref: r,
            fields: given,
        }],
        ..Outcome::value(Value::Ref(r))
    })
}

pub fn destroy(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let vbd = coerce::object(db, Class::Vbd, "self", arg)?;
    if let Some(vm) = db.field(Class::Vbd, vbd, "VM").and_then(|v| v.as_ref())
        && db.get(Class::Vm, vm).is_some()
    {
        halted(db, vm)?;
    }
    Ok(Outcome {
        changes: vec![Change::Delete {
            class: Class::Vbd,
            r#ref: vbd,
        }],
        ..Outcome::value(Value::Void)
    })
}

/// One disk of a VM, as it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub vbd: Ref,
    pub vdi: Ref,
    pub sr: Ref,
    /// The device number.
    pub device: u32,
    /// The volume's file, or the block SR's device (None when unknown).
    pub path: Option<PathBuf>,
    /// blocksr: the volume's region of the device, `(offset, size)`, on a
    /// block SR.
    pub region: Option<(u64, u64)>,
}

/// The disks of `vm` in device order: its non-empty `Disk` VBDs.
pub fn vm_disks(db: &Database, vm: Ref) -> Vec<Disk> {
    let mut disks: Vec<Disk> = vbds_of(db, vm)
        .into_iter()
        .filter(|b| {
            text(db, Class::Vbd, *b, "type") == "Disk"
                && db.field(Class::Vbd, *b, "empty") != Some(Value::Bool(true))
        })
        .filter_map(|b| {
            let vdi = db.field(Class::Vbd, b, "VDI")?.as_ref()?;
            db.get(Class::Vdi, vdi)?;
            let sr = db
                .field(Class::Vdi, vdi, "SR")
                .and_then(|v| v.as_ref())
                .unwrap_or(Ref::NULL);
            Some(Disk {
                vbd: b,
                vdi,
                sr,
                device: text(db, Class::Vbd, b, "userdevice")
                    .parse()
                    .unwrap_or(u32::MAX),
                path: vdi::volume_path(db, vdi),
                region: super::vdi_region::region_of(db, vdi),
            })
        })
        .collect();
    disks.sort_by_key(|d| d.device);
    disks
}
