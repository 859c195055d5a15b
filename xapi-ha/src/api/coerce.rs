//! From what a wire decoder produces (untyped: strings, ints, arrays,
//! string-keyed maps) to the declared type of a parameter or field, with
//! xapi's errors: a value of the wrong shape is `FIELD_TYPE_ERROR [name]`,
//! a reference that is not one or names nothing of the class is
//! `HANDLE_INVALID [class; ref]`, an enum name or a value its field's check
//! refuses is `INVALID_VALUE [name; value]`.

use crate::db::schema::{FieldDef, Ty};
use crate::db::{Class, Database};
use crate::value::{DateTime, Key, Ref, Value};

use super::ApiError;

/// The value as text, for error parameters (what a client would have sent).
#[must_use]
pub fn to_text(v: &Value) -> String {
    match v {
        Value::Void => String::new(),
        Value::String(s) | Value::Enum(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::DateTime(d) => d.to_string(),
        Value::Ref(r) => r.to_string(),
        other => format!("{other:?}"),
    }
}

/// Converts `v` to type `ty`; `name` names the parameter or field in errors.
/// References are parsed but not looked up (see [`object`], [`field_value`]).
pub fn coerce(ty: &Ty, name: &str, v: &Value) -> Result<Value, ApiError> {
    let type_error = || ApiError::field_type_error(name);
    Ok(match (ty, v) {
        (Ty::String, Value::String(s)) => Value::String(s.clone()),
        (Ty::Int, Value::Int(i)) => Value::Int(*i),
        (Ty::Int, Value::String(s)) => Value::Int(s.trim().parse().map_err(|_| type_error())?),
        (Ty::Float, Value::Float(f)) if f.is_finite() => Value::Float(*f),
        (Ty::Float, Value::Int(i)) => Value::Float(*i as f64),
        (Ty::Float, Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Value::Float(f),
            _ => return Err(type_error()),
        },
        (Ty::Bool, Value::Bool(b)) => Value::Bool(*b),
        (Ty::DateTime, Value::DateTime(d)) => Value::DateTime(*d),
        (Ty::DateTime, Value::String(s)) => {
            Value::DateTime(DateTime::parse(s).map_err(|_| type_error())?)
        }
        (Ty::Ref(_), Value::Ref(r)) => Value::Ref(*r),
        (Ty::Ref(c), Value::String(s)) => {
            Value::Ref(Ref::parse(s).ok_or_else(|| ApiError::handle_invalid(c.name(), s))?)
        }
        (Ty::Enum(names), Value::String(s) | Value::Enum(s)) => {
            if !names.contains(&s.as_str()) {
                return Err(ApiError::invalid_value(name, s));
            }
            Value::Enum(s.clone())
        }
        (Ty::Set(t), Value::Set(items)) => {
            let mut out: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                let c = coerce(t, name, item)?;
                if !out.contains(&c) {
                    out.push(c);
                }
            }
            Value::Set(out)
        }
        (Ty::Map(k, t), Value::Map(pairs)) => {
            let mut out: Vec<(Key, Value)> = Vec::with_capacity(pairs.len());
            for (key, val) in pairs {
                out.push((coerce_key(k, name, key)?, coerce(t, name, val)?));
            }
            canonical_map(out)
        }
        (Ty::Map(k, t), Value::Record(fields)) => {
            let mut out: Vec<(Key, Value)> = Vec::with_capacity(fields.len());
            for (key, val) in fields {
                out.push((
                    coerce_key(k, name, &Key::String(key.clone()))?,
                    coerce(t, name, val)?,
                ));
            }
            canonical_map(out)
        }
        _ => return Err(type_error()),
    })
}

/// Sorts a map by key; of two equal keys the later wins.
#[must_use]
pub fn canonical_map(mut pairs: Vec<(Key, Value)>) -> Value {
    // A stable sort keeps equal keys in arrival order; keep the last.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(Key, Value)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match out.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => out.push((k, v)),
        }
    }
    Value::Map(out)
}

fn coerce_key(ty: &Ty, name: &str, key: &Key) -> Result<Key, ApiError> {
    let as_value = match key {
        Key::String(s) => Value::String(s.clone()),
        Key::Ref(r) => Value::Ref(*r),
        Key::Int(i) => Value::Int(*i),
    };
    Ok(match coerce(ty, name, &as_value)? {
        Value::String(s) | Value::Enum(s) => Key::String(s),
        Value::Ref(r) => Key::Ref(r),
        Value::Int(i) => Key::Int(i),
        _ => return Err(ApiError::field_type_error(name)),
    })
}

/// A string parameter.
pub fn string(name: &str, v: &Value) -> Result<String, ApiError> {
    match coerce(&Ty::String, name, v)? {
        Value::String(s) => Ok(s),
        _ => Err(ApiError::field_type_error(name)),
    }
}

/// A string-set parameter.
pub fn strings(name: &str, v: &Value) -> Result<Vec<String>, ApiError> {
    match coerce(&Ty::Set(&Ty::String), name, v)? {
        Value::Set(items) => Ok(items
            .into_iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect()),
        _ => Err(ApiError::field_type_error(name)),
    }
}

/// A reference parameter that must name an existing object of `class`.
pub fn object(db: &Database, class: Class, name: &str, v: &Value) -> Result<Ref, ApiError> {
    let r = match coerce(&Ty::Ref(class), name, v)? {
        Value::Ref(r) => r,
        _ => return Err(ApiError::field_type_error(name)),
    };
    if db.get(class, r).is_none() {
        return Err(ApiError::handle_invalid(class.name(), &r.to_string()));
    }
    Ok(r)
}

/// A value for field `f` of `class`: its type, its check, and a reference
/// must be null or name an existing object of its class.
pub fn field_value(db: &Database, f: &FieldDef, v: &Value) -> Result<Value, ApiError> {
    let c = coerce(&f.ty, f.name, v)?;
    if let (Ty::Ref(target), Value::Ref(r)) = (f.ty, &c)
        && !r.is_null()
        && db.get(target, *r).is_none()
    {
        return Err(ApiError::handle_invalid(target.name(), &r.to_string()));
    }
    if !f.check.allows(&c) {
        return Err(ApiError::invalid_value(f.name, &to_text(&c)));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::schema::STRING_MAP;

    #[test]
    fn wire_shapes_become_typed_values() {
        assert_eq!(coerce(&Ty::Int, "n", &"42".into()), Ok(Value::Int(42)));
        assert_eq!(
            coerce(&Ty::Float, "t", &Value::Int(3)),
            Ok(Value::Float(3.0))
        );
        assert_eq!(
            coerce(&Ty::Float, "t", &Value::Float(f64::NAN)),
            Err(ApiError::field_type_error("t"))
        );
        assert_eq!(
            coerce(&Ty::Bool, "b", &"true".into()),
            Err(ApiError::field_type_error("b"))
        );
        assert_eq!(
            coerce(&Ty::Ref(Class::Vm), "self", &"OpaqueRef:x".into()),
            Err(ApiError::handle_invalid("VM", "OpaqueRef:x"))
        );
        let m = Value::Map(vec![
            (Key::String("b".into()), "1".into()),
            (Key::String("a".into()), "2".into()),
            (Key::String("b".into()), "3".into()),
        ]);
        assert_eq!(
            coerce(&STRING_MAP, "m", &m),
            Ok(Value::string_map([("a", "2"), ("b", "3")]))
        );
        assert_eq!(
            coerce(&Ty::Enum(&["Halted"]), "power_state", &"Running".into()),
            Err(ApiError::invalid_value("power_state", "Running"))
        );
    }
}
