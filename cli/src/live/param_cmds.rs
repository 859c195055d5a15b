//! The commands that change fields: `<class>-param-set`, `-param-add`,
//! `-param-remove` and `-param-clear`. Every field is checked writable
//! before the first change is sent.

use std::collections::BTreeMap;

use xapi_ha::db::Class;
use xapi_ha::db::schema::{Access as SchemaAccess, FieldDef, Ty};
use xapi_ha::rpc::Rpc;

use super::args::{Args, field_of, required};
use super::calls::{by_uuid, record};
use super::fields::{self, by_cli_name, cli_name};
use super::session::Session;
use crate::error::{CliError, UsageError};

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

pub(super) fn param_set(session: &mut Session, class: Class, args: &Args) -> Result<(), CliError> {
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

pub(super) fn param_add(session: &mut Session, class: Class, args: &Args) -> Result<(), CliError> {
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

pub(super) fn param_remove(
    session: &mut Session,
    class: Class,
    args: &Args,
) -> Result<(), CliError> {
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

pub(super) fn param_clear(
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
