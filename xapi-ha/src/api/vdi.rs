//! `VDI.create(record)`: a virtual disk on an SR (docs/vm-drivers.md, "VM
//! disks").
//!
//! The record must give `SR` (an existing SR) and `virtual_size` (bytes,
//! not negative); `name_label`, `name_description`, `type` (default
//! `user`), `sharable`, `read_only`, `other_config` and `sm_config` are
//! optional; other names are ignored, as `VM.create` ignores them.
//!
//! - On a `type=file` SR the volume is a sparse file
//!   `<device_config:path>/<vdi uuid>.img` of `virtual_size` bytes, made by
//!   the server ([`Effect::CreateVdi`]) before the record commits; the
//!   record's `location` is the file name. The drivers open it with
//!   O_DIRECT (QEMU `cache=none`, the stamp writer `O_DIRECT`).
//! - On a `type=block` SR the volume is a region of the SR's device, an
//!   entry of its label's volume table: `virtual_size` must be positive
//!   and a multiple of 4096; the record's `sm_config` says where the region
//!   is (`region_offset`, `region_size`) and `location` is the volume's
//!   uuid ([`super::vdi_region`]).
//!
//! `VDI.destroy(self)`: refused with `VDI_IN_USE [vdi; "destroy"]` while a
//! VM that is not halted has it attached, and with `HA_IS_ENABLED []` for
//! an HA statefile or metadata volume while HA is on. Its VBDs go with it;
//! the volume is removed by the server before the records go
//! ([`Effect::DeleteVolume`]: the file is deleted, or the region freed in
//! the label).

use crate::db::{Change, Class, Database};
use crate::value::{Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::vm::record_pairs;
use super::{ApiError, Caller, Effect, Outcome};

/// The suffix of a VDI's file on a `file` SR.
pub const FILE_SUFFIX: &str = ".img";

/// The SR's `device_config` value `key`, if set.
pub fn sr_config(db: &Database, sr: Ref, key: &str) -> Option<String> {
    match db.field(Class::Sr, sr, "device_config") {
        Some(Value::Map(pairs)) => pairs
            .iter()
            .find(|(k, _)| k.to_wire() == key)
            .map(|(_, v)| to_text(v)),
        _ => None,
    }
}

pub fn create(db: &Database, caller: &Caller, arg: &Value) -> Result<Outcome, ApiError> {
    let mut given: Vec<(String, Value)> = Vec::new();
    for (name, v) in record_pairs(arg)? {
        let Some(f) = Class::Vdi.field(&name) else {
            continue;
        };
        if !f.access.in_constructor() || given.iter().any(|(n, _)| *n == name) {
            continue;
        }
        given.push((name, coerce::field_value(db, f, v)?));
    }
    let value = |name: &str| given.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let sr = match value("SR") {
        Some(Value::Ref(r)) if !r.is_null() => *r,
        _ => return Err(ApiError::invalid_value("SR", "")),
    };
    let size = match value("virtual_size").and_then(Value::as_int) {
        Some(s) => s,
        None => return Err(ApiError::invalid_value("virtual_size", "")),
    };
    if value("type").is_none() {
        given.push(("type".to_owned(), Value::Enum("user".into())));
    }
    let sr_type = db
        .field(Class::Sr, sr, "type")
        .map(|v| to_text(&v))
        .unwrap_or_default();
    if sr_type == "block" {
        return super::vdi_region::create(db, caller, sr, size, given);
    }
    if sr_type != "file" {
        return Err(ApiError::new(
            "NOT_IMPLEMENTED",
            [format!(
                "VDI.create on a type={sr_type} SR: only type=file and type=block SRs hold VDIs here"
            )],
        ));
    }
    let Some(dir) = sr_config(db, sr, "path") else {
        return Err(ApiError::invalid_value("SR", &sr.to_string()));
    };
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    let uuid = fresh.uuid();
    let file = format!("{uuid}{FILE_SUFFIX}");
    given.push(("uuid".to_owned(), Value::String(uuid)));
    given.push(("location".to_owned(), Value::String(file.clone())));
    Ok(Outcome {
        changes: vec![Change::Create {
            class: Class::Vdi,
            r#ref: r,
            fields: given,
        }],
        effects: vec![Effect::CreateVdi {
            path: std::path::Path::new(&dir).join(file),
            size: u64::try_from(size).unwrap_or(0),
        }],
        ..Outcome::value(Value::Ref(r))
    })
}

/// The path of `vdi`'s volume: its file on a `file` SR, or the device of
/// a `block` SR (where the volume is the region [`super::vdi_region::region_of`]).
pub fn volume_path(db: &Database, vdi: Ref) -> Option<std::path::PathBuf> {
    let sr = db.field(Class::Vdi, vdi, "SR")?.as_ref()?;
    if super::vdi_region::region_of(db, vdi).is_some() {
        return sr_config(db, sr, "device").map(std::path::PathBuf::from);
    }
    let dir = sr_config(db, sr, "path")?;
    let location = db.field(Class::Vdi, vdi, "location").map(|v| to_text(&v))?;
    (!location.is_empty()).then(|| std::path::Path::new(&dir).join(location))
}

/// `VDI.destroy(self)` (see the module's documentation).
pub fn destroy(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let vdi = coerce::object(db, Class::Vdi, "self", arg)?;
    let ty = db
        .field(Class::Vdi, vdi, "type")
        .map(|v| to_text(&v))
        .unwrap_or_default();
    let ha_on = db
        .objects(Class::Pool)
        .any(|(p, _)| db.field(Class::Pool, p, "ha_enabled") == Some(Value::Bool(true)));
    if ha_on && (ty == "ha_statefile" || ty == "redo_log") {
        return Err(ApiError::ha_is_enabled());
    }
    let vbds: Vec<Ref> = match db.field(Class::Vdi, vdi, "VBDs") {
        Some(Value::Set(items)) => items.iter().filter_map(Value::as_ref).collect(),
        _ => Vec::new(),
    };
    for vbd in &vbds {
        let vm = db.field(Class::Vbd, *vbd, "VM").and_then(|v| v.as_ref());
        let running = vm.is_some_and(|vm| {
            db.get(Class::Vm, vm).is_some()
                && db
                    .field(Class::Vm, vm, "power_state")
                    .is_some_and(|s| to_text(&s) != "Halted")
        });
        if running {
            return Err(ApiError::new(
                "VDI_IN_USE",
                [vdi.to_string(), "destroy".to_owned()],
            ));
        }
    }
    let region = super::vdi_region::region_of(db, vdi);
    let effect = match (volume_path(db, vdi), region) {
        (Some(device), Some(_)) => {
            let uuid = db.field(Class::Vdi, vdi, "location").map(|v| to_text(&v));
            let volume = uuid
                .as_deref()
                .and_then(|u| uuid::Uuid::parse_str(u).ok())
                .ok_or_else(|| ApiError::internal(&format!("VDI {vdi} has no volume uuid")))?;
            Some(Effect::DeleteVolume {
                path: device,
                region: Some(volume),
            })
        }
        (Some(path), None) => Some(Effect::DeleteVolume { path, region: None }),
        (None, _) => None,
    };
    let mut changes: Vec<Change> = vbds
        .into_iter()
        .map(|r| Change::Delete {
            class: Class::Vbd,
            r#ref: r,
        })
        .collect();
    changes.push(Change::Delete {
        class: Class::Vdi,
        r#ref: vdi,
    });
    Ok(Outcome {
        changes,
        effects: effect.into_iter().collect(),
        ..Outcome::value(Value::Void)
    })
}
