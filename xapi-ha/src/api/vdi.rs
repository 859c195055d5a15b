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
//! - On a `type=block` SR: `NOT_IMPLEMENTED ["VDI.create on a type=block
//!   SR: ..."]`: volumes on block SRs are regions of the LUN, which the
//!   block SR helper adds.

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
    if sr_type != "file" {
        return Err(ApiError::new(
            "NOT_IMPLEMENTED",
            [format!(
                "VDI.create on a type={sr_type} SR: only type=file SRs hold VDIs here; volumes on block SRs are regions of the LUN, which the block SR helper adds"
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

/// The path of `vdi`'s volume, when it is a file on a `file` SR.
pub fn volume_path(db: &Database, vdi: Ref) -> Option<std::path::PathBuf> {
    let sr = db.field(Class::Vdi, vdi, "SR")?.as_ref()?;
    let dir = sr_config(db, sr, "path")?;
    let location = db.field(Class::Vdi, vdi, "location").map(|v| to_text(&v))?;
    (!location.is_empty()).then(|| std::path::Path::new(&dir).join(location))
}
