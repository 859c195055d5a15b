//! blocksr (issue 11): a joining host's own halted VMs are kept, as xapi
//! imports them, instead of being dropped with its database on
//! `pool.join` (docs/pool.md, "`pool.join`").
//!
//! The joiner sends, under the `vms` key of its `pool.admit` host record,
//! one record per VM of its database that is `Halted`: the VM's
//! constructor fields (what `VM.create` takes) and its `uuid`, without
//! reference-valued fields (they name the joiner's objects) and without
//! disks (the joiner's SRs are not part of the pool). The master creates
//! each through `VM.create`'s own checks, keeping the uuid unless the pool
//! already has an object with it; an invalid record refuses the admit,
//! changing nothing. Running VMs are not sent: a host with running VMs
//! should not join (xapi refuses it too).

use crate::db::schema::Ty;
use crate::db::{Change, Class, Database};
use crate::value::{Key, Value};

use super::coerce::to_text;
use super::{ApiError, Caller};

/// The host record's key that carries the VMs.
pub const VMS_KEY: &str = "vms";

/// The records of `db`'s halted VMs, as the joiner sends them.
#[must_use]
pub fn halted_vms(db: &Database) -> Value {
    let mut out = Vec::new();
    for (vm, _) in db.objects(Class::Vm) {
        let state = db
            .field(Class::Vm, vm, "power_state")
            .map(|v| to_text(&v))
            .unwrap_or_default();
        if state != "Halted" {
            continue;
        }
        let mut pairs = Vec::new();
        for f in Class::Vm.fields() {
            let by_ref = matches!(f.ty, Ty::Ref(_)) || matches!(f.ty, Ty::Set(Ty::Ref(_)));
            if by_ref || !(f.access.in_constructor() || f.name == "uuid") {
                continue;
            }
            if let Some(v) = db.field(Class::Vm, vm, f.name) {
                pairs.push((Key::String(f.name.to_owned()), v));
            }
        }
        out.push(Value::Map(pairs));
    }
    Value::Set(out)
}

/// The changes that add the VMs of `record` (the admit's host record) to
/// `db` as it is after `before` (the admit's own changes). Refs and uuids
/// are fresh for `db` with `before` applied.
pub fn import_vms(
    db: &Database,
    caller: &Caller,
    record: &[(Key, Value)],
    before: &[Change],
) -> Result<Vec<Change>, ApiError> {
    let Some((_, vms)) = record
        .iter()
        .find(|(k, _)| *k == Key::String(VMS_KEY.into()))
    else {
        return Ok(Vec::new());
    };
    let Value::Set(vms) = vms else {
        return Err(ApiError::field_type_error(VMS_KEY));
    };
    let mut next = db.clone();
    let _ = next
        .apply(before)
        .map_err(|e| ApiError::internal(&format!("admit: {e}")))?;
    let mut out = Vec::new();
    for vm in vms {
        let Value::Map(pairs) = vm else {
            return Err(ApiError::field_type_error(VMS_KEY));
        };
        let wanted_uuid = pairs
            .iter()
            .find(|(k, _)| *k == Key::String("uuid".into()))
            .map(|(_, v)| to_text(v));
        let outcome = super::vm::create(&next, caller, vm)?;
        let mut changes = outcome.changes;
        if let Some(u) = wanted_uuid
            .filter(|u| crate::db::database::is_canonical_uuid(u) && next.by_uuid(u).is_none())
        {
            for c in &mut changes {
                if let Change::Create {
                    class: Class::Vm,
                    fields,
                    ..
                } = c
                {
                    for (name, v) in fields.iter_mut() {
                        if name == "uuid" {
                            *v = Value::String(u.clone());
                        }
                    }
                }
            }
        }
        let _ = next
            .apply(&changes)
            .map_err(|e| ApiError::internal(&format!("admit: {e}")))?;
        out.extend(changes);
    }
    Ok(out)
}
