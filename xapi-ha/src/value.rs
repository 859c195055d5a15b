//! The XenAPI value model: what a call takes and returns, what the pool
//! database stores, and what the wire codecs (XML-RPC, JSON-RPC) encode.
//!
//! Typed values keep what the wire forgets. A codec encodes them as the
//! reference says (`../shared/reference/xenapi.md` 1.3-1.5):
//! - `Ref`, `Enum` and `DateTime` are strings on the wire (`OpaqueRef:<uuid>`,
//!   the enum's name, `YYYYMMDDTHH:MM:SSZ`; XML-RPC puts a date in
//!   `<dateTime.iso8601>`);
//! - `Set` is an array; `Map` and `Record` are structs / JSON objects (map
//!   keys stringified: [`Key::to_wire`]);
//! - `Void` is the empty string.
//!
//! A decoder cannot know a parameter's type, so it produces only the
//! untyped shapes: `String`, `Int`, `Float`, `Bool`, `DateTime`, `Set`
//! (arrays), `Map` with `Key::String` keys (structs / objects) and `Void`
//! (`<nil/>`, JSON `null`). The call handlers turn them into the declared
//! type (`api::coerce`), so a decoder never has to guess.
//!
//! Floats are finite: NaN and infinities are refused at the edge
//! (`api::coerce`), so a stored value always round-trips through JSON.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One XenAPI value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// No value: a `void` result, or `<nil/>` / `null` from a client.
    Void,
    String(String),
    Int(i64),
    /// Always finite.
    Float(f64),
    Bool(bool),
    DateTime(DateTime),
    Ref(Ref),
    /// An enum value by its API name (`"Running"`, `"Halted"`).
    Enum(String),
    /// A set or an array, in order.
    Set(Vec<Value>),
    /// A map, in key order as built (the database keeps maps sorted).
    Map(Vec<(Key, Value)>),
    /// A record (struct): field names in schema order.
    Record(Vec<(String, Value)>),
}

/// A map key: XenAPI allows string, ref and int keys (and enums, kept as
/// strings); the wire stringifies every kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Key {
    String(String),
    Ref(Ref),
    Int(i64),
}

impl Key {
    /// The key as it goes on the wire (every kind is a string there).
    #[must_use]
    pub fn to_wire(&self) -> String {
        match self {
            Key::String(s) => s.clone(),
            Key::Ref(r) => r.to_string(),
            Key::Int(i) => i.to_string(),
        }
    }
}

