//! `xe pool-ha-enable`, `pool-ha-disable` and `pool-ha-status` on a live
//! pool (docs/cli.md, docs/ha-enable.md).
//!
//! - `pool-ha-enable heartbeat-sr-uuids=A[,B] [ha-config:timeout=T]`
//!   calls `pool.enable_ha`; it returns once the liveset formed and the
//!   database is on the metadata volume.
//! - `pool-ha-disable` calls `pool.disable_ha`.
//! - `pool-ha-status [--json]`: the liveset, the master and its epoch, the
//!   warnings, and per host whether it is live, reaches the statefile, its
//!   latencies and the hosts it hears: what the agent recorded from `xhad`'s
//!   `watch` (never older than xhad's last report); and the restart
//!   engine's side: each protected or best-effort VM with its `ha_state`
//!   and the host the plan would restart it on if its host failed, and the
//!   plan (`ha_plan_exists_for` against the target, the most failures the
//!   pool tolerates now and the limiting failure set).
//! - `pool-ha-prevent-restarts-for seconds=N` calls
//!   `pool.ha_prevent_restarts_for`: the restart engine starts nothing for
//!   N seconds (0 resumes at once).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value as Json, json};
use xapi_ha::rpc::Rpc;

use super::options::ConnectOptions;
use super::session::Session;
use crate::error::{CliError, UsageError};

/// The HA commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaCommand {
    Enable,
    Disable,
    Status,
    PreventRestartsFor,
}

/// The HA command called `name`, if it is one.
#[must_use]
pub fn find(name: &str) -> Option<HaCommand> {
    match name {
        "pool-ha-enable" => Some(HaCommand::Enable),
        "pool-ha-disable" => Some(HaCommand::Disable),
        "pool-ha-status" => Some(HaCommand::Status),
        "pool-ha-prevent-restarts-for" => Some(HaCommand::PreventRestartsFor),
        _ => None,
    }
}

/// The keys (`ha-config:timeout` as written) and flags of the HA command
/// `name`, for the command catalogue (`crate::catalog`).
pub(crate) fn keys_and_flags(name: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match find(name) {
        Some(HaCommand::Enable) => (&["heartbeat-sr-uuids", "ha-config:timeout"], &[]),
        Some(HaCommand::Status) => (&[], &["--json"]),
        Some(HaCommand::PreventRestartsFor) => (&["seconds"], &[]),
        Some(HaCommand::Disable) | None => (&[], &[]),
    }
}

/// The parsed arguments: `heartbeat-sr-uuids`, `ha-config:*`, `--json`.
#[derive(Debug, Default, PartialEq, Eq)]
struct HaArgs {
    srs: Vec<String>,
    config: Vec<(String, String)>,
    json: bool,
    seconds: Option<i64>,
}

fn parse(command: HaCommand, name: &str, args: &[String]) -> Result<HaArgs, UsageError> {
    let mut out = HaArgs::default();
    let mut seen: Vec<&str> = Vec::new();
    for arg in args {
        if seen.contains(&arg.as_str()) {
            return Err(UsageError::DuplicateKey { key: arg.clone() });
        }
        if arg.starts_with("--") {
            if arg != "--json" || command != HaCommand::Status {
                let flags: &[&str] = if command == HaCommand::Status {
                    &["--json"]
                } else {
                    &[]
                };
                return Err(UsageError::UnknownFlag {
                    command: name.to_owned(),
                    flag: arg.clone(),
                    suggestion: xapi_ha::pool_file::nearest(arg, flags).map(str::to_owned),
                });
            }
            out.json = true;
            seen.push(arg);
            continue;
        }
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| UsageError::NotKeyValue { arg: arg.clone() })?;
        if seen.contains(&key) {
            return Err(UsageError::DuplicateKey {
                key: key.to_owned(),
            });
        }
        seen.push(key);
        let known: &[&str] = match command {
            HaCommand::Enable => &["heartbeat-sr-uuids", "ha-config:timeout"],
            HaCommand::PreventRestartsFor => &["seconds"],
            HaCommand::Disable | HaCommand::Status => &[],
        };
        match key {
            "seconds" if command == HaCommand::PreventRestartsFor => {
                out.seconds = Some(value.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(
                    || UsageError::InvalidValue {
                        key: "seconds".into(),
                        expected: "a whole number of seconds (0 or more)",
                        got: value.to_owned(),
                    },
                )?);
            }
            "heartbeat-sr-uuids" if command == HaCommand::Enable => {
                out.srs = value
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            k if command == HaCommand::Enable && k.starts_with("ha-config:") => {
                let sub = &k["ha-config:".len()..];
                if sub.is_empty() {
                    return Err(UsageError::NotKeyValue { arg: arg.clone() });
                }
                out.config.push((sub.to_owned(), value.to_owned()));
            }
            _ => {
                return Err(UsageError::UnknownKey {
                    command: name.to_owned(),
                    key: key.to_owned(),
                    suggestion: xapi_ha::pool_file::nearest(key, known).map(str::to_owned),
                });
            }
        }
    }
    if command == HaCommand::Enable && out.srs.is_empty() {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: "heartbeat-sr-uuids",
        });
    }
    if command == HaCommand::PreventRestartsFor && out.seconds.is_none() {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: "seconds",
        });
    }
    Ok(out)
}

