//! Failback (our own, off by default): a running VM with an `affinity` host
//! and `other_config:ha-failback=true` moves back to that host once the
//! host has been live for [`FAILBACK_SETTLE`], is enabled, not in
//! maintenance, and has room for it (`VM.pool_migrate`: live for QEMU,
//! stop-and-start for process VMs). One move at a time in the pool, never
//! while a restart is in flight or due (restarts come first), never for a
//! VM that is starting, stopping, moving or frozen; a failed move is
//! retried after [`FAILBACK_RETRY`]. XenServer has no failback; Pacemaker's
//! equivalent is a location preference with low stickiness.

use std::time::Duration;

use uuid::Uuid;

use super::{Action, Engine};
use crate::ha::view::{Liveness, VmView};

/// How long a host must have been live before VMs move back to it (a host
/// that flaps in and out of the liveset gets nothing back).
pub const FAILBACK_SETTLE: Duration = Duration::from_secs(10);
/// How long after a failed move the next attempt of the same VM comes.
pub const FAILBACK_RETRY: Duration = Duration::from_secs(60);

impl Engine {
    /// The host `v` would move back to now, if any (room aside).
    fn failback_target(&self, v: &VmView) -> Option<Uuid> {
        let t = &self.tracks[&v.uuid];
        let to = v.affinity?;
        let host = self.view.host(to)?;
        let eligible = v.failback
            && v.running
            && v.resident_on.is_some_and(|on| on != to)
            && t.starting_on.is_none()
            && t.migrating_to.is_none()
            && !t.stopping
            && t.frozen_on.is_none()
            && host.liveness == Liveness::Live
            && host.enabled
            && !host.maintenance;
        eligible.then_some(to)
    }

    /// The instant `v` may move back, if it may at all (settle and retry).
    fn failback_due_at(&self, v: &VmView) -> Option<Duration> {
        let to = self.failback_target(v)?;
        let since = self.live_since.get(&to).copied()?;
        Some(
            since
                .saturating_add(FAILBACK_SETTLE)
                .max(self.tracks[&v.uuid].failback_next),
        )
    }

    /// Free memory on `host`: its total less its overhead, the VMs running
    /// there and the starts and moves on their way to it.
    fn free_memory(&self, host: Uuid) -> u64 {
        let Some(h) = self.view.host(host) else {
            return 0;
        };
        let used: u64 = self
            .view
            .vms
            .iter()
            .filter(|v| {
                let t = &self.tracks[&v.uuid];
                (v.running && v.resident_on == Some(host))
                    || t.starting_on == Some(host)
                    || t.migrating_to == Some(host)
            })
            .map(|v| v.memory)
            .sum();
        h.memory_total
            .saturating_sub(h.memory_overhead)
            .saturating_sub(used)
    }

    /// Moves one VM back, when nothing more urgent is going on.
    pub(super) fn failback(&mut self) {
        if !self.view.ha_enabled || self.paused() {
            return;
        }
        let busy = self
            .tracks
            .values()
            .any(|t| t.starting_on.is_some() || t.migrating_to.is_some());
        let restart_due = self
            .view
            .vms
            .iter()
            .any(|v| self.is_candidate(v) && !self.tracks[&v.uuid].no_room);
        if busy || restart_due {
            return;
        }
        let mut due: Vec<(i64, String, Uuid, Uuid, Uuid)> = self
            .view
            .vms
            .iter()
            .filter(|v| self.failback_due_at(v).is_some_and(|at| at <= self.now))
            .filter_map(|v| {
                let to = self.failback_target(v)?;
                (self.free_memory(to) >= v.memory).then(|| {
                    let from = v.resident_on.unwrap_or(to);
                    (v.order, v.name.clone(), v.uuid, from, to)
                })
            })
            .collect();
        due.sort();
        let Some((_, name, vm, from, to)) = due.into_iter().next() else {
            return;
        };
        if let Some(t) = self.tracks.get_mut(&vm) {
            t.migrating_to = Some(to);
        }
        self.push(Action::Note(format!(
            "failback: VM '{name}' moves back to its affinity host {to}"
        )));
        self.push(Action::Failback { vm, from, to });
    }

    /// A move back failed: the VM stays where it runs; next try later.
    pub(super) fn failback_failed(&mut self, vm: Uuid, to: Uuid, reason: &str) {
        let now = self.now;
        let Some(t) = self.tracks.get_mut(&vm) else {
            return;
        };
        if t.migrating_to != Some(to) {
            return; // stale
        }
        t.migrating_to = None;
        t.failback_next = now.saturating_add(FAILBACK_RETRY);
        self.push(Action::Note(format!(
            "failback of VM {vm} to host {to} failed ({reason}): next try in {} s",
            FAILBACK_RETRY.as_secs()
        )));
    }

    /// The next instant a failback may become due (for `poll_timeout`).
    pub(super) fn failback_wake(&self) -> Option<Duration> {
        self.view
            .vms
            .iter()
            .filter_map(|v| self.failback_due_at(v))
            .filter(|&t| t > self.now)
            .min()
    }
}
