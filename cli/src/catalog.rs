//! The command catalogue: every `xe` command with its one-line summary, its
//! parameters and its flags, gathered from the tables that parse them (the
//! planner and lab table `crate::table::COMMANDS`, the live commands' key
//! tables in `crate::live`). It is the ONE list that `xe help`, the command
//! index of docs/cli.md (`index_markdown`, checked by
//! `cli/tests/cli_doc_sync.rs`) and the shell completions
//! (`crate::completion`) are generated from, so they cannot disagree.
//!
//! A command that parses arguments but has no summary here is caught by the
//! unit test `every_command_has_a_summary`.

use crate::live::catalog_keys as keys;
use crate::live::{self, CLASSES, OTHERS};
use crate::table::{COMMANDS, ParamKind};

/// One parameter, for help and completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// As written before `=` (or before `:` for a map).
    pub name: String,
    /// A map parameter, written `name:key=value`.
    pub map: bool,
    /// The class (CLI prefix, e.g. `vm`) whose `CLASS-list --minimal` gives
    /// the values (object UUIDs), for completion.
    pub uuids_of: Option<&'static str>,
    /// Fixed values, for completion.
    pub values: &'static [&'static str],
    /// The known keys of a map parameter (`ha-config:timeout`).
    pub subkeys: Vec<String>,
}

/// One command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub summary: String,
    pub params: Vec<ParamInfo>,
    pub flags: Vec<&'static str>,
    /// Takes `FIELD=VALUE` for any field of its class (lists, param-set).
    pub any_field: bool,
    /// Talks to the live pool (takes the connection options).
    pub live: bool,
}

/// The connection options of the live commands (`crate::live::options`).
pub const CONNECTION_OPTIONS: &[&str] = &[
    "-s",
    "-p",
    "-u",
    "-pw",
    "-pwf",
    "--socket",
    "--trust-new",
    "--fingerprint=",
];

/// The summary of each live command that is not `CLASS-OPERATION`.
const LIVE_SUMMARIES: &[(&str, &str)] = &[
    ("vm-create", "Create a VM (VM.create); prints its uuid"),
    ("vm-destroy", "Destroy a halted VM (VM.destroy)"),
    (
        "sr-create",
        "Create a file or block SR (SR.create); prints its uuid",
    ),
    (
        "pool-join",
        "Make this host a member of another host's pool (pool.join)",
    ),
    (
        "pool-eject",
        "Eject a host from the pool: it becomes a pool of one (pool.eject)",
    ),
    (
        "pool-designate-new-master",
        "Hand the master role to another host (pool.designate_new_master)",
    ),
    (
        "user-password-change",
        "Change the logged-in user's password (session.change_password)",
    ),
    (
        "event-wait",
        "Wait until an object of a class matches every condition",
    ),
    (
        "pool-ha-enable",
        "Enable HA on the pool with the given heartbeat SRs (pool.enable_ha)",
    ),
    (
        "pool-ha-disable",
        "Disable HA on the pool (pool.disable_ha)",
    ),
    (
        "pool-ha-status",
        "HA state: T, master and epoch, liveset, warnings, per-host health",
    ),
    (
        "pool-ha-prevent-restarts-for",
        "Start no HA restarts for N seconds (pool.ha_prevent_restarts_for)",
    ),
    (
        "host-disable",
        "Take no new VMs on a host (host.disable; --force past the HA plan)",
    ),
    ("host-enable", "Take VMs on a host again (host.enable)"),
    (
        "host-evacuate",
        "Move every running VM off a host (host.evacuate)",
    ),
    (
        "host-get-vms-which-prevent-evacuation",
        "The VMs that cannot leave a host, and why",
    ),
    (
        "host-shutdown",
        "Shut down a disabled host's VMs and stop its agent (host.shutdown)",
    ),
    (
        "host-reboot",
        "Shut down a disabled host's VMs and restart its agent (host.reboot)",
    ),
    (
        "host-emergency-ha-disable",
        "Disarm and stop HA on this host alone (needs --force)",
    ),
    (
        "pool-emergency-transition-to-master",
        "Make this host the master in place (emergency)",
    ),
    (
        "pool-emergency-reset-master",
        "Make this host a member of the given master (emergency)",
    ),
    (
        "pool-recover-slaves",
        "Point every answering host at this master (pool.recover_slaves)",
    ),
    (
        "host-is-in-emergency-mode",
        "Whether this host is cut off from its master",
    ),
    ("vm-start", "Start the selected VMs (VM.start, VM.start_on)"),
    (
        "vm-shutdown",
        "Shut down the selected VMs (clean, or hard with --force)",
    ),
    (
        "vm-reboot",
        "Reboot the selected VMs (clean, or hard with --force)",
    ),
    (
        "vm-migrate",
        "Move the selected VMs to another host (VM.pool_migrate)",
    ),
    (
        "diagnostic-vm-status",
        "Where the selected VMs could start, and why not elsewhere",
    ),
    (
        "pool-send-test-message",
        "Send a test mail with the pool's mail settings",
    ),
    ("message-create", "Create a message about one object"),
    ("message-destroy", "Destroy a message (message.destroy)"),
];

