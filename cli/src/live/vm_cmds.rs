//! The VM lifecycle commands on a live pool: `vm-start [on=HOST] [--force]`,
//! `vm-shutdown [--force]`, `vm-reboot [--force]`, `vm-migrate host=HOST`,
//! and `diagnostic-vm-status` (docs/cli.md, "VM lifecycle").
//!
//! VMs are selected as xe selects them: `uuid=`, `vm=` (name-label or
//! uuid) and any VM field as a filter (`power-state=halted`,
//! `other-config:k=v`); templates and control domains are never selected.
//! One match runs the operation; several need `--multiple` (xe's rule),
//! else nothing is done. `vm-start --multiple` starts by `order` and
//! `start_delay` (`xapi_ha::api::start_order`): a group in parallel, each
//! with its own session, then the group's delay, then the next group. On
//! success nothing is printed, as xe prints nothing.

use std::io::Write;

use xapi_ha::api::start_order::{StartVm, run_groups, start_groups};
use xapi_ha::db::Class;
use xapi_ha::db::schema::Ty;
use xapi_ha::rpc::Rpc;

use super::fields::{self, Record, Resolver, by_cli_name, cli_name};
use super::options::ConnectOptions;
use super::session::Session;
use super::{Live, unknown_key};
use crate::error::{CliError, UsageError};

/// The commands this file runs, with their operation (a
/// `Live::Generic(Class::Vm, operation)`).
pub const COMMANDS: &[(&str, &str)] = &[
    ("vm-start", "start"),
    ("vm-shutdown", "shutdown"),
    ("vm-reboot", "reboot"),
    ("vm-migrate", "migrate"),
    ("diagnostic-vm-status", "diagnostic-status"),
];

/// The live command called `name`, if it is one of these.
#[must_use]
pub fn find(name: &str) -> Option<Live> {
    COMMANDS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, op)| Live::Generic(Class::Vm, op))
}

/// The lifecycle operation of `command`, if it is one.
#[must_use]
pub fn operation(command: Live) -> Option<&'static str> {
    match command {
        Live::Generic(Class::Vm, op) => COMMANDS.iter().map(|(_, o)| *o).find(|o| *o == op),
        _ => None,
    }
}

/// The keys (selectors `uuid=`, `vm=`, then the operation's own) and flags
/// of `vm-OP`, for the command catalogue (`crate::catalog`).
pub(crate) fn keys_and_flags(op: &str) -> (Vec<&'static str>, &'static [&'static str]) {
    let mut keys = vec!["uuid", "vm"];
    keys.extend(own_keys(op));
    (keys, own_flags(op))
}

/// Keys that are not selectors, per operation.
fn own_keys(op: &str) -> &'static [&'static str] {
    match op {
        "start" => &["on"],
        "migrate" => &["host", "live"],
        _ => &[],
    }
}

fn own_flags(op: &str) -> &'static [&'static str] {
    match op {
        "migrate" => &["--multiple"],
        "diagnostic-status" => &[],
        _ => &["--force", "--multiple"],
    }
}

/// A command line: `key=value` / `key:sub=value` and `--flag`s.
#[derive(Debug, Default)]
struct Line {
    values: Vec<(String, Option<String>, String)>,
    flags: Vec<String>,
}

impl Line {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, s, _)| k == key && s.is_none())
            .map(|(_, _, v)| v.as_str())
    }

    fn flag(&self, f: &str) -> bool {
        self.flags.iter().any(|x| x == f)
    }
}

