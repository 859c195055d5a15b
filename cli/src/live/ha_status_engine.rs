//! The restart engine's part of `xe pool-ha-status`: the plan (what
//! `ha_plan_exists_for` says against the target, the most host failures
//! the pool tolerates now and the limiting failure set, computed by the
//! one planner on `pool.ha_get_planning_pool`) and each protected or
//! best-effort VM with its `ha_state` and the host the plan would restart
//! it on if its host failed (`pool.ha_compute_vm_failover_plan`).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value as Json, json};
use xapi_ha::rpc::Rpc;

use super::ha_cmds::{Record, text};
use super::session::Session;
use crate::error::CliError;

fn int(r: &Record, field: &str) -> i64 {
    text(r, field).parse().unwrap_or(0)
}

/// `"plan"`: target, plan-exists-for, overcommitted, the live maximum and
/// the limiting failure set (host uuids).
pub(super) fn plan(session: &mut Session, pool: &Record) -> Result<Json, CliError> {
    let (max, limiting) = match session.call("pool.ha_get_planning_pool", Vec::new())? {
        Rpc::Str(text) => match serde_json::from_str::<xapi_ha::model::Pool>(&text) {
            Ok(p) => {
                let r = xapi_ha::planner::max_host_failures(&p);
                let set: Vec<String> = r
                    .limiting_failure_set
                    .iter()
                    .map(|u| u.hyphenated().to_string())
                    .collect();
                (json!(r.max_host_failures), json!(set))
            }
            Err(e) => {
                return Err(CliError::Connect(format!(
                    "pool.ha_get_planning_pool returned a pool that does not parse: {e}"
                )));
            }
        },
        other => {
            return Err(CliError::Connect(format!(
                "pool.ha_get_planning_pool returned {other:?}, not text"
            )));
        }
    };
    Ok(json!({
        "host_failures_to_tolerate": int(pool, "ha_host_failures_to_tolerate"),
        "plan_exists_for": int(pool, "ha_plan_exists_for"),
        "overcommitted": text(pool, "ha_overcommitted") == "true",
        "allow_overcommit": text(pool, "ha_allow_overcommit") == "true",
        "max_host_failures": max,
        "limiting_failure_set": limiting,
    }))
}

/// Where the plan restarts each VM of `host` if `host` fails: VM ref ->
/// host ref, or `error: CODE`.
fn restarts_if_lost(
    session: &mut Session,
    host: &Rpc,
) -> Result<BTreeMap<String, String>, CliError> {
    let answer = session.call(
        "pool.ha_compute_vm_failover_plan",
        vec![Rpc::Array(vec![host.clone()]), Rpc::Array(Vec::new())],
    )?;
    let mut out = BTreeMap::new();
    if let Rpc::Struct(m) = answer {
        for (vm, a) in m {
            let Rpc::Struct(a) = a else { continue };
            let where_ = match (a.get("host"), a.get("error_code")) {
                (Some(Rpc::Str(h)), _) => h.clone(),
                (_, Some(Rpc::Str(e))) => format!("error: {e}"),
                _ => continue,
            };
            out.insert(vm, where_);
        }
    }
    Ok(out)
}

/// `"vms"`: each protected or best-effort VM (templates aside): uuid, name,
/// priority, `ha_always_run`, power state, host, `ha_state`, and
/// `restart_on` (the host's name, `error: CODE`, or null when it is not
/// running: HA starts a halted protected VM wherever the plan has room).
pub(super) fn vms(session: &mut Session, hosts: &[Rpc]) -> Result<Json, CliError> {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut plan: BTreeMap<String, String> = BTreeMap::new();
    for h in hosts {
        let Rpc::Str(r) = h else { continue };
        if let Rpc::Str(n) = session.call("host.get_name_label", vec![h.clone()])? {
            names.insert(r.clone(), n);
        }
        plan.extend(restarts_if_lost(session, h)?);
    }
    let records = match session.call("VM.get_all_records", Vec::new())? {
        Rpc::Struct(m) => m,
        _ => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (r, rec) in records {
        let Rpc::Struct(rec) = rec else { continue };
        let priority = text(&rec, "ha_restart_priority");
        if text(&rec, "is_a_template") == "true"
            || !(priority == "restart" || priority == "best-effort")
        {
            continue;
        }
        let host = text(&rec, "resident_on");
        let restart_on = plan
            .get(&r)
            .map(|p| names.get(p).cloned().unwrap_or_else(|| p.clone()));
        out.push(json!({
            "uuid": text(&rec, "uuid"),
            "name": text(&rec, "name_label"),
            "priority": priority,
            "always_run": text(&rec, "ha_always_run") == "true",
            "power_state": text(&rec, "power_state"),
            "host": names.get(&host),
            "ha_state": text(&rec, "ha_state"),
            "restart_on": restart_on,
        }));
    }
    out.sort_by(|a, b| a["name"].to_string().cmp(&b["name"].to_string()));
    Ok(Json::Array(out))
}

/// The text form of `"plan"` and `"vms"`.
pub(super) fn print(s: &Json, out: &mut dyn Write) -> Result<(), CliError> {
    let p = &s["plan"];
    let str_of = |v: &Json| match v {
        Json::String(s) => s.clone(),
        Json::Null => "-".to_owned(),
        other => other.to_string(),
    };
    writeln!(out)?;
    writeln!(
        out,
        "host-failures-to-tolerate ( RO): {}",
        p["host_failures_to_tolerate"]
    )?;
    writeln!(
        out,
        "          plan-exists-for ( RO): {}",
        p["plan_exists_for"]
    )?;
    writeln!(
        out,
        "        max-host-failures ( RO): {}",
        p["max_host_failures"]
    )?;
    writeln!(
        out,
        "            overcommitted ( RO): {}",
        p["overcommitted"]
    )?;
    let limiting = p["limiting_failure_set"]
        .as_array()
        .map(|a| a.iter().map(str_of).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    writeln!(out, "     limiting-failure-set ( RO): {limiting}")?;
    for v in s["vms"].as_array().into_iter().flatten() {
        writeln!(out)?;
        writeln!(out, "VM {} ({}):", str_of(&v["uuid"]), str_of(&v["name"]))?;
        writeln!(out, "   priority ( RO): {}", str_of(&v["priority"]))?;
        writeln!(out, "   ha-state ( RO): {}", str_of(&v["ha_state"]))?;
        writeln!(
            out,
            "      power ( RO): {} on {}",
            str_of(&v["power_state"]),
            str_of(&v["host"])
        )?;
        writeln!(out, " restart-on ( RO): {}", str_of(&v["restart_on"]))?;
    }
    Ok(())
}
