//! The HA planner: how many host failures the pool tolerates, the restart plan
//! for a given failure set, hypothetical priority changes and the overcommit
//! check. A pure function of a pool snapshot (no I/O, no clock).
//!
//! Semantics and the soundness argument: `docs/planner.md`.
//!
//! - Sound: `max_host_failures` never reports n when some set of n live hosts
//!   failing leaves a protected VM without a place.
//! - Exact (and `exact: true`) on pools of up to 8 live hosts and 24 protected
//!   VMs; elsewhere exact whenever the proven bound meets a proven failure set.
//! - At least as good as XenServer's planner ([`xenserver`], a baseline kept
//!   for comparison only).

mod certify;
mod instance;
mod pack;
mod plan;
mod search;
pub mod xenserver;

use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

use crate::model::{Pool, RestartPriority};
use certify::Split;
use instance::Instance;

/// The answer to "how many hosts can fail?", with its explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MaxFailures {
    /// The largest n such that every set of n live hosts failing leaves a
    /// placement for every protected VM; -1 when even no failure has one.
    pub max_host_failures: i64,
    /// True when proven equal to the true maximum (the limiting set is then
    /// proven to have no placement); false when it is a proven lower bound.
    pub exact: bool,
    /// `max_host_failures + 1` live hosts whose failure has no placement (when
    /// `exact`; otherwise the set the planner could not place). Empty when the
    /// pool survives the loss of every live host.
    pub limiting_failure_set: Vec<Uuid>,
    /// Protected VMs that find no room in the restart plan for the limiting set.
    pub unplaced_vms: Vec<Uuid>,
    /// Running protected VMs that are not agile: never planned.
    pub excluded_non_agile_vms: Vec<Uuid>,
    /// Number of live hosts (the largest possible answer).
    pub live_hosts: usize,
}

/// A restart plan for one failure set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RestartPlan {
    /// One entry per running VM that loses its host (or has none): protected
    /// first by ascending `order`, then best-effort, then the rest.
    pub entries: Vec<PlanEntry>,
}

/// What happens to one VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanEntry {
    pub vm: Uuid,
    pub name: String,
    pub priority: RestartPriority,
    pub order: i64,
    pub outcome: PlanOutcome,
}

/// Where a VM restarts, or why it does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanOutcome {
    /// Restart on this host.
    Destination(Uuid),
    /// No surviving host has room for it.
    NoRoom,
    /// Tied to its host (local disks or networks): not planned.
    NotAgile,
    /// `ha-restart-priority` is empty: HA never restarts it.
    Unprotected,
}

/// A refused planner request.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum PlanError {
    /// A failed host UUID names no host of the pool.
    #[error("host {0} is not in the pool")]
    UnknownHost(Uuid),
    /// A failed host is not live: it cannot fail again.
    #[error("host {0} is not live, so it cannot be in a failure set")]
    HostNotLive(Uuid),
    /// A failed host appears twice in the set.
    #[error("host {0} appears twice in the failure set")]
    DuplicateHost(Uuid),
    /// A hypothetical change names no VM of the pool.
    #[error("VM {0} is not in the pool")]
    UnknownVm(Uuid),
    /// A hypothetical change names the same VM twice.
    #[error("VM {0} appears twice in the hypothetical changes")]
    DuplicateVm(Uuid),
}

/// The maximum number of live hosts that may fail at once with every protected
/// VM still restartable.
#[must_use]
pub fn max_host_failures(pool: &Pool) -> MaxFailures {
    let inst = Instance::new(pool);
    let split = Split::new(&inst, pool.vms.len());
    let a = search::analyse(&inst, &split);
    let mut failed = vec![false; inst.live()];
    for &h in &a.limiting {
        failed[h] = true;
    }
    let unplaced_vms = if a.limiting.is_empty() && a.max == inst.live() as i64 {
        Vec::new()
    } else {
        let mut room = inst
            .hosts
            .iter()
            .zip(&failed)
            .map(|(h, &f)| (h.enabled && !f).then_some(h.cap))
            .collect();
        plan::place_protected(pool, &inst, &split, &failed, Some(a.max), &mut room)
            .into_iter()
            .filter(|(_, d)| d.is_none())
            .map(|(i, _)| pool.vms[i.vm].uuid)
            .collect()
    };
    MaxFailures {
        max_host_failures: a.max,
        exact: a.exact,
        limiting_failure_set: a.limiting.iter().map(|&h| inst.hosts[h].uuid).collect(),
        unplaced_vms,
        excluded_non_agile_vms: inst.excluded.clone(),
        live_hosts: inst.live(),
    }
}

/// `max_host_failures` with some VMs' `ha-restart-priority` changed.
pub fn hypothetical_max_host_failures(
    pool: &Pool,
    changes: &[(Uuid, RestartPriority)],
) -> Result<MaxFailures, PlanError> {
    let mut changed = pool.clone();
    let mut seen = Vec::with_capacity(changes.len());
    for &(uuid, priority) in changes {
        if seen.contains(&uuid) {
            return Err(PlanError::DuplicateVm(uuid));
        }
        seen.push(uuid);
        let vm = changed
            .vms
            .iter_mut()
            .find(|v| v.uuid == uuid)
            .ok_or(PlanError::UnknownVm(uuid))?;
        vm.priority = priority;
    }
    Ok(max_host_failures(&changed))
}

/// The restart plan when the given live hosts fail at once (an empty set plans
/// the protected VMs that should run but have no live host).
pub fn restart_plan(pool: &Pool, failed_hosts: &[Uuid]) -> Result<RestartPlan, PlanError> {
    let inst = Instance::new(pool);
    let failed = plan::failure_flags(pool, &inst, failed_hosts)?;
    let split = Split::new(&inst, pool.vms.len());
    Ok(plan::build(pool, &inst, &split, &failed))
}

/// Whether the operator's target `ha-host-failures-to-tolerate` exceeds what
/// the pool can tolerate.
#[must_use]
pub fn is_overcommitted(pool: &Pool, result: &MaxFailures) -> bool {
    i64::from(pool.ha_host_failures_to_tolerate) > result.max_host_failures
}
