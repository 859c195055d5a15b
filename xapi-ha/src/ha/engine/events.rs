//! How each input changes the view and the tracks. Starts are decided
//! afterwards, by `schedule`, from the state this leaves.

use std::time::Duration;

use uuid::Uuid;

use super::track::{BEST_EFFORT_ATTEMPTS, Track, backoff};
use super::{Action, Engine, Input};
use crate::ha::messages;
use crate::ha::state::HaState;
use crate::ha::view::{Liveness, PoolView, VmView};
use crate::model::RestartPriority;

/// The track of a VM when an engine takes over, from its stored state.
///
/// A start the old master asked for (`scheduled_to_be_resident_on`) may
/// have run on its host, or may still be on its way there, with nobody left
/// to hear the answer. So the VM stays "starting" on that host: on a host
/// proven fenced the start died with it (forgotten here); on a lost host it
/// waits for the fence (`host_fenced`); on a live host (now, or when a lost
/// one is live again) the engine asks that same host again
/// (`Engine::reissue_inherited_starts`), where a start of a VM that already
/// runs is a success, so the answer is the truth either way and nothing
/// starts it anywhere else meanwhile.
pub(super) fn resumed_track(view: &PoolView, vm: &VmView, now: Duration) -> Track {
    let mut t = Track {
        next_attempt: now,
        starting_on: vm.scheduled_on.filter(|h| {
            !vm.running
                && view
                    .host(*h)
                    .is_some_and(|host| host.liveness != Liveness::Fenced)
        }),
        ..Track::default()
    };
    t.inherited = t.starting_on.is_some();
    match vm.ha_state {
        Some(HaState::Recovery) if !vm.running => {
            t.recovering = true;
            t.best_effort = vm.priority == RestartPriority::BestEffort;
        }
        Some(HaState::Error) if !vm.running => t.gave_up = true,
        Some(HaState::Freeze) => {
            // Frozen with the host it ran on; a running VM tells which.
            t.frozen_on = vm
                .resident_on
                .or_else(|| view.hosts.iter().find(|h| h.maintenance).map(|h| h.uuid));
        }
        _ => {}
    }
    t
}

/// A VM that died with its host: HA restores it if it is protected or
/// best-effort, with its attempts counted afresh from `now`.
fn lost_with_host(t: &mut Track, v: &VmView, now: Duration) {
    t.failures = 0;
    t.next_attempt = now;
    match v.priority {
        RestartPriority::Restart if v.always_run => t.recovering = true,
        RestartPriority::BestEffort => {
            t.recovering = true;
            t.best_effort = true;
            t.gave_up = false;
        }
        _ => {}
    }
}

impl Engine {
    pub(super) fn apply(&mut self, input: Input) {
        match input {
            Input::Liveset { live, fenced } => self.liveset(&live, &fenced),
            Input::VmStarted { vm, host } => self.started(vm, host),
            Input::VmStartFailed { vm, host, reason } => self.start_failed(vm, host, &reason),
            Input::VmStoppedByItself { vm } => self.stopped_by_itself(vm),
            Input::VmStopRequested { vm } => {
                if let Some(t) = self.tracks.get_mut(&vm) {
                    t.stopping = true;
                }
            }
            Input::VmStoppedByApi { vm } => self.stopped_by_api(vm),
            Input::VmMigrating { vm, to } => {
                if let Some(t) = self.tracks.get_mut(&vm) {
                    t.migrating_to = Some(to);
                }
            }
            Input::VmConfig {
                vm,
                priority,
                always_run,
                order,
                start_delay_s,
            } => self.configured(vm, priority, always_run, order, start_delay_s),
            Input::HostEnabled { host, enabled } => {
                if let Some(h) = self.view.host_mut(host) {
                    h.enabled = enabled;
                }
                if enabled {
                    self.room_may_have_appeared();
                }
            }
            Input::HostMaintenance { host, on } => self.maintenance(host, on),
            Input::VmFailback {
                vm,
                affinity,
                failback,
            } => {
                if let Some(v) = self.view.vm_mut(vm) {
                    v.affinity = affinity;
                    v.failback = failback;
                }
            }
            Input::FailbackDone { vm, to, result } => {
                if let Err(reason) = result {
                    self.failback_failed(vm, to, &reason);
                }
                // Success: the committed move arrives as `VmStarted`.
            }
            Input::PoolConfig {
                ha_enabled,
                reboot_on_internal_shutdown,
                plan_exists_for,
            } => {
                self.view.ha_enabled = ha_enabled;
                self.view.reboot_on_internal_shutdown = reboot_on_internal_shutdown;
                self.view.plan_exists_for = plan_exists_for;
            }
            Input::PreventRestartsFor { seconds } => {
                self.paused_until =
                    (seconds > 0).then(|| self.now.saturating_add(Duration::from_secs(seconds)));
                self.push(Action::Note(if seconds > 0 {
                    format!("restarts prevented for {seconds} s")
                } else {
                    "restarts resumed".to_owned()
                }));
            }
            Input::Tick => {}
        }
    }

