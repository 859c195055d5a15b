//! The emergency commands (docs/cli.md, docs/operations.md "Emergency
//! runbook"). All but `pool-recover-slaves` talk to the host given (`-s`,
//! or the local Unix socket) on a host-local session
//! (`session.slave_local_login_with_password`), so they work on a member
//! that cannot reach its master and in emergency mode.
//!
//! - `host-emergency-ha-disable --force [soft=true]`
//! - `pool-emergency-transition-to-master [--force]`
//! - `pool-emergency-reset-master master-address=A`
//! - `pool-recover-slaves` (on the master; prints the recovered hosts' uuids)
//! - `host-is-in-emergency-mode` (prints `true` or `false`)

use std::io::Write;

use xapi_ha::rpc::Rpc;

use super::options::ConnectOptions;
use super::session::Session;
use crate::error::{CliError, UsageError};

/// xe's refusal of a dangerous command without `--force` (xenapi.md 6).
pub const DANGEROUS: &str = "This operation is dangerous and may cause data loss. This operation must be forced (use --force).";
/// xe's answer to a transition on the master without `--force`.
pub const ALREADY_MASTER: &str =
    "Host agent is already master. Use '--force' to execute the operation anyway.";

/// An emergency command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmergencyCommand {
    HaDisable,
    TransitionToMaster,
    ResetMaster,
    RecoverSlaves,
    IsInEmergencyMode,
}

/// The command names (also in `live::OTHERS`).
pub const NAMES: &[(&str, EmergencyCommand)] = &[
    ("host-emergency-ha-disable", EmergencyCommand::HaDisable),
    (
        "pool-emergency-transition-to-master",
        EmergencyCommand::TransitionToMaster,
    ),
    ("pool-emergency-reset-master", EmergencyCommand::ResetMaster),
    ("pool-recover-slaves", EmergencyCommand::RecoverSlaves),
    (
        "host-is-in-emergency-mode",
        EmergencyCommand::IsInEmergencyMode,
    ),
];

/// The emergency command called `name`, if it is one.
#[must_use]
pub fn find(name: &str) -> Option<EmergencyCommand> {
    NAMES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The parsed arguments.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    force: bool,
    soft: bool,
    master_address: Option<String>,
}

/// The keys and flags of `command` (also for the command catalogue,
/// `crate::catalog`).
pub(crate) fn keys_and_flags(
    command: EmergencyCommand,
) -> (&'static [&'static str], &'static [&'static str]) {
    use EmergencyCommand::*;
    match command {
        HaDisable => (&["soft"], &["--force"]),
        TransitionToMaster => (&[], &["--force"]),
        ResetMaster => (&["master-address"], &[]),
        RecoverSlaves | IsInEmergencyMode => (&[], &[]),
    }
}

fn parse(command: EmergencyCommand, name: &str, args: &[String]) -> Result<Parsed, UsageError> {
    let (keys, flags) = keys_and_flags(command);
    let mut p = Parsed::default();
    let mut seen: Vec<String> = Vec::new();
    for arg in args {
        if arg.starts_with("--") {
            if !flags.contains(&arg.as_str()) {
                return Err(UsageError::UnknownFlag {
                    command: name.to_owned(),
                    flag: arg.clone(),
                    suggestion: flags.first().map(|f| (*f).to_owned()),
                });
            }
            if p.force {
                return Err(UsageError::DuplicateFlag { flag: "--force" });
            }
            p.force = true;
            continue;
        }
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| UsageError::NotKeyValue { arg: arg.clone() })?;
        if !keys.contains(&key) {
            return Err(UsageError::UnknownKey {
                command: name.to_owned(),
                key: key.to_owned(),
                suggestion: keys.first().map(|k| (*k).to_owned()),
            });
        }
        if seen.iter().any(|k| k == key) {
            return Err(UsageError::DuplicateKey {
                key: key.to_owned(),
            });
        }
        seen.push(key.to_owned());
        match key {
            "soft" => {
                p.soft = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(UsageError::InvalidValue {
                            key: "soft".to_owned(),
                            expected: "true or false",
                            got: value.to_owned(),
                        });
                    }
                }
            }
            _ => {
                if value.is_empty() {
                    return Err(UsageError::InvalidValue {
                        key: key.to_owned(),
                        expected: "an address",
                        got: String::new(),
                    });
                }
                p.master_address = Some(value.to_owned());
            }
        }
    }
    if command == EmergencyCommand::ResetMaster && p.master_address.is_none() {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: "master-address",
        });
    }
    Ok(p)
}

