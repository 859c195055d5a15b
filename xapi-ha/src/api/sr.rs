//! `SR.create` and `SR.forget`: the records. The storage work of a create
//! (a directory for `type=file`, a label for `type=block`) is an
//! [`Effect`] the server performs before it commits the record.
//!
//! - `SR.create(host, device_config, physical_size, name_label,
//!   name_description, type, content_type, shared, sm_config)`: `type` is
//!   `file` (device_config `path`: a directory on shared storage) or
//!   `block` (device_config `device`: a shared LUN); another type is
//!   `SR_UNKNOWN_DRIVER [type]`, a missing key `INVALID_VALUE
//!   ["device_config:<key>"; ""]`. `device_config:force=true` lets a
//!   block SR overwrite a device holding someone else's data; it is not
//!   stored.
//! - `SR.forget(sr)`: removes the SR's record and its VDIs' records (the
//!   data stays), clearing `pool.default_SR` if it named the SR. Refused
//!   with `HA_IS_ENABLED []` while one of its VDIs is an HA statefile.

use crate::db::schema::{STRING_MAP, Ty};
use crate::db::{Change, Class, Database};
use crate::value::{Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::{ApiError, Caller, Effect, Outcome};

/// The `device_config` key that lets `type=block` overwrite a device
/// holding someone else's data (`xe sr-create --force` sets it); not
/// stored.
pub const FORCE_KEY: &str = "force";

/// SR types and the `device_config` key each needs.
pub const SR_TYPES: &[(&str, &str)] = &[("file", "path"), ("block", "device")];

pub fn create(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    coerce::object(db, Class::Host, "host", &args[0])?;
    let device_config = coerce::coerce(&STRING_MAP, "device_config", &args[1])?;
    let physical_size = coerce::coerce(&Ty::Int, "physical_size", &args[2])?;
    let name_label = coerce::string("name_label", &args[3])?;
    let name_description = coerce::string("name_description", &args[4])?;
    let sr_type = coerce::string("type", &args[5])?;
    let content_type = coerce::string("content_type", &args[6])?;
    let shared = coerce::coerce(&Ty::Bool, "shared", &args[7])?;
    let sm_config = coerce::coerce(&STRING_MAP, "sm_config", &args[8])?;
    let Some((_, needed)) = SR_TYPES.iter().find(|(t, _)| *t == sr_type) else {
        return Err(ApiError::sr_unknown_driver(&sr_type));
    };
    let config: Vec<(String, String)> = match &device_config {
        Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| (k.to_wire(), to_text(v)))
            .collect(),
        _ => Vec::new(),
    };
    if !config.iter().any(|(k, v)| k == needed && !v.is_empty()) {
        return Err(ApiError::invalid_value(
            &format!("device_config:{needed}"),
            "",
        ));
    }
    if physical_size.as_int().is_some_and(|s| s < 0) {
        return Err(ApiError::invalid_value(
            "physical_size",
            &to_text(&physical_size),
        ));
    }
    let force = config.iter().any(|(k, v)| k == FORCE_KEY && v == "true");
    // `force` is an instruction for this create, not configuration: it is
    // not stored with the SR.
    let device_config = match device_config {
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .filter(|(k, _)| k.to_wire() != FORCE_KEY)
                .collect(),
        ),
        other => other,
    };
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    let uuid = fresh.uuid();
    let fields = vec![
        ("uuid".to_owned(), Value::String(uuid.clone())),
        ("name_label".to_owned(), Value::String(name_label)),
        (
            "name_description".to_owned(),
            Value::String(name_description),
        ),
        ("physical_size".to_owned(), physical_size),
        ("type".to_owned(), Value::String(sr_type.clone())),
        ("content_type".to_owned(), Value::String(content_type)),
        ("shared".to_owned(), shared.clone()),
        ("sm_config".to_owned(), sm_config),
        ("device_config".to_owned(), device_config),
    ];
    Ok(Outcome {
        changes: vec![Change::Create {
            class: Class::Sr,
            r#ref: r,
            fields,
        }],
        effects: vec![Effect::CreateSr {
            sr: r,
            uuid,
            sr_type,
            device_config: config.into_iter().filter(|(k, _)| k != FORCE_KEY).collect(),
            force,
            shared: shared.as_bool().unwrap_or(false),
        }],
        ..Outcome::value(Value::Ref(r))
    })
}

pub fn forget(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let sr = coerce::object(db, Class::Sr, "sr", arg)?;
    let vdis: Vec<Ref> = match db.field(Class::Sr, sr, "VDIs") {
        Some(Value::Set(items)) => items.iter().filter_map(Value::as_ref).collect(),
        _ => Vec::new(),
    };
    let mut changes = Vec::new();
    for (pool, _) in db.objects(Class::Pool) {
        let statefiles = db.field(Class::Pool, pool, "ha_statefiles");
        let in_use = match &statefiles {
            Some(Value::Set(items)) => items.iter().any(|s| {
                s.as_str()
                    .and_then(Ref::parse)
                    .is_some_and(|r| vdis.contains(&r))
            }),
            _ => false,
        };
        if in_use {
            return Err(ApiError::ha_is_enabled());
        }
        if db.field(Class::Pool, pool, "default_SR") == Some(Value::Ref(sr)) {
            changes.push(Change::set(
                Class::Pool,
                pool,
                "default_SR",
                Value::Ref(Ref::NULL),
            ));
        }
    }
    changes.extend(vdis.into_iter().map(|v| Change::Delete {
        class: Class::Vdi,
        r#ref: v,
    }));
    changes.push(Change::Delete {
        class: Class::Sr,
        r#ref: sr,
    });
    Ok(Outcome {
        changes,
        ..Outcome::value(Value::Void)
    })
}
