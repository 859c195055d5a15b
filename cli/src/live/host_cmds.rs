//! maint: `xe host-disable`, `host-enable`, `host-evacuate`,
//! `host-get-vms-which-prevent-evacuation`, `host-shutdown`, `host-reboot`
//! on a live pool (docs/cli.md, docs/operations.md "Maintenance"). Each
//! takes the host's `uuid=`; `host-disable` and `host-evacuate` take
//! `--force` (ours: `host.disable_forced` / `host.evacuate_forced`, no
//! failover-plan check while HA is on). They print nothing on success but
//! `host-get-vms-which-prevent-evacuation`, which prints one record per VM
//! (`uuid`, `name-label`, `reason`: the error code and its parameters
//! joined with `,`), as xe does.

use std::io::Write;

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::calls::{by_uuid, record};
use super::fields::plain;
use super::options::ConnectOptions;
use super::session::Session;
use crate::error::{CliError, UsageError};
use crate::render::{self, Access};

/// A host maintenance command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostCommand {
    Disable,
    Enable,
    Evacuate,
    GetVmsWhichPreventEvacuation,
    Shutdown,
    Reboot,
}

/// Every command, by name (for help and suggestions: `live::OTHERS`).
pub const COMMANDS: &[(&str, HostCommand)] = &[
    ("host-disable", HostCommand::Disable),
    ("host-enable", HostCommand::Enable),
    ("host-evacuate", HostCommand::Evacuate),
    (
        "host-get-vms-which-prevent-evacuation",
        HostCommand::GetVmsWhichPreventEvacuation,
    ),
    ("host-shutdown", HostCommand::Shutdown),
    ("host-reboot", HostCommand::Reboot),
];

/// The command called `name`, if it is one.
#[must_use]
pub fn find(name: &str) -> Option<HostCommand> {
    COMMANDS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

/// The keys and flags of the host command `name`, for the command
/// catalogue (`crate::catalog`).
pub(crate) fn keys_and_flags(name: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match find(name) {
        Some(c) if takes_force(c) => (&["uuid"], &["--force"]),
        Some(_) => (&["uuid"], &[]),
        None => (&[], &[]),
    }
}

fn takes_force(command: HostCommand) -> bool {
    matches!(command, HostCommand::Disable | HostCommand::Evacuate)
}

/// The host's uuid and `--force` (checked before connecting).
fn parse(command: HostCommand, name: &str, args: &[String]) -> Result<(String, bool), CliError> {
    let mut uuid = None;
    let mut force = false;
    for arg in args {
        if arg == "--force" && takes_force(command) {
            force = true;
            continue;
        }
        if arg.starts_with("--") {
            return Err(UsageError::UnknownFlag {
                command: name.to_owned(),
                flag: arg.clone(),
                suggestion: takes_force(command).then(|| "--force".to_owned()),
            }
            .into());
        }
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| UsageError::NotKeyValue { arg: arg.clone() })?;
        if key != "uuid" {
            return Err(super::unknown_key(name, key, &["uuid".to_owned()]));
        }
        if uuid.replace(value.to_owned()).is_some() {
            return Err(UsageError::DuplicateKey {
                key: key.to_owned(),
            }
            .into());
        }
    }
    let uuid = uuid.ok_or_else(|| UsageError::MissingKey {
        command: name.to_owned(),
        key: "uuid",
    })?;
    Ok((uuid, force))
}

fn method(command: HostCommand, force: bool) -> &'static str {
    match (command, force) {
        (HostCommand::Disable, false) => "host.disable",
        (HostCommand::Disable, true) => "host.disable_forced",
        (HostCommand::Enable, _) => "host.enable",
        (HostCommand::Evacuate, false) => "host.evacuate",
        (HostCommand::Evacuate, true) => "host.evacuate_forced",
        (HostCommand::GetVmsWhichPreventEvacuation, _) => "host.get_vms_which_prevent_evacuation",
        (HostCommand::Shutdown, _) => "host.shutdown",
        (HostCommand::Reboot, _) => "host.reboot",
    }
}

/// Runs a host command (arguments checked before connecting).
pub fn run(
    command: HostCommand,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (uuid, force) = parse(command, name, args)?;
    let mut session = Session::open(opts)?;
    let result = run_on(&mut session, command, &uuid, force, out);
    session.close();
    result
}

fn run_on(
    session: &mut Session,
    command: HostCommand,
    uuid: &str,
    force: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let host = by_uuid(session, Class::Host, uuid)?;
    let answer = session.call(method(command, force), vec![host])?;
    if command != HostCommand::GetVmsWhichPreventEvacuation {
        return Ok(());
    }
    let Rpc::Struct(vms) = answer else {
        return Err(CliError::Connect(format!(
            "host.get_vms_which_prevent_evacuation returned {answer:?}, not a map"
        )));
    };
    for (i, (vm, reason)) in vms.iter().enumerate() {
        let rec = record(session, Class::Vm, &Rpc::Str(vm.clone()))?;
        let field = |name: &str| rec.get(name).map(plain).unwrap_or_default();
        let reason = match reason {
            Rpc::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(","),
            other => plain(other),
        };
        if i > 0 {
            writeln!(out)?;
        }
        render::record(
            out,
            &[
                ("uuid", Access::ReadOnly, field("uuid")),
                ("name-label", Access::ReadWrite, field("name_label")),
                ("reason", Access::ReadOnly, reason),
            ],
        )?;
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
        let (u, f) = parse(
            HostCommand::Evacuate,
            "host-evacuate",
            &v(&["uuid=a", "--force"]),
        )
        .unwrap();
        assert_eq!((u.as_str(), f), ("a", true));
        let e = parse(
            HostCommand::Shutdown,
            "host-shutdown",
            &v(&["uuid=a", "--force"]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        let e = parse(HostCommand::Enable, "host-enable", &v(&[])).unwrap_err();
        assert!(e.to_string().contains("uuid="), "{e}");
        let e = parse(HostCommand::Disable, "host-disable", &v(&["host=a"])).unwrap_err();
        assert!(e.to_string().contains("\"host\""), "{e}");
        assert_eq!(method(HostCommand::Disable, true), "host.disable_forced");
        assert_eq!(find("host-reboot"), Some(HostCommand::Reboot));
        assert_eq!(find("host-list"), None);
    }
}
