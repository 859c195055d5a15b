//! The planner commands: they run the planner on a pool description file
//! (`pool-file=`) or, without one, on the live pool (the agent hands over
//! the pool as the planner sees it: `live::planning`), and print the same
//! either way.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};
use uuid::Uuid;
use xapi_ha::model::{Pool, RestartPriority};
use xapi_ha::planner::{self, MaxFailures, PlanError, PlanOutcome, RestartPlan};
use xapi_ha::pool_file::load_pool_file;

use crate::args::Invocation;
use crate::error::{CliError, UsageError};
use crate::render;

/// The commands that run on the live pool when no `pool-file=` is given.
pub const LIVE_CAPABLE: &[&str] = &[
    "pool-ha-compute-max-host-failures-to-tolerate",
    "pool-ha-compute-hypothetical-max-host-failures-to-tolerate",
    "pool-ha-compute-vm-failover-plan",
];

/// Runs planner command `name` on a pool already at hand (the live one).
pub fn run_on(
    name: &str,
    inv: &Invocation,
    pool: Pool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match name {
        "pool-ha-compute-max-host-failures-to-tolerate" => max_failures_of(inv, &pool, out),
        "pool-ha-compute-hypothetical-max-host-failures-to-tolerate" => {
            hypothetical_of(inv, || Ok(pool), out)
        }
        "pool-ha-compute-vm-failover-plan" => failover_plan_of(inv, || Ok(pool), out),
        _ => Err(CliError::Request(format!(
            "{name} is not a planner command"
        ))),
    }
}

/// `pool-ha-compute-max-host-failures-to-tolerate`.
pub fn max_failures(inv: &Invocation, out: &mut dyn Write) -> Result<(), CliError> {
    max_failures_of(inv, &load(inv)?, out)
}

fn max_failures_of(inv: &Invocation, pool: &Pool, out: &mut dyn Write) -> Result<(), CliError> {
    let result = planner::max_host_failures(pool);
    print_max(inv, pool, &result, &[], out)
}

/// `pool-ha-compute-hypothetical-max-host-failures-to-tolerate`.
pub fn hypothetical_max_failures(inv: &Invocation, out: &mut dyn Write) -> Result<(), CliError> {
    hypothetical_of(inv, || load(inv), out)
}

fn hypothetical_of(
    inv: &Invocation,
    load: impl FnOnce() -> Result<Pool, CliError>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    // Check the priorities before reading the file: a malformed argument is a
    // usage error whatever the pool says.
    let priorities = inv
        .values("restart-priority")
        .into_iter()
        .map(parse_priority)
        .collect::<Result<Vec<_>, _>>()?;
    let pool = load()?;
    let names = Names::new(&pool);
    let mut changes: Vec<(Uuid, RestartPriority)> = Vec::with_capacity(priorities.len());
    for (reference, priority) in inv.values("vm-uuid").into_iter().zip(priorities) {
        let uuid = resolve(
            "vm-uuid",
            "VM",
            reference,
            pool.vms.iter().map(|v| (v.uuid, v.name.as_str())),
        )?;
        if changes.iter().any(|(u, _)| *u == uuid) {
            return Err(CliError::Request(format!(
                "vm-uuid names VM {:?} more than once",
                names.vm(uuid)
            )));
        }
        changes.push((uuid, priority));
    }
    let result = planner::hypothetical_max_host_failures(&pool, &changes)
        .map_err(|e| plan_error(&e, &names))?;
    print_max(inv, &pool, &result, &changes, out)
}

/// `pool-ha-compute-vm-failover-plan`.
pub fn failover_plan(inv: &Invocation, out: &mut dyn Write) -> Result<(), CliError> {
    failover_plan_of(inv, || load(inv), out)
}

fn failover_plan_of(
    inv: &Invocation,
    load: impl FnOnce() -> Result<Pool, CliError>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let references = parse_host_list(inv.value("host-uuids").unwrap_or(""))?;
    let pool = load()?;
    let names = Names::new(&pool);
    let mut failed: Vec<Uuid> = Vec::with_capacity(references.len());
    for reference in references {
        let uuid = resolve(
            "host-uuids",
            "host",
            reference,
            pool.hosts.iter().map(|h| (h.uuid, h.name.as_str())),
        )?;
        if failed.contains(&uuid) {
            return Err(CliError::Request(format!(
                "host-uuids lists host {:?} more than once",
                names.host(uuid)
            )));
        }
        if pool.hosts.iter().any(|h| h.uuid == uuid && !h.live) {
            return Err(CliError::Request(format!(
                "host {:?} is not live, so it cannot be in a failure set",
                names.host(uuid)
            )));
        }
        failed.push(uuid);
    }
    let plan = planner::restart_plan(&pool, &failed).map_err(|e| plan_error(&e, &names))?;
    if inv.flag("--json") {
        write_json(out, &plan_json(&plan, &failed, &names))
    } else if inv.flag("--minimal") {
        let unplaced: Vec<String> = plan
            .entries
            .iter()
            .filter(|e| !matches!(e.outcome, PlanOutcome::Destination(_)))
            .map(|e| e.vm.to_string())
            .collect();
        writeln!(out, "{}", unplaced.join(","))?;
        Ok(())
    } else {
        plan_table(out, &plan, &names)
    }
}

