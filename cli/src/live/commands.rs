//! The live commands' table: which keys and flags each takes ([`check`],
//! run before anything is sent) and which function runs it ([`run`]). The
//! commands themselves live in files named for what they do: reading
//! (`read_cmds`), changing fields (`param_cmds`), `vm-create`/`vm-destroy`
//! (`create_cmds`) and `sr-create` (`sr_cmds`).

use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::db::schema::Ty;

use super::args::Args;
use super::fields::{by_cli_name, cli_name};
use super::session::Session;
use super::{
    Live, create_cmds, event_cmds, param_cmds, read_cmds, session_cmds, sr_cmds, unknown_key,
};
use crate::error::{CliError, UsageError};

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
        Live::UserPasswordChange => s(&["old", "new"], &[], &[], &["old", "new"]),
        // Its conditions are fields of the class `class=` names:
        // `event_cmds::check` checks them.
        Live::EventWait => s(&["class", "timeout"], &[], &[], &["class"]),
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

/// The keys, map keys (`name:`) and flags `command` takes, for the command
/// catalogue (`crate::catalog`: help, docs and completions).
pub(crate) fn keys_maps_flags(
    command: Live,
) -> (Vec<String>, Vec<String>, &'static [&'static str]) {
    let shape = shape(command);
    (shape.keys, shape.maps, shape.flags)
}

fn class_of(command: Live) -> Class {
    match command {
        Live::Generic(class, _) => class,
        Live::VmCreate | Live::VmDestroy => Class::Vm,
        Live::SrCreate => Class::Sr,
        // Neither takes fields: the class only serves the checks' messages.
        Live::UserPasswordChange | Live::EventWait => Class::Pool,
    }
}

/// Checks keys and flags against the command (and the class's fields).
pub fn check(command: Live, name: &str, args: &Args) -> Result<(), CliError> {
    if command == Live::EventWait {
        return event_cmds::check(name, args);
    }
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
        Live::Generic(_, "list") => read_cmds::list(session, class, args, out),
        Live::Generic(_, "param-list") => read_cmds::param_list(session, class, args, out),
        Live::Generic(_, "param-get") => read_cmds::param_get(session, class, args, out),
        Live::Generic(_, "param-set") => param_cmds::param_set(session, class, args),
        Live::Generic(_, "param-add") => param_cmds::param_add(session, class, args),
        Live::Generic(_, "param-remove") => param_cmds::param_remove(session, class, args),
        Live::Generic(_, _) => param_cmds::param_clear(session, class, name, args),
        Live::VmCreate => create_cmds::vm_create(session, args, out),
        Live::VmDestroy => create_cmds::vm_destroy(session, args),
        Live::SrCreate => sr_cmds::sr_create(session, args, out),
        Live::UserPasswordChange => session_cmds::user_password_change(session, args),
        Live::EventWait => event_cmds::event_wait(session, args),
    }
}