/// Parses and checks the arguments of `vm-OP` before anything is sent.
fn parse(op: &str, name: &str, args: &[String]) -> Result<Line, CliError> {
    let mut line = Line::default();
    for arg in args {
        if arg.starts_with("--") {
            if !own_flags(op).contains(&arg.as_str()) {
                return Err(UsageError::UnknownFlag {
                    command: name.to_owned(),
                    flag: arg.clone(),
                    suggestion: xapi_ha::pool_file::nearest(arg, own_flags(op)).map(str::to_owned),
                }
                .into());
            }
            if line.flag(arg) {
                return Err(UsageError::DuplicateKey { key: arg.clone() }.into());
            }
            line.flags.push(arg.clone());
            continue;
        }
        let not_kv = || UsageError::NotKeyValue { arg: arg.clone() };
        let (key, value) = arg.split_once('=').ok_or_else(not_kv)?;
        let (k, sub) = match key.split_once(':') {
            Some((k, s)) if !k.is_empty() && !s.is_empty() => (k, Some(s.to_owned())),
            Some(_) => return Err(not_kv().into()),
            None => (key, None),
        };
        if k.is_empty() {
            return Err(not_kv().into());
        }
        let known = k == "vm"
            || (sub.is_none() && own_keys(op).contains(&k))
            || by_cli_name(Class::Vm, k)
                .is_some_and(|f| sub.is_none() || matches!(f.ty, Ty::Map(..)));
        if !known {
            let mut all: Vec<String> = ["vm"]
                .iter()
                .chain(own_keys(op))
                .map(|s| (*s).to_owned())
                .collect();
            all.extend(Class::Vm.fields().iter().map(|f| cli_name(f.name)));
            return Err(unknown_key(name, k, &all));
        }
        if line.values.iter().any(|(n, s, _)| n == k && *s == sub) {
            return Err(UsageError::DuplicateKey {
                key: key.to_owned(),
            }
            .into());
        }
        line.values.push((k.to_owned(), sub, value.to_owned()));
    }
    if op == "migrate" && line.get("host").is_none() {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: "host",
        }
        .into());
    }
    let selects = line
        .values
        .iter()
        .any(|(k, _, _)| !own_keys(op).contains(&k.as_str()));
    if !selects {
        return Err(CliError::Request(format!(
            "{name}: no VM selected: give uuid=, vm=NAME-OR-UUID or a field filter (e.g. power-state=halted)"
        )));
    }
    Ok(line)
}

/// Runs `vm-OP` (`op` from [`operation`]).
pub fn run(
    op: &'static str,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let line = parse(op, name, args)?;
    let mut session = Session::open(opts)?;
    let result = run_on(&mut session, op, opts, &line, out);
    session.close();
    result
}

fn all_records(session: &mut Session, class: Class) -> Result<Vec<(String, Record)>, CliError> {
    match session.call(&format!("{}.get_all_records", class.name()), Vec::new())? {
        Rpc::Struct(all) => Ok(all
            .into_iter()
            .filter_map(|(r, rec)| match rec {
                Rpc::Struct(m) => Some((r, m)),
                _ => None,
            })
            .collect()),
        other => Err(CliError::Connect(format!(
            "{}.get_all_records returned {other:?}, not a map",
            class.name()
        ))),
    }
}

fn text(rec: &Record, field: &str) -> String {
    rec.get(field).map(fields::plain).unwrap_or_default()
}

/// The VMs the selectors match, sorted by uuid.
fn select(session: &mut Session, op: &str, line: &Line) -> Result<Vec<(String, Record)>, CliError> {
    let mut resolver = Resolver::default();
    let mut vms = Vec::new();
    'vm: for (r, rec) in all_records(session, Class::Vm)? {
        if rec.get("is_a_template") == Some(&Rpc::Bool(true))
            || rec.get("is_control_domain") == Some(&Rpc::Bool(true))
        {
            continue;
        }
        for (key, sub, want) in &line.values {
            if sub.is_none() && own_keys(op).contains(&key.as_str()) {
                continue;
            }
            if key == "vm" {
                if text(&rec, "uuid") != *want && text(&rec, "name_label") != *want {
                    continue 'vm;
                }
                continue;
            }
            let Some(field) = by_cli_name(Class::Vm, key) else {
                continue;
            };
            let got = match (sub, rec.get(field.name)) {
                (Some(k), Some(Rpc::Struct(map))) => match (map.get(k), field.ty) {
                    (Some(v), Ty::Map(_, inner)) => resolver.show(session, inner, v),
                    (Some(v), _) => fields::plain(v),
                    (None, _) => continue 'vm,
                },
                (Some(_), _) => continue 'vm,
                (None, Some(v)) => resolver.show(session, &field.ty, v),
                (None, None) => String::new(),
            };
            if got != *want {
                continue 'vm;
            }
        }
        vms.push((r, rec));
    }
    vms.sort_by_key(|(_, rec)| text(rec, "uuid"));
    Ok(vms)
}

