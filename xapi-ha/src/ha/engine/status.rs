//! Each VM's `ha_state`, derived from the view and the engine's tracks,
//! published when it changes.

use super::{Action, Engine};
use crate::ha::state::HaState;
use crate::ha::view::{Liveness, VmView};
use crate::model::RestartPriority;

impl Engine {
    fn state_of(&self, v: &VmView) -> HaState {
        let t = &self.tracks[&v.uuid];
        if !self.view.ha_enabled {
            return HaState::Disabled;
        }
        if v.priority == RestartPriority::Unprotected {
            return HaState::Ignored;
        }
        if t.migrating_to.is_some() {
            return HaState::Migrate;
        }
        if t.stopping {
            return HaState::Stopping;
        }
        if t.starting_on.is_some() {
            return HaState::Starting;
        }
        if t.frozen_on.is_some() {
            return HaState::Freeze;
        }
        if v.running {
            let host = v.resident_on.and_then(|h| self.view.host(h));
            return match host {
                Some(h) if h.liveness == Liveness::Lost => HaState::Fence,
                Some(h) if h.maintenance => HaState::Freeze,
                _ => HaState::Started,
            };
        }
        if v.protected() {
            return if t.recovering {
                HaState::Recovery
            } else {
                HaState::Queued
            };
        }
        if t.gave_up {
            HaState::Error
        } else if t.best_effort {
            HaState::Recovery
        } else {
            HaState::Stopped
        }
    }

    /// Emits `SetHaState` for every VM whose state changed.
    pub(super) fn publish_states(&mut self) {
        let changed: Vec<_> = self
            .view
            .vms
            .iter()
            .map(|v| (v.uuid, self.state_of(v)))
            .filter(|(vm, s)| self.states.get(vm) != Some(s))
            .collect();
        for (vm, state) in changed {
            self.states.insert(vm, state);
            self.push(Action::SetHaState { vm, state });
        }
    }
}
