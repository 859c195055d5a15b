//! The pure half of the engine's wiring on the live pool (the I/O half is
//! `server::ha_engine_task`): what an `xhad` report, a committed change of
//! the database and `pool.ha_restarts_prevented_until` mean as engine
//! inputs. Together with [`shell::changes_for`](super::shell::changes_for)
//! (action -> database changes) this is all the shell decides.
//!
//! Power events are read from the committed database, so every path that
//! starts or stops a VM (the API, the drivers' reports, a member's report,
//! the engine's own starts) is seen the same way:
//! - halted -> running on `h`: `VmStarted { h }` (also a move to another
//!   host: the migration ended there);
//! - running -> halted with `ha_always_run` cleared in the same change:
//!   a shutdown through the API (`VM.clean_shutdown`/`hard_shutdown` clear
//!   it in the commit that halts the VM): `VmStoppedByApi`;
//! - running -> halted otherwise: the VM stopped by itself (from inside
//!   the guest, or its process exited): `VmStoppedByItself`.

use uuid::Uuid;

use crate::db::{Class, Database};
use crate::value::{DateTime, Value};

use super::engine::Input;
use super::shell;
use super::view::{Liveness, PoolView, pool_ref};

/// The engine's `Liveset` input of an `xhad` report's liveset. A host leaves
/// `xhad`'s liveset only once it is proven fenced (docs/daemon.md), so
/// every host of the pool outside the liveset counts as fenced, but for one
/// that excluded itself (a clean shutdown or reboot: lost in the view, see
/// `translate::EXCLUDED_KEY`), which is not a failure.
#[must_use]
pub fn liveset_input(liveset: &[Uuid], view: &PoolView) -> Input {
    let live: Vec<Uuid> = liveset.to_vec();
    // A host that excluded itself (lost in the view) is not failed.
    let fenced = view
        .hosts
        .iter()
        .filter(|h| h.liveness != Liveness::Lost)
        .map(|h| h.uuid)
        .filter(|h| !live.contains(h))
        .collect();
    Input::Liveset { live, fenced }
}

/// The power inputs between two views of the database (see the module
/// documentation).
#[must_use]
pub fn power_inputs(before: &PoolView, after: &PoolView) -> Vec<Input> {
    let mut out = Vec::new();
    for v in &after.vms {
        let Some(b) = before.vm(v.uuid) else {
            continue;
        };
        match (b.running, v.running) {
            (_, true) if !b.running || b.resident_on != v.resident_on => {
                if let Some(host) = v.resident_on {
                    out.push(Input::VmStarted { vm: v.uuid, host });
                }
            }
            (true, false) if b.always_run && !v.always_run => {
                out.push(Input::VmStoppedByApi { vm: v.uuid });
            }
            (true, false) => out.push(Input::VmStoppedByItself { vm: v.uuid }),
            _ => {}
        }
    }
    out
}

/// The `Liveset` input when a host's liveness changed between two views
/// (the agent commits `host_metrics.live` from each `xhad` report).
#[must_use]
pub fn liveness_input(before: &PoolView, after: &PoolView) -> Option<Input> {
    let changed = after.hosts.iter().any(|h| {
        before
            .host(h.uuid)
            .is_some_and(|b| b.liveness != h.liveness)
    });
    changed.then(|| {
        let live: Vec<Uuid> = after
            .hosts
            .iter()
            .filter(|h| h.liveness == Liveness::Live)
            .map(|h| h.uuid)
            .collect();
        liveset_input(&live, after)
    })
}

/// Every input a committed change means: liveness first, then power, then
/// configuration ([`shell::config_inputs`]).
#[must_use]
pub fn committed_inputs(before: &PoolView, after: &PoolView) -> Vec<Input> {
    let mut out: Vec<Input> = liveness_input(before, after).into_iter().collect();
    out.extend(power_inputs(before, after));
    out.extend(shell::config_inputs(before, after));
    out
}

/// Whether the engine must be built again from the database: hosts or VMs
/// were added or removed (their state survives in `ha_state`).
#[must_use]
pub fn needs_rebuild(before: &PoolView, after: &PoolView) -> bool {
    let hosts = |v: &PoolView| {
        let mut h: Vec<Uuid> = v.hosts.iter().map(|h| h.uuid).collect();
        h.sort();
        h
    };
    let vms = |v: &PoolView| {
        let mut h: Vec<Uuid> = v.vms.iter().map(|v| v.uuid).collect();
        h.sort();
        h
    };
    hosts(before) != hosts(after) || vms(before) != vms(after)
}

/// `pool.ha_restarts_prevented_until` (unix seconds; `None` when never set).
#[must_use]
pub fn prevented_until(db: &Database) -> Option<i64> {
    let pool = pool_ref(db)?;
    match db.field(Class::Pool, pool, "ha_restarts_prevented_until") {
        Some(Value::DateTime(d)) => Some(d.unix_seconds),
        _ => None,
    }
}

/// The `PreventRestartsFor` input when `pool.ha_restarts_prevented_until`
/// changed from `before` to `after`, at wall-clock `now`: the seconds left
/// (0 resumes at once).
#[must_use]
pub fn prevent_input(before: Option<i64>, after: Option<i64>, now: DateTime) -> Option<Input> {
    if before == after {
        return None;
    }
    let left = after.map_or(0, |t| t.saturating_sub(now.unix_seconds).max(0));
    Some(Input::PreventRestartsFor {
        seconds: u64::try_from(left).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests;
