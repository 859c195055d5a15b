//! The restart engine: a pure state machine over the pool view (events in,
//! actions out; no clock, no I/O), after quinn-proto and pve-ha-manager's
//! `Manager.pm`. Semantics and the state diagram: `docs/restart-engine.md`.
//!
//! Contract (the shell, one per master):
//! - build it with [`Engine::new`] from [`PoolView::from_db`] at the instant
//!   the master takes over (engine time is any monotonic [`Duration`]);
//! - feed every event with [`Engine::handle`] (or [`Engine::step`], which
//!   also drains the actions); after each, perform every action of
//!   [`Engine::poll_action`] in order, then call `handle(now, Input::Tick)`
//!   at [`Engine::poll_timeout`] (an early tick does nothing);
//! - answer every [`Action::StartVm`] with `VmStarted` or `VmStartFailed`.
//!
//! - [`input`] / [`action`]: the event and decision types.
//! - [`track`]: what it remembers per VM (starts in flight, retries).
//! - `events`: how each input changes the view and the tracks.
//! - `schedule`: which VMs start now, where (the planner's plan), in order
//!   groups with their `start_delay`.
//! - `status`: each VM's `ha_state`.

pub mod action;
mod events;
pub mod failback;
pub mod input;
mod schedule;
mod status;
pub mod track;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use uuid::Uuid;

pub use action::Action;
pub use input::Input;
use track::Track;

use super::state::HaState;
use super::view::{Liveness, PoolView};

/// The restart engine of one master.
#[derive(Clone, Debug)]
pub struct Engine {
    view: PoolView,
    tracks: BTreeMap<Uuid, Track>,
    states: BTreeMap<Uuid, HaState>,
    now: Duration,
    /// `ha_prevent_restarts_for`: no starts before this instant.
    paused_until: Option<Duration>,
    /// The running order group's end: when its last start answered plus the
    /// longest `start_delay` of its VMs. The next group waits for it.
    group_end: Option<Duration>,
    /// Whether the last plan left protected VMs without room (logged on the
    /// edge).
    beyond_plan: bool,
    /// Since when each live host has been live (engine time; hosts live
    /// when the engine was built count from then): failback waits for it.
    live_since: BTreeMap<Uuid, Duration>,
    actions: VecDeque<Action>,
}

/// The hosts live in `view`, live since `now`.
fn view_live_since(view: &PoolView, now: Duration) -> BTreeMap<Uuid, Duration> {
    view.hosts
        .iter()
        .filter(|h| h.liveness == Liveness::Live)
        .map(|h| (h.uuid, now))
        .collect()
}

impl Engine {
    /// An engine taking over the pool as the view shows it at `now`. VMs
    /// resume from their stored `ha_state`: a VM HA was restoring is still
    /// restored, one it gave up on stays given up, a frozen one stays frozen.
    #[must_use]
    pub fn new(view: PoolView, now: Duration) -> Engine {
        let live_since = view_live_since(&view, now);
        let mut engine = Engine {
            tracks: view
                .vms
                .iter()
                .map(|v| (v.uuid, events::resumed_track(&view, v, now)))
                .collect(),
            states: view
                .vms
                .iter()
                .filter_map(|v| Some((v.uuid, v.ha_state?)))
                .collect(),
            view,
            now,
            paused_until: None,
            group_end: None,
            beyond_plan: false,
            live_since,
            actions: VecDeque::new(),
        };
        engine.reissue_inherited_starts();
        engine.after_input();
        engine
    }

    /// The last master's starts whose host is live, asked again of the
    /// same host (see `events::resumed_track`): their answers went to the
    /// last master. Runs when the engine is built and when the liveset
    /// changes.
    pub(super) fn reissue_inherited_starts(&mut self) {
        if !self.view.ha_enabled {
            return;
        }
        let view = &self.view;
        let reissued: Vec<(Uuid, Uuid)> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.inherited)
            .filter_map(|(vm, t)| Some((*vm, t.starting_on?)))
            .filter(|(_, h)| view.host(*h).is_some_and(|x| x.liveness == Liveness::Live))
            .collect();
        for (vm, host) in reissued {
            if let Some(t) = self.tracks.get_mut(&vm) {
                t.inherited = false;
            }
            self.push(Action::Note(format!(
                "the start of VM {vm} on host {host} was in flight when the last master \
                 stopped: asked again of the same host"
            )));
            self.push(Action::StartVm { vm, host });
        }
    }

    /// Takes one event at `now` (never earlier than the last).
    pub fn handle(&mut self, now: Duration, input: Input) {
        assert!(now >= self.now, "engine time went backwards");
        self.now = now;
        self.apply(input);
        self.after_input();
    }

    /// `handle`, then every action it produced.
    pub fn step(&mut self, now: Duration, input: Input) -> Vec<Action> {
        self.handle(now, input);
        self.actions.drain(..).collect()
    }

    /// The next decision to perform.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call `handle(.., Input::Tick)` next (a retry, the end of an
    /// order group's `start_delay`, the end of a pause); `None` when only
    /// an event can change anything.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        let now = self.now;
        let retries = self
            .view
            .vms
            .iter()
            .filter(|v| self.is_candidate(v))
            .map(|v| self.tracks[&v.uuid].next_attempt);
        retries
            .chain(self.group_end)
            .chain(self.paused_until)
            .chain(self.failback_wake())
            .filter(|&t| t > now)
            .min()
    }

    /// The pool as the engine sees it.
    #[must_use]
    pub fn view(&self) -> &PoolView {
        &self.view
    }

    /// A VM's HA state.
    #[must_use]
    pub fn ha_state(&self, vm: Uuid) -> Option<HaState> {
        self.states.get(&vm).copied()
    }

    /// Whether restarts are paused at `now` by `ha_prevent_restarts_for`.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.paused_until.is_some_and(|t| self.now < t)
    }

    fn push(&mut self, action: Action) {
        self.actions.push_back(action);
    }

    fn after_input(&mut self) {
        if self.paused_until.is_some_and(|t| self.now >= t) {
            self.paused_until = None;
        }
        self.schedule();
        self.failback();
        self.publish_states();
        self.check();
    }

    /// Invariants after every input (bugs, kept on in release).
    fn check(&self) {
        for v in &self.view.vms {
            let t = &self.tracks[&v.uuid];
            if let Some(h) = t.starting_on {
                assert!(!v.running, "VM {} is running and starting", v.uuid);
                assert!(
                    self.view.host(h).is_some(),
                    "VM {} starting on unknown host",
                    v.uuid
                );
            }
            assert!(
                !(t.gave_up && t.best_effort),
                "VM {} both retried and given up",
                v.uuid
            );
            assert!(v.running || v.resident_on.is_none(), "halted VM resident");
        }
        assert_eq!(self.tracks.len(), self.view.vms.len());
    }
}
