//! The generic calls every class has: `get_all`, `get_all_records`,
//! `get_record`, `get_by_uuid`, `get_by_name_label`, `get_<field>`,
//! `set_<field>` (RW fields), `add_to_<map>` / `remove_from_<map>` and
//! `add_<set>` / `remove_<set>` (RW maps and sets).

use crate::db::schema::{FieldDef, Ty};
use crate::db::{Change, Class, Database};
use crate::value::{Key, Ref, Value};

use super::coerce::{self, canonical_map};
use super::methods::Method;
use super::{ApiError, Outcome};

/// Answers a generic method (`None` for a method that is not generic).
pub fn call(db: &Database, m: Method, args: &[Value]) -> Option<Result<Outcome, ApiError>> {
    Some(match m {
        Method::GetAll(c) => Ok(Outcome::value(Value::Set(
            db.objects(c).map(|(r, _)| Value::Ref(r)).collect(),
        ))),
        Method::GetAllRecords(c) => Ok(Outcome::value(all_records(db, c))),
        Method::GetRecord(c) => coerce::object(db, c, "self", &args[0])
            .map(|r| Outcome::value(db.record(c, r).unwrap_or(Value::Void))),
        Method::GetByUuid(c) => get_by_uuid(db, c, &args[0]),
        Method::GetByNameLabel(c) => get_by_name_label(db, c, &args[0]),
        Method::Get(c, i) => coerce::object(db, c, "self", &args[0])
            .map(|r| Outcome::value(db.field(c, r, c.fields()[i].name).unwrap_or(Value::Void))),
        Method::Set(c, i) => set(db, c, i, args),
        Method::AddToMap(c, i) => add_to_map(db, c, i, args),
        Method::RemoveFromMap(c, i) => remove_from_map(db, c, i, args),
        Method::AddToSet(c, i) => edit_set(db, c, i, args, true),
        Method::RemoveFromSet(c, i) => edit_set(db, c, i, args, false),
        _ => return None,
    })
}

/// `get_all_records`: a map from reference to record.
#[must_use]
pub fn all_records(db: &Database, c: Class) -> Value {
    Value::Map(
        db.objects(c)
            .map(|(r, o)| (Key::Ref(r), db.record_of(c, r, o)))
            .collect(),
    )
}

fn get_by_uuid(db: &Database, c: Class, arg: &Value) -> Result<Outcome, ApiError> {
    let uuid = coerce::string("uuid", arg)?;
    match db.by_uuid(&uuid) {
        Some((class, r)) if class == c => Ok(Outcome::value(Value::Ref(r))),
        _ => Err(ApiError::uuid_invalid(c.name(), &uuid)),
    }
}

fn get_by_name_label(db: &Database, c: Class, arg: &Value) -> Result<Outcome, ApiError> {
    let label = coerce::string("label", arg)?;
    let idx = c.field_index("name_label").unwrap_or(0);
    Ok(Outcome::value(Value::Set(
        db.objects(c)
            .filter(|(_, o)| o.stored(idx).as_str() == Some(label.as_str()))
            .map(|(r, _)| Value::Ref(r))
            .collect(),
    )))
}

/// One modify of one object.
fn modify(c: Class, r: Ref, fields: Vec<(String, Value)>) -> Outcome {
    Outcome {
        changes: vec![Change::Modify {
            class: c,
            r#ref: r,
            fields,
        }],
        ..Outcome::value(Value::Void)
    }
}

