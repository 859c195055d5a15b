//! The live commands: `<class>-list` with filters, `params=` and
//! `--minimal`; `<class>-param-list/-get/-set/-add/-remove/-clear`;
//! `vm-create`, `vm-destroy`, `sr-create`. Arguments are checked before
//! anything is sent ([`check`]).

use std::collections::BTreeMap;
use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::db::schema::{Access as SchemaAccess, FieldDef, Ty};
use xapi_ha::rpc::Rpc;

use super::fields::{self, Record, Resolver, by_cli_name, cli_name};
use super::session::Session;
use super::{Live, unknown_key};
use crate::error::{CliError, UsageError};
use crate::render;

/// A live command line: `key=value`, `key:sub=value`, `--flag`.
#[derive(Debug, Default)]
pub struct Args {
    values: Vec<(String, Option<String>, String)>,
    flags: Vec<String>,
}

impl Args {
    /// Splits the arguments (connection options already removed).
    pub fn parse(_name: &str, args: &[String]) -> Result<Args, UsageError> {
        let mut parsed = Args::default();
        for arg in args {
            if arg.starts_with("--") {
                if parsed.flags.contains(arg) {
                    return Err(UsageError::DuplicateKey { key: arg.clone() });
                }
                parsed.flags.push(arg.clone());
                continue;
            }
            let not_kv = || UsageError::NotKeyValue { arg: arg.clone() };
            let (key, value) = arg.split_once('=').ok_or_else(not_kv)?;
            let (name, sub) = match key.split_once(':') {
                Some((n, s)) => (n, Some(s.to_owned())),
                None => (key, None),
            };
            if name.is_empty() || sub.as_deref().is_some_and(str::is_empty) {
                return Err(not_kv());
            }
            if parsed.values.iter().any(|(n, s, _)| n == name && *s == sub) {
                return Err(UsageError::DuplicateKey {
                    key: key.to_owned(),
                });
            }
            parsed.values.push((name.to_owned(), sub, value.to_owned()));
        }
        Ok(parsed)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, s, _)| n == name && s.is_none())
            .map(|(_, _, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    fn map(&self, name: &str) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, s, v)| Some((s.as_deref()?, v.as_str())))
            .collect()
    }
}

/// Keys (plain, and `name:` for maps) and flags a command takes, and the
/// ones it requires.
struct Shape {
    keys: Vec<String>,
    maps: Vec<String>,
    flags: &'static [&'static str],
    required: &'static [&'static str],
    /// Any field of the class as a filter (`-list`) or a value (`param-set`).
    any_field: bool,
}

fn shape(command: Live) -> Shape {
    let s = |keys: &[&str], maps: &[&str], flags, required| Shape {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        maps: maps.iter().map(|k| (*k).to_owned()).collect(),
        flags,
        required,
        any_field: false,
    };
    match command {
        Live::Generic(_, "list") => Shape {
            any_field: true,
            ..s(&["params"], &[], &["--minimal"], &[])
        },
        Live::Generic(_, "param-list") => s(&["uuid"], &[], &[], &["uuid"]),
        Live::Generic(_, "param-get") => s(
            &["uuid", "param-name", "param-key"],
            &[],
            &["--minimal"],
            &["uuid", "param-name"],
        ),
        Live::Generic(_, "param-set") => Shape {
            any_field: true,
            ..s(&["uuid"], &[], &[], &["uuid"])
        },
        Live::Generic(_, "param-add") => Shape {
            any_field: true,
            ..s(
                &["uuid", "param-name", "param-key"],
                &[],
                &[],
                &["uuid", "param-name"],
            )
        },
        Live::Generic(_, "param-remove") => s(
            &["uuid", "param-name", "param-key"],
            &[],
            &[],
            &["uuid", "param-name", "param-key"],
        ),
        Live::Generic(_, _) => s(&["uuid", "param-name"], &[], &[], &["uuid", "param-name"]),
        Live::VmCreate => s(
            &["name-label", "name-description", "memory", "driver"],
            &["driver-config"],
            &[],
            &["name-label"],
        ),
        Live::VmDestroy => s(&["uuid"], &[], &["--force"], &["uuid"]),
        Live::SrCreate => s(
            &[
                "name-label",
                "name-description",
                "type",
                "shared",
                "content-type",
                "physical-size",
                "host-uuid",
            ],
            &["device-config", "sm-config"],
            &["--force"],
            &["name-label", "type"],
        ),
    }
}

