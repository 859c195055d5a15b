//! Between wire values ([`Rpc`]) and XenAPI values ([`Value`]), as
//! `value.rs` describes: a decoder yields only untyped shapes (the handlers
//! coerce them to the declared types); typed values go on the wire as the
//! reference says (refs, enums and void as strings, dates as dates, maps
//! and records as structs).

use super::Rpc;
use crate::value::{DateTime, Key, Value};

/// A decoded parameter as a value. A `dateTime.iso8601` that does not
/// parse stays a string, so the handler reports the field's type error.
pub fn to_value(rpc: Rpc) -> Value {
    match rpc {
        Rpc::Str(s) => Value::String(s),
        Rpc::Int(i) => Value::Int(i),
        Rpc::Float(f) => Value::Float(f),
        Rpc::Bool(b) => Value::Bool(b),
        Rpc::DateTime(s) => DateTime::parse(&s).map_or(Value::String(s), Value::DateTime),
        Rpc::Nil => Value::Void,
        Rpc::Array(items) => Value::Set(items.into_iter().map(to_value).collect()),
        Rpc::Struct(map) => Value::Map(
            map.into_iter()
                .map(|(k, v)| (Key::String(k), to_value(v)))
                .collect(),
        ),
    }
}

/// A result value on the wire.
pub fn to_rpc(value: &Value) -> Rpc {
    match value {
        Value::Void => Rpc::Str(String::new()),
        Value::String(s) | Value::Enum(s) => Rpc::Str(s.clone()),
        Value::Int(i) => Rpc::Int(*i),
        Value::Float(f) => Rpc::Float(*f),
        Value::Bool(b) => Rpc::Bool(*b),
        Value::DateTime(d) => Rpc::DateTime(d.to_string()),
        Value::Ref(r) => Rpc::Str(r.to_string()),
        Value::Set(items) => Rpc::Array(items.iter().map(to_rpc).collect()),
        Value::Map(entries) => Rpc::Struct(
            entries
                .iter()
                .map(|(k, v)| (k.to_wire(), to_rpc(v)))
                .collect(),
        ),
        Value::Record(fields) => {
            Rpc::Struct(fields.iter().map(|(k, v)| (k.clone(), to_rpc(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Ref;

    #[test]
    fn typed_values_go_on_the_wire_as_xapi_sends_them() {
        let r = Ref::from_uuid(uuid::Uuid::nil());
        let v = Value::Record(vec![
            ("a".into(), Value::Ref(r)),
            ("b".into(), Value::Enum("Halted".into())),
            ("c".into(), Value::Void),
            ("d".into(), Value::DateTime(DateTime::EPOCH)),
            (
                "e".into(),
                Value::Map(vec![(Key::Int(3), Value::Set(vec![Value::Ref(Ref::NULL)]))]),
            ),
        ]);
        let Rpc::Struct(m) = to_rpc(&v) else {
            panic!("not a struct")
        };
        assert_eq!(m["a"], Rpc::Str(r.to_string()));
        assert_eq!(m["b"], Rpc::Str("Halted".into()));
        assert_eq!(m["c"], Rpc::Str(String::new()));
        assert_eq!(m["d"], Rpc::DateTime("19700101T00:00:00Z".into()));
        assert_eq!(
            m["e"],
            Rpc::Struct(
                [(
                    "3".to_owned(),
                    Rpc::Array(vec![Rpc::Str("OpaqueRef:NULL".into())])
                )]
                .into()
            )
        );
    }

    #[test]
    fn decoded_shapes_are_untyped() {
        assert_eq!(
            to_value(Rpc::DateTime("20250319T04:16:24Z".into())),
            Value::DateTime(DateTime::parse("20250319T04:16:24Z").unwrap())
        );
        assert_eq!(
            to_value(Rpc::DateTime("nope".into())),
            Value::String("nope".into())
        );
        assert_eq!(
            to_value(Rpc::Struct([("k".to_owned(), Rpc::Nil)].into())),
            Value::Map(vec![(Key::String("k".into()), Value::Void)])
        );
    }
}
