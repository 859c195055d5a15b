//! The HA planning calls on the live pool (docs/api.md, "HA planning"):
//! `pool.ha_failover_plan_exists`, `pool.ha_compute_max_host_failures_to_tolerate`,
//! `pool.ha_compute_hypothetical_max_host_failures_to_tolerate`,
//! `pool.ha_compute_vm_failover_plan`, `pool.ha_prevent_restarts_for`,
//! `pool.ha_get_planning_pool` (ours), and
//! [`guard`]: the overcommit check in front of the generic setters that can
//! break the plan (`pool.set_ha_host_failures_to_tolerate`,
//! `VM.set_ha_restart_priority`, `VM.set_ha_always_run`).
//!
//! Everything is computed by the one planner on [`PoolView::live_pool`]: the
//! live hosts, the running protected VMs where they run.

use uuid::Uuid;

use crate::db::schema::{HA_RESTART_PRIORITIES, Ty};
use crate::db::{Class, Database};
use crate::ha::live_plan;
use crate::ha::overcommit::{self, Operation};
use crate::ha::view::{PoolView, pool_ref, priority_of};
use crate::model::RestartPriority;
use crate::planner::{self, PlanOutcome};
use crate::value::{DateTime, Key, Ref, Value};

use super::coerce;
use super::methods::Method;
use super::{ApiError, Caller, Outcome};

fn int_arg(name: &str, v: &Value) -> Result<i64, ApiError> {
    match coerce::coerce(&Ty::Int, name, v)? {
        Value::Int(i) => Ok(i),
        _ => Err(ApiError::field_type_error(name)),
    }
}

fn the_pool(db: &Database) -> Result<Ref, ApiError> {
    pool_ref(db).ok_or_else(|| ApiError::internal("the database has no pool object"))
}

fn uuid_of(db: &Database, class: Class, r: Ref) -> Option<Uuid> {
    Uuid::parse_str(db.get(class, r)?.uuid()).ok()
}

fn ref_of(db: &Database, uuid: Uuid) -> Ref {
    db.by_uuid(&uuid.hyphenated().to_string())
        .map_or(Ref::NULL, |(_, r)| r)
}

/// `pool.ha_failover_plan_exists(n)`: whether every protected VM has a
/// place whichever `n` live hosts fail.
pub fn failover_plan_exists(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let n = int_arg("n", arg)?;
    let plan = live_plan::compute(db);
    Ok(Outcome::value(Value::Bool(plan.max_host_failures >= n)))
}

/// `pool.ha_compute_max_host_failures_to_tolerate()`. With HA on it also
/// stores `ha_plan_exists_for` and `ha_overcommitted` (with their
/// messages), as xapi does.
pub fn compute_max(db: &Database, caller: &Caller) -> Result<Outcome, ApiError> {
    let view = PoolView::from_db(db);
    let plan = live_plan::of_view(&view);
    let changes = if view.ha_enabled {
        live_plan::pool_changes(db, caller, &plan)
    } else {
        Vec::new()
    };
    Ok(Outcome {
        changes,
        ..Outcome::value(Value::Int(plan.max_host_failures.max(0)))
    })
}

/// `pool.ha_compute_hypothetical_max_host_failures_to_tolerate(configuration)`:
/// the maximum if exactly the VMs mapped to `restart` were protected.
pub fn compute_hypothetical(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let Value::Map(pairs) = arg else {
        return Err(ApiError::field_type_error("configuration"));
    };
    let mut protected = Vec::new();
    for (k, v) in pairs {
        let key = match k {
            Key::Ref(r) => *r,
            other => Ref::parse(&other.to_wire())
                .ok_or_else(|| ApiError::handle_invalid("VM", &other.to_wire()))?,
        };
        let vm = coerce::object(db, Class::Vm, "configuration", &Value::Ref(key))?;
        let value = coerce::string("configuration", v)?;
        if !HA_RESTART_PRIORITIES.contains(&value.as_str()) {
            return Err(ApiError::invalid_value("ha_restart_priority", &value));
        }
        if value == "restart"
            && let Some(u) = uuid_of(db, Class::Vm, vm)
        {
            protected.push(u);
        }
    }
    let view = PoolView::from_db(db);
    let pool = view.planning_pool(
        |v| v.running.then_some(v.resident_on),
        |v| {
            if protected.contains(&v.uuid) {
                RestartPriority::Restart
            } else {
                RestartPriority::Unprotected
            }
        },
    );
    let result = planner::max_host_failures(&pool);
    Ok(Outcome::value(Value::Int(result.max_host_failures.max(0))))
}

fn refs(db: &Database, class: Class, name: &str, v: &Value) -> Result<Vec<Ref>, ApiError> {
    let Value::Set(items) = v else {
        return Err(ApiError::field_type_error(name));
    };
    items
        .iter()
        .map(|i| coerce::object(db, class, name, i))
        .collect()
}

