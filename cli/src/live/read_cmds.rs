//! The reading commands: `<class>-list` (filters, `params=`, `--minimal`),
//! `<class>-param-list` and `<class>-param-get`, printed as xe prints them.

use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::db::schema::{FieldDef, Ty};
use xapi_ha::rpc::Rpc;

use super::args::{Args, field_of, required};
use super::calls::{by_uuid, record};
use super::fields::{self, Record, Resolver, by_cli_name, cli_name};
use super::session::Session;
use crate::error::{CliError, UsageError};
use crate::render;

/// The fields `vm-list` and friends print without `params=` (xe's
/// defaults, those of them our schema has).
fn default_fields(class: Class) -> &'static [&'static str] {
    match class {
        Class::Vm => &["uuid", "name-label", "power-state"],
        Class::Host => &["uuid", "name-label", "name-description"],
        Class::Pool => &[
            "uuid",
            "name-label",
            "name-description",
            "master",
            "default-SR",
        ],
        Class::Sr => &[
            "uuid",
            "name-label",
            "name-description",
            "type",
            "content-type",
        ],
        Class::Vdi => &[
            "uuid",
            "name-label",
            "name-description",
            "SR",
            "virtual-size",
        ],
        Class::Message => &[
            "uuid",
            "name",
            "priority",
            "class",
            "obj-uuid",
            "timestamp",
            "body",
        ],
        _ => &["uuid"],
    }
}

fn selected(class: Class, args: &Args, record: &Record) -> Vec<&'static FieldDef> {
    match args.get("params") {
        Some("all") => fields::present(class, record),
        Some(list) => {
            let wanted: Vec<&str> = list.split(',').collect();
            // Schema order, as xe prints them, not the order asked.
            class
                .fields()
                .iter()
                .filter(|f| wanted.contains(&cli_name(f.name).as_str()))
                .collect()
        }
        None => {
            let wanted = default_fields(class);
            class
                .fields()
                .iter()
                .filter(|f| wanted.contains(&cli_name(f.name).as_str()))
                .collect()
        }
    }
}

fn show_field(
    session: &mut Session,
    resolver: &mut Resolver,
    field: &FieldDef,
    record: &Record,
) -> String {
    record
        .get(field.name)
        .map_or_else(String::new, |v| resolver.show(session, &field.ty, v))
}

/// Whether `record` passes every `field=value` / `map:key=value` filter.
pub(super) fn matches(
    session: &mut Session,
    resolver: &mut Resolver,
    class: Class,
    args: &Args,
    record: &Record,
) -> bool {
    for (key, sub, want) in &args.values {
        if key == "params" {
            continue;
        }
        let Some(field) = by_cli_name(class, key) else {
            continue;
        };
        let got = match (sub, record.get(field.name)) {
            (Some(k), Some(Rpc::Struct(map))) => match (map.get(k), field.ty) {
                (Some(v), Ty::Map(_, inner)) => resolver.show(session, inner, v),
                (Some(v), _) => fields::plain(v),
                (None, _) => return false,
            },
            _ => show_field(session, resolver, field, record),
        };
        if got != *want {
            return false;
        }
    }
    true
}

/// xe's `--minimal` escaping: `\` as `\\`, `,` as `\,`.
fn minimal_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,")
}

fn write_record(
    out: &mut dyn Write,
    rows: &[(String, render::Access, String)],
) -> Result<(), CliError> {
    let rows: Vec<(&str, render::Access, String)> = rows
        .iter()
        .map(|(n, a, v)| (n.as_str(), *a, v.clone()))
        .collect();
    render::record(out, &rows)?;
    // Two blank lines after every record, as xe prints them.
    out.write_all(b"\n\n")?;
    Ok(())
}

pub(super) fn list(
    session: &mut Session,
    class: Class,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let all = session.call(&format!("{}.get_all_records", class.name()), Vec::new())?;
    let Rpc::Struct(all) = all else {
        return Err(CliError::Connect(format!(
            "{}.get_all_records returned {all:?}, not a map",
            class.name()
        )));
    };
    let mut resolver = Resolver::default();
    let mut minimal = Vec::new();
    // Sorted by uuid so the output does not depend on the refs' order.
    let mut records: Vec<Record> = all
        .into_values()
        .filter_map(|r| match r {
            Rpc::Struct(m) => Some(m),
            _ => None,
        })
        .collect();
    records.sort_by(|a, b| fields::plain(&a["uuid"]).cmp(&fields::plain(&b["uuid"])));
    let vm_templates = class == Class::Vm;
    for rec in &records {
        if !rec.contains_key("uuid") {
            continue;
        }
        // xe's only default filter: no templates in vm-list.
        if vm_templates
            && args.get("is-a-template").is_none()
            && rec.get("is_a_template") == Some(&Rpc::Bool(true))
        {
            continue;
        }
        if !matches(session, &mut resolver, class, args, rec) {
            continue;
        }
        let chosen = selected(class, args, rec);
        if args.flag("--minimal") {
            if let Some(first) = chosen.first() {
                minimal.push(minimal_escape(&show_field(
                    session,
                    &mut resolver,
                    first,
                    rec,
                )));
            }
            continue;
        }
        let rows: Vec<_> = chosen
            .iter()
            .map(|f| {
                (
                    cli_name(f.name),
                    fields::access(f),
                    show_field(session, &mut resolver, f, rec),
                )
            })
            .collect();
        write_record(out, &rows)?;
    }
    if args.flag("--minimal") {
        writeln!(out, "{}", render::escape_control(&minimal.join(",")))?;
    }
    Ok(())
}

pub(super) fn param_list(
    session: &mut Session,
    class: Class,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let r = by_uuid(session, class, required(args, "uuid"))?;
    let rec = record(session, class, &r)?;
    let mut resolver = Resolver::default();
    let rows: Vec<_> = fields::present(class, &rec)
        .into_iter()
        .map(|f| {
            (
                cli_name(f.name),
                fields::access(f),
                show_field(session, &mut resolver, f, &rec),
            )
        })
        .collect();
    write_record(out, &rows)
}

pub(super) fn param_get(
    session: &mut Session,
    class: Class,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let field = field_of(class, args);
    let r = by_uuid(session, class, required(args, "uuid"))?;
    let rec = record(session, class, &r)?;
    let mut resolver = Resolver::default();
    let value = match (args.get("param-key"), rec.get(field.name), field.ty) {
        (Some(key), Some(Rpc::Struct(map)), Ty::Map(_, inner)) => match map.get(key) {
            Some(v) => resolver.show(session, inner, v),
            None => {
                return Err(CliError::Request(format!(
                    "Key {key} not found in map {}",
                    cli_name(field.name)
                )));
            }
        },
        (Some(_), _, _) => {
            return Err(UsageError::InvalidValue {
                key: "param-key".into(),
                expected: "given only for a map field",
                got: cli_name(field.name),
            }
            .into());
        }
        (None, _, _) => show_field(session, &mut resolver, field, &rec),
    };
    writeln!(out, "{}", render::escape_control(&value))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_escapes_commas() {
        assert_eq!(minimal_escape("a,b\\c"), "a\\,b\\\\c");
    }
}
