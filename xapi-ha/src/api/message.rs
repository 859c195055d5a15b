//! The message calls that are not generic: `message.create` (as xapi has
//! it: the object must exist in its class) and `message.destroy`; and the
//! mail settings check of `pool.set_other_config` /
//! `pool.add_to_other_config` (`alerts::settings`). The read calls
//! (`get_all_records`, `get_record`, `get_by_uuid`) are generic;
//! `get_since` and `get` are in `misc`.

use crate::alerts::catalog::{self, Alert};
use crate::alerts::settings;
use crate::db::schema::Ty;
use crate::db::{Change, Class, Database};
use crate::value::{Key, Ref, Value};

use super::coerce;
use super::ids::Fresh;
use super::{ApiError, Caller, Outcome};

/// The class a message's `cls` names, where we keep such objects.
fn class_of_cls(cls: &str) -> Option<Class> {
    match cls {
        "VM" => Some(Class::Vm),
        "Host" => Some(Class::Host),
        "SR" => Some(Class::Sr),
        "Pool" => Some(Class::Pool),
        "VDI" => Some(Class::Vdi),
        _ => None,
    }
}

/// `message.create(name, priority, cls, obj_uuid, body)`: the new
/// message's reference. `UUID_INVALID [cls; uuid]` if `obj_uuid` names no
/// object of class `cls`.
pub fn create(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    let name = coerce::string("name", &args[0])?;
    let priority = match coerce::coerce(&Ty::Int, "priority", &args[1])? {
        Value::Int(i) => i,
        _ => return Err(ApiError::field_type_error("priority")),
    };
    let cls_ty = Class::Message.field("cls").map_or(Ty::String, |f| f.ty);
    let cls = match coerce::coerce(&cls_ty, "cls", &args[2])? {
        Value::Enum(s) => s,
        _ => return Err(ApiError::field_type_error("cls")),
    };
    let obj_uuid = coerce::string("obj_uuid", &args[3])?;
    let body = coerce::string("body", &args[4])?;
    if name.is_empty() {
        return Err(ApiError::invalid_value("name", &name));
    }
    let exists = class_of_cls(&cls)
        .is_some_and(|c| matches!(db.by_uuid(&obj_uuid), Some((found, _)) if found == c));
    if !exists {
        return Err(ApiError::uuid_invalid(&cls, &obj_uuid));
    }
    let alert = Alert {
        name,
        priority,
        cls,
        obj_uuid,
        body,
    };
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    let change = catalog::raise_as(r, fresh.uuid(), caller.now, &alert);
    Ok(Outcome {
        changes: vec![change],
        ..Outcome::value(Value::Ref(r))
    })
}

/// `message.destroy(self)`.
pub fn destroy(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let r: Ref = coerce::object(db, Class::Message, "self", arg)?;
    Ok(Outcome {
        changes: vec![Change::Delete {
            class: Class::Message,
            r#ref: r,
        }],
        ..Outcome::value(Value::Void)
    })
}

/// Checks the mail keys a new `pool.other_config` changes (called by the
/// generic setters of the pool's `other_config`).
pub fn check_pool_other_config(db: &Database, pool: Ref, new: &Value) -> Result<(), ApiError> {
    let Value::Map(new) = new else {
        return Ok(());
    };
    let old: Vec<(Key, Value)> = match db.field(Class::Pool, pool, "other_config") {
        Some(Value::Map(pairs)) => pairs,
        _ => Vec::new(),
    };
    settings::check_changed(&old, new)
}