/// `pool.ha_compute_vm_failover_plan(failed_hosts, failed_vms)`: where each
/// VM that loses its host restarts (`{"host": ref}`), or why it cannot
/// (`{"error_code": code}`). With `failed_vms` empty, every VM the plan
/// restarts is answered.
pub fn compute_vm_failover_plan(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let hosts = refs(db, Class::Host, "failed_hosts", &args[0])?;
    let vms = refs(db, Class::Vm, "failed_vms", &args[1])?;
    let failed: Vec<Uuid> = hosts
        .iter()
        .filter_map(|h| uuid_of(db, Class::Host, *h))
        .collect();
    let wanted: Vec<Uuid> = vms
        .iter()
        .filter_map(|v| uuid_of(db, Class::Vm, *v))
        .collect();
    let pool = PoolView::from_db(db).live_pool();
    let plan = planner::restart_plan(&pool, &failed)
        .map_err(|e| ApiError::invalid_value("failed_hosts", &e.to_string()))?;
    let mut out = Vec::new();
    for e in plan.entries {
        if !wanted.is_empty() && !wanted.contains(&e.vm) {
            continue;
        }
        let answer = match e.outcome {
            PlanOutcome::Destination(h) => ("host", ref_of(db, h).to_string()),
            PlanOutcome::NoRoom => ("error_code", "HOST_NOT_ENOUGH_FREE_MEMORY".to_owned()),
            PlanOutcome::NotAgile => ("error_code", "VM_REQUIRES_SR".to_owned()),
            PlanOutcome::Unprotected => continue,
        };
        out.push((
            Key::Ref(ref_of(db, e.vm)),
            Value::string_map([(answer.0, answer.1)]),
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Outcome::value(Value::Map(out)))
}

/// `pool.ha_get_planning_pool()` (ours): the pool as the planner sees it
/// (`model::Pool` as JSON text), so `xe`'s planner commands run the same
/// planner on the live pool and print what they print for a pool file.
pub fn planning_pool(db: &Database) -> Result<Outcome, ApiError> {
    let pool = PoolView::from_db(db).live_pool();
    let text = serde_json::to_string(&pool).map_err(|e| ApiError::internal(&e.to_string()))?;
    Ok(Outcome::value(Value::String(text)))
}

/// `pool.ha_prevent_restarts_for(seconds)`: the restart engine starts
/// nothing until `now + seconds` (stored in
/// `pool.ha_restarts_prevented_until`; 0 or less resumes at once). Allowed
/// with HA off, as in xapi.
pub fn prevent_restarts_for(
    db: &Database,
    caller: &Caller,
    arg: &Value,
) -> Result<Outcome, ApiError> {
    let seconds = int_arg("seconds", arg)?;
    let pool = the_pool(db)?;
    let until = DateTime::from_unix(caller.now.unix_seconds.saturating_add(seconds.max(0)));
    Ok(Outcome {
        changes: vec![crate::db::Change::set(
            Class::Pool,
            pool,
            "ha_restarts_prevented_until",
            Value::DateTime(until),
        )],
        ..Outcome::value(Value::Void)
    })
}

/// The overcommit check in front of the generic setters that can break the
/// failover plan. Arguments that do not convert are left to the setter's
/// own errors.
pub fn guard(db: &Database, m: Method, args: &[Value]) -> Result<(), ApiError> {
    let Method::Set(class, i) = m else {
        return Ok(());
    };
    let field = class.fields()[i].name;
    match (class, field) {
        (Class::Pool, "ha_host_failures_to_tolerate") => match int_arg("value", &args[1]) {
            Ok(n) if n >= 0 => overcommit::check(db, &Operation::Target { n }),
            _ => Ok(()),
        },
        (Class::Vm, "ha_restart_priority" | "ha_always_run") => {
            let Ok(vm) = coerce::object(db, Class::Vm, "self", &args[0]) else {
                return Ok(());
            };
            let to_restart = match &args[1] {
                Value::Bool(b) => *b,
                Value::String(s) if field == "ha_always_run" => s == "true",
                v => v.as_str().map(priority_of) == Some(RestartPriority::Restart),
            };
            let halted = db
                .field(Class::Vm, vm, "power_state")
                .is_some_and(|p| p.as_str() == Some("Halted"));
            if to_restart && !halted {
                overcommit::check(db, &Operation::VmProtected { vm })
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Answers the HA methods (`None` for any other).
pub fn call(
    db: &Database,
    caller: &Caller,
    m: Method,
    args: &[Value],
) -> Option<Result<Outcome, ApiError>> {
    Some(match m {
        Method::PoolHaFailoverPlanExists => failover_plan_exists(db, &args[0]),
        Method::PoolHaComputeMaxHostFailuresToTolerate => compute_max(db, caller),
        Method::PoolHaComputeHypotheticalMaxHostFailuresToTolerate => {
            compute_hypothetical(db, &args[0])
        }
        Method::PoolHaComputeVmFailoverPlan => compute_vm_failover_plan(db, args),
        Method::PoolHaPreventRestartsFor => prevent_restarts_for(db, caller, &args[0]),
        Method::PoolHaGetPlanningPool => planning_pool(db),
        _ => return None,
    })
}