/// Runs an HA command (arguments checked before connecting).
pub fn run(
    command: HaCommand,
    name: &str,
    opts: &ConnectOptions,
    args: &[String],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let parsed = parse(command, name, args)?;
    let mut session = Session::open(opts)?;
    let result = match command {
        HaCommand::Enable => enable(&mut session, &parsed),
        HaCommand::Disable => session.call("pool.disable_ha", Vec::new()).map(|_| ()),
        HaCommand::Status => status(&mut session, parsed.json, out),
        HaCommand::PreventRestartsFor => session
            .call(
                "pool.ha_prevent_restarts_for",
                vec![Rpc::Int(parsed.seconds.unwrap_or(0))],
            )
            .map(|_| ()),
    };
    session.close();
    result
}

fn the_pool(session: &mut Session) -> Result<Rpc, CliError> {
    match session.call("pool.get_all", Vec::new())? {
        Rpc::Array(mut p) if !p.is_empty() => Ok(p.swap_remove(0)),
        other => Err(CliError::Connect(format!(
            "pool.get_all returned {other:?}, not one pool"
        ))),
    }
}

fn enable(session: &mut Session, args: &HaArgs) -> Result<(), CliError> {
    let mut srs = Vec::new();
    for uuid in &args.srs {
        srs.push(session.call("SR.get_by_uuid", vec![Rpc::Str(uuid.clone())])?);
    }
    let config: BTreeMap<String, Rpc> = args
        .config
        .iter()
        .map(|(k, v)| (k.clone(), Rpc::Str(v.clone())))
        .collect();
    session.call("pool.enable_ha", vec![Rpc::Array(srs), Rpc::Struct(config)])?;
    Ok(())
}

pub(super) type Record = BTreeMap<String, Rpc>;

pub(super) fn record(session: &mut Session, class: &str, r: &Rpc) -> Result<Record, CliError> {
    match session.call(&format!("{class}.get_record"), vec![r.clone()])? {
        Rpc::Struct(m) => Ok(m),
        other => Err(CliError::Connect(format!(
            "{class}.get_record returned {other:?}, not a record"
        ))),
    }
}