fn class_of(command: Live) -> Class {
    match command {
        Live::Generic(class, _) => class,
        Live::VmCreate | Live::VmDestroy => Class::Vm,
        Live::SrCreate => Class::Sr,
    }
}

/// Checks keys and flags against the command (and the class's fields).
pub fn check(command: Live, name: &str, args: &Args) -> Result<(), CliError> {
    let shape = shape(command);
    let class = class_of(command);
    for flag in &args.flags {
        if !shape.flags.contains(&flag.as_str()) {
            return Err(UsageError::UnknownFlag {
                command: name.to_owned(),
                flag: flag.clone(),
                suggestion: xapi_ha::pool_file::nearest(flag, shape.flags).map(str::to_owned),
            }
            .into());
        }
    }
    let field_names: Vec<String> = class.fields().iter().map(|f| cli_name(f.name)).collect();
    let is_add = command == Live::Generic(class, "param-add");
    for (key, sub, _) in &args.values {
        let known = match sub {
            None => shape.keys.contains(key),
            Some(_) => shape.maps.contains(key),
        };
        if known {
            continue;
        }
        if shape.any_field {
            if is_add {
                // `param-add param-name=MAP k=v ...`: the keys are the map's.
                continue;
            }
            if let Some(field) = by_cli_name(class, key) {
                let is_map = matches!(field.ty, Ty::Map(..));
                if sub.is_some() && !is_map {
                    return Err(UsageError::InvalidValue {
                        key: key.clone(),
                        expected: "written as key=value (this field is not a map)",
                        got: format!("{key}:{}", sub.as_deref().unwrap_or("")),
                    }
                    .into());
                }
                continue;
            }
        }
        let mut known: Vec<String> = shape.keys.clone();
        if shape.any_field {
            known.extend(field_names.iter().cloned());
        }
        return Err(unknown_key(name, key, &known));
    }
    if let Some(missing) = shape.required.iter().find(|k| args.get(k).is_none()) {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: missing,
        }
        .into());
    }
    if let Some(params) = args.get("params")
        && params != "all"
    {
        for p in params.split(',') {
            if by_cli_name(class, p).is_none() {
                return Err(unknown_key(name, p, &field_names));
            }
        }
    }
    for key in ["param-name"] {
        if let Some(p) = args.get(key)
            && by_cli_name(class, p).is_none()
        {
            return Err(unknown_key(name, p, &field_names));
        }
    }
    Ok(())
}

/// Runs a checked command on the session.
pub fn run(
    session: &mut Session,
    command: Live,
    name: &str,
    args: &Args,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let class = class_of(command);
    match command {
        Live::Generic(_, "list") => list(session, class, args, out),
        Live::Generic(_, "param-list") => param_list(session, class, args, out),
        Live::Generic(_, "param-get") => param_get(session, class, args, out),
        Live::Generic(_, "param-set") => param_set(session, class, args),
        Live::Generic(_, "param-add") => param_add(session, class, args),
        Live::Generic(_, "param-remove") => param_remove(session, class, args),
        Live::Generic(_, _) => param_clear(session, class, name, args),
        Live::VmCreate => vm_create(session, args, out),
        Live::VmDestroy => {
            let r = by_uuid(session, class, required(args, "uuid"))?;
            session.call("VM.destroy", vec![r])?;
            Ok(())
        }
        Live::SrCreate => sr_create(session, args, out),
    }
}

fn required<'a>(args: &'a Args, key: &str) -> &'a str {
    // `check` made sure of it.
    args.get(key).unwrap_or_default()
}

fn by_uuid(session: &mut Session, class: Class, uuid: &str) -> Result<Rpc, CliError> {
    session.call(
        &format!("{}.get_by_uuid", class.name()),
        vec![Rpc::Str(uuid.to_owned())],
    )
}