/// The summary of each generic operation (`CLASS` is replaced).
const OPERATION_SUMMARIES: &[(&str, &str)] = &[
    (
        "list",
        "List CLASS objects (FIELD=VALUE filters, params=, --minimal)",
    ),
    ("param-list", "Every field of one CLASS"),
    ("param-get", "One field (or map key) of one CLASS"),
    ("param-set", "Set read-write fields of one CLASS"),
    (
        "param-add",
        "Add a map key or set item to a field of one CLASS",
    ),
    (
        "param-remove",
        "Remove a map key or set item from a field of one CLASS",
    ),
    (
        "param-clear",
        "Empty a map, set or string field of one CLASS",
    ),
];

/// Fixed values of some parameters, for completion.
const VALUES: &[(&str, &[&str])] = &[
    ("restart-priority", &["restart", "best-effort", ""]),
    ("type", &["file", "block"]),
    ("shared", &["true", "false"]),
    ("live", &["true", "false"]),
    (
        "class",
        &["pool", "host", "host-metrics", "vm", "sr", "vdi", "message"],
    ),
    ("shell", &["bash", "zsh"]),
];

/// The class whose UUIDs a parameter takes: `uuid` the command's own
/// class, `X-uuid`/`X-uuids` class X, `on`/`host` a host.
fn uuids_of(param: &str, own_class: Option<&'static str>) -> Option<&'static str> {
    let class = |name: &str| CLASSES.iter().map(|(p, _)| *p).find(|p| *p == name);
    match param {
        "uuid" => own_class,
        "on" | "host" => Some("host"),
        "vm" => Some("vm"),
        "heartbeat-sr-uuids" => Some("sr"),
        _ => param
            .strip_suffix("-uuids")
            .or_else(|| param.strip_suffix("-uuid"))
            .and_then(class),
    }
}

fn param(name: &str, map: bool, own_class: Option<&'static str>) -> ParamInfo {
    ParamInfo {
        name: name.to_owned(),
        map,
        uuids_of: if map { None } else { uuids_of(name, own_class) },
        values: VALUES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| *v),
        subkeys: Vec::new(),
    }
}

/// The CLI class prefix a command name starts with (longest first).
fn class_prefix(name: &str) -> Option<&'static str> {
    CLASSES
        .iter()
        .map(|(p, _)| *p)
        .find(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('-')))
}

fn live_summary(name: &str) -> Option<String> {
    if let Some((_, s)) = LIVE_SUMMARIES.iter().find(|(n, _)| *n == name) {
        return Some((*s).to_owned());
    }
    let class = class_prefix(name)?;
    let op = &name[class.len() + 1..];
    OPERATION_SUMMARIES
        .iter()
        .find(|(o, _)| *o == op)
        .map(|(_, s)| s.replace("CLASS", class))
}

/// The parameters and flags of a live command.
fn live_shape(name: &str) -> (Vec<ParamInfo>, Vec<&'static str>, bool) {
    let own = class_prefix(name);
    let plain = |keys: &[&str]| -> Vec<ParamInfo> {
        let mut params: Vec<ParamInfo> = Vec::new();
        for k in keys {
            let (name, sub) = k.split_once(':').map_or((*k, None), |(m, s)| (m, Some(s)));
            let index = match params.iter().position(|p| p.name == name) {
                Some(i) => i,
                None => {
                    params.push(param(name, sub.is_some(), own));
                    params.len() - 1
                }
            };
            if let Some(sub) = sub {
                params[index].subkeys.push(sub.to_owned());
            }
        }
        params
    };
    if live::ha_cmds::find(name).is_some() {
        let (keys, flags) = live::ha_cmds::keys_and_flags(name);
        return (plain(keys), flags.to_vec(), false);
    }
    if live::host_cmds::find(name).is_some() {
        let (keys, flags) = live::host_cmds::keys_and_flags(name);
        return (plain(keys), flags.to_vec(), false);
    }
    if let Some(c) = live::emergency_cmds::find(name) {
        let (keys, flags) = live::emergency_cmds::keys_and_flags(c);
        return (plain(keys), flags.to_vec(), false);
    }
    if live::pool_cmds::find(name).is_some() {
        return (plain(live::pool_cmds::keys_of(name)), Vec::new(), false);
    }
    if keys::is_message_command(name) {
        return (plain(&keys::message(name)), Vec::new(), false);
    }
    if let Some(command) = live::find(name) {
        if let Some(op) = keys::vm_operation(command) {
            let (vm_keys, flags) = keys::vm(op);
            // Any VM field is a selector too.
            return (plain(&vm_keys), flags.to_vec(), true);
        }
        let (keys, maps, flags) = keys::generic(command);
        let mut params: Vec<ParamInfo> = keys.iter().map(|k| param(k, false, own)).collect();
        params.extend(maps.iter().map(|m| param(m, true, own)));
        let any_field = name.ends_with("-list") && !name.ends_with("-param-list")
            || name.ends_with("-param-set")
            || name.ends_with("-param-add")
            || name == "event-wait";
        return (params, flags.to_vec(), any_field);
    }
    (Vec::new(), Vec::new(), false)
}

