//! `vm-create` (a VM record from `name-label=`, `memory=`, `driver=` and
//! `driver-config:`) and `vm-destroy`.

use std::collections::BTreeMap;
use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::args::{Args, required};
use super::calls::{by_uuid, string_map, uuid_of};
use super::session::Session;
use crate::error::{CliError, UsageError};

/// `memory=`: bytes, or a number with a binary suffix (`512MiB`, `4G`).
fn parse_memory(text: &str) -> Result<i64, UsageError> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    let shift = match suffix {
        "" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        _ => u32::MAX,
    };
    digits
        .parse::<i64>()
        .ok()
        .filter(|_| shift != u32::MAX)
        .and_then(|n| n.checked_mul(1_i64 << shift.min(62)))
        .filter(|n| *n > 0)
        .ok_or_else(|| UsageError::InvalidValue {
            key: "memory".into(),
            expected: "a positive number of bytes, optionally with K/KiB, M/MiB, G/GiB or T/TiB",
            got: text.to_owned(),
        })
}

pub(super) fn vm_create(
    session: &mut Session,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut record = BTreeMap::new();
    record.insert(
        "name_label".to_owned(),
        Rpc::Str(required(args, "name-label").to_owned()),
    );
    if let Some(d) = args.get("name-description") {
        record.insert("name_description".to_owned(), Rpc::Str(d.to_owned()));
    }
    if let Some(m) = args.get("memory") {
        let bytes = parse_memory(m)?;
        for f in [
            "memory_static_max",
            "memory_dynamic_max",
            "memory_dynamic_min",
            "memory_static_min",
        ] {
            if Class::Vm.field(f).is_some() {
                record.insert(f.to_owned(), Rpc::Int(bytes));
            }
        }
    }
    if let Some(d) = args.get("driver") {
        record.insert("driver".to_owned(), Rpc::Str(d.to_owned()));
    }
    let config = args.map("driver-config");
    if !config.is_empty() {
        record.insert("driver_config".to_owned(), string_map(config));
    }
    let r = session.call("VM.create", vec![Rpc::Struct(record)])?;
    let uuid = uuid_of(session, Class::Vm, r)?;
    writeln!(out, "{uuid}")?;
    Ok(())
}

/// `vm-destroy uuid=`.
pub(super) fn vm_destroy(session: &mut Session, args: &Args) -> Result<(), CliError> {
    let r = by_uuid(session, Class::Vm, required(args, "uuid"))?;
    session.call("VM.destroy", vec![r])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_suffixes() {
        assert_eq!(parse_memory("1024").unwrap(), 1024);
        assert_eq!(parse_memory("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_memory("4G").unwrap(), 4 << 30);
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("4X").is_err());
        assert!(parse_memory("").is_err());
    }
}