impl Value {
    /// The XenAPI type name of this value's shape, for error messages.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Void => "void",
            Value::String(_) => "string",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::DateTime(_) => "datetime",
            Value::Ref(_) => "ref",
            Value::Enum(_) => "enum",
            Value::Set(_) => "set",
            Value::Map(_) => "map",
            Value::Record(_) => "record",
        }
    }

    /// A `(string -> string)` map from pairs.
    pub fn string_map<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Value {
        Value::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Key::String(k.into()), Value::String(v.into())))
                .collect(),
        )
    }

    /// A string set from items.
    pub fn string_set<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Set(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// The field `name` of a record.
    #[must_use]
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Record(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string inside `String` or `Enum`.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::Enum(s) => Some(s),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    #[must_use]
    pub fn as_ref(&self) -> Option<Ref> {
        match self {
            Value::Ref(r) => Some(*r),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}
impl From<Ref> for Value {
    fn from(r: Ref) -> Value {
        Value::Ref(r)
    }
}
impl From<DateTime> for Value {
    fn from(d: DateTime) -> Value {
        Value::DateTime(d)
    }
}

/// An object reference: `OpaqueRef:<uuid>` or `OpaqueRef:NULL`. The uuid
/// inside a reference is not the object's `uuid` field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ref(Option<Uuid>);

/// The prefix of every reference.
pub const REF_PREFIX: &str = "OpaqueRef:";
/// The text of the null reference.
pub const NULL_REF: &str = "OpaqueRef:NULL";

impl Ref {
    /// `OpaqueRef:NULL`.
    pub const NULL: Ref = Ref(None);

    /// The reference `OpaqueRef:<id>`.
    #[must_use]
    pub const fn from_uuid(id: Uuid) -> Ref {
        Ref(Some(id))
    }

    #[must_use]
    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The uuid inside the reference (`None` for NULL).
    #[must_use]
    pub fn uuid(&self) -> Option<Uuid> {
        self.0
    }

    /// Parses `OpaqueRef:NULL` or `OpaqueRef:<uuid>` (the uuid in its
    /// hyphenated form). Anything else is `None`: the caller reports it as
    /// `HANDLE_INVALID` with the text as given.
    #[must_use]
    pub fn parse(s: &str) -> Option<Ref> {
        let rest = s.strip_prefix(REF_PREFIX)?;
        if rest == "NULL" {
            return Some(Ref::NULL);
        }
        // Only the canonical 36-character form, so that one reference has
        // one spelling (a map keyed by refs must not hold two for one object).
        if rest.len() != 36 {
            return None;
        }
        let id = Uuid::parse_str(rest).ok()?;
        (id.hyphenated().to_string() == rest).then_some(Ref(Some(id)))
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str(NULL_REF),
            Some(id) => write!(f, "{REF_PREFIX}{}", id.hyphenated()),
        }
    }
}

impl Serialize for Ref {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ref {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Ref, D::Error> {
        let s = String::deserialize(d)?;
        Ref::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not a reference: {s:?}")))
    }
}

/// A point in time, UTC, whole seconds (the precision XenAPI's dates carry).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct DateTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub unix_seconds: i64,
}

/// Why a date did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a date (YYYYMMDDTHH:MM:SSZ or RFC 3339 expected): {0:?}")]
pub struct DateTimeError(pub String);

impl DateTime {
    /// The epoch, `19700101T00:00:00Z`.
    pub const EPOCH: DateTime = DateTime { unix_seconds: 0 };

    #[must_use]
    pub const fn from_unix(unix_seconds: i64) -> DateTime {
        DateTime { unix_seconds }
    }

    /// Parses XenAPI's form `YYYYMMDDTHH:MM:SSZ` (also without the `Z`,
    /// meaning UTC, and with dashes in the date) or RFC 3339 with an offset
    /// (`2025-03-19T04:16:24+01:00`), as xapi's `of_iso8601` accepts.
    pub fn parse(s: &str) -> Result<DateTime, DateTimeError> {
        let err = || DateTimeError(s.to_owned());
        if let Ok(t) =
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        {
            return Ok(DateTime::from_unix(t.unix_timestamp()));
        }
        let body = s.strip_suffix('Z').unwrap_or(s);
        let (date, clock) = body.split_once('T').ok_or_else(err)?;
        let date: String = if date.len() == 10 && date.as_bytes()[4] == b'-' {
            date.replace('-', "")
        } else {
            date.to_owned()
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit()) && !t.is_empty();
        let clock_parts: Vec<&str> = clock.split(':').collect();
        if date.len() != 8 || !digits(&date) || clock_parts.len() != 3 {
            return Err(err());
        }
        if clock_parts.iter().any(|p| p.len() != 2 || !digits(p)) {
            return Err(err());
        }
        let num = |t: &str| t.parse::<u32>().map_err(|_| err());
        let year = i32::try_from(num(&date[0..4])?).map_err(|_| err())?;
        let month = u8::try_from(num(&date[4..6])?).map_err(|_| err())?;
        let day = u8::try_from(num(&date[6..8])?).map_err(|_| err())?;
        let month = time::Month::try_from(month).map_err(|_| err())?;
        let d = time::Date::from_calendar_date(year, month, day).map_err(|_| err())?;
        let hms = |i: usize| -> Result<u8, DateTimeError> {
            u8::try_from(num(clock_parts[i])?).map_err(|_| err())
        };
        let t = time::Time::from_hms(hms(0)?, hms(1)?, hms(2)?).map_err(|_| err())?;
        Ok(DateTime::from_unix(
            d.with_time(t).assume_utc().unix_timestamp(),
        ))
    }
}

impl fmt::Display for DateTime {
    /// `YYYYMMDDTHH:MM:SSZ`; a time outside years 0..=9999 prints as the
    /// nearest representable bound (never reached from parsed input).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = time::OffsetDateTime::from_unix_timestamp(self.unix_seconds).unwrap_or(
            if self.unix_seconds < 0 {
                time::OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT)
            } else {
                time::OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT)
            },
        );
        write!(
            f,
            "{:04}{:02}{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_parse_and_print_one_spelling() {
        assert_eq!(Ref::parse("OpaqueRef:NULL"), Some(Ref::NULL));
        assert_eq!(Ref::NULL.to_string(), "OpaqueRef:NULL");
        let s = "OpaqueRef:6b5b1d1b-28e8-4f6e-9b1f-2f0c1a7c9d10";
        let r = Ref::parse(s).unwrap();
        assert_eq!(r.to_string(), s);
        assert!(!r.is_null());
        for bad in [
            "",
            "OpaqueRef:",
            "OpaqueRef:null",
            "6b5b1d1b-28e8-4f6e-9b1f-2f0c1a7c9d10",
            "OpaqueRef:6B5B1D1B-28E8-4F6E-9B1F-2F0C1A7C9D10",
            "OpaqueRef:6b5b1d1b28e84f6e9b1f2f0c1a7c9d10",
            "DummyRef:|x|y",
        ] {
            assert_eq!(Ref::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dates_in_xapi_form() {
        assert_eq!(DateTime::EPOCH.to_string(), "19700101T00:00:00Z");
        let d = DateTime::parse("20250319T04:16:24Z").unwrap();
        assert_eq!(d.unix_seconds, 1_742_357_784);
        assert_eq!(d.to_string(), "20250319T04:16:24Z");
        assert_eq!(DateTime::parse("20250319T04:16:24"), Ok(d));
        assert_eq!(DateTime::parse("2025-03-19T04:16:24Z"), Ok(d));
        assert_eq!(DateTime::parse("2025-03-19T05:16:24+01:00"), Ok(d));
        for bad in [
            "",
            "2025",
            "20251319T04:16:24Z",
            "20250319T24:00:00Z",
            "20250319T4:16:24Z",
            "2025031xT04:16:24Z",
            "20250319 04:16:24",
        ] {
            assert!(DateTime::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn values_round_trip_through_json() {
        let v = Value::Record(vec![
            ("a".into(), Value::Ref(Ref::NULL)),
            ("b".into(), Value::string_map([("k", "v")])),
            ("c".into(), Value::DateTime(DateTime::from_unix(5))),
            (
                "d".into(),
                Value::Map(vec![(Key::Int(3), Value::Float(1.5))]),
            ),
        ]);
        let s = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
        assert_eq!(Key::Int(3).to_wire(), "3");
    }
}