/// The host named by uuid or name-label.
fn host_ref(session: &mut Session, key: &str, want: &str) -> Result<String, CliError> {
    let hosts = all_records(session, Class::Host)?;
    let found: Vec<&String> = hosts
        .iter()
        .filter(|(_, rec)| text(rec, "uuid") == want || text(rec, "name_label") == want)
        .map(|(r, _)| r)
        .collect();
    match found[..] {
        [r] => Ok(r.clone()),
        [] => Err(CliError::Request(format!(
            "{key}={want}: no such host (give its uuid or name-label)"
        ))),
        _ => Err(CliError::Request(format!(
            "{key}={want}: several hosts have this name-label; give the host's uuid"
        ))),
    }
}

/// One VM's call for `op` (not `vm-start --multiple`'s grouping).
fn call_one(
    session: &mut Session,
    op: &str,
    vm: &str,
    host: Option<&str>,
    line: &Line,
) -> Result<(), CliError> {
    let vm = Rpc::Str(vm.to_owned());
    let force = line.flag("--force");
    match (op, host) {
        ("start", None) => session.call("VM.start", vec![vm, Rpc::Bool(false), Rpc::Bool(force)]),
        ("start", Some(h)) => session.call(
            "VM.start_on",
            vec![
                vm,
                Rpc::Str(h.to_owned()),
                Rpc::Bool(false),
                Rpc::Bool(force),
            ],
        ),
        ("shutdown", _) if force => session.call("VM.hard_shutdown", vec![vm]),
        ("shutdown", _) => session.call("VM.clean_shutdown", vec![vm]),
        ("reboot", _) if force => session.call("VM.hard_reboot", vec![vm]),
        ("reboot", _) => session.call("VM.clean_reboot", vec![vm]),
        (_, h) => {
            let mut options = std::collections::BTreeMap::new();
            if let Some(live) = line.get("live") {
                options.insert("live".to_owned(), Rpc::Str(live.to_owned()));
            }
            session.call(
                "VM.pool_migrate",
                vec![
                    vm,
                    Rpc::Str(h.unwrap_or_default().to_owned()),
                    Rpc::Struct(options),
                ],
            )
        }
    }
    .map(|_| ())
}

