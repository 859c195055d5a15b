//! Overcommit protection: one pure check that refuses an operation which
//! would break the failover plan (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN`),
//! xapi's `assert_configuration_change_preserves_ha_plan`.
//!
//! Only while HA is on and `ha_allow_overcommit` is false. An operation is
//! refused when a plan exists now for `ha_plan_exists_for` host failures
//! and would not exist after it; raising the target is refused when no
//! plan exists for the new target. Handlers call [`check`] with one line.
//!
//! The restart engine's own starts are not checked (`api::vm_power::
//! ha_restart`): they are let through and the live plan then marks the pool
//! overcommitted, as xapi does. A plain `VM.start` of a protected VM that
//! is halted is checked like any other start.

use crate::api::ApiError;
use crate::db::{Class, Database};
use crate::model::RestartPriority;
use crate::planner;
use crate::value::Ref;

use super::view::{PoolView, pool_ref};

/// The error code (xapi's spelling).
pub const HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN: &str = "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN";

/// `HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN []`.
#[must_use]
pub fn would_break_plan() -> ApiError {
    ApiError::new(HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, Vec::<String>::new())
}

/// An operation that may break the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `VM.start`, `VM.start_on`, `VM.resume`, `VM.pool_migrate`: the VM
    /// will run on `host` (a `restart` VM becomes protected: the start sets
    /// `ha_always_run`).
    VmArriving { vm: Ref, host: Ref },
    /// `VM.set_ha_restart_priority` to `restart` (or `set_ha_always_run`).
    VmProtected { vm: Ref },
    /// `host.disable`, `host.evacuate`: the hosts take no more VMs.
    HostsDisabled { hosts: Vec<Ref> },
    /// `pool.set_ha_host_failures_to_tolerate(n)`.
    Target { n: i64 },
}

fn uuid_of(db: &Database, class: Class, r: Ref) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(db.get(class, r)?.uuid()).ok()
}

/// The view after the operation.
fn changed(db: &Database, view: &PoolView, op: &Operation) -> PoolView {
    let mut after = view.clone();
    match op {
        Operation::VmArriving { vm, host } => {
            let host = uuid_of(db, Class::Host, *host);
            if let Some(v) = uuid_of(db, Class::Vm, *vm).and_then(|u| after.vm_mut(u)) {
                v.running = true;
                v.resident_on = host;
                v.always_run |= v.priority == RestartPriority::Restart;
            }
        }
        Operation::VmProtected { vm } => {
            if let Some(v) = uuid_of(db, Class::Vm, *vm).and_then(|u| after.vm_mut(u)) {
                v.priority = RestartPriority::Restart;
                v.always_run = true;
            }
        }
        Operation::HostsDisabled { hosts } => {
            for h in hosts {
                if let Some(h) = uuid_of(db, Class::Host, *h).and_then(|u| after.host_mut(u)) {
                    h.enabled = false;
                }
            }
        }
        Operation::Target { n } => after.failures_to_tolerate = *n,
    }
    after
}

/// Refuses `op` when it would break the failover plan (see the module
/// documentation); `Ok` when HA is off or overcommit is allowed.
pub fn check(db: &Database, op: &Operation) -> Result<(), ApiError> {
    let Some(pool) = pool_ref(db) else {
        return Ok(());
    };
    let allow = db
        .field(Class::Pool, pool, "ha_allow_overcommit")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let view = PoolView::from_db(db);
    if !view.ha_enabled || allow {
        return Ok(());
    }
    let max = |v: &PoolView| planner::max_host_failures(&v.live_pool()).max_host_failures;
    let after = changed(db, &view, op);
    let broken = match op {
        Operation::Target { n } => max(&after) < *n,
        _ => {
            let n = view.plan_exists_for;
            max(&view) >= n && max(&after) < n
        }
    };
    if broken {
        Err(would_break_plan())
    } else {
        Ok(())
    }
}

/// [`check`] of a VM about to start on `host` (`VM.start`, `VM.start_on`).
pub fn check_start(db: &Database, vm: Ref, host: Ref) -> Result<(), ApiError> {
    check(db, &Operation::VmArriving { vm, host })
}