/// Whether the host answers a normal login as the master (a member answers
/// `HOST_IS_SLAVE`, a host in emergency mode its emergency error).
fn is_master(opts: &ConnectOptions) -> bool {
    match Session::open_no_redirect(opts) {
        Ok(s) => {
            s.close();
            true
        }
        Err(_) => false,
    }
}

/// Runs an emergency command (arguments checked before connecting).
pub fn run(
    command: EmergencyCommand,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    use EmergencyCommand::*;
    let p = parse(command, name, args)?;
    if command == HaDisable && !p.force {
        return Err(CliError::Request(DANGEROUS.to_owned()));
    }
    if command == RecoverSlaves {
        let mut session = Session::open(opts)?;
        let result = recover_slaves(&mut session, out);
        session.close();
        return result;
    }
    if command == TransitionToMaster && !p.force && is_master(opts) {
        writeln!(out, "{ALREADY_MASTER}")?;
        return Ok(());
    }
    let mut session = Session::open_local(opts)?;
    let result = match command {
        HaDisable => session
            .call("host.emergency_ha_disable", vec![Rpc::Bool(p.soft)])
            .map(|_| ()),
        TransitionToMaster => session
            .call("pool.emergency_transition_to_master", Vec::new())
            .and_then(|_| {
                writeln!(out, "Host agent transitioned to master.")?;
                Ok(())
            }),
        ResetMaster => {
            let address = p.master_address.clone().unwrap_or_default();
            session
                .call(
                    "pool.emergency_reset_master",
                    vec![Rpc::Str(address.clone())],
                )
                .and_then(|_| {
                    writeln!(out, "Host agent is now a slave of {address}.")?;
                    Ok(())
                })
        }
        IsInEmergencyMode => session
            .call("host.is_in_emergency_mode", Vec::new())
            .and_then(|v| match v {
                Rpc::Bool(b) => {
                    writeln!(out, "{b}")?;
                    Ok(())
                }
                other => Err(CliError::Connect(format!(
                    "host.is_in_emergency_mode returned {other:?}, not a boolean"
                ))),
            }),
        RecoverSlaves => Ok(()),
    };
    session.close_local();
    result
}

fn recover_slaves(session: &mut Session, out: &mut dyn Write) -> Result<(), CliError> {
    let hosts = session.call("pool.recover_slaves", Vec::new())?;
    let Rpc::Array(hosts) = hosts else {
        return Err(CliError::Connect(format!(
            "pool.recover_slaves returned {hosts:?}, not a set"
        )));
    };
    for h in hosts {
        match session.call("host.get_uuid", vec![h])? {
            Rpc::Str(uuid) => writeln!(out, "{uuid}")?,
            other => {
                return Err(CliError::Connect(format!(
                    "host.get_uuid returned {other:?}"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_checked_before_connecting() {
        use EmergencyCommand::*;
        let p = parse(HaDisable, "h", &v(&["--force", "soft=true"])).unwrap();
        assert!(p.force && p.soft);
        assert!(!parse(HaDisable, "h", &v(&[])).unwrap().force);
        assert!(parse(HaDisable, "h", &v(&["soft=yes"])).is_err());
        assert!(parse(HaDisable, "h", &v(&["--force", "--force"])).is_err());
        assert!(parse(ResetMaster, "r", &v(&[])).is_err());
        assert!(parse(ResetMaster, "r", &v(&["master-address="])).is_err());
        assert_eq!(
            parse(ResetMaster, "r", &v(&["master-address=10.0.0.1"]))
                .unwrap()
                .master_address
                .as_deref(),
            Some("10.0.0.1")
        );
        assert!(parse(ResetMaster, "r", &v(&["--force"])).is_err());
        assert!(parse(RecoverSlaves, "p", &v(&["x=1"])).is_err());
        assert!(
            parse(TransitionToMaster, "t", &v(&["--force"]))
                .unwrap()
                .force
        );
        assert_eq!(find("pool-recover-slaves"), Some(RecoverSlaves));
        assert_eq!(find("pool-recover"), None);
    }
}
