//! Record fields as xe shows them: CLI names (`name-label` for
//! `name_label`), access tags from the schema, and values printed as xe
//! prints them (refs as the target's uuid, maps `k: v; k2: v2`, sets
//! `a; b`, enums in lower case, bools `true`/`false`).

use std::collections::{BTreeMap, HashMap};

use xapi_ha::db::Class;
use xapi_ha::db::schema::MESSAGE_CLASSES;
use xapi_ha::db::schema::{Access as SchemaAccess, FieldDef, Ty};
use xapi_ha::rpc::Rpc;

use super::session::Session;
use crate::error::CliError;
use crate::render::Access;

/// The CLI name of an API field.
#[must_use]
pub fn cli_name(field: &str) -> String {
    // xe calls message.cls "class" (records.ml).
    if field == "cls" {
        return "class".to_owned();
    }
    field.replace('_', "-")
}

/// The schema field whose CLI name is `name`.
#[must_use]
pub fn by_cli_name(class: Class, name: &str) -> Option<&'static FieldDef> {
    class.fields().iter().find(|f| cli_name(f.name) == name)
}

/// The access tag xe prints for a field.
#[must_use]
pub fn access(field: &FieldDef) -> Access {
    let rw = field.access == SchemaAccess::Rw;
    match (field.ty, rw) {
        (Ty::Set(_), true) => Access::SetReadWrite,
        (Ty::Set(_), false) => Access::SetReadOnly,
        (Ty::Map(..), true) => Access::MapReadWrite,
        (Ty::Map(..), false) => Access::MapReadOnly,
        (_, true) => Access::ReadWrite,
        (_, false) => Access::ReadOnly,
    }
}

/// Turns refs into the uuids of their objects, asking the agent once per
/// ref.
#[derive(Default)]
pub struct Resolver {
    uuids: HashMap<String, Option<String>>,
}

/// What xe prints for a ref it cannot resolve.
pub const NOT_IN_DATABASE: &str = "<not in database>";

impl Resolver {
    fn uuid(&mut self, session: &mut Session, class: Class, r: &str) -> String {
        if r.is_empty() || r == "OpaqueRef:NULL" {
            return NOT_IN_DATABASE.to_owned();
        }
        let known = self.uuids.entry(r.to_owned()).or_insert_with(|| {
            match session.call(
                &format!("{}.get_uuid", class.name()),
                vec![Rpc::Str(r.to_owned())],
            ) {
                Ok(Rpc::Str(u)) => Some(u),
                _ => None,
            }
        });
        known.clone().unwrap_or_else(|| NOT_IN_DATABASE.to_owned())
    }

    /// The printed value of `value`, a field of type `ty`.
    pub fn show(&mut self, session: &mut Session, ty: &Ty, value: &Rpc) -> String {
        match (ty, value) {
            (Ty::Ref(class), Rpc::Str(r)) => self.uuid(session, *class, r),
            // xe prints a message's class as the API names it (`Host`).
            (Ty::Enum(names), Rpc::Str(s)) if *names == MESSAGE_CLASSES => s.clone(),
            (Ty::Enum(_), Rpc::Str(s)) => s.to_lowercase(),
            (Ty::Set(inner), Rpc::Array(items)) => items
                .iter()
                .map(|i| self.show(session, inner, i))
                .collect::<Vec<_>>()
                .join("; "),
            (Ty::Map(_, inner), Rpc::Struct(map)) => map
                .iter()
                .map(|(k, v)| format!("{k}: {}", self.show(session, inner, v)))
                .collect::<Vec<_>>()
                .join("; "),
            _ => plain(value),
        }
    }
}

/// A value printed without schema knowledge.
#[must_use]
pub fn plain(value: &Rpc) -> String {
    match value {
        Rpc::Str(s) | Rpc::DateTime(s) => s.clone(),
        Rpc::Int(i) => i.to_string(),
        Rpc::Float(f) => f.to_string(),
        Rpc::Bool(b) => b.to_string(),
        Rpc::Nil => String::new(),
        Rpc::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join("; "),
        Rpc::Struct(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", plain(v)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A record as the agent sends it: field name to value.
pub type Record = BTreeMap<String, Rpc>;

/// The record's fields in schema order (what xe prints for `params=all`).
#[must_use]
pub fn present(class: Class, record: &Record) -> Vec<&'static FieldDef> {
    class
        .fields()
        .iter()
        .filter(|f| record.contains_key(f.name))
        .collect()
}

/// A value typed for `set_<field>` from its text: ints, floats and bools
/// parsed, enums matched without regard to case, refs looked up by uuid
/// (empty: the null ref), string sets split at commas.
pub fn parse_value(
    session: &mut Session,
    field: &FieldDef,
    key: &str,
    text: &str,
) -> Result<Rpc, CliError> {
    let invalid = |expected: &'static str| {
        CliError::Usage(crate::error::UsageError::InvalidValue {
            key: key.to_owned(),
            expected,
            got: text.to_owned(),
        })
    };
    Ok(match field.ty {
        Ty::String | Ty::DateTime => Rpc::Str(text.to_owned()),
        Ty::Int => Rpc::Int(text.parse().map_err(|_| invalid("an integer"))?),
        Ty::Float => Rpc::Float(
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| invalid("a number"))?,
        ),
        Ty::Bool => match text {
            "true" => Rpc::Bool(true),
            "false" => Rpc::Bool(false),
            _ => return Err(invalid("true or false")),
        },
        Ty::Enum(names) => Rpc::Str(
            names
                .iter()
                .find(|n| n.eq_ignore_ascii_case(text))
                .map(|n| (*n).to_owned())
                .ok_or_else(|| {
                    invalid("one of the field's values (see xapi-ha's docs/pool-database.md)")
                })?,
        ),
        Ty::Ref(class) => {
            if text.is_empty() {
                Rpc::Str("OpaqueRef:NULL".to_owned())
            } else {
                session.call(
                    &format!("{}.get_by_uuid", class.name()),
                    vec![Rpc::Str(text.to_owned())],
                )?
            }
        }
        Ty::Set(_) => Rpc::Array(
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| Rpc::Str(s.to_owned()))
                .collect(),
        ),
        Ty::Map(..) => return Err(invalid("written as key:subkey=value (a map)")),
    })
}
