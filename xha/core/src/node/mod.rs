//! The node: one host's fault-handling state machine.
//!
//! Who survives a fault is decided by the survival rules over the view matrix
//! ([`crate::survival`]); when the others may act is decided by the lease
//! (see [`crate::timeouts`] and `docs/fault-handling.md`):
//! - a host renews its lease only by a slot write that completes within the
//!   I/O deadline (from the write's issue time), or, when every member lost
//!   the statefile, by network rounds confirmed by every member;
//! - a member writes its slot only while its lease is valid and it is in the
//!   survivor set it computes itself, so a loser stops renewing as soon as it
//!   sees that it lost, and fences when its lease runs out;
//! - a survivor removes a host only after a statefile read, issued at least
//!   `peers_may_act` after the host's slot last changed, shows it unchanged
//!   on a majority of statefiles.
//!
//! `Node` is a coordinator over owned parts, each keeping its own rules and
//! asserting them where its state changes:
//! - [`lease::Lease`]: the write and network lease ends, network rounds;
//! - [`io::StatefileIo`]: reads, write rounds, sequences, anchors, access;
//! - [`peers::Peers`]: what is known of every peer, the heard/seen views;
//! - [`membership::Membership`]: liveset, survivors, phase, joining;
//! - [`lock::LockState`]: master-lock request, grant, pool block, epoch.
//!
//! The decisions that combine parts are `impl Node` blocks by subject:
//! `inputs.rs` (completions, heartbeats, control requests), `member.rs`
//! (views, survivors, removal proofs, statefile-lost rounds), `join.rs`,
//! `master.rs` (the master lock), `periodic.rs` (heartbeats, writes, reads,
//! watchdog kicks, timers) and `status.rs` (status, the slot, `StatusChanged`).

mod config;
mod inputs;
mod io;
mod join;
mod lease;
mod lock;
mod master;
mod member;
mod membership;
mod peers;
mod periodic;
mod status;
mod watchdog_loss;

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::statefile::{HostSet, Phase};

use crate::action::{Action, ControlError, FenceReason};
use crate::fence_request::Refusals;
use crate::input::Input;
use crate::peer_alerts::PeerAlerts;
use crate::time::Instant;
use crate::timeouts::Timeouts;
use crate::timer::{Timer, Timers};

pub use config::{Config, ConfigError, MAX_STATEFILES};
pub use status::{HostStatus, NodeStatus};

use io::StatefileIo;
use lease::Lease;
use lock::LockState;
use membership::Membership;
use peers::Peers;
use status::StatusKey;

/// Cap on queued actions: one `handle` emits a bounded number per peer and
/// statefile; exceeding this is a bug.
const ACTION_QUEUE_MAX: usize = 4096;

/// One host's fault-handling state machine.
pub struct Node {
    config: Config,
    now: Instant,
    rng: ChaCha8Rng,
    actions: VecDeque<Action>,
    timers: Timers,
    next_request: u64,

    // Life cycle.
    fenced: bool,
    stopped: bool,
    armed: bool,
    excluded: bool,
    watchdog_armed: bool,
    last_heartbeat_at: Option<Instant>,

    // Owned parts.
    lease: Lease,
    io: StatefileIo,
    peers: Peers,
    membership: Membership,
    lock: LockState,
    /// Fence requests refused as not corroborated.
    fence_refusals: Refusals,
    /// One-way and silent-while-disarmed peer warnings.
    alerts: PeerAlerts,
    /// What a `watch` client saw at the last `StatusChanged`.
    watched: Option<StatusKey>,
}