/// Every command: `help`, the planner and lab table, then the live
/// commands sorted by name.
#[must_use]
pub fn entries() -> Vec<Entry> {
    let mut all = vec![Entry {
        name: "help".to_owned(),
        summary: "Show this list, or one command's parameters".to_owned(),
        params: Vec::new(),
        flags: Vec::new(),
        any_field: false,
        live: false,
    }];
    for command in COMMANDS {
        all.push(Entry {
            name: command.name.to_owned(),
            summary: command.summary.to_owned(),
            params: command
                .params
                .iter()
                .map(|p| param(p.name, p.kind == ParamKind::Map, None))
                .collect(),
            flags: command.flags.iter().map(|f| f.name).collect(),
            any_field: false,
            live: crate::planner_cmds::LIVE_CAPABLE.contains(&command.name),
        });
    }
    let mut names = live::names();
    names.extend(OTHERS.iter().map(|s| (*s).to_owned()));
    names.sort();
    names.dedup();
    for name in names {
        let (params, flags, any_field) = live_shape(&name);
        all.push(Entry {
            summary: live_summary(&name).unwrap_or_default(),
            name,
            params,
            flags,
            any_field,
            live: true,
        });
    }
    all
}

/// The command index of docs/cli.md: one row per command with its
/// parameters and flags (generated; `cli/tests/cli_doc_sync.rs`).
#[must_use]
pub fn index_markdown() -> String {
    let mut out = String::new();
    out.push_str("| command | parameters | flags | summary |\n|---|---|---|---|\n");
    for entry in entries() {
        let params: Vec<String> = entry
            .params
            .iter()
            .map(|p| {
                if p.map {
                    format!("`{}:`", p.name)
                } else {
                    format!("`{}=`", p.name)
                }
            })
            .chain(entry.any_field.then(|| "`FIELD=`".to_owned()))
            .collect();
        let flags: Vec<String> = entry.flags.iter().map(|f| format!("`{f}`")).collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            entry.name,
            params.join(" "),
            flags.join(" "),
            entry.summary.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_a_summary() {
        for entry in entries() {
            assert!(!entry.summary.is_empty(), "{} has no summary", entry.name);
        }
    }

    #[test]
    fn every_dispatched_command_is_listed_once() {
        let all = entries();
        let names: Vec<&str> = all.iter().map(|e| e.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} listed twice");
        }
        for n in live::names().iter().chain(
            OTHERS
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .iter(),
        ) {
            assert!(names.contains(&n.as_str()), "{n} missing");
        }
        for c in COMMANDS {
            assert!(names.contains(&c.name), "{} missing", c.name);
        }
    }

    #[test]
    fn parameters_come_from_the_parsers() {
        let all = entries();
        let get = |n: &str| all.iter().find(|e| e.name == n).unwrap();
        let enable = get("pool-ha-enable");
        assert_eq!(enable.params[0].name, "heartbeat-sr-uuids");
        assert_eq!(enable.params[0].uuids_of, Some("sr"));
        assert!(enable.params[1].map && enable.params[1].name == "ha-config");
        let start = get("vm-start");
        assert!(
            start
                .params
                .iter()
                .any(|p| p.name == "on" && p.uuids_of == Some("host"))
        );
        assert!(start.flags.contains(&"--multiple"));
        let get_param = get("host-metrics-param-get");
        assert_eq!(get_param.params[0].uuids_of, Some("host-metrics"));
        let join = get("pool-join");
        assert_eq!(join.params.len(), 3);
        let sr = get("sr-create");
        assert!(sr.params.iter().any(|p| p.name == "device-config" && p.map));
        assert!(sr.flags.contains(&"--force"));
    }
}
