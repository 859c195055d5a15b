//! Whether a VM is agile, why not, and where it can run
//! (docs/vm-drivers.md, "Drivers per host and agility"):
//!
//! - `VM.assert_agile(self)` (XenAPI): void when the VM is agile, else the
//!   first problem as an error: `HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED
//!   [sr]` for a disk on an SR that is not shared, `OPERATION_NOT_ALLOWED
//!   [reason]` for a driver that some host does not offer (or none set).
//! - `VM.get_agility_problems(self)` (ours): every problem as a sentence,
//!   an empty set when the VM is agile (`xe diagnostic-vm-status`).
//! - `VM.get_possible_hosts(vm)` (XenAPI): the hosts that offer the VM's
//!   driver and have the memory for it (a host it already runs on counts
//!   its own footprint as free).
//!
//! A VM is agile when it could run on every host of the pool: all its disks
//! are on shared SRs and every host offers its driver.

use crate::db::{Class, Database};
use crate::value::{Ref, Value};

use super::coerce::{self, to_text};
use super::vbd::vm_disks;
use super::vm_power::{host_free_memory, host_label, vm_footprint};
use super::{ApiError, Outcome};

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    db.field(class, r, name)
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

/// The drivers `host` offers (`vm_drivers`, from its agent's config).
pub fn host_drivers(db: &Database, host: Ref) -> Vec<String> {
    match db.field(Class::Host, host, "vm_drivers") {
        Some(Value::Set(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// One reason a VM is not agile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    NoDriver,
    DriverMissing { driver: String, host: Ref },
    SrNotShared { device: u32, vdi: Ref, sr: Ref },
}

impl Problem {
    fn sentence(&self, db: &Database) -> String {
        match self {
            Problem::NoDriver => "the VM has no driver (set VM.driver: qemu or process)".into(),
            Problem::DriverMissing { driver, host } => format!(
                "host {} does not offer VM driver {driver}",
                host_label(db, *host)
            ),
            Problem::SrNotShared { device, vdi, sr } => format!(
                "disk {device} (VDI {}) is on SR {} (uuid: {}), which is not shared",
                text(db, Class::Vdi, *vdi, "uuid"),
                text(db, Class::Sr, *sr, "name_label"),
                text(db, Class::Sr, *sr, "uuid"),
            ),
        }
    }

    pub(crate) fn error(&self, db: &Database) -> ApiError {
        match self {
            Problem::SrNotShared { sr, .. } => {
                ApiError::new("HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED", [sr.to_string()])
            }
            _ => ApiError::operation_not_allowed(&self.sentence(db)),
        }
    }
}

/// Why `vm` is not agile; empty when it is.
pub fn problems(db: &Database, vm: Ref) -> Vec<Problem> {
    let mut out = Vec::new();
    let driver = text(db, Class::Vm, vm, "driver");
    if driver.is_empty() {
        out.push(Problem::NoDriver);
    } else {
        let mut hosts: Vec<(String, Ref)> = db
            .objects(Class::Host)
            .map(|(h, o)| (o.uuid().to_owned(), h))
            .collect();
        hosts.sort();
        for (_, host) in hosts {
            if !host_drivers(db, host).contains(&driver) {
                out.push(Problem::DriverMissing {
                    driver: driver.clone(),
                    host,
                });
            }
        }
    }
    for d in vm_disks(db, vm) {
        if db.field(Class::Sr, d.sr, "shared") != Some(Value::Bool(true)) {
            out.push(Problem::SrNotShared {
                device: d.device,
                vdi: d.vdi,
                sr: d.sr,
            });
        }
    }
    out
}

/// The hosts `vm` can start on (or keep running on): driver offered, memory.
pub fn possible_hosts(db: &Database, vm: Ref) -> Vec<Ref> {
    let driver = text(db, Class::Vm, vm, "driver");
    let resident = db
        .field(Class::Vm, vm, "resident_on")
        .and_then(|v| v.as_ref());
    let need = vm_footprint(db, vm);
    let mut hosts: Vec<(String, Ref)> = db
        .objects(Class::Host)
        .map(|(h, o)| (o.uuid().to_owned(), h))
        .filter(|(_, h)| !driver.is_empty() && host_drivers(db, *h).contains(&driver))
        .filter(|(_, h)| {
            let own = if resident == Some(*h) { need } else { 0 };
            host_free_memory(db, *h).saturating_add(own) >= need
        })
        .collect();
    hosts.sort();
    hosts.into_iter().map(|(_, h)| h).collect()
}

pub fn assert_agile(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "self", arg)?;
    match problems(db, vm).first() {
        None => Ok(Outcome::value(Value::Void)),
        Some(p) => Err(p.error(db)),
    }
}

pub fn get_agility_problems(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "self", arg)?;
    let all = problems(db, vm)
        .iter()
        .map(|p| Value::String(p.sentence(db)))
        .collect();
    Ok(Outcome::value(Value::Set(all)))
}

pub fn get_possible_hosts(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", arg)?;
    let hosts = possible_hosts(db, vm).into_iter().map(Value::Ref).collect();
    Ok(Outcome::value(Value::Set(hosts)))
}
