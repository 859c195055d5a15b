//! Which VMs start now and where.
//!
//! Candidates are the protected VMs found halted (level-triggered: however
//! they came to be halted) and the best-effort VMs HA is restoring, unless
//! frozen. All are placed together by the planner's restart plan (protected
//! first, best-effort in the room left), so a best-effort start never takes
//! room a protected VM was given. Starts go out one order group at a time
//! (ascending `order`, negative orders last), all VMs of a group at once;
//! the next group waits until every start of the group answered and the
//! longest `start_delay` of its VMs passed. Protected groups go before
//! best-effort ones. A VM without room fails its attempt like a failed
//! start (retry with backoff); running VMs are never stopped or moved.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Action, Engine};
use crate::ha::view::VmView;
use crate::model::RestartPriority;
use crate::planner::{self, PlanOutcome};

/// Sort key of an order group: ascending, negative orders last.
fn group_key(order: i64) -> (bool, i64) {
    (order < 0, order)
}

impl Engine {
    /// Whether HA wants this VM started (whether or not now).
    pub(super) fn is_candidate(&self, v: &VmView) -> bool {
        let t = &self.tracks[&v.uuid];
        !v.running
            && t.starting_on.is_none()
            && t.frozen_on.is_none()
            && (v.protected() || (v.priority == RestartPriority::BestEffort && t.best_effort))
    }

    fn due(&self, v: &VmView) -> bool {
        self.is_candidate(v) && self.tracks[&v.uuid].next_attempt <= self.now
    }

    /// Starts what may start now.
    pub(super) fn schedule(&mut self) {
        if !self.view.ha_enabled || self.paused() {
            return;
        }
        if self.tracks.values().any(|t| t.starting_on.is_some()) {
            return; // the running group is not finished
        }
        if let Some(end) = self.group_end {
            if self.now < end {
                return; // the group's start_delay
            }
            self.group_end = None;
        }
        if !self.view.vms.iter().any(|v| self.due(v)) {
            return;
        }
        let plan = self.plan();
        for protected in [true, false] {
            let mut due: Vec<(bool, i64, String, Uuid)> = self
                .view
                .vms
                .iter()
                .filter(|v| self.due(v) && v.protected() == protected)
                .map(|v| {
                    let (neg, order) = group_key(v.order);
                    (neg, order, v.name.clone(), v.uuid)
                })
                .collect();
            due.sort();
            let mut groups: Vec<Vec<Uuid>> = Vec::new();
            let mut last = None;
            for (neg, order, _, vm) in due {
                if last != Some((neg, order)) {
                    groups.push(Vec::new());
                    last = Some((neg, order));
                }
                if let Some(g) = groups.last_mut() {
                    g.push(vm);
                }
            }
            for group in groups {
                if self.start_group(&group, &plan) {
                    return;
                }
            }
        }
    }

    /// Starts the group's VMs where the plan puts them; true when any start
    /// went out.
    fn start_group(&mut self, group: &[Uuid], plan: &HashMap<Uuid, Option<Uuid>>) -> bool {
        let mut any = false;
        for &vm in group {
            match plan.get(&vm).copied().flatten() {
                Some(host) => {
                    if let Some(t) = self.tracks.get_mut(&vm) {
                        t.starting_on = Some(host);
                    }
                    self.push(Action::StartVm { vm, host });
                    any = true;
                }
                None => self.attempt_failed(vm, "no host has room", true),
            }
        }
        any
    }

    /// The planner's destination for every candidate (`None`: no room).
    /// Starts in flight count as running on their host.
    fn plan(&mut self) -> HashMap<Uuid, Option<Uuid>> {
        let pool = self.view.planning_pool(
            |v| {
                let t = &self.tracks[&v.uuid];
                if let Some(h) = t.starting_on {
                    Some(Some(h))
                } else if v.running {
                    Some(v.resident_on)
                } else {
                    self.is_candidate(v).then_some(None)
                }
            },
            |v| {
                if v.protected() {
                    RestartPriority::Restart
                } else if v.priority == RestartPriority::BestEffort {
                    RestartPriority::BestEffort
                } else {
                    RestartPriority::Unprotected
                }
            },
        );
        let entries = match planner::restart_plan(&pool, &[]) {
            Ok(plan) => plan.entries,
            Err(e) => {
                // Cannot happen with no failed hosts; plan nothing.
                self.push(Action::Note(format!("the planner refused: {e}")));
                Vec::new()
            }
        };
        let mut out = HashMap::new();
        let mut unplaced = 0usize;
        for e in entries {
            let dest = match e.outcome {
                PlanOutcome::Destination(h) => Some(h),
                _ => None,
            };
            if dest.is_none() && e.priority == RestartPriority::Restart {
                unplaced += 1;
            }
            out.insert(e.vm, dest);
        }
        let beyond = unplaced > 0;
        if beyond != self.beyond_plan {
            self.beyond_plan = beyond;
            self.push(Action::Note(if beyond {
                format!(
                    "failures beyond the plan: {unplaced} protected VM(s) without room; \
                     protected VMs are started best-effort, by order, as room allows"
                )
            } else {
                "every protected VM has a place again".to_owned()
            }));
        }
        out
    }
}