pub(super) fn text(r: &Record, field: &str) -> String {
    match r.get(field) {
        Some(Rpc::Str(s)) => s.clone(),
        Some(Rpc::Int(i)) => i.to_string(),
        Some(Rpc::Float(f)) => f.to_string(),
        Some(Rpc::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn strings(r: &Record, field: &str) -> Vec<String> {
    match r.get(field) {
        Some(Rpc::Array(items)) => items
            .iter()
            .filter_map(|i| match i {
                Rpc::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn float(r: &Record, field: &str) -> f64 {
    match r.get(field) {
        Some(Rpc::Float(f)) => *f,
        Some(Rpc::Str(s)) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// The status as JSON (also what the text form prints).
fn gather(session: &mut Session) -> Result<Json, CliError> {
    let pool_ref = the_pool(session)?;
    let pool = record(session, "pool", &pool_ref)?;
    let hosts = match session.call("host.get_all", Vec::new())? {
        Rpc::Array(h) => h,
        _ => Vec::new(),
    };
    let master_ref = text(&pool, "ha_master");
    let mut master = Json::Null;
    let mut liveset = Vec::new();
    let mut per_host = Vec::new();
    for h in &hosts {
        let host = record(session, "host", h)?;
        let metrics_ref = Rpc::Str(text(&host, "metrics"));
        let metrics = record(session, "host_metrics", &metrics_ref).unwrap_or_default();
        let uuid = text(&host, "uuid");
        let live = text(&metrics, "live") == "true";
        if live {
            liveset.push(uuid.clone());
        }
        if matches!(h, Rpc::Str(r) if *r == master_ref) {
            master = json!({"uuid": uuid, "name": text(&host, "name_label")});
        }
        per_host.push(json!({
            "uuid": uuid,
            "name": text(&host, "name_label"),
            "live": live,
            "statefile_access": !strings(&host, "ha_statefiles").is_empty(),
            "statefile_latency_ms": float(&metrics, "ha_statefile_latency_ms"),
            "heartbeat_latency_ms": float(&metrics, "ha_heartbeat_latency_ms"),
            "network_peers": strings(&host, "ha_network_peers"),
        }));
    }
    Ok(json!({
        "ha_enabled": text(&pool, "ha_enabled") == "true",
        "generation": text(&pool, "ha_generation"),
        "timeout": match pool.get("ha_configuration") {
            Some(Rpc::Struct(m)) => m.get("timeout").map_or(Json::Null, |t| match t {
                Rpc::Str(s) => json!(s),
                _ => Json::Null,
            }),
            _ => Json::Null,
        },
        "master": master,
        // Integers travel as strings in XML-RPC (as xapi sends them).
        "master_epoch": text(&pool, "ha_master_epoch").parse::<i64>().unwrap_or(0),
        "liveset": liveset,
        "statefile_lost": text(&pool, "ha_statefile_lost") == "true",
        "warnings": strings(&pool, "ha_warnings"),
        "hosts": per_host,
        "plan": super::ha_status_engine::plan(session, &pool)?,
        "vms": super::ha_status_engine::vms(session, &hosts)?,
    }))
}

fn status(session: &mut Session, as_json: bool, out: &mut dyn Write) -> Result<(), CliError> {
    let s = gather(session)?;
    if as_json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&s).unwrap_or_default()
        )?;
        return Ok(());
    }
    let str_of = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    };
    let list = |v: &Json| {
        v.as_array()
            .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join("; "))
            .unwrap_or_default()
    };
    writeln!(out, "ha-enabled ( RO): {}", s["ha_enabled"])?;
    if s["ha_enabled"] != json!(true) {
        return Ok(());
    }
    writeln!(out, "     timeout ( RO): {}", str_of(&s["timeout"]))?;
    let master = match &s["master"] {
        Json::Null => "<none>".to_owned(),
        m => format!("{} ({})", str_of(&m["uuid"]), str_of(&m["name"])),
    };
    writeln!(out, "      master ( RO): {master}")?;
    writeln!(out, "master-epoch ( RO): {}", s["master_epoch"])?;
    writeln!(out, "     liveset ( RO): {}", list(&s["liveset"]))?;
    writeln!(out, "    warnings ( RO): {}", list(&s["warnings"]))?;
    for h in s["hosts"].as_array().into_iter().flatten() {
        writeln!(out)?;
        writeln!(out, "host {} ({}):", str_of(&h["uuid"]), str_of(&h["name"]))?;
        writeln!(out, "                live ( RO): {}", h["live"])?;
        writeln!(out, "    statefile-access ( RO): {}", h["statefile_access"])?;
        writeln!(
            out,
            "statefile-latency-ms ( RO): {}",
            h["statefile_latency_ms"]
        )?;
        writeln!(
            out,
            "heartbeat-latency-ms ( RO): {}",
            h["heartbeat_latency_ms"]
        )?;
        writeln!(
            out,
            "       network-peers ( RO): {}",
            list(&h["network_peers"])
        )?;
    }
    super::ha_status_engine::print(&s, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(c: HaCommand, args: &[&str]) -> Result<HaArgs, UsageError> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        parse(c, "cmd", &args)
    }

    #[test]
    fn arguments_are_checked_before_connecting() {
        let a = p(
            HaCommand::Enable,
            &["heartbeat-sr-uuids=a,b", "ha-config:timeout=10"],
        )
        .unwrap();
        assert_eq!(a.srs, vec!["a", "b"]);
        assert_eq!(a.config, vec![("timeout".to_owned(), "10".to_owned())]);
        assert!(matches!(
            p(HaCommand::Enable, &[]),
            Err(UsageError::MissingKey {
                key: "heartbeat-sr-uuids",
                ..
            })
        ));
        assert!(matches!(
            p(HaCommand::Enable, &["heartbeat-sr-uuid=a"]),
            Err(UsageError::UnknownKey { suggestion: Some(s), .. }) if s == "heartbeat-sr-uuids"
        ));
        assert!(matches!(
            p(
                HaCommand::Enable,
                &["heartbeat-sr-uuids=a", "heartbeat-sr-uuids=b"]
            ),
            Err(UsageError::DuplicateKey { .. })
        ));
        assert!(p(HaCommand::Status, &["--json"]).unwrap().json);
        assert!(matches!(
            p(HaCommand::Disable, &["--json"]),
            Err(UsageError::UnknownFlag { .. })
        ));
        assert!(matches!(
            p(HaCommand::Disable, &["x"]),
            Err(UsageError::NotKeyValue { .. })
        ));
        assert_eq!(find("pool-ha-status"), Some(HaCommand::Status));
        assert_eq!(find("pool-ha"), None);
        // Listed for help and suggestions in `live::OTHERS`.
        let listed: Vec<&&str> = super::super::OTHERS
            .iter()
            .filter(|n| n.starts_with("pool-ha-"))
            .collect();
        assert_eq!(listed.len(), 4);
        assert!(listed.iter().all(|n| find(n).is_some()));
    }

    #[test]
    fn prevent_restarts_for_needs_whole_seconds() {
        assert_eq!(
            p(HaCommand::PreventRestartsFor, &["seconds=30"])
                .unwrap()
                .seconds,
            Some(30)
        );
        assert_eq!(
            p(HaCommand::PreventRestartsFor, &["seconds=0"])
                .unwrap()
                .seconds,
            Some(0)
        );
        for bad in ["seconds=-1", "seconds=ten", "seconds="] {
            assert!(
                matches!(
                    p(HaCommand::PreventRestartsFor, &[bad]),
                    Err(UsageError::InvalidValue { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            p(HaCommand::PreventRestartsFor, &[]),
            Err(UsageError::MissingKey { key: "seconds", .. })
        ));
        assert!(matches!(
            p(HaCommand::PreventRestartsFor, &["second=3"]),
            Err(UsageError::UnknownKey { suggestion: Some(s), .. }) if s == "seconds"
        ));
    }
}