fn run_on(
    session: &mut Session,
    op: &'static str,
    opts: &ConnectOptions,
    line: &Line,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let host = match (op, line.get("on"), line.get("host")) {
        ("start", Some(h), _) => Some(host_ref(session, "on", h)?),
        ("migrate", _, Some(h)) => Some(host_ref(session, "host", h)?),
        _ => None,
    };
    let vms = select(session, op, line)?;
    if op == "diagnostic-status" {
        return match &vms[..] {
            [(r, rec)] => diagnostic_status(session, r, rec, out),
            [] => Err(CliError::Request("No matching VMs found".into())),
            _ => Err(CliError::Request(format!(
                "{} VMs match; diagnostic-vm-status shows one VM: give uuid=",
                vms.len()
            ))),
        };
    }
    match vms.len() {
        0 => return Err(CliError::Request("No matching VMs found".into())),
        1 => {}
        n if !line.flag("--multiple") => {
            return Err(CliError::Request(format!(
                "{n} VMs match; use --multiple to perform the operation on all of them"
            )));
        }
        _ => {}
    }
    let failures: Vec<(String, CliError)> = if op == "start" {
        // By order and start_delay, each start on its own session (they run
        // in parallel within a group).
        let int = |rec: &Record, f: &str| match rec.get(f) {
            Some(Rpc::Int(i)) => *i,
            Some(v) => fields::plain(v).parse().unwrap_or(0),
            None => 0,
        };
        let plan = start_groups(vms.iter().map(|(r, rec)| StartVm {
            vm: (r.clone(), text(rec, "uuid")),
            order: int(rec, "order"),
            start_delay: int(rec, "start_delay"),
        }));
        run_groups(
            plan,
            |(r, _uuid)| {
                let mut s = Session::open(opts)?;
                let res = call_one(&mut s, op, r, host.as_deref(), line);
                s.close();
                res
            },
            std::thread::sleep,
        )
        .into_iter()
        .filter_map(|((_, uuid), res)| res.err().map(|e| (uuid, e)))
        .collect()
    } else {
        let mut failed = Vec::new();
        for (r, rec) in &vms {
            if let Err(e) = call_one(session, op, r, host.as_deref(), line) {
                failed.push((text(rec, "uuid"), e));
            }
        }
        failed
    };
    out.flush()?;
    let one = vms.len() == 1;
    let mut failures = failures.into_iter();
    match (failures.next(), one) {
        (None, _) => Ok(()),
        // One VM: its error as it is (xe-style code and parameters).
        (Some((_, e)), true) => Err(e),
        (Some(first), false) => Err(CliError::Request(
            std::iter::once(first)
                .chain(failures)
                .map(|(uuid, e)| format!("VM {uuid}: {e}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )),
    }
}

/// `diagnostic-vm-status`: the VM's state, whether it is agile and why
/// not, and the hosts it can run on (`VM.get_agility_problems`,
/// `VM.get_possible_hosts`).
fn diagnostic_status(
    session: &mut Session,
    vm: &str,
    rec: &Record,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let strings = |v: Rpc| match v {
        Rpc::Array(items) => items.iter().map(fields::plain).collect::<Vec<_>>(),
        other => vec![fields::plain(&other)],
    };
    let vm_arg = || vec![Rpc::Str(vm.to_owned())];
    let problems = strings(session.call("VM.get_agility_problems", vm_arg())?);
    let hosts = strings(session.call("VM.get_possible_hosts", vm_arg())?);
    let mut resolver = Resolver::default();
    let host_name = |session: &mut Session, resolver: &mut Resolver, r: &str| {
        let uuid = resolver.show(session, &Ty::Ref(Class::Host), &Rpc::Str(r.to_owned()));
        let name = session
            .call("host.get_name_label", vec![Rpc::Str(r.to_owned())])
            .map(|v| fields::plain(&v))
            .unwrap_or_default();
        format!("{uuid} ({name})")
    };
    let resident = match rec.get("resident_on") {
        Some(Rpc::Str(r)) if r != "OpaqueRef:NULL" => host_name(session, &mut resolver, r),
        _ => String::new(),
    };
    let possible: Vec<String> = hosts
        .iter()
        .map(|h| host_name(session, &mut resolver, h))
        .collect();
    let rows = [
        ("uuid", text(rec, "uuid")),
        ("name-label", text(rec, "name_label")),
        ("power-state", text(rec, "power_state").to_lowercase()),
        ("resident-on", resident),
        ("driver", text(rec, "driver")),
        ("agile", problems.is_empty().to_string()),
        ("not agile because", problems.join("; ")),
        ("possible hosts", possible.join("; ")),
    ];
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in rows {
        writeln!(
            out,
            "{name:>width$}: {}",
            crate::render::escape_control(&value)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_are_checked_before_anything_is_sent() {
        let ok = |op, a: &[&str]| parse(op, "vm-x", &args(a)).map(|_| ());
        assert!(ok("start", &["uuid=u", "on=h", "--force"]).is_ok());
        assert!(ok("start", &["power-state=halted", "--multiple"]).is_ok());
        assert!(ok("shutdown", &["vm=web", "--force"]).is_ok());
        assert!(ok("reboot", &["other-config:role=db"]).is_ok());
        assert!(ok("migrate", &["uuid=u", "host=h2"]).is_ok());
        let err = |op, a: &[&str]| ok(op, a).unwrap_err().to_string();
        assert!(err("start", &[]).contains("no VM selected"));
        assert!(err("start", &["on=h"]).contains("no VM selected"));
        assert!(err("migrate", &["uuid=u"]).contains("host"));
        assert!(err("migrate", &["uuid=u", "host=h", "--force"]).contains("--force"));
        assert!(err("shutdown", &["uuid=u", "on=h"]).contains("on"));
        assert!(err("shutdown", &["uuid=u", "--forse"]).contains("--force"));
        assert!(err("start", &["uuid=u", "uuid=v"]).contains("uuid"));
        assert!(err("start", &["name-label:x=y"]).contains("name-label"));
        assert!(err("start", &["nonsense=1"]).contains("nonsense"));
    }

    #[test]
    fn the_lifecycle_operations_are_vm_commands() {
        assert_eq!(operation(Live::Generic(Class::Vm, "start")), Some("start"));
        assert_eq!(
            find("diagnostic-vm-status").and_then(operation),
            Some("diagnostic-status")
        );
        assert_eq!(find("vm-list"), None);
        assert_eq!(operation(Live::Generic(Class::Vm, "list")), None);
        assert_eq!(operation(Live::Generic(Class::Host, "start")), None);
    }
}