    fn liveset(&mut self, live: &[Uuid], fenced: &[Uuid]) {
        let mut grew = false;
        let mut newly_fenced = Vec::new();
        let mut left = Vec::new();
        for h in &mut self.view.hosts {
            let next = if live.contains(&h.uuid) {
                Liveness::Live
            } else if fenced.contains(&h.uuid) || h.liveness == Liveness::Fenced {
                Liveness::Fenced
            } else {
                Liveness::Lost
            };
            grew |= next == Liveness::Live && h.liveness != Liveness::Live;
            if next != Liveness::Live && h.liveness == Liveness::Live {
                left.push(h.uuid);
            }
            if next == Liveness::Fenced && h.liveness != Liveness::Fenced {
                newly_fenced.push((h.uuid, h.name.clone()));
            }
            h.liveness = next;
        }
        for (host, name) in newly_fenced {
            self.host_fenced(host, &name);
        }
        let now = self.now;
        for h in &self.view.hosts {
            if h.liveness == Liveness::Live {
                self.live_since.entry(h.uuid).or_insert(now);
            } else {
                self.live_since.remove(&h.uuid);
            }
        }
        self.retry_starts_failed_on(&left);
        self.reissue_inherited_starts();
        if grew {
            self.liveset_grew();
            self.room_may_have_appeared();
        }
    }

    /// VMs whose last start failed on a host that has now left the liveset
    /// (its agent was already dead, say) are retried now, elsewhere, not
    /// after their backoff (campaign seed 22024: a protected VM's retry
    /// came 15 s after its first start, on a host that had died).
    fn retry_starts_failed_on(&mut self, left: &[Uuid]) {
        let now = self.now;
        for t in self.tracks.values_mut() {
            if t.starting_on.is_none()
                && t.recovering
                && t.failed_on.is_some_and(|h| left.contains(&h))
            {
                t.failed_on = None;
                t.next_attempt = now;
            }
        }
    }

    /// VMs whose last attempt found no room are retried now.
    fn room_may_have_appeared(&mut self) {
        let now = self.now;
        for t in self.tracks.values_mut() {
            if t.no_room {
                t.no_room = false;
                t.next_attempt = now;
            }
        }
    }

    /// A host proven fenced: mark it dead, raise `HA_HOST_FAILED`, force its
    /// VMs halted and queue the ones HA restores.
    fn host_fenced(&mut self, host: Uuid, name: &str) {
        self.push(Action::MarkHostDead { host });
        self.push(Action::Message(messages::host_failed(
            &host.hyphenated().to_string(),
            name,
        )));
        let now = self.now;
        for v in &mut self.view.vms {
            let t = self.tracks.get_mut(&v.uuid).expect("a track per VM");
            if t.starting_on == Some(host) {
                // The start died with the host: it never ran there.
                t.starting_on = None;
                t.inherited = false;
                t.recovering = true;
                t.next_attempt = now;
                self.group_end = Some(self.group_end.map_or(now, |e| e.max(now)));
            }
            if !(v.running && v.resident_on == Some(host)) {
                continue;
            }
            v.running = false;
            v.resident_on = None;
            t.migrating_to = None;
            t.stopping = false;
            self.actions
                .push_back(Action::ForceHalted { vm: v.uuid, host });
            if t.frozen_on.is_some() {
                continue; // frozen: no failover until the host is back
            }
            lost_with_host(t, v, now);
        }
    }

    /// The liveset grew: best-effort VMs HA restores or gave up on get
    /// their attempts back.
    fn liveset_grew(&mut self) {
        let now = self.now;
        for v in &self.view.vms {
            let t = self.tracks.get_mut(&v.uuid).expect("a track per VM");
            if v.running || v.priority != RestartPriority::BestEffort {
                continue;
            }
            if t.best_effort || t.gave_up {
                t.best_effort = true;
                t.gave_up = false;
                t.recovering = true;
                t.failures = 0;
                t.next_attempt = now;
            }
        }
    }

    fn started(&mut self, vm: Uuid, host: Uuid) {
        let now = self.now;
        let Some(v) = self.view.vm_mut(vm) else {
            return;
        };
        let delay = Duration::from_secs(v.start_delay_s);
        v.running = true;
        v.resident_on = Some(host);
        if v.priority == RestartPriority::Restart {
            // VM.start of a `restart` VM sets ha_always_run, as in xapi.
            v.always_run = true;
        }
        let t = self.tracks.get_mut(&vm).expect("a track per VM");
        let elsewhere = t.starting_on.filter(|h| *h != host);
        if t.starting_on.is_some() {
            let end = now.saturating_add(delay);
            self.group_end = Some(self.group_end.map_or(end, |e| e.max(end)));
        }
        t.ran();
        t.stopping = false;
        if let Some(other) = elsewhere {
            // Someone else started it while our start on `other` is on its
            // way: its answer is ignored; logged, because only the shell
            // (one start per VM at a time) can keep both from running.
            self.push(Action::Note(format!(
                "VM {vm} runs on host {host} while its start on host {other} was pending"
            )));
        }
    }