impl Node {
    /// A node that starts joining at `now`.
    pub fn new(config: Config, now: Instant) -> Result<Node, ConfigError> {
        config.validate()?;
        let n = config.hosts.len();
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ (config.local as u64).rotate_left(32));
        let mut timers = Timers::default();
        timers.set(Timer::Heartbeat, now);
        timers.set(Timer::StatefileRead, now);
        timers.set(Timer::SlotWrite, now);
        Ok(Node {
            now,
            rng,
            actions: VecDeque::new(),
            timers,
            next_request: 1,
            fenced: false,
            stopped: false,
            armed: config.fencing_armed,
            excluded: false,
            watchdog_armed: false,
            last_heartbeat_at: None,
            lease: Lease::new(now),
            io: StatefileIo::new(config.statefiles, n),
            peers: Peers::new(config.local, n),
            membership: Membership::new(config.local, now),
            lock: LockState::default(),
            fence_refusals: Refusals::default(),
            alerts: PeerAlerts::default(),
            watched: None,
            config,
        })
    }

    /// Feed one input at `now` (never earlier than the previous `now`).
    pub fn handle(&mut self, now: Instant, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = now;
        if self.fenced || self.stopped {
            if let Input::Control(_) = input {
                let err = if self.fenced {
                    ControlError::Fenced
                } else {
                    ControlError::Stopped
                };
                if !self.fenced {
                    self.push(Action::Reply(Err(err)));
                }
            }
            self.check_invariants();
            return;
        }
        // A heartbeat only updates the views; they are evaluated on the next
        // timer (at most a heartbeat interval later), which keeps a 64-host
        // pool at O(hosts) work per received packet.
        let mut evaluate = true;
        match input {
            Input::Tick => {}
            Input::Heartbeat { from, slot } => {
                evaluate = self.on_heartbeat(from.0, slot);
            }
            Input::StatefileRead {
                statefile,
                request,
                result,
            } => self.on_read(statefile.0, request, result),
            Input::SlotWritten {
                statefile,
                request,
                result,
            } => self.on_slot_written(statefile.0, request, result),
            Input::PoolWritten {
                statefile,
                request,
                result,
            } => self.on_pool_written(statefile.0, request, result),
            Input::Control(request) => self.on_control(request),
            Input::WatchdogLost => evaluate = self.on_watchdog_lost(),
        }
        let due = self.timers.next().is_some_and(|at| at <= now);
        if !self.fenced && !self.stopped && (evaluate || due) {
            self.step();
        }
        self.status_changed();
        self.check_invariants();
    }

    /// The next action to perform, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call `handle(_, Input::Tick)` next (`None`: only on input).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.fenced || self.stopped {
            return None;
        }
        self.timers.next()
    }

    /// The published (persisted) liveset.
    #[must_use]
    pub fn liveset(&self) -> HostSet {
        self.membership.liveset()
    }
    /// Has this host decided to become a member? From then on the watchdog
    /// is armed (if fencing is) and the host joins; the published liveset
    /// may include it a statefile write later.
    #[must_use]
    pub fn has_joined(&self) -> bool {
        self.membership.joined()
    }
    /// Is this host in its published liveset?
    #[must_use]
    pub fn is_member(&self) -> bool {
        self.membership.is_member()
    }
    #[must_use]
    pub fn is_master(&self) -> bool {
        self.lock.is_master()
    }
    #[must_use]
    pub fn master_epoch(&self) -> u64 {
        self.lock.master_epoch()
    }
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.membership.phase
    }
    #[must_use]
    pub fn is_fenced(&self) -> bool {
        self.fenced
    }
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }
    #[must_use]
    pub fn is_armed(&self) -> bool {
        self.armed
    }
    /// When this host's lease ends (it fences then, if armed).
    #[must_use]
    pub fn lease_end(&self) -> Option<Instant> {
        self.lease.end()
    }
    #[must_use]
    pub fn has_statefile_access(&self) -> bool {
        self.io.access()
    }
    /// The survivor set this host computes from its current views.
    #[must_use]
    pub fn survivors(&self) -> HostSet {
        self.membership.survivors()
    }
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }
    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.config.timeouts
    }

    // ----- the step after every input ----------------------------------

    fn step(&mut self) {
        let now = self.now;
        if self.lease_check() {
            return;
        }
        let access = self.io.compute_access(now, &self.config.timeouts);
        if self.io.access() && !access {
            self.push(Action::Warning(crate::action::Warning::StatefileLost));
        }
        self.io.set_access(access);
        self.net_rounds();
        if self.membership.joined() {
            self.evaluate_member();
        } else {
            self.evaluate_joining();
        }
        if self.fenced {
            return;
        }
        if self.membership.joined() {
            self.peer_alerts();
        }
        self.master_lock();
        if self.timers.due(Timer::Heartbeat, now) {
            self.send_heartbeat();
        }
        if self.timers.due(Timer::SlotWrite, now) {
            self.timers.set(
                Timer::SlotWrite,
                now + self.config.timeouts.statefile_interval,
            );
            self.issue_writes();
        }
        if self.timers.due(Timer::StatefileRead, now) {
            self.issue_reads();
        }
        self.kick();
        self.set_timers();
    }

    /// Fence if the lease ran out. Returns whether the node fenced.
    fn lease_check(&mut self) -> bool {
        let Some(end) = self.lease.end() else {
            return false;
        };
        if self.now < end {
            return false;
        }
        if self.membership.joined() || self.membership.join_requested() {
            if self.armed {
                self.fence(FenceReason::LeaseExpired);
                return true;
            }
        } else {
            // A starting host without a join request has nothing to protect:
            // it simply starts its lease again with its next timely write.
            self.lease.forget();
        }
        false
    }

    fn fence(&mut self, reason: FenceReason) {
        assert!(self.armed, "fencing while disarmed");
        self.fenced = true;
        self.lock.lose();
        self.membership.phase = Phase::Fencing;
        self.actions.clear();
        self.timers.stop_all();
        self.push(Action::Fence { reason });
    }

    fn request_id(&mut self) -> crate::ids::RequestId {
        let id = crate::ids::RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn push(&mut self, action: Action) {
        assert!(
            self.actions.len() < ACTION_QUEUE_MAX,
            "action queue overflow"
        );
        self.actions.push_back(action);
    }

    /// Checked at the end of every `handle`, in release too (the parts'
    /// own checks are debug assertions).
    fn check_invariants(&self) {
        if self.fenced {
            assert!(
                self.actions
                    .iter()
                    .all(|a| matches!(a, Action::Fence { .. })),
                "fenced with actions queued"
            );
            assert!(!self.lock.is_master(), "a fenced master");
        }
        if self.lock.is_master() {
            assert!(self.is_member(), "master outside the liveset");
        }
        if self.membership.joined() && self.armed && !self.fenced && !self.stopped {
            let end = self.lease.end();
            assert!(
                end.is_some_and(|e| e > self.now),
                "an armed member without a valid lease"
            );
        }
        self.lease.check_invariants(self.now);
        self.io.check_invariants();
        self.peers.check_invariants();
        self.membership.check_invariants();
        self.lock.check_invariants();
        if let Some(next) = self.poll_timeout() {
            assert!(next > self.now, "a timer is already due after handle");
        }
    }
}
