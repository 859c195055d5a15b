//! `VM.create` and `VM.destroy` (which removes the VM's VBDs, not its VDIs).
//!
//! `VM.create(record)`: the record may give any field the constructor takes
//! (RW and RO/constructor fields of the schema); every field left out gets
//! its default (`docs/pool-database.md`), except the memory and vCPU
//! limits, which follow the ones given: `memory_dynamic_max` defaults to
//! `memory_static_max`, `memory_dynamic_min` to `memory_dynamic_max`,
//! `memory_static_min` to `memory_dynamic_min`, `VCPUs_at_startup` to
//! `VCPUs_max`. Fields the constructor does not take (runtime fields such as
//! `resident_on`, `uuid`, derived fields) and names that are no field of
//! ours are ignored, as xapi ignores them, so a client may pass a record it
//! read back or one written for xapi's fuller schema. A VM is created
//! `Halted`.

use crate::db::{Change, Class, Database};
use crate::value::Value;

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::{ApiError, Caller, Outcome};

const MEMORY: [&str; 4] = [
    "memory_static_max",
    "memory_dynamic_max",
    "memory_dynamic_min",
    "memory_static_min",
];

/// The record argument's pairs, whatever shape the decoder gave it.
pub(super) fn record_pairs(arg: &Value) -> Result<Vec<(String, &Value)>, ApiError> {
    match arg {
        Value::Map(pairs) => Ok(pairs.iter().map(|(k, v)| (k.to_wire(), v)).collect()),
        Value::Record(fields) => Ok(fields.iter().map(|(k, v)| (k.clone(), v)).collect()),
        _ => Err(ApiError::field_type_error("args")),
    }
}

pub fn create(db: &Database, caller: &Caller, arg: &Value) -> Result<Outcome, ApiError> {
    let mut given: Vec<(String, Value)> = Vec::new();
    for (name, v) in record_pairs(arg)? {
        let Some(f) = Class::Vm.field(&name) else {
            continue;
        };
        if !f.access.in_constructor() || given.iter().any(|(n, _)| *n == name) {
            continue;
        }
        given.push((name, coerce::field_value(db, f, v)?));
    }
    let get = |given: &[(String, Value)], name: &str| {
        given
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_int())
    };
    if let Some((_, ps)) = given.iter().find(|(n, _)| n == "power_state")
        && ps.as_str() != Some("Halted")
    {
        return Err(ApiError::invalid_value("power_state", &to_text(ps)));
    }
    // Memory limits default down the chain from the ones given.
    let mut memory = [0i64; 4];
    for (i, name) in MEMORY.iter().enumerate() {
        memory[i] = match get(&given, name) {
            Some(v) => v,
            None if i == 0 => Class::Vm
                .field(name)
                .and_then(|f| f.default_value().as_int())
                .unwrap_or(0),
            None => memory[i - 1],
        };
    }
    if memory.windows(2).any(|w| w[0] < w[1]) {
        return Err(ApiError::memory_constraint_violation());
    }
    let vcpus_max = get(&given, "VCPUs_max").unwrap_or(1);
    let vcpus_at_startup = get(&given, "VCPUs_at_startup").unwrap_or(vcpus_max);
    if vcpus_at_startup < 1 || vcpus_at_startup > vcpus_max {
        return Err(ApiError::invalid_value(
            "VCPUs_at_startup",
            &vcpus_at_startup.to_string(),
        ));
    }
    given.retain(|(n, _)| !MEMORY.contains(&n.as_str()) && n != "VCPUs_at_startup");
    for (name, v) in MEMORY.iter().zip(memory) {
        given.push(((*name).to_owned(), Value::Int(v)));
    }
    given.push(("VCPUs_at_startup".to_owned(), Value::Int(vcpus_at_startup)));
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    given.push(("uuid".to_owned(), Value::String(fresh.uuid())));
    Ok(Outcome {
        changes: vec![Change::Create {
            class: Class::Vm,
            r#ref: r,
            fields: given,
        }],
        ..Outcome::value(Value::Ref(r))
    })
}

pub fn destroy(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let r = coerce::object(db, Class::Vm, "self", arg)?;
    let state = db
        .field(Class::Vm, r, "power_state")
        .map(|v| to_text(&v))
        .unwrap_or_default();
    if state != "Halted" {
        return Err(ApiError::vm_bad_power_state(
            &r.to_string(),
            "Halted",
            &state,
        ));
    }
    if db.field(Class::Vm, r, "is_control_domain") == Some(Value::Bool(true)) {
        return Err(ApiError::operation_not_allowed(
            "a control domain cannot be destroyed",
        ));
    }
    // Its VBDs go with it (the VDIs stay), as in xapi.
    let mut changes: Vec<Change> = match db.field(Class::Vm, r, "VBDs") {
        Some(Value::Set(items)) => items
            .iter()
            .filter_map(Value::as_ref)
            .map(|b| Change::Delete {
                class: Class::Vbd,
                r#ref: b,
            })
            .collect(),
        _ => Vec::new(),
    };
    changes.push(Change::Delete {
        class: Class::Vm,
        r#ref: r,
    });
    Ok(Outcome {
        changes,
        ..Outcome::value(Value::Void)
    })
}