fn load(inv: &Invocation) -> Result<Pool, CliError> {
    let path = PathBuf::from(inv.value("pool-file").unwrap_or(""));
    if path.as_os_str().is_empty() {
        return Err(UsageError::InvalidValue {
            key: "pool-file".to_owned(),
            expected: "the path of a .toml or .json pool description",
            got: String::new(),
        }
        .into());
    }
    load_pool_file(&path).map_err(|source| CliError::PoolFile {
        path,
        source: Box::new(source),
    })
}

fn parse_priority(text: &str) -> Result<RestartPriority, UsageError> {
    match text {
        "restart" => Ok(RestartPriority::Restart),
        "best-effort" => Ok(RestartPriority::BestEffort),
        "" => Ok(RestartPriority::Unprotected),
        _ => Err(UsageError::InvalidValue {
            key: "restart-priority".to_owned(),
            expected: "restart, best-effort or empty",
            got: text.to_owned(),
        }),
    }
}

/// `H1,H2` (names or UUIDs); an empty value is the empty failure set.
fn parse_host_list(text: &str) -> Result<Vec<&str>, UsageError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(UsageError::InvalidValue {
            key: "host-uuids".to_owned(),
            expected: "a comma-separated list of host uuids or names without empty items",
            got: text.to_owned(),
        });
    }
    Ok(items)
}

/// Finds an object by UUID or by name; a reference that is one object's
/// UUID and another's name is refused rather than guessed.
fn resolve<'a>(
    key: &str,
    kind: &str,
    reference: &str,
    objects: impl Iterator<Item = (Uuid, &'a str)> + Clone,
) -> Result<Uuid, CliError> {
    let by_uuid = Uuid::parse_str(reference)
        .ok()
        .and_then(|u| objects.clone().find(|(uuid, _)| *uuid == u));
    let by_name = objects.clone().find(|(_, name)| *name == reference);
    match (by_uuid, by_name) {
        (Some((a, _)), Some((b, name))) if a != b => Err(CliError::Request(format!(
            "{key} {reference:?} is ambiguous: it is the uuid of one {kind} and the name of {kind} {name:?}"
        ))),
        (Some((uuid, _)), _) | (None, Some((uuid, _))) => Ok(uuid),
        (None, None) => Err(CliError::Request(format!(
            "{key} {reference:?} is not the uuid or name of any {kind} in the pool file"
        ))),
    }
}

fn plan_error(error: &PlanError, names: &Names<'_>) -> CliError {
    // The planner names objects by UUID; add the names the operator wrote.
    let mut message = error.to_string();
    for (uuid, name) in names.hosts.iter().chain(&names.vms) {
        let text = uuid.to_string();
        if message.contains(&text) {
            message = message.replace(&text, &format!("{name:?} ({text})"));
        }
    }
    CliError::Request(message)
}

/// UUID -> name lookups for output.
struct Names<'a> {
    hosts: HashMap<Uuid, &'a str>,
    vms: HashMap<Uuid, &'a str>,
}

impl<'a> Names<'a> {
    fn new(pool: &'a Pool) -> Self {
        Self {
            hosts: pool
                .hosts
                .iter()
                .map(|h| (h.uuid, h.name.as_str()))
                .collect(),
            vms: pool.vms.iter().map(|v| (v.uuid, v.name.as_str())).collect(),
        }
    }

    fn host(&self, uuid: Uuid) -> &'a str {
        self.hosts.get(&uuid).copied().unwrap_or("?")
    }

    fn vm(&self, uuid: Uuid) -> &'a str {
        self.vms.get(&uuid).copied().unwrap_or("?")
    }

    fn hosts_of(&self, uuids: &[Uuid]) -> Vec<&'a str> {
        uuids.iter().map(|u| self.host(*u)).collect()
    }

    fn vms_of(&self, uuids: &[Uuid]) -> Vec<&'a str> {
        uuids.iter().map(|u| self.vm(*u)).collect()
    }

    /// Names joined for a line of text, control characters escaped.
    fn shown(names: &[&str]) -> String {
        crate::render::escape_control(&names.join(", ")).into_owned()
    }
}

fn priority_name(priority: RestartPriority) -> &'static str {
    match priority {
        RestartPriority::Restart => "restart",
        RestartPriority::BestEffort => "best-effort",
        RestartPriority::Unprotected => "",
    }
}

fn print_max(
    inv: &Invocation,
    pool: &Pool,
    result: &MaxFailures,
    changes: &[(Uuid, RestartPriority)],
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let names = Names::new(pool);
    if inv.flag("--json") {
        return write_json(out, &max_json(pool, result, changes, &names)?);
    }
    writeln!(out, "{}", result.max_host_failures)?;
    if inv.flag("--explain") {
        explain(out, pool, result, &names)?;
    }
    Ok(())
}

