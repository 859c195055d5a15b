//! Typed wrappers over the API calls every live command makes: a ref by
//! uuid, a record, a uuid by ref, and string maps as the API takes them.

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::fields::{self, Record};
use super::session::Session;
use crate::error::CliError;

/// `<Class>.get_by_uuid`.
pub(super) fn by_uuid(session: &mut Session, class: Class, uuid: &str) -> Result<Rpc, CliError> {
    session.call(
        &format!("{}.get_by_uuid", class.name()),
        vec![Rpc::Str(uuid.to_owned())],
    )
}

/// `<Class>.get_record`, as a struct.
pub(super) fn record(session: &mut Session, class: Class, r: &Rpc) -> Result<Record, CliError> {
    match session.call(&format!("{}.get_record", class.name()), vec![r.clone()])? {
        Rpc::Struct(map) => Ok(map),
        other => Err(CliError::Connect(format!(
            "{}.get_record returned {other:?}, not a record",
            class.name()
        ))),
    }
}

/// `<Class>.get_uuid`.
pub(super) fn uuid_of(session: &mut Session, class: Class, r: Rpc) -> Result<String, CliError> {
    match session.call(&format!("{}.get_uuid", class.name()), vec![r])? {
        Rpc::Str(u) => Ok(u),
        other => Ok(fields::plain(&other)),
    }
}

/// A `(string -> string) map` from CLI `key:sub=value` pairs.
pub(super) fn string_map(pairs: Vec<(&str, &str)>) -> Rpc {
    Rpc::Struct(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Rpc::Str(v.to_owned())))
            .collect(),
    )
}
