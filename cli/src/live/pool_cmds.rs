//! `xe pool-join`, `xe pool-eject`, `xe pool-designate-new-master` on a
//! live pool (docs/cli.md, docs/pool.md). `pool-join` runs on the joining
//! host (its agent contacts the master); the others go to the master (a
//! member redirects `xe` there). They print nothing on success.

use std::io::Write;

use xapi_ha::rpc::Rpc;

use super::options::ConnectOptions;
use super::session::Session;
use crate::error::{CliError, UsageError};

/// A pool command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolCommand {
    Join,
    Eject,
    DesignateNewMaster,
}

/// The pool command called `name`, if it is one (the names are in
/// `live::OTHERS` for help and suggestions).
#[must_use]
pub fn find(name: &str) -> Option<PoolCommand> {
    match name {
        "pool-join" => Some(PoolCommand::Join),
        "pool-eject" => Some(PoolCommand::Eject),
        "pool-designate-new-master" => Some(PoolCommand::DesignateNewMaster),
        _ => None,
    }
}

/// The keys the pool command `name` takes, for the command catalogue
/// (`crate::catalog`).
pub(crate) fn keys_of(name: &str) -> &'static [&'static str] {
    find(name).map_or(&[], keys)
}

/// The keys a command takes (all required).
fn keys(command: PoolCommand) -> &'static [&'static str] {
    match command {
        PoolCommand::Join => &["master-address", "master-username", "master-password"],
        PoolCommand::Eject | PoolCommand::DesignateNewMaster => &["host-uuid"],
    }
}

/// Checks `args` (`key=value` only, each key once, all required).
fn parse(
    command: PoolCommand,
    name: &str,
    args: &[String],
) -> Result<Vec<(&'static str, String)>, CliError> {
    let known = keys(command);
    let mut values: Vec<(&'static str, String)> = Vec::new();
    for arg in args {
        if arg.starts_with("--") {
            return Err(UsageError::UnknownFlag {
                command: name.to_owned(),
                flag: arg.clone(),
                suggestion: None,
            }
            .into());
        }
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| UsageError::NotKeyValue { arg: arg.clone() })?;
        let Some(k) = known.iter().find(|k| **k == key) else {
            let names: Vec<String> = known.iter().map(|k| (*k).to_owned()).collect();
            return Err(super::unknown_key(name, key, &names));
        };
        if values.iter().any(|(v, _)| v == k) {
            return Err(UsageError::DuplicateKey {
                key: key.to_owned(),
            }
            .into());
        }
        values.push((k, value.to_owned()));
    }
    if let Some(missing) = known.iter().find(|k| !values.iter().any(|(v, _)| v == *k)) {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: missing,
        }
        .into());
    }
    Ok(values)
}

fn value(values: &[(&'static str, String)], key: &str) -> Rpc {
    Rpc::Str(
        values
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default(),
    )
}

/// Runs a pool command (arguments checked before connecting).
pub fn run(
    command: PoolCommand,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    _out: &mut dyn Write,
) -> Result<(), CliError> {
    let values = parse(command, name, args)?;
    let mut session = Session::open(opts)?;
    let result = match command {
        PoolCommand::Join => session
            .call(
                "pool.join",
                vec![
                    value(&values, "master-address"),
                    value(&values, "master-username"),
                    value(&values, "master-password"),
                ],
            )
            .map(|_| ()),
        PoolCommand::Eject | PoolCommand::DesignateNewMaster => {
            let method = if command == PoolCommand::Eject {
                "pool.eject"
            } else {
                "pool.designate_new_master"
            };
            session
                .call("host.get_by_uuid", vec![value(&values, "host-uuid")])
                .and_then(|host| session.call(method, vec![host]))
                .map(|_| ())
        }
    };
    // After a handover or a join this agent may answer HOST_IS_SLAVE to
    // the logout; the session ends with the agent's memory either way.
    session.close();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_checked_before_connecting() {
        let ok = parse(
            PoolCommand::Join,
            "pool-join",
            &v(&[
                "master-address=10.0.0.1",
                "master-username=root",
                "master-password=a=b",
            ]),
        )
        .unwrap();
        assert_eq!(ok[2], ("master-password", "a=b".to_owned()));
        let e = parse(PoolCommand::Join, "pool-join", &v(&["master-address=x"])).unwrap_err();
        assert!(e.to_string().contains("master-username"), "{e}");
        let e = parse(PoolCommand::Eject, "pool-eject", &v(&["host=x"])).unwrap_err();
        assert!(
            e.to_string()
                .contains("does not take the parameter \"host\""),
            "{e}"
        );
        let e = parse(PoolCommand::Eject, "pool-eject", &v(&[])).unwrap_err();
        assert!(e.to_string().contains("host-uuid="), "{e}");
        let e = parse(
            PoolCommand::Eject,
            "pool-eject",
            &v(&["host-uuid=a", "host-uuid=b"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("more than once"), "{e}");
        assert!(parse(PoolCommand::Eject, "pool-eject", &v(&["--force"])).is_err());
        assert_eq!(
            find("pool-designate-new-master"),
            Some(PoolCommand::DesignateNewMaster)
        );
        assert_eq!(find("pool-list"), None);
    }
}