fn max_json(
    pool: &Pool,
    result: &MaxFailures,
    changes: &[(Uuid, RestartPriority)],
    names: &Names<'_>,
) -> Result<Value, CliError> {
    let mut value = serde_json::to_value(result).map_err(std::io::Error::other)?;
    let extra = json!({
        "limiting_failure_set_names": names.hosts_of(&result.limiting_failure_set),
        "unplaced_vm_names": names.vms_of(&result.unplaced_vms),
        "excluded_non_agile_vm_names": names.vms_of(&result.excluded_non_agile_vms),
        "ha_host_failures_to_tolerate": pool.ha_host_failures_to_tolerate,
        "overcommitted": planner::is_overcommitted(pool, result),
    });
    if let (Some(object), Value::Object(extra)) = (value.as_object_mut(), extra) {
        object.extend(extra);
        if !changes.is_empty() {
            let changes: Vec<Value> = changes
                .iter()
                .map(|(uuid, priority)| {
                    json!({
                        "vm": uuid,
                        "vm_name": names.vm(*uuid),
                        "restart_priority": priority_name(*priority),
                    })
                })
                .collect();
            object.insert("changes".to_owned(), Value::Array(changes));
        }
    }
    Ok(value)
}

fn explain(
    out: &mut dyn Write,
    pool: &Pool,
    result: &MaxFailures,
    names: &Names<'_>,
) -> Result<(), CliError> {
    let n = result.max_host_failures;
    if result.exact {
        writeln!(
            out,
            "exact: yes (no larger number of failures is tolerated)"
        )?;
    } else {
        writeln!(
            out,
            "exact: no (a proven lower bound; the search could not settle {} failures)",
            n + 1
        )?;
    }
    let target = pool.ha_host_failures_to_tolerate;
    if planner::is_overcommitted(pool, result) {
        writeln!(
            out,
            "target: ha-host-failures-to-tolerate = {target}: overcommitted (the pool tolerates only {n})"
        )?;
    } else {
        writeln!(out, "target: ha-host-failures-to-tolerate = {target}: met")?;
    }
    let unplaced = Names::shown(&names.vms_of(&result.unplaced_vms));
    if n < 0 {
        writeln!(out, "even with no host failure, no room for: {unplaced}")?;
    } else if result.limiting_failure_set.is_empty() {
        writeln!(
            out,
            "limiting failure set: none (no protected VM needs a place, even if every live host fails)"
        )?;
    } else {
        writeln!(
            out,
            "limiting failure set: {}",
            Names::shown(&names.hosts_of(&result.limiting_failure_set))
        )?;
        writeln!(out, "  if these hosts fail, no room for: {unplaced}")?;
    }
    if !result.excluded_non_agile_vms.is_empty() {
        writeln!(
            out,
            "not planned (not agile): {}",
            Names::shown(&names.vms_of(&result.excluded_non_agile_vms))
        )?;
    }
    Ok(())
}

/// The reason a VM gets no destination, as the planner serialises it
/// (`no_room`, `not_agile`, `unprotected`, ...).
fn reason(outcome: &PlanOutcome) -> Option<String> {
    match outcome {
        PlanOutcome::Destination(_) => None,
        other => Some(match serde_json::to_value(other) {
            Ok(Value::String(s)) => s,
            _ => format!("{other:?}"),
        }),
    }
}

fn plan_json(plan: &RestartPlan, failed: &[Uuid], names: &Names<'_>) -> Value {
    let entries: Vec<Value> = plan
        .entries
        .iter()
        .map(|e| {
            let destination = match e.outcome {
                PlanOutcome::Destination(h) => Some(h),
                _ => None,
            };
            json!({
                "vm": e.vm,
                "vm_name": names.vm(e.vm),
                "priority": priority_name(e.priority),
                "order": e.order,
                "destination": destination,
                "destination_name": destination.map(|h| names.host(h)),
                "reason": reason(&e.outcome),
            })
        })
        .collect();
    json!({
        "failed_hosts": failed,
        "failed_host_names": names.hosts_of(failed),
        "entries": entries,
    })
}

fn plan_table(out: &mut dyn Write, plan: &RestartPlan, names: &Names<'_>) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = plan
        .entries
        .iter()
        .map(|e| {
            let (destination, host_uuid) = match e.outcome {
                PlanOutcome::Destination(h) => (names.host(h).to_owned(), h.to_string()),
                ref other => (
                    format!("({})", reason(other).unwrap_or_default().replace('_', " ")),
                    "-".to_owned(),
                ),
            };
            let priority = match priority_name(e.priority) {
                "" => "-",
                p => p,
            };
            vec![
                names.vm(e.vm).to_owned(),
                e.vm.to_string(),
                priority.to_owned(),
                e.order.to_string(),
                destination,
                host_uuid,
            ]
        })
        .collect();
    render::table(
        out,
        &[
            "VM",
            "VM-UUID",
            "PRIORITY",
            "ORDER",
            "DESTINATION",
            "HOST-UUID",
        ],
        &rows,
    )?;
    Ok(())
}

fn write_json(out: &mut dyn Write, value: &Value) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(())
}
