//! `METADATA_LUN_BROKEN` / `METADATA_LUN_HEALTHY` at the I/O edge: the
//! master's commits tell `alerts::lun_health` whether the redo log (the
//! pool database's log, on the metadata volume while HA is on) took the
//! write, and the first write that works after failures commits the two
//! messages (docs/alerts.md).

use uuid::Uuid;

use super::agent::{Agent, LocalStore, wall_clock};
use super::membership::lock;
use crate::alerts::catalog;
use crate::alerts::lun_health;
use crate::db::Change;
use crate::db::store::StoreError;

/// A commit failed with `e`: a redo-log write failure begins (or
/// continues) a broken period.
pub(super) fn write_failed(agent: &Agent, e: &StoreError) {
    if !matches!(e, StoreError::Log(_)) || !agent.is_master() {
        return;
    }
    if lock(&agent.ha().lun).write_failed(wall_clock()) {
        tracing::error!(error = %e, "the pool database's redo log cannot be written (METADATA_LUN_BROKEN is recorded once it can)");
    }
}

/// A commit worked, bringing the database to `generation`: if it ended a
/// broken period, commits the period's messages; the generation after.
pub(super) fn write_worked(agent: &Agent, store: &mut LocalStore, generation: u64) -> u64 {
    let Some(r) = lock(&agent.ha().lun).write_worked(wall_clock()) else {
        return generation;
    };
    tracing::warn!("the pool database's redo log can be written again");
    let alerts = lun_health::alerts(store.database(), r);
    // Each message is named from its own random seed (no two alike).
    let changes: Vec<Change> = alerts
        .iter()
        .map(|(at, a)| catalog::raise(store.database(), *at, Uuid::new_v4(), a))
        .collect();
    if changes.is_empty() {
        return generation;
    }
    match store.commit(&changes) {
        Ok(g) => {
            agent.pool.backlog().record(generation, g, &changes);
            g
        }
        Err(e) => {
            tracing::error!(error = %e, "recording the redo log's recovery failed");
            let _ = lock(&agent.ha().lun).write_failed(r.broken_at);
            generation
        }
    }
}