fn set(db: &Database, c: Class, i: usize, args: &[Value]) -> Result<Outcome, ApiError> {
    let r = coerce::object(db, c, "self", &args[0])?;
    let f = &c.fields()[i];
    let v = coerce::field_value(db, f, &args[1])?;
    if c == Class::Pool && f.name == "other_config" {
        super::message::check_pool_other_config(db, r, &v)?;
    }
    let mut fields = vec![(f.name.to_owned(), v.clone())];
    // xapi: a running VM's ha_always_run follows its restart priority.
    if c == Class::Vm && f.name == "ha_restart_priority" {
        let running = db
            .field(c, r, "power_state")
            .as_ref()
            .and_then(Value::as_str)
            == Some("Running");
        if running {
            let protected = v.as_str() == Some("restart");
            fields.push(("ha_always_run".to_owned(), Value::Bool(protected)));
        }
    }
    // xapi: the deprecated VM.set_ha_always_run sets the priority too
    // (true: "restart", false: "").
    if c == Class::Vm && f.name == "ha_always_run" {
        let priority = if v == Value::Bool(true) {
            "restart"
        } else {
            ""
        };
        fields.push((
            "ha_restart_priority".to_owned(),
            Value::String(priority.into()),
        ));
    }
    Ok(modify(c, r, fields))
}

fn map_types(f: &FieldDef) -> (&'static Ty, &'static Ty) {
    match f.ty {
        Ty::Map(k, v) => (k, v),
        _ => {
            unreachable!("map call on a non-map field (the method table only makes them for maps)")
        }
    }
}

fn key_of(f: &FieldDef, arg: &Value) -> Result<Key, ApiError> {
    let (k, _) = map_types(f);
    match coerce::coerce(k, "key", arg)? {
        Value::String(s) | Value::Enum(s) => Ok(Key::String(s)),
        Value::Int(i) => Ok(Key::Int(i)),
        Value::Ref(r) => Ok(Key::Ref(r)),
        _ => Err(ApiError::field_type_error("key")),
    }
}

fn current_map(db: &Database, c: Class, r: Ref, f: &FieldDef) -> Vec<(Key, Value)> {
    match db.field(c, r, f.name) {
        Some(Value::Map(pairs)) => pairs,
        _ => Vec::new(),
    }
}

fn add_to_map(db: &Database, c: Class, i: usize, args: &[Value]) -> Result<Outcome, ApiError> {
    let r = coerce::object(db, c, "self", &args[0])?;
    let f = &c.fields()[i];
    let key = key_of(f, &args[1])?;
    let value = coerce::coerce(map_types(f).1, "value", &args[2])?;
    let mut pairs = current_map(db, c, r, f);
    if pairs.iter().any(|(k, _)| *k == key) {
        return Err(ApiError::map_duplicate_key(
            c.name(),
            f.name,
            &r.to_string(),
            &key.to_wire(),
        ));
    }
    pairs.push((key, value));
    let map = canonical_map(pairs);
    if c == Class::Pool && f.name == "other_config" {
        super::message::check_pool_other_config(db, r, &map)?;
    }
    Ok(modify(c, r, vec![(f.name.to_owned(), map)]))
}

fn remove_from_map(db: &Database, c: Class, i: usize, args: &[Value]) -> Result<Outcome, ApiError> {
    let r = coerce::object(db, c, "self", &args[0])?;
    let f = &c.fields()[i];
    let key = key_of(f, &args[1])?;
    let mut pairs = current_map(db, c, r, f);
    let before = pairs.len();
    pairs.retain(|(k, _)| *k != key);
    if pairs.len() == before {
        // Nothing to remove: xapi answers success and changes nothing.
        return Ok(Outcome::value(Value::Void));
    }
    Ok(modify(c, r, vec![(f.name.to_owned(), Value::Map(pairs))]))
}

fn edit_set(
    db: &Database,
    c: Class,
    i: usize,
    args: &[Value],
    add: bool,
) -> Result<Outcome, ApiError> {
    let r = coerce::object(db, c, "self", &args[0])?;
    let f = &c.fields()[i];
    let Ty::Set(item_ty) = f.ty else {
        unreachable!("set call on a non-set field (the method table only makes them for sets)")
    };
    let item = coerce::coerce(item_ty, "value", &args[1])?;
    let mut items = match db.field(c, r, f.name) {
        Some(Value::Set(items)) => items,
        _ => Vec::new(),
    };
    let present = items.contains(&item);
    if present == add {
        return Ok(Outcome::value(Value::Void));
    }
    if add {
        items.push(item);
    } else {
        items.retain(|x| *x != item);
    }
    Ok(modify(c, r, vec![(f.name.to_owned(), Value::Set(items))]))
}
