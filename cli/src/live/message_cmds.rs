//! Live commands of the alerts area: `pool-send-test-message` (sends a
//! test mail with the pool's mail settings and prints the SMTP server's
//! answer), `message-create` and `message-destroy` (as xe has them). `message-list` is the generic list (filters `name=`,
//! `priority=`, `class=`, `obj-uuid=`, `--minimal`).
//!
//! Registered in `mod.rs` as `Live::Generic(Class::Pool, "send-test-message")`
//! and answered here before the generic commands see it (the generic
//! table in `commands.rs` is being split and is not edited by this area).

use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::options::ConnectOptions;
use super::session::Session;
use super::{Live, unknown_key};
use crate::error::{CliError, UsageError};

/// The commands of this file, by name.
pub const COMMANDS: &[(&str, Live)] = &[
    (
        "pool-send-test-message",
        Live::Generic(Class::Pool, SEND_TEST),
    ),
    ("message-create", Live::Generic(Class::Message, CREATE)),
    ("message-destroy", Live::Generic(Class::Message, DESTROY)),
];

/// The operation names these commands are registered under.
const SEND_TEST: &str = "send-test-message";
const CREATE: &str = "create";
const DESTROY: &str = "destroy";

/// `message-create`'s object keys and the class each names.
const OBJECT_KEYS: &[(&str, &str)] = &[
    ("vm-uuid", "VM"),
    ("host-uuid", "Host"),
    ("sr-uuid", "SR"),
    ("pool-uuid", "Pool"),
];

/// The keys the command `name` of this file takes, for the command
/// catalogue (`crate::catalog`).
pub(crate) fn keys_of(name: &str) -> Vec<&'static str> {
    match find(name) {
        Some(Live::Generic(_, CREATE)) => {
            let mut keys = vec!["name", "priority", "body"];
            keys.extend(OBJECT_KEYS.iter().map(|(k, _)| *k));
            keys
        }
        Some(Live::Generic(_, DESTROY)) => vec!["uuid"],
        _ => Vec::new(),
    }
}

/// The command called `name`, if it is one of this file's.
#[must_use]
pub fn find(name: &str) -> Option<Live> {
    COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// Whether `command` is answered here.
#[must_use]
pub fn owns(command: Live) -> bool {
    COMMANDS.iter().any(|(_, c)| *c == command)
}

/// `key=value` arguments, each key at most once and one of `known`.
fn key_values<'a>(
    name: &str,
    args: &'a [String],
    known: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, CliError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return Err(UsageError::NotKeyValue { arg: arg.clone() }.into());
        };
        if !known.contains(&k) {
            let known: Vec<String> = known.iter().map(|s| (*s).to_owned()).collect();
            return Err(unknown_key(name, k, &known));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(UsageError::DuplicateKey { key: k.to_owned() }.into());
        }
        out.push((k, v));
    }
    Ok(out)
}

fn missing(name: &str, key: &'static str) -> CliError {
    UsageError::MissingKey {
        command: name.to_owned(),
        key,
    }
    .into()
}

/// Runs one of this file's commands (arguments checked before connecting).
pub fn run(
    command: Live,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let Live::Generic(_, op) = command else {
        return Err(CliError::Connect(format!("{name}: not a message command")));
    };
    let (method, params) = match op {
        SEND_TEST => {
            key_values(name, args, &[])?;
            (xapi_ha::alerts::TEST_MAIL_METHOD, Vec::new())
        }
        CREATE => {
            let mut known = vec!["name", "priority", "body"];
            known.extend(OBJECT_KEYS.iter().map(|(k, _)| *k));
            let kv = key_values(name, args, &known)?;
            let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
            let msg_name = get("name").ok_or_else(|| missing(name, "name"))?;
            let priority: i64 = get("priority")
                .ok_or_else(|| missing(name, "priority"))?
                .parse()
                .map_err(|_| UsageError::InvalidValue {
                    key: "priority".into(),
                    expected: "a whole number",
                    got: get("priority").unwrap_or_default().to_owned(),
                })?;
            let objects: Vec<(&str, &str)> = OBJECT_KEYS
                .iter()
                .filter_map(|(k, cls)| get(k).map(|u| (*cls, u)))
                .collect();
            let [(cls, uuid)] = objects[..] else {
                return Err(missing(
                    name,
                    "vm-uuid, host-uuid, sr-uuid or pool-uuid (one)",
                ));
            };
            (
                "message.create",
                vec![
                    Rpc::Str(msg_name.to_owned()),
                    Rpc::Int(priority),
                    Rpc::Str(cls.to_owned()),
                    Rpc::Str(uuid.to_owned()),
                    Rpc::Str(get("body").unwrap_or_default().to_owned()),
                ],
            )
        }
        _ => {
            let kv = key_values(name, args, &["uuid"])?;
            let uuid = kv
                .first()
                .map(|(_, v)| *v)
                .ok_or_else(|| missing(name, "uuid"))?;
            ("message.destroy", vec![Rpc::Str(uuid.to_owned())])
        }
    };
    let mut session = Session::open(opts)?;
    let result = (|| {
        let params = if method == "message.destroy" {
            let r = session.call("message.get_by_uuid", params)?;
            vec![r]
        } else {
            params
        };
        session.call(method, params)
    })();
    session.close();
    match result? {
        Rpc::Str(answer) if method == xapi_ha::alerts::TEST_MAIL_METHOD => {
            writeln!(out, "{answer}")?;
        }
        _ => {}
    }
    Ok(())
}