    fn start_failed(&mut self, vm: Uuid, host: Uuid, reason: &str) {
        let Some(t) = self.tracks.get_mut(&vm) else {
            return;
        };
        if t.starting_on != Some(host) {
            return; // a stale answer: the start was already given up
        }
        t.starting_on = None;
        t.failed_on = Some(host);
        let now = self.now;
        self.group_end = Some(self.group_end.map_or(now, |e| e.max(now)));
        self.attempt_failed(vm, reason, false);
    }

    /// One failed attempt (a start that failed, or no room in the plan):
    /// schedule the retry, or give up on a best-effort VM.
    pub(super) fn attempt_failed(&mut self, vm: Uuid, reason: &str, no_room: bool) {
        let now = self.now;
        let Some(v) = self.view.vm(vm) else {
            return;
        };
        let protected = v.protected();
        let uuid = v.uuid.hyphenated().to_string();
        let name = v.name.clone();
        let t = self.tracks.get_mut(&vm).expect("a track per VM");
        t.failures = t.failures.saturating_add(1);
        t.recovering = true;
        t.no_room = no_room;
        if !protected && t.failures >= BEST_EFFORT_ATTEMPTS {
            t.best_effort = false;
            t.gave_up = true;
            let failures = t.failures;
            self.push(Action::Note(format!(
                "giving up on best-effort VM '{name}' after {failures} attempts ({reason})"
            )));
            return;
        }
        t.next_attempt = now.saturating_add(backoff(t.failures));
        let at = t.next_attempt;
        let alert = protected && !t.alerted;
        t.alerted |= protected;
        self.push(Action::ScheduleRetry {
            vm,
            at,
            reason: reason.to_owned(),
        });
        if alert {
            self.push(Action::Message(messages::protected_vm_restart_failed(
                &uuid,
            )));
        }
    }

    /// The VM stopped, as its host reports. Reported while its host is out
    /// of the liveset, it is the host's own account after a reset (its
    /// agent booted before the master dropped it, campaign finding 5): the
    /// VM died with its host, which is a host failure for HA (restored, as
    /// by `host_fenced`), not a shutdown from inside.
    fn stopped_by_itself(&mut self, vm: Uuid) {
        let now = self.now;
        let reboot = self.view.reboot_on_internal_shutdown;
        let died_with_host = self
            .view
            .vm(vm)
            .and_then(|v| v.resident_on)
            .and_then(|h| self.view.host(h))
            .is_some_and(|h| h.liveness != Liveness::Live);
        let Some(v) = self.view.vm_mut(vm) else {
            return;
        };
        v.running = false;
        v.resident_on = None;
        let t = self.tracks.get_mut(&vm).expect("a track per VM");
        t.stopping = false;
        t.migrating_to = None;
        let protected = v.protected();
        if died_with_host && t.frozen_on.is_none() {
            lost_with_host(t, v, now);
        } else if protected {
            if reboot {
                t.next_attempt = now; // level-triggered: started in its turn
            } else {
                v.always_run = false;
                self.push(Action::ClearAlwaysRun { vm });
            }
        }
        self.room_may_have_appeared();
    }

    fn stopped_by_api(&mut self, vm: Uuid) {
        let Some(v) = self.view.vm_mut(vm) else {
            return;
        };
        v.running = false;
        v.resident_on = None;
        // The API clears ha_always_run before stopping: no restart.
        v.always_run = false;
        let t = self.tracks.get_mut(&vm).expect("a track per VM");
        *t = Track {
            next_attempt: self.now,
            ..Track::default()
        };
        self.room_may_have_appeared();
    }

    fn configured(
        &mut self,
        vm: Uuid,
        priority: RestartPriority,
        always_run: bool,
        order: i64,
        start_delay_s: u64,
    ) {
        let now = self.now;
        let Some(v) = self.view.vm_mut(vm) else {
            return;
        };
        let was = v.protected();
        v.priority = priority;
        v.always_run = always_run;
        v.order = order;
        v.start_delay_s = start_delay_s;
        let t = self.tracks.get_mut(&vm).expect("a track per VM");
        if v.protected() && !was {
            t.next_attempt = now;
        }
        if !v.protected() {
            t.alerted = false;
            if priority != RestartPriority::BestEffort {
                t.recovering = false;
                t.best_effort = false;
                t.gave_up = false;
            }
        }
    }

    fn maintenance(&mut self, host: Uuid, on: bool) {
        let Some(h) = self.view.host_mut(host) else {
            return;
        };
        h.maintenance = on;
        let now = self.now;
        for v in &self.view.vms {
            let t = self.tracks.get_mut(&v.uuid).expect("a track per VM");
            if on && v.running && v.resident_on == Some(host) {
                t.frozen_on = Some(host);
            } else if !on && t.frozen_on == Some(host) {
                t.frozen_on = None;
                t.next_attempt = now;
            }
        }
        if !on {
            self.room_may_have_appeared();
        }
    }
}