fn record(session: &mut Session, class: Class, r: &Rpc) -> Result<Record, CliError> {
    match session.call(&format!("{}.get_record", class.name()), vec![r.clone()])? {
        Rpc::Struct(map) => Ok(map),
        other => Err(CliError::Connect(format!(
            "{}.get_record returned {other:?}, not a record",
            class.name()
        ))),
    }
}

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
fn matches(
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

fn list(
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

fn param_list(
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

fn field_of(class: Class, args: &Args) -> &'static FieldDef {
    // `check` resolved param-name against the schema.
    let name = required(args, "param-name");
    by_cli_name(class, name).unwrap_or(&class.fields()[0])
}

fn param_get(
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

fn writable(class: Class, field: &FieldDef) -> Result<(), CliError> {
    if field.access == SchemaAccess::Rw {
        Ok(())
    } else {
        Err(CliError::Request(format!(
            "Parameter {} of {} is read-only",
            cli_name(field.name),
            class.name()
        )))
    }
}

fn param_set(session: &mut Session, class: Class, args: &Args) -> Result<(), CliError> {
    // Check every field before the first change.
    let mut plan = Vec::new();
    for (key, sub, value) in &args.values {
        if key == "uuid" {
            continue;
        }
        let Some(field) = by_cli_name(class, key) else {
            continue;
        };
        writable(class, field)?;
        plan.push((field, sub.clone(), value.clone()));
    }
    let r = by_uuid(session, class, required(args, "uuid"))?;
    for (field, sub, value) in plan {
        let typed = match (&sub, field.ty) {
            (Some(_), _) => None,
            (None, _) => Some(fields::parse_value(
                session,
                field,
                &cli_name(field.name),
                &value,
            )?),
        };
        match (sub, typed) {
            (Some(k), _) => {
                // xe's map:key=value replaces the key.
                let _ = session.call(
                    &format!("{}.remove_from_{}", class.name(), field.name),
                    vec![r.clone(), Rpc::Str(k.clone())],
                );
                session.call(
                    &format!("{}.add_to_{}", class.name(), field.name),
                    vec![r.clone(), Rpc::Str(k), Rpc::Str(value)],
                )?;
            }
            (None, Some(v)) => {
                session.call(
                    &format!("{}.set_{}", class.name(), field.name),
                    vec![r.clone(), v],
                )?;
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn current_set(
    session: &mut Session,
    class: Class,
    r: &Rpc,
    field: &FieldDef,
) -> Result<Vec<Rpc>, CliError> {
    let rec = record(session, class, r)?;
    Ok(match rec.get(field.name) {
        Some(Rpc::Array(items)) => items.clone(),
        _ => Vec::new(),
    })
}

fn param_add(session: &mut Session, class: Class, args: &Args) -> Result<(), CliError> {
    let field = field_of(class, args);
    writable(class, field)?;
    let r = by_uuid(session, class, required(args, "uuid"))?;
    match field.ty {
        Ty::Map(..) => {
            let pairs: Vec<(&String, &String)> = args
                .values
                .iter()
                .filter(|(k, s, _)| {
                    s.is_none() && !matches!(k.as_str(), "uuid" | "param-name" | "param-key")
                })
                .map(|(k, _, v)| (k, v))
                .collect();
            for (k, v) in pairs {
                session.call(
                    &format!("{}.add_to_{}", class.name(), field.name),
                    vec![r.clone(), Rpc::Str(k.clone()), Rpc::Str(v.clone())],
                )?;
            }
        }
        Ty::Set(_) => {
            let Some(item) = args.get("param-key") else {
                return Err(UsageError::MissingKey {
                    command: format!("{}-param-add", class.name().to_lowercase()),
                    key: "param-key",
                }
                .into());
            };
            let mut items = current_set(session, class, &r, field)?;
            let new = Rpc::Str(item.to_owned());
            if !items.contains(&new) {
                items.push(new);
            }
            session.call(
                &format!("{}.set_{}", class.name(), field.name),
                vec![r, Rpc::Array(items)],
            )?;
        }
        _ => return Err(not_collection(field)),
    }
    Ok(())
}

fn not_collection(field: &FieldDef) -> CliError {
    UsageError::InvalidValue {
        key: "param-name".into(),
        expected: "a map or set field",
        got: cli_name(field.name),
    }
    .into()
}

fn param_remove(session: &mut Session, class: Class, args: &Args) -> Result<(), CliError> {
    let field = field_of(class, args);
    writable(class, field)?;
    let key = required(args, "param-key").to_owned();
    let r = by_uuid(session, class, required(args, "uuid"))?;
    match field.ty {
        Ty::Map(..) => {
            session.call(
                &format!("{}.remove_from_{}", class.name(), field.name),
                vec![r, Rpc::Str(key)],
            )?;
        }
        Ty::Set(_) => {
            let mut items = current_set(session, class, &r, field)?;
            items.retain(|i| *i != Rpc::Str(key.clone()));
            session.call(
                &format!("{}.set_{}", class.name(), field.name),
                vec![r, Rpc::Array(items)],
            )?;
        }
        _ => return Err(not_collection(field)),
    }
    Ok(())
}

fn param_clear(
    session: &mut Session,
    class: Class,
    _name: &str,
    args: &Args,
) -> Result<(), CliError> {
    let field = field_of(class, args);
    writable(class, field)?;
    let empty = match field.ty {
        Ty::Map(..) => Rpc::Struct(BTreeMap::new()),
        Ty::Set(_) => Rpc::Array(Vec::new()),
        Ty::String => Rpc::Str(String::new()),
        _ => return Err(not_collection(field)),
    };
    let r = by_uuid(session, class, required(args, "uuid"))?;
    session.call(
        &format!("{}.set_{}", class.name(), field.name),
        vec![r, empty],
    )?;
    Ok(())
}

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

fn uuid_of(session: &mut Session, class: Class, r: Rpc) -> Result<String, CliError> {
    match session.call(&format!("{}.get_uuid", class.name()), vec![r])? {
        Rpc::Str(u) => Ok(u),
        other => Ok(fields::plain(&other)),
    }
}

fn string_map(pairs: Vec<(&str, &str)>) -> Rpc {
    Rpc::Struct(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Rpc::Str(v.to_owned())))
            .collect(),
    )
}

fn vm_create(session: &mut Session, args: &Args, out: &mut dyn Write) -> Result<(), CliError> {
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

fn sr_create(session: &mut Session, args: &Args, out: &mut dyn Write) -> Result<(), CliError> {
    let shared = match args.get("shared") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(UsageError::InvalidValue {
                key: "shared".into(),
                expected: "true or false",
                got: other.to_owned(),
            }
            .into());
        }
    };
    let size = match args.get("physical-size") {
        None => 0,
        Some(s) => s.parse::<i64>().map_err(|_| UsageError::InvalidValue {
            key: "physical-size".into(),
            expected: "a number of bytes",
            got: s.to_owned(),
        })?,
    };
    let host = match args.get("host-uuid") {
        Some(u) => by_uuid(session, Class::Host, u)?,
        None => {
            let pools = session.call("pool.get_all", Vec::new())?;
            let pool = match pools {
                Rpc::Array(mut p) if !p.is_empty() => p.swap_remove(0),
                other => {
                    return Err(CliError::Connect(format!(
                        "pool.get_all returned {other:?}, not one pool"
                    )));
                }
            };
            session.call("pool.get_master", vec![pool])?
        }
    };
    let r = session.call(
        "SR.create",
        vec![
            host,
            string_map(args.map("device-config")),
            Rpc::Int(size),
            Rpc::Str(required(args, "name-label").to_owned()),
            Rpc::Str(args.get("name-description").unwrap_or("").to_owned()),
            Rpc::Str(required(args, "type").to_owned()),
            Rpc::Str(args.get("content-type").unwrap_or("").to_owned()),
            Rpc::Bool(shared),
            string_map(args.map("sm-config")),
        ],
    )?;
    let uuid = uuid_of(session, Class::Sr, r)?;
    writeln!(out, "{uuid}")?;
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

    #[test]
    fn minimal_escapes_commas() {
        assert_eq!(minimal_escape("a,b\\c"), "a\\,b\\\\c");
    }
}
