//! `xe` on a live pool: commands that talk to the pool agent `xapi-ha`
//! (XML-RPC, `xapi_ha::rpc::xmlrpc`) over its Unix socket or over TLS with
//! a pinned certificate, and print what xe prints (docs/cli.md, "The live
//! pool").

pub mod api_errors;
mod args;
mod calls;
// pkg: the live commands' keys for the command catalogue (crate::catalog).
pub(crate) mod catalog_keys;
mod commands;
mod create_cmds;
pub mod emergency_cmds; // emerg: the emergency commands
mod event_cmds;
mod fields;
pub mod ha_cmds;
mod ha_status_engine; // haengine: the restart engine's part of pool-ha-status
pub mod host_cmds; // maint: host-disable, host-evacuate, host-shutdown, ...
pub mod known_hosts;
mod message_cmds;
pub mod options;
mod param_cmds;
pub mod planning;
pub mod pool_cmds;
mod read_cmds;
mod session;
mod session_cmds;
mod sr_cmds;
pub mod transport;
mod vm_cmds;

use std::io::Write;

use xapi_ha::db::Class;

use crate::error::{CliError, UsageError};

/// The classes the live commands know, by their CLI prefix (longest
/// first, so `host-metrics-list` is not read as `host` + `metrics-list`).
pub const CLASSES: &[(&str, Class)] = &[
    ("host-metrics", Class::HostMetrics),
    ("message", Class::Message),
    ("pool", Class::Pool),
    ("host", Class::Host),
    ("vdi", Class::Vdi),
    ("vm", Class::Vm),
    ("sr", Class::Sr),
];

/// The operations after a class prefix.
pub const OPERATIONS: &[&str] = &[
    "list",
    "param-list",
    "param-get",
    "param-set",
    "param-add",
    "param-remove",
    "param-clear",
];

/// Commands that are not `<class>-<operation>`.
pub const OTHERS: &[&str] = &[
    "vm-create",
    "vm-destroy",
    "sr-create",
    // pool: pool_cmds.rs
    "pool-join",
    "pool-eject",
    "pool-designate-new-master",
    "user-password-change",
    "event-wait",
    // haenable: cli/src/live/ha_cmds.rs (dispatched from lib.rs).
    "pool-ha-enable",
    "pool-ha-disable",
    "pool-ha-status",
    // maint: cli/src/live/host_cmds.rs (dispatched from lib.rs).
    "host-disable",
    "host-enable",
    "host-evacuate",
    "host-get-vms-which-prevent-evacuation",
    "host-shutdown",
    "host-reboot",
    // emerg: cli/src/live/emergency_cmds.rs (dispatched from lib.rs).
    "host-emergency-ha-disable",
    "pool-emergency-transition-to-master",
    "pool-emergency-reset-master",
    "pool-recover-slaves",
    "host-is-in-emergency-mode",
    // haengine: cli/src/live/ha_cmds.rs.
    "pool-ha-prevent-restarts-for",
];

/// What a live command name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    /// `<class>-<operation>`.
    Generic(Class, &'static str),
    VmCreate,
    VmDestroy,
    SrCreate,
    UserPasswordChange,
    EventWait,
}

/// The live command called `name`, if it is one.
#[must_use]
pub fn find(name: &str) -> Option<Live> {
    match name {
        "vm-create" => return Some(Live::VmCreate),
        "vm-destroy" => return Some(Live::VmDestroy),
        "sr-create" => return Some(Live::SrCreate),
        "user-password-change" => return Some(Live::UserPasswordChange),
        "event-wait" => return Some(Live::EventWait),
        _ => {}
    }
    if let Some(live) = vm_cmds::find(name) {
        return Some(live);
    }
    if let Some(c) = message_cmds::find(name) {
        return Some(c);
    }
    CLASSES.iter().find_map(|(prefix, class)| {
        let op = name.strip_prefix(prefix)?.strip_prefix('-')?;
        OPERATIONS
            .iter()
            .find(|o| **o == op)
            .map(|o| Live::Generic(*class, o))
    })
}

/// Every live command name, for help and suggestions.
#[must_use]
pub fn names() -> Vec<String> {
    let mut all: Vec<String> = CLASSES
        .iter()
        .flat_map(|(p, _)| OPERATIONS.iter().map(move |o| format!("{p}-{o}")))
        .collect();
    all.extend(OTHERS.iter().map(|s| (*s).to_owned()));
    all.extend(vm_cmds::COMMANDS.iter().map(|(n, _)| (*n).to_owned()));
    all.extend(message_cmds::COMMANDS.iter().map(|(n, _)| (*n).to_owned()));
    all.sort();
    all
}

/// Runs a live command with its arguments (connection options removed).
pub fn run(
    command: Live,
    name: &str,
    opts: &options::ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    if let Some(op) = vm_cmds::operation(command) {
        return vm_cmds::run(op, name, opts, args, out);
    }
    if message_cmds::owns(command) {
        return message_cmds::run(command, name, opts, args, out);
    }
    let parsed = args::Args::parse(name, args)?;
    // Check the arguments before connecting: a bad command line never
    // reaches the agent.
    commands::check(command, name, &parsed)?;
    let mut session = session::Session::open(opts)?;
    let result = commands::run(&mut session, command, name, &parsed, out);
    session.close();
    result
}

/// A live command name that is close to `name` (for "did you mean").
#[must_use]
pub fn suggest(name: &str) -> Option<String> {
    let names = names();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    xapi_ha::pool_file::nearest(name, &refs).map(str::to_owned)
}

/// `UsageError` for a key this live command does not take.
pub(crate) fn unknown_key(name: &str, key: &str, known: &[String]) -> CliError {
    let refs: Vec<&str> = known.iter().map(String::as_str).collect();
    CliError::Usage(UsageError::UnknownKey {
        command: name.to_owned(),
        key: key.to_owned(),
        suggestion: xapi_ha::pool_file::nearest(key, &refs).map(str::to_owned),
    })
}
