//! The node: one host's fault-handling state machine.
//!
//! Who survives a fault is decided by the survival rules over the view matrix
//! ([`super::survival`]); when the others may act is decided by the lease
//! (see [`super::timeouts`] and `docs/fault-handling.md`):
//! - a host renews its lease only by a slot write that completes within the
//!   I/O deadline (from the write's issue time), or, when every member lost
//!   the statefile, by network rounds confirmed by every member;
//! - a member writes its slot only while its lease is valid and it is in the
//!   survivor set it computes itself, so a loser stops renewing as soon as it
//!   sees that it lost, and fences when its lease runs out;
//! - a survivor removes a host only after a statefile read, issued at least
//!   `peers_may_act` after the host's slot last changed, shows it unchanged
//!   on a majority of statefiles.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::statefile::{
    HostSet, MAX_HOSTS_LIMIT, Phase, PoolBlock, PoolState, Slot, SlotError,
};
use uuid::Uuid;

use super::action::{Action, ControlError, FenceReason, Warning};
use super::fence_request::{self, PeerRows, Refusal, Refusals, Verdict};
use super::freshness::{self, OwnView};
use super::ids::{HostIndex, RequestId, StatefileIndex};
use super::input::{ControlRequest, Input, IoFailure, StatefileRead};
use super::master_lock;
use super::peer_alerts::{PeerAlerts, PeerSight};
use super::survival::{self, ViewMatrix};
use super::time::Instant;
use super::timeouts::Timeouts;
use super::timer::{Timer, Timers};

/// Static configuration of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Generation UUID of this HA enablement (stamped into every slot).
    pub pool_generation: Uuid,
    /// Every host's UUID, sorted ascending: index = position.
    pub hosts: Vec<Uuid>,
    /// This host's index.
    pub local: usize,
    /// Every duration, from one base T.
    pub timeouts: Timeouts,
    /// Number of statefiles (>= 1); a majority must be reachable.
    pub statefiles: usize,
    /// Seed of the node's own RNG (heartbeat jitter).
    pub seed: u64,
    /// Whether this host fences (false: maintenance, nobody fences).
    pub fencing_armed: bool,
    /// Request the master lock by itself whenever no live host holds it.
    pub master_candidate: bool,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hosts: {0} hosts configured, expected 1 to {MAX_HOSTS_LIMIT}")]
    HostCount(usize),
    #[error("hosts: not sorted ascending or duplicated at position {0}")]
    HostsNotSorted(usize),
    #[error("local: index {local} is not below the host count {hosts}")]
    LocalOutOfRange { local: usize, hosts: usize },
    #[error("statefiles: {0} configured, expected 1 to {MAX_STATEFILES}")]
    StatefileCount(usize),
    #[error("pool_generation: the nil UUID is not a generation")]
    NilGeneration,
}

/// Most statefiles a pool may use.
pub const MAX_STATEFILES: usize = 8;

impl Config {
    /// Check every field; nothing is built from a bad config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.hosts.len();
        if n == 0 || n > MAX_HOSTS_LIMIT {
            return Err(ConfigError::HostCount(n));
        }
        if let Some(i) = (1..n).find(|&i| self.hosts[i - 1] >= self.hosts[i]) {
            return Err(ConfigError::HostsNotSorted(i));
        }
        if self.local >= n {
            return Err(ConfigError::LocalOutOfRange {
                local: self.local,
                hosts: n,
            });
        }
        if self.statefiles == 0 || self.statefiles > MAX_STATEFILES {
            return Err(ConfigError::StatefileCount(self.statefiles));
        }
        if self.pool_generation.is_nil() {
            return Err(ConfigError::NilGeneration);
        }
        self.timeouts.check();
        Ok(())
    }

    fn majority(&self) -> usize {
        self.statefiles / 2 + 1
    }
}

/// What a node reports about one host (for the control socket's query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStatus {
    pub index: HostIndex,
    pub uuid: Uuid,
    pub live: bool,
    pub master: bool,
    pub heard: bool,
    pub seen: bool,
    pub statefile_access: bool,
    pub excluded: bool,
    pub starting: bool,
    /// Its freshest state says its fencing is disarmed.
    pub fencing_disarmed: bool,
    /// A member with fencing disarmed, neither heard nor seen writing: it
    /// is never removed (see `core::peer_alerts`).
    pub silent_disarmed: bool,
    /// When this node last accepted a heartbeat from the host (`None` for
    /// this host, or never): its age is the heartbeat age.
    pub heard_at: Option<Instant>,
    /// When a statefile read last showed the host's slot changing (`None`
    /// for this host, or never): its age is the statefile-update age.
    pub slot_changed_at: Option<Instant>,
}

/// A snapshot of the node for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub local: HostIndex,
    pub member: bool,
    pub liveset: HostSet,
    pub phase: Phase,
    pub master: bool,
    /// The highest master epoch known (the pool block's, or this node's own
    /// lock's): the epoch of the master reported by `hosts[].master`.
    pub master_epoch: u64,
    pub fenced: bool,
    pub stopped: bool,
    pub armed: bool,
    pub statefile_access: bool,
    pub lease_end: Option<Instant>,
    pub hosts: Vec<HostStatus>,
    pub text: String,
    /// Fence requests refused as not corroborated (`core::fence_request`).
    pub fence_requests_refused: u64,
    /// The last refused request: requester and why.
    pub last_fence_request_refused: Option<(HostIndex, Refusal)>,
}

/// Cap on queued actions: one `handle` emits a bounded number per peer and
/// statefile; exceeding this is a bug.
const ACTION_QUEUE_MAX: usize = 4096;

/// Identity of what a read found in one slot: any landed write changes it
/// (sequences are never reused), so "different" means "a write landed".
type Observed = Result<u64, SlotError>;

/// Per-statefile I/O bookkeeping.
#[derive(Clone, Debug, Default)]
struct FileState {
    /// The one read in flight: (request, issue time).
    read: Option<(RequestId, Instant)>,
    /// Completion time of the last read that succeeded within the deadline.
    last_good_read: Option<Instant>,
    /// Whether the last completed read succeeded within the deadline.
    last_read_ok: bool,
    /// Issue time of the latest successfully completed read (any latency):
    /// the evidence used to prove a peer fenced.
    proof_issue: Option<Instant>,
    /// Slot writes in flight: (request, write round).
    writes: Vec<(RequestId, u64)>,
    /// Pool-block writes in flight: (request, issue time).
    pool_writes: Vec<(RequestId, Instant)>,
    /// Last observed identity of every host's slot on this file.
    observed: Vec<Option<Observed>>,
    /// Per host: when a read of this file last showed its slot changing (or
    /// it was added to the liveset): the lease anchor on this file.
    anchor: Vec<Option<Instant>>,
    /// When the last latency warning was raised for this file.
    warned_at: Option<Instant>,
}

/// One round of slot writes (the same slot to every statefile).
#[derive(Clone, Debug)]
struct WriteRound {
    sequence: u64,
    issued: Instant,
    /// Files the round went to.
    sent: usize,
    /// Completions within the deadline.
    ok_in_time: usize,
    /// Completions that landed (any latency).
    landed: usize,
    /// Completions of any kind.
    done: usize,
    renewed: bool,
    /// The slot was written as a member (starting flag clear).
    member: bool,
    /// The liveset the slot carried.
    liveset: HostSet,
}

/// What this node knows about one peer.
#[derive(Clone, Debug, Default)]
struct PeerState {
    last_heard: Option<Instant>,
    /// Latest heartbeat content.
    net: Option<Slot>,
    /// Latest decoded slot from any statefile (highest sequence).
    disk: Option<Slot>,
    /// Last time any statefile showed this slot changing.
    disk_changed: Option<Instant>,
    /// Joining: this host was seen as a member whose liveset lacks me.
    saw_without_me: bool,
    warned_at: Option<Instant>,
}

/// An acquisition of the master lock in progress (pool block being written).
#[derive(Clone, Debug)]
struct Acquire {
    block: PoolBlock,
    requests: Vec<RequestId>,
    ok: usize,
    done: usize,
}

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
    /// Decided to be a member (the liveset including me may still be unpersisted).
    joined: bool,
    /// Sent a join request: from here on, a lease end means fencing.
    join_requested: bool,
    /// This host's slot showed a member write of an earlier incarnation.
    was_member: bool,
    /// When this host decided to become a member.
    joined_at: Option<Instant>,

    // Liveset.
    liveset: HostSet,
    pending_liveset: Option<HostSet>,
    survivors: HostSet,
    survivors_since: Instant,
    proposed: HostSet,
    fence_request: bool,
    phase: Phase,
    fault_round: u64,

    // Lease.
    write_lease_end: Option<Instant>,
    net_lease_end: Option<Instant>,
    net_round: u64,
    net_round_entered: Instant,
    prev_round: Option<(u64, Instant)>,
    lost_heartbeat_sent: Option<Instant>,
    last_heartbeat_at: Option<Instant>,
    access: bool,

    // Statefile I/O.
    files: Vec<FileState>,
    rounds: VecDeque<WriteRound>,
    next_sequence: Option<u64>,
    last_sequence: u64,
    /// The view (heard, access) the last issued slot write carried.
    written_view: Option<OwnView>,
    /// The last slot write was issued while earlier ones were in flight, so
    /// one of those may land after it (overlapping writes land in any order).
    write_overlapped: bool,
    pool: Option<PoolBlock>,

    // Peers.
    peers: Vec<PeerState>,
    /// Fence requests refused as not corroborated.
    fence_refusals: Refusals,
    /// One-way and silent-while-disarmed peer warnings.
    alerts: PeerAlerts,

    // Master lock.
    /// When the current request began (None: not requesting).
    request_started: Option<Instant>,
    want_master: bool,
    refuse_master: bool,
    grant: Option<usize>,
    acquire: Option<Acquire>,
    master: bool,
    master_epoch: u64,

    // Publishing.
    /// What a `watch` client saw at the last `StatusChanged`.
    watched: Option<StatusKey>,
}

/// The part of [`NodeStatus`] a `watch` client is told about, compactly:
/// a change emits `Action::StatusChanged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatusKey {
    joined: bool,
    member: bool,
    fenced: bool,
    stopped: bool,
    armed: bool,
    access: bool,
    phase: Phase,
    liveset: HostSet,
    master: bool,
    master_epoch: u64,
    pool_master: Option<usize>,
    fence_requests_refused: u64,
    /// Per host flag of [`HostStatus`], as sets of hosts.
    heard: HostSet,
    seen: HostSet,
    statefile_access: HostSet,
    excluded: HostSet,
    starting: HostSet,
    fencing_disarmed: HostSet,
    silent_disarmed: HostSet,
}

impl Node {
    /// A node that starts joining at `now`.
    pub fn new(config: Config, now: Instant) -> Result<Node, ConfigError> {
        config.validate()?;
        let n = config.hosts.len();
        let files = (0..config.statefiles)
            .map(|_| FileState {
                observed: vec![None; n],
                anchor: vec![None; n],
                ..FileState::default()
            })
            .collect();
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ (config.local as u64).rotate_left(32));
        let mut timers = Timers::default();
        timers.set(Timer::Heartbeat, now);
        timers.set(Timer::StatefileRead, now);
        timers.set(Timer::SlotWrite, now);
        let armed = config.fencing_armed;
        Ok(Node {
            now,
            rng,
            actions: VecDeque::new(),
            timers,
            next_request: 1,
            fenced: false,
            stopped: false,
            armed,
            excluded: false,
            watchdog_armed: false,
            joined: false,
            join_requested: false,
            was_member: false,
            joined_at: None,
            liveset: HostSet::EMPTY,
            pending_liveset: None,
            survivors: HostSet::EMPTY,
            survivors_since: now,
            proposed: HostSet::EMPTY,
            fence_request: false,
            phase: Phase::Normal,
            fault_round: 0,
            write_lease_end: None,
            net_lease_end: None,
            net_round: 0,
            net_round_entered: now,
            prev_round: None,
            lost_heartbeat_sent: None,
            last_heartbeat_at: None,
            access: false,
            files,
            rounds: VecDeque::new(),
            next_sequence: None,
            last_sequence: 0,
            written_view: None,
            write_overlapped: false,
            pool: None,
            peers: vec![PeerState::default(); n],
            fence_refusals: Refusals::default(),
            alerts: PeerAlerts::default(),
            request_started: None,
            want_master: false,
            refuse_master: false,
            grant: None,
            acquire: None,
            master: false,
            master_epoch: 0,
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
        self.liveset
    }
    /// Has this host decided to become a member? From then on the watchdog
    /// is armed (if fencing is) and the host joins; the published liveset
    /// may include it a statefile write later.
    #[must_use]
    pub fn has_joined(&self) -> bool {
        self.joined
    }
    /// Is this host in its published liveset?
    #[must_use]
    pub fn is_member(&self) -> bool {
        self.liveset.contains(self.config.local)
    }
    #[must_use]
    pub fn is_master(&self) -> bool {
        self.master
    }
    #[must_use]
    pub fn master_epoch(&self) -> u64 {
        self.master_epoch
    }
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
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
        max_opt(self.write_lease_end, self.net_lease_end)
    }
    #[must_use]
    pub fn has_statefile_access(&self) -> bool {
        self.access
    }
    /// The survivor set this host computes from its current views.
    #[must_use]
    pub fn survivors(&self) -> HostSet {
        self.survivors
    }
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }
    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.config.timeouts
    }

    /// A snapshot for the control socket's liveset query.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        let heard = self.heard_view();
        let seen = self.seen_view();
        let master_index = self.pool_master_index();
        let hosts = (0..self.config.hosts.len())
            .map(|p| self.host_status(p, heard, seen, master_index))
            .collect();
        NodeStatus {
            local: HostIndex(self.config.local),
            member: self.is_member(),
            liveset: self.liveset,
            phase: self.phase,
            master: self.master,
            master_epoch: self.known_epoch(),
            fenced: self.fenced,
            stopped: self.stopped,
            armed: self.armed,
            statefile_access: self.access,
            lease_end: self.lease_end(),
            hosts,
            text: self.status_text(),
            fence_requests_refused: self.fence_refusals.count,
            last_fence_request_refused: self
                .fence_refusals
                .last
                .map(|(by, why, _)| (HostIndex(by), why)),
        }
    }

    /// What the status says about host `p`, given the views.
    fn host_status(
        &self,
        p: usize,
        heard: HostSet,
        seen: HostSet,
        master_index: Option<usize>,
    ) -> HostStatus {
        let local = p == self.config.local;
        // This host's own flags are those of the slot it would write now
        // (`current_slot`).
        let (statefile_access, excluded, starting, fencing_disarmed) = if local {
            (self.access, self.excluded, !self.joined, !self.armed)
        } else {
            let row = self.row(p);
            (
                row.is_some_and(|r| r.statefile_access),
                row.is_some_and(|r| r.excluded),
                row.is_none_or(|r| r.starting),
                row.is_some_and(|r| r.fencing_disarmed),
            )
        };
        let peer = &self.peers[p];
        HostStatus {
            index: HostIndex(p),
            uuid: self.config.hosts[p],
            live: self.liveset.contains(p),
            master: master_index == Some(p),
            heard: heard.contains(p),
            seen: seen.contains(p),
            statefile_access,
            excluded,
            starting,
            fencing_disarmed,
            silent_disarmed: self.alerts.silent_disarmed().contains(p),
            heard_at: if local { None } else { peer.last_heard },
            slot_changed_at: if local { None } else { peer.disk_changed },
        }
    }

    /// The watched part of the status now.
    fn status_key(&self) -> StatusKey {
        let heard = self.heard_view();
        let seen = self.seen_view();
        let master_index = self.pool_master_index();
        let mut key = StatusKey {
            joined: self.joined,
            member: self.is_member(),
            fenced: self.fenced,
            stopped: self.stopped,
            armed: self.armed,
            access: self.access,
            phase: self.phase,
            liveset: self.liveset,
            master: self.master,
            master_epoch: self.known_epoch(),
            pool_master: master_index,
            fence_requests_refused: self.fence_refusals.count,
            heard,
            seen,
            statefile_access: HostSet::EMPTY,
            excluded: HostSet::EMPTY,
            starting: HostSet::EMPTY,
            fencing_disarmed: HostSet::EMPTY,
            silent_disarmed: self.alerts.silent_disarmed(),
        };
        for p in 0..self.config.hosts.len() {
            let h = self.host_status(p, heard, seen, master_index);
            for (flag, set) in [
                (h.statefile_access, &mut key.statefile_access),
                (h.excluded, &mut key.excluded),
                (h.starting, &mut key.starting),
                (h.fencing_disarmed, &mut key.fencing_disarmed),
            ] {
                if flag {
                    set.insert(p);
                }
            }
        }
        key
    }

    /// Emit `StatusChanged` if the watched status differs from the last
    /// one emitted (never once fenced: `Fence` must stay the last action).
    fn status_changed(&mut self) {
        if self.fenced {
            return;
        }
        let key = self.status_key();
        if self.watched != Some(key) {
            self.watched = Some(key);
            self.push(Action::StatusChanged);
        }
    }

    // ----- inputs -------------------------------------------------------

    /// Record a heartbeat. Returns whether it needs an evaluation at once: a
    /// fence request for this host.
    fn on_heartbeat(&mut self, from: usize, slot: Slot) -> bool {
        if from >= self.config.hosts.len()
            || from == self.config.local
            || usize::from(slot.host_index) != from
            || slot.host_uuid != self.config.hosts[from]
        {
            return false;
        }
        let me = self.config.local;
        let timeout = self.config.timeouts.heartbeat_timeout;
        let peer = &self.peers[from];
        let recent = peer
            .last_heard
            .is_some_and(|at| self.now.saturating_since(at) < timeout);
        // A reordered or duplicated older packet: keep the newer state. But
        // a packet at least as new as the peer's slot on the statefile is
        // current whatever an earlier heartbeat claimed: a forged one (pool
        // secret) may claim any sequence, and must not silence the real
        // sender until the heartbeat timeout. (Both drivers deliver one
        // sender's packets in order, so this only matters after forgery.)
        if recent
            && peer
                .disk
                .as_ref()
                .is_none_or(|d| slot.sequence < d.sequence)
            && peer
                .net
                .as_ref()
                .is_some_and(|n| slot.sequence < n.sequence)
        {
            return false;
        }
        // In statefile-lost mode rounds advance on every heartbeat, so that
        // a large pool completes its first rounds well within one lease.
        let lost_mode = self.joined && !self.access;
        let urgent = lost_mode || (slot.fence_request && !slot.proposed.contains(me));
        let peer = &mut self.peers[from];
        peer.last_heard = Some(self.now);
        if !slot.starting && !slot.liveset.contains(me) {
            peer.saw_without_me = true;
        }
        peer.net = Some(slot);
        urgent
    }

    fn on_read(&mut self, f: usize, request: RequestId, result: Result<StatefileRead, IoFailure>) {
        let Some(file) = self.files.get_mut(f) else {
            return;
        };
        let Some((req, issued)) = file.read else {
            return;
        };
        if req != request {
            return;
        }
        file.read = None;
        let latency = self.now.saturating_since(issued);
        let in_time = latency <= self.config.timeouts.io_deadline;
        self.latency_warning(f, latency);
        let read = match result {
            Ok(read) => read,
            Err(_) => {
                self.files[f].last_read_ok = false;
                return;
            }
        };
        let file = &mut self.files[f];
        file.last_read_ok = in_time;
        if in_time {
            file.last_good_read = Some(self.now);
        }
        file.proof_issue = Some(max_opt(file.proof_issue, Some(issued)).unwrap_or(issued));
        match read.pool {
            Ok(block) => {
                let newer = self.pool.as_ref().is_none_or(|p| {
                    (block.master_epoch, block.update_seq) > (p.master_epoch, p.update_seq)
                });
                if newer {
                    self.pool = Some(block);
                }
            }
            Err(SlotError::NeverWritten) => {}
            Err(_) => self.push(Action::Warning(Warning::StatefileCorrupt {
                statefile: StatefileIndex(f),
                host: None,
            })),
        }
        let n = self.config.hosts.len();
        let mut slots = read.slots;
        slots.resize(n, Err(SlotError::NeverWritten));
        for (p, result) in slots.into_iter().enumerate().take(n) {
            self.observe_slot(f, p, result);
        }
        // My own slot was never written (or is unreadable): start at 1.
        if self.next_sequence.is_none() {
            self.next_sequence = Some(1);
        }
    }

    /// Record what read `f` found in slot `p`; any change is a lease anchor.
    fn observe_slot(&mut self, f: usize, p: usize, result: Result<Slot, SlotError>) {
        let me = self.config.local;
        let result = result.and_then(|s| {
            if s.host_uuid == self.config.hosts[p] {
                Ok(s)
            } else {
                Err(SlotError::BadField {
                    field: "host_uuid",
                    reason: format!("{} is not host {p}'s uuid", s.host_uuid),
                })
            }
        });
        let identity: Observed = match &result {
            Ok(s) => Ok(s.sequence),
            Err(e) => Err(e.clone()),
        };
        let previous = self.files[f].observed[p].replace(identity.clone());
        let changed = previous.as_ref() != Some(&identity);
        if changed && p != me {
            self.files[f].anchor[p] = Some(self.now);
            let peer = &mut self.peers[p];
            if identity.is_ok() {
                peer.disk_changed = Some(self.now);
            }
            if let Err(e) = &identity
                && *e != SlotError::NeverWritten
                && previous.is_some()
            {
                self.push(Action::Warning(Warning::StatefileCorrupt {
                    statefile: StatefileIndex(f),
                    host: Some(HostIndex(p)),
                }));
            }
        }
        if p == me && !self.joined && matches!(&result, Err(e) if *e != SlotError::NeverWritten) {
            // Unreadable (torn?) own slot: assume an earlier member incarnation.
            self.was_member = true;
        }
        let Ok(slot) = result else {
            return;
        };
        if p == me {
            if !self.joined && !slot.starting {
                // An earlier incarnation of this host was a member.
                self.was_member = true;
            }
            // Never reuse a sequence number, even one written by an earlier
            // incarnation of this host: readers rely on every write changing
            // the slot.
            let next = slot.sequence.saturating_add(1);
            self.next_sequence = Some(self.next_sequence.map_or(next, |s| s.max(next)));
            return;
        }
        let peer = &mut self.peers[p];
        if !slot.starting && !slot.liveset.contains(me) {
            peer.saw_without_me = true;
        }
        if peer
            .disk
            .as_ref()
            .is_none_or(|d| slot.sequence >= d.sequence)
        {
            peer.disk = Some(slot);
        }
    }

    fn on_slot_written(&mut self, f: usize, request: RequestId, result: Result<(), IoFailure>) {
        let Some(file) = self.files.get_mut(f) else {
            return;
        };
        let Some(pos) = file.writes.iter().position(|&(r, _)| r == request) else {
            return;
        };
        let (_, sequence) = file.writes.swap_remove(pos);
        let Some(round) = self.rounds.iter_mut().find(|r| r.sequence == sequence) else {
            return;
        };
        let latency = self.now.saturating_since(round.issued);
        round.done += 1;
        if result.is_ok() {
            round.landed += 1;
            if latency <= self.config.timeouts.io_deadline {
                round.ok_in_time += 1;
            }
        }
        let majority = self.config.majority();
        let renew = !round.renewed && round.ok_in_time >= majority;
        if renew {
            round.renewed = true;
        }
        let persisted_liveset = (round.landed >= majority && round.member).then_some(round.liveset);
        let issued = round.issued;
        self.latency_warning(f, latency);
        if renew {
            let end = issued + self.config.timeouts.lease;
            self.write_lease_end = max_opt(self.write_lease_end, Some(end));
        }
        if let Some(ls) = persisted_liveset {
            self.persisted(ls);
        }
        self.rounds.retain(|r| r.done < r.sent);
    }

    /// A slot carrying liveset `ls` is on a majority of statefiles.
    fn persisted(&mut self, ls: HostSet) {
        if self.pending_liveset != Some(ls) {
            return;
        }
        self.pending_liveset = None;
        if self.liveset != ls {
            self.liveset = ls;
            self.push(Action::LivesetChanged { liveset: ls });
        }
    }

    fn on_pool_written(&mut self, f: usize, request: RequestId, result: Result<(), IoFailure>) {
        let Some(file) = self.files.get_mut(f) else {
            return;
        };
        let Some(pos) = file.pool_writes.iter().position(|&(r, _)| r == request) else {
            return;
        };
        let (_, issued) = file.pool_writes.swap_remove(pos);
        let latency = self.now.saturating_since(issued);
        self.latency_warning(f, latency);
        let majority = self.config.majority();
        let Some(acq) = self.acquire.as_mut() else {
            return;
        };
        if !acq.requests.contains(&request) {
            return;
        }
        acq.done += 1;
        if result.is_ok() {
            acq.ok += 1;
        }
        if acq.ok >= majority {
            let block = acq.block.clone();
            self.acquire = None;
            let me_master = block.master == Some(self.config.hosts[self.config.local]);
            self.master_epoch = self.master_epoch.max(block.master_epoch);
            self.pool = Some(block);
            if me_master && !self.master && self.is_member() && self.requesting() {
                self.master = true;
                self.push(Action::MasterChanged {
                    is_master: true,
                    epoch: self.master_epoch,
                });
            }
        } else if acq.done == acq.requests.len() {
            self.acquire = None;
        }
    }

    fn on_control(&mut self, request: ControlRequest) {
        let reply = match request {
            ControlRequest::ProposeMaster(true) => {
                self.refuse_master = false;
                self.want_master = true;
                Ok(())
            }
            ControlRequest::ProposeMaster(false) => {
                self.refuse_master = true;
                self.want_master = false;
                Ok(())
            }
            ControlRequest::DisarmFencing => {
                self.armed = false;
                if self.watchdog_armed {
                    self.watchdog_armed = false;
                    self.push(Action::DisarmWatchdog);
                }
                self.timers.stop(Timer::Kick);
                self.timers.stop(Timer::LeaseEnd);
                Ok(())
            }
            ControlRequest::SetExcluded => {
                self.excluded = true;
                Ok(())
            }
            ControlRequest::ClearExcluded => {
                self.excluded = false;
                Ok(())
            }
            ControlRequest::SetPoolState(state) => self.set_pool_state(state),
            ControlRequest::Stop => {
                if self.joined && self.armed && !self.excluded {
                    Err(ControlError::NotExcluded)
                } else {
                    self.stop();
                    return;
                }
            }
        };
        self.push(Action::Reply(reply));
    }

    fn stop(&mut self) {
        if self.watchdog_armed {
            self.watchdog_armed = false;
            self.push(Action::DisarmWatchdog);
        }
        if self.master {
            self.master = false;
            self.push(Action::MasterChanged {
                is_master: false,
                epoch: self.master_epoch,
            });
        }
        self.stopped = true;
        self.timers.stop_all();
        self.push(Action::Reply(Ok(())));
        self.push(Action::Stopped);
    }

    fn set_pool_state(&mut self, state: PoolState) -> Result<(), ControlError> {
        if !self.master {
            return Err(ControlError::NotMaster);
        }
        let Some(pool) = self.pool.clone() else {
            return Err(ControlError::NotMaster);
        };
        if self.acquire.is_some() {
            return Err(ControlError::Busy);
        }
        let block = PoolBlock {
            state,
            update_seq: pool.update_seq.saturating_add(1),
            ..pool
        };
        self.write_pool(block);
        Ok(())
    }

    // ----- the step after every input ----------------------------------

    fn step(&mut self) {
        let now = self.now;
        if self.lease_check() {
            return;
        }
        let access = self.compute_access();
        if self.access && !access {
            self.push(Action::Warning(Warning::StatefileLost));
        }
        self.access = access;
        self.net_rounds();
        if self.joined {
            self.evaluate_member();
        } else {
            self.evaluate_joining();
        }
        if self.fenced {
            return;
        }
        if self.joined {
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
        let Some(end) = self.lease_end() else {
            return false;
        };
        if self.now < end {
            return false;
        }
        if self.joined || self.join_requested {
            if self.armed {
                self.fence(FenceReason::LeaseExpired);
                return true;
            }
        } else {
            // A starting host without a join request has nothing to protect:
            // it simply starts its lease again with its next timely write.
            self.write_lease_end = None;
            self.net_lease_end = None;
        }
        false
    }

    fn fence(&mut self, reason: FenceReason) {
        assert!(self.armed, "fencing while disarmed");
        self.fenced = true;
        self.master = false;
        self.phase = Phase::Fencing;
        self.actions.clear();
        self.timers.stop_all();
        self.push(Action::Fence { reason });
    }

    /// Statefile access: a majority of statefiles whose last read succeeded
    /// in time, recently, with no read or write stuck past the deadline.
    fn compute_access(&self) -> bool {
        let t = &self.config.timeouts;
        let stale = t.io_deadline + t.statefile_interval * 2;
        let healthy = self
            .files
            .iter()
            .filter(|file| {
                let read_stuck = file
                    .read
                    .is_some_and(|(_, at)| self.now.saturating_since(at) > t.io_deadline);
                let write_stuck = file.writes.iter().any(|&(_, seq)| {
                    self.rounds.iter().any(|r| {
                        r.sequence == seq && self.now.saturating_since(r.issued) > t.io_deadline
                    })
                });
                let recent = file
                    .last_good_read
                    .is_some_and(|at| self.now.saturating_since(at) <= stale);
                file.last_read_ok && recent && !read_stuck && !write_stuck
            })
            .count();
        healthy >= self.config.majority()
    }

    /// The network lease of statefile-lost mode (see the module doc of
    /// `docs/fault-handling.md`, "Statefile lost"): rounds advance when every
    /// other member reports, over the network, no statefile access and a
    /// round at least ours; completing round R renews the lease from the time
    /// this host entered round R - 1 (if it entered R by completing R - 1),
    /// which causally precedes every confirmation used.
    fn net_rounds(&mut self) {
        if !self.joined || self.access {
            return;
        }
        let me = self.config.local;
        // Every host some member counts in must confirm: a host that another
        // member admitted (and that may still reach the statefile) has to
        // take part, or it could remove this host while the network renews it.
        let mut required = self.effective_liveset();
        for p in self.effective_liveset().iter().filter(|&p| p != me) {
            if let Some(r) = self.row(p).filter(|r| !r.starting) {
                required = required.union(r.liveset);
            }
        }
        let peers = required.difference(HostSet::single(me));
        let heard = self.heard_view();
        let mut highest = self.net_round;
        // Only a survivor renews (all members connected, SR2).
        let mut all_confirm = self.survivors.contains(me);
        for p in peers.iter() {
            let lost_round = self.peers[p]
                .net
                .as_ref()
                .filter(|s| !s.statefile_access && !s.starting)
                .map(|s| s.net_round);
            match lost_round {
                Some(r) if heard.contains(p) => {
                    highest = highest.max(r);
                    if r < self.net_round {
                        all_confirm = false;
                    }
                }
                _ => all_confirm = false,
            }
        }
        if all_confirm {
            // Completing round R renews from t(R-1), when this host entered
            // round R - 1, only if it entered R by completing R - 1: a round
            // entered by a jump, or round 0 (the state before any lost-mode
            // exchange), renews nothing.
            if let Some((r, at)) = self.prev_round
                && r + 1 == self.net_round
            {
                let end = at + self.config.timeouts.lease;
                self.net_lease_end = max_opt(self.net_lease_end, Some(end));
            }
            self.enter_round(self.net_round + 1);
        } else if highest >= self.net_round + 2 {
            // Far behind (a host that rebooted, or whose peers kept rounds
            // from an earlier episode): catch up at once. Never jump by one:
            // a peer one round ahead only completed the round this host is
            // in, and jumping would abandon that round just before it
            // completes here too (with 64 hosts and 2% loss nearly every
            // host kept jumping and never completed a round itself).
            self.enter_round(highest);
        }
    }

    fn enter_round(&mut self, round: u64) {
        assert!(round > self.net_round);
        self.prev_round = Some((self.net_round, self.net_round_entered));
        self.net_round = round;
        self.net_round_entered = self.now;
        // Tell the peers soon rather than at the next interval (at most four
        // heartbeats per interval, so rounds cannot flood the network).
        let t = self.config.timeouts;
        let soon = self
            .last_heartbeat_at
            .map_or(self.now, |at| (at + t.heartbeat_interval / 4).max(self.now));
        if self.timers.get(Timer::Heartbeat).is_none_or(|at| soon < at) {
            self.timers.set(Timer::Heartbeat, soon);
        }
    }

    // ----- views ---------------------------------------------------------

    /// Hosts heard on the network within the heartbeat timeout (and me).
    fn heard_view(&self) -> HostSet {
        let timeout = self.config.timeouts.heartbeat_timeout;
        let mut set: HostSet = (0..self.config.hosts.len())
            .filter(|&p| {
                self.peers[p]
                    .last_heard
                    .is_some_and(|at| self.now.saturating_since(at) < timeout)
            })
            .collect();
        set.insert(self.config.local);
        set
    }

    /// Hosts whose slot changed on the statefile within the statefile
    /// timeout (and me, when I have access).
    fn seen_view(&self) -> HostSet {
        let timeout = self.config.timeouts.statefile_timeout;
        let mut set: HostSet = (0..self.config.hosts.len())
            .filter(|&p| {
                self.peers[p]
                    .disk_changed
                    .is_some_and(|at| self.now.saturating_since(at) < timeout)
            })
            .collect();
        if self.access {
            set.insert(self.config.local);
        } else {
            set.remove(self.config.local);
        }
        set
    }

    /// The freshest state of peer `p`: its heartbeat if heard recently, else
    /// its heartbeat or its slot, whichever carries the higher sequence (a
    /// heartbeat wins a tie: it is the newer state of the same write). Never
    /// called for this host.
    fn row(&self, p: usize) -> Option<&Slot> {
        assert_ne!(p, self.config.local, "row() of this host");
        let peer = &self.peers[p];
        // A recent heartbeat is the sender's current state; its slot on disk
        // may be a late write of an earlier incarnation.
        let recent = peer.last_heard.is_some_and(|at| {
            self.now.saturating_since(at) < self.config.timeouts.heartbeat_timeout
        });
        match (&peer.net, &peer.disk) {
            (Some(n), Some(_)) if recent => Some(n),
            (Some(n), Some(d)) => Some(if n.sequence >= d.sequence { n } else { d }),
            (Some(n), None) => Some(n),
            (None, Some(d)) => Some(d),
            (None, None) => None,
        }
    }

    fn effective_liveset(&self) -> HostSet {
        self.pending_liveset.unwrap_or(self.liveset)
    }

    /// The highest master epoch this node knows: the pool block's or its
    /// own lock's.
    fn known_epoch(&self) -> u64 {
        self.pool
            .as_ref()
            .map_or(0, |p| p.master_epoch)
            .max(self.master_epoch)
    }

    fn pool_master_index(&self) -> Option<usize> {
        let uuid = self.pool.as_ref()?.master?;
        self.config.hosts.iter().position(|&h| h == uuid)
    }

    /// The view matrix over the effective liveset.
    fn matrix(&self) -> ViewMatrix {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let mut m = ViewMatrix::new(liveset);
        let heard = self.heard_view();
        let window = self.config.timeouts.claim_window_writes();
        for p in liveset.iter() {
            if p == me {
                m.heard[p] = heard;
                if self.access {
                    m.access.insert(p);
                }
                if self.excluded {
                    m.excluded.insert(p);
                }
                continue;
            }
            let Some(row) = self.row(p) else {
                continue;
            };
            // A row of a peer I no longer hear that still claims me may be
            // from before the fault: it gives its author no edge (see
            // `freshness`).
            let last_heartbeat = self.peers[p].net.as_ref().map(|n| n.sequence);
            if heard.contains(p) || freshness::row_is_current(me, row, last_heartbeat, window) {
                m.heard[p] = row.heard;
            }
            // A starting host in the liveset is a candidate only while it
            // asks to join; one that rebooted without asking is a loser.
            let joining = !row.starting || row.proposed.contains(p);
            if row.statefile_access && joining {
                m.access.insert(p);
            }
            if row.excluded {
                m.excluded.insert(p);
            }
        }
        m.master = self.pool_master_index().filter(|&p| liveset.contains(p));
        m
    }

    /// One-way and silent-while-disarmed warnings (`core::peer_alerts`).
    fn peer_alerts(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let heard = self.heard_view();
        let seen = self.seen_view();
        let sights: Vec<(usize, PeerSight)> = (0..self.config.hosts.len())
            .filter(|&p| p != me)
            .map(|p| {
                let hb = self.peers[p]
                    .net
                    .as_ref()
                    .filter(|r| heard.contains(p) && !r.starting);
                let sight = PeerSight {
                    member: liveset.contains(p),
                    heard: heard.contains(p),
                    seen: seen.contains(p),
                    disarmed: self.row(p).is_some_and(|r| r.fencing_disarmed),
                    hears_me: hb.map(|r| r.heard.contains(me)),
                };
                (p, sight)
            })
            .collect();
        let t = self.config.timeouts;
        let warnings =
            self.alerts
                .update(self.now, t.heartbeat_timeout, t.base, sights.into_iter());
        for w in warnings {
            self.push(Action::Warning(w));
        }
    }

    // ----- member decisions ----------------------------------------------

    fn evaluate_member(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let matrix = self.matrix();
        let w = survival::survivors(&matrix);
        if w != self.survivors {
            if self.survivors == liveset && w != liveset {
                self.fault_round += 1;
            }
            self.survivors = w;
            self.survivors_since = self.now;
        }
        if self.armed && self.fence_requested() {
            return;
        }
        self.proposed = w;
        if w == liveset {
            self.phase = Phase::Normal;
            self.fence_request = false;
            self.admit_joiners();
            return;
        }
        if !w.contains(me) {
            // I lost (by my own views): stop renewing, wait to be told or
            // for the lease to run out. If my slot still claims a peer I no
            // longer hear, publish my view now, before going quiet.
            self.phase = Phase::Stabilising;
            self.fence_request = false;
            if self.must_publish() {
                self.timers.set(Timer::SlotWrite, self.now);
            }
            return;
        }
        let settled =
            self.now.saturating_since(self.survivors_since) >= self.config.timeouts.settle;
        if settled && self.agreed(w) {
            self.phase = Phase::Deciding;
            self.fence_request = true;
        } else {
            self.phase = Phase::Agreeing;
            self.fence_request = false;
        }
        if self.armed && self.pending_liveset.is_none() {
            let removable: HostSet = liveset
                .difference(w)
                .iter()
                .filter(|&x| self.proven_fenced(x))
                .collect();
            if !removable.is_empty() {
                self.set_pending(liveset.difference(removable));
            }
        }
    }

    /// Every non-starting member of `w` proposes exactly `w`.
    fn agreed(&self, w: HostSet) -> bool {
        let me = self.config.local;
        w.iter().filter(|&p| p != me).all(|p| match self.row(p) {
            Some(row) => row.starting || row.proposed == w,
            None => false,
        })
    }

    /// A member survivor whose agreed liveset excludes me asked me to fence,
    /// and my own evidence corroborates it (`core::fence_request`: its slot
    /// on the statefile carries the request and I am not in my own survivor
    /// set); an uncorroborated request is counted and reported, not obeyed.
    /// Not obeyed for `settle` after joining: a request seen then may concern
    /// an earlier incarnation of this host (a courtesy only: a real loser
    /// still stops renewing and its lease runs out).
    fn fence_requested(&mut self) -> bool {
        let me = self.config.local;
        let just_joined = self
            .joined_at
            .is_some_and(|at| self.now.saturating_since(at) < self.config.timeouts.settle);
        let verdict =
            fence_request::judge(me, self.effective_liveset(), self.survivors, |q| PeerRows {
                row: self.row(q),
                disk: self.peers[q].disk.as_ref(),
            });
        match verdict {
            Verdict::None | Verdict::Fence { .. } if just_joined => false,
            Verdict::None => false,
            Verdict::Fence { by } => {
                self.fence(FenceReason::FenceRequested { by: HostIndex(by) });
                true
            }
            Verdict::Refused { by, why } => {
                let sequence = self.row(by).map_or(0, |r| r.sequence);
                let every = self.config.timeouts.base;
                if self
                    .fence_refusals
                    .record(self.now, by, sequence, why, every)
                {
                    self.push(Action::Warning(Warning::FenceRequestRefused {
                        by: HostIndex(by),
                        why,
                    }));
                }
                false
            }
        }
    }

    /// Has host `x` certainly fenced? On a majority of statefiles, a read
    /// issued at least `peers_may_act` after its slot last changed on that
    /// statefile found it unchanged. (A renewal needs a majority too, and two
    /// majorities share a statefile where the argument holds.)
    fn proven_fenced(&self, x: usize) -> bool {
        if self.row(x).is_some_and(|r| r.fencing_disarmed) {
            return false;
        }
        let proofs = (0..self.files.len())
            .filter(|&f| {
                let need = self.proof_time(x, f);
                let issued = self.files[f].proof_issue;
                matches!((need, issued), (Some(need), Some(at)) if at >= need)
            })
            .count();
        proofs >= self.config.majority()
    }

    /// When a read of statefile `f` must be issued to prove `x` fenced there.
    fn proof_time(&self, x: usize, f: usize) -> Option<Instant> {
        let anchor = max_opt(self.files[f].anchor[x], self.lost_heartbeat_sent)?;
        Some(anchor + self.config.timeouts.peers_may_act)
    }

    fn set_pending(&mut self, ls: HostSet) {
        assert!(ls.contains(self.config.local), "a liveset without me");
        // Adding a host is a lease anchor: its current incarnation's first
        // write was issued before its join request, which came before this
        // addition, so every lease it holds chains from a write issued before
        // now. (Its first write had no lease to chain from.)
        let me = self.config.local;
        let added = ls.difference(self.effective_liveset());
        let now = self.now;
        for x in added.iter().filter(|&x| x != me) {
            for file in &mut self.files {
                file.anchor[x] = Some(file.anchor[x].map_or(now, |a| a.max(now)));
            }
        }
        self.pending_liveset = Some(ls);
        // Persist at once rather than at the next interval.
        self.timers.set(Timer::SlotWrite, self.now);
    }

    /// Add hosts that ask to join, or that other members admitted, and that
    /// I see fully (growing is always safe: only removal needs proof).
    fn admit_joiners(&mut self) {
        if self.pending_liveset.is_some() || !self.access {
            return;
        }
        let me = self.config.local;
        let liveset = self.liveset;
        let heard = self.heard_view();
        let seen = self.seen_view();
        let joiners: HostSet = (0..self.config.hosts.len())
            .filter(|&j| !liveset.contains(j) && heard.contains(j) && seen.contains(j))
            .filter(|&j| {
                // A host asking to join, or a member that another member
                // admitted and that counts me in (livesets converge). Judged
                // from its heartbeat only: a slot on disk may be a late write
                // of an earlier incarnation.
                self.peers[j].net.as_ref().is_some_and(|r| {
                    let asks = r.starting && r.proposed.contains(j);
                    let admitted = !r.starting && r.liveset.contains(me);
                    (asks || admitted) && r.heard.contains(me) && r.statefile_access && !r.excluded
                })
            })
            .collect();
        if !joiners.is_empty() {
            self.set_pending(liveset.union(joiners));
        }
    }

    // ----- joining -------------------------------------------------------

    /// Live members as seen from a starting host.
    fn live_members(&self) -> HostSet {
        let heard = self.heard_view();
        let seen = self.seen_view();
        (0..self.config.hosts.len())
            .filter(|&p| p != self.config.local && (heard.contains(p) || seen.contains(p)))
            .filter(|&p| self.row(p).is_some_and(|r| !r.starting))
            .collect()
    }

    fn evaluate_joining(&mut self) {
        let me = self.config.local;
        self.phase = Phase::Normal;
        if self.pool.is_none() {
            return;
        }
        if !self.access || self.next_sequence.is_none() {
            return;
        }
        // Joining needs a lease with room for the watchdog.
        let t = self.config.timeouts;
        let lease_ok = self
            .lease_end()
            .is_some_and(|end| end >= self.now + t.watchdog_min + t.kick_interval * 2);
        let members = self.live_members();
        if members.is_empty() {
            // Announce the request at once: a host that forms first counts
            // this one in and must see it as a candidate, not as a loser.
            self.join_requested |= lease_ok && !self.excluded;
            self.try_form();
            return;
        }
        let clean = members
            .iter()
            .all(|m| !self.was_member || self.peers[m].saw_without_me);
        self.join_requested |= clean && lease_ok && !self.excluded;
        if !self.join_requested {
            return;
        }
        let included = members
            .iter()
            .all(|m| self.row(m).is_some_and(|r| r.liveset.contains(me)));
        // After the request, inclusion means admission (the request was only
        // sent once every member had been seen without this host).
        if included && lease_ok {
            let base = members
                .lowest()
                .and_then(|m| self.row(m))
                .map(|r| r.liveset);
            let ls = base.unwrap_or(HostSet::EMPTY).union(HostSet::single(me));
            self.become_member(ls);
        }
    }

    /// First liveset of a pool: every non-excluded host is starting, heard,
    /// seen and hears me; then all of them form the liveset together.
    fn try_form(&mut self) {
        let me = self.config.local;
        let t = self.config.timeouts;
        let lease_ok = self
            .lease_end()
            .is_some_and(|end| end >= self.now + t.watchdog_min + t.kick_interval * 2);
        if !lease_ok || self.excluded {
            return;
        }
        let heard = self.heard_view();
        let seen = self.seen_view();
        let mut all = HostSet::single(me);
        for p in 0..self.config.hosts.len() {
            if p == me {
                continue;
            }
            let row = self.row(p);
            if row.as_ref().is_some_and(|r| r.excluded) {
                continue;
            }
            // Its join request proves it holds a lease from a write issued
            // already (see `set_pending`).
            let ready = row.as_ref().is_some_and(|r| {
                r.starting
                    && r.proposed.contains(p)
                    && r.statefile_access
                    && r.heard.contains(me)
                    && !r.excluded
            });
            if !(ready && heard.contains(p) && seen.contains(p)) {
                return;
            }
            all.insert(p);
        }
        self.join_requested = true;
        self.become_member(all);
    }

    fn become_member(&mut self, ls: HostSet) {
        assert!(!self.joined);
        self.joined = true;
        self.joined_at = Some(self.now);
        self.join_requested = true;
        self.survivors = ls;
        self.survivors_since = self.now;
        self.set_pending(ls);
        if self.armed
            && !self.watchdog_armed
            && let Some(end) = self.lease_end()
        {
            self.watchdog_armed = true;
            self.push(Action::ArmWatchdog { until: end });
            self.timers
                .set(Timer::Kick, self.now + self.config.timeouts.kick_interval);
        }
    }

    // ----- master lock ---------------------------------------------------

    fn master_lock(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        if !self.joined || !self.is_member() {
            self.grant = None;
            self.request_started = None;
            return;
        }
        let master_index = self.pool_master_index().filter(|&p| liveset.contains(p));
        let requesting = self.requesting();
        if self.master && !requesting {
            self.master = false;
            self.push(Action::MasterChanged {
                is_master: false,
                epoch: self.master_epoch,
            });
        }
        if let Some(pool) = &self.pool
            && self.master
            && pool.master != Some(self.config.hosts[me])
            && pool.master_epoch > self.master_epoch
        {
            // Someone took the lock with a newer epoch: only possible after
            // this host was removed, which means it should have fenced.
            self.master = false;
            self.push(Action::MasterChanged {
                is_master: false,
                epoch: pool.master_epoch,
            });
        }
        if !requesting {
            self.request_started = None;
        } else if self.request_started.is_none() {
            self.request_started = Some(self.now);
        }
        let requesters = self.requesters(requesting);
        self.grant = master_lock::grant(liveset, requesters, master_index, self.grant);
        if !requesting || self.master || self.acquire.is_some() || !self.access {
            return;
        }
        // A grant counts only from a heartbeat heard at least a heartbeat
        // timeout after this request began, that knows of the request: so it
        // was sent for this request, not for an earlier one of this host or
        // of an earlier incarnation (heartbeats from one sender arrive in
        // order, within the timeout, or never).
        let fresh_after = self
            .request_started
            .map(|at| at + self.config.timeouts.heartbeat_timeout);
        let grants: Vec<Option<usize>> = (0..self.config.hosts.len())
            .map(|p| {
                if p == me {
                    return self.grant;
                }
                let peer = &self.peers[p];
                let fresh = match (peer.last_heard, fresh_after) {
                    (Some(heard), Some(after)) => heard >= after,
                    _ => false,
                };
                peer.net
                    .as_ref()
                    .filter(|r| fresh && r.lock_request.contains(me))
                    .and_then(|r| r.lock_grant.lowest())
            })
            .collect();
        if !master_lock::holds(me, liveset, &grants) {
            return;
        }
        let Some(pool) = self.pool.clone() else {
            return;
        };
        let known = liveset
            .iter()
            .filter(|&p| p != me)
            .filter_map(|p| self.row(p).map(|r| r.master_epoch))
            .chain([pool.master_epoch, self.master_epoch]);
        let epoch = master_lock::next_epoch(known);
        let state = if pool.state == PoolState::Init {
            PoolState::Active
        } else {
            pool.state
        };
        let block = PoolBlock {
            state,
            master: Some(self.config.hosts[me]),
            master_epoch: epoch,
            update_seq: pool.update_seq.saturating_add(1),
        };
        self.write_pool(block);
    }

    /// Liveset members asking for the lock (their own bit), and me if I ask.
    fn requesters(&self, requesting: bool) -> HostSet {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let mut set: HostSet = liveset
            .iter()
            .filter(|&p| p != me)
            .filter(|&p| self.row(p).is_some_and(|r| r.lock_request.contains(p)))
            .collect();
        if requesting {
            set.insert(me);
        }
        set
    }

    /// Does this host ask for the master lock? When told to, or, as a
    /// candidate, while no live host holds it (or it holds it itself).
    fn requesting(&self) -> bool {
        if !self.joined || self.refuse_master {
            return false;
        }
        let me = self.config.local;
        let liveset = self.effective_liveset();
        // The pool block's master counts only while it is live and still
        // asks for the lock (a master that gave it up frees it for others).
        let master_index = self.pool_master_index().filter(|&p| {
            liveset.contains(p)
                && (p == me || self.row(p).is_some_and(|r| r.lock_request.contains(p)))
        });
        let asks = self.want_master
            || (self.config.master_candidate && master_index.is_none_or(|m| m == me));
        if !asks {
            return false;
        }
        if self.master || self.acquire.is_some() {
            return true;
        }
        // Lowest index wins contention: defer to a lower-index requester
        // (never once acquiring, so nobody withdraws a grant it may be using).
        !liveset.iter().filter(|&p| p < me).any(|p| {
            self.row(p)
                .is_some_and(|r| !r.starting && r.lock_request.contains(p))
        })
    }

    fn write_pool(&mut self, block: PoolBlock) {
        let deadline = self.now + self.config.timeouts.io_deadline;
        let mut requests = Vec::new();
        for f in 0..self.config.statefiles {
            let request = self.request_id();
            self.files[f].pool_writes.push((request, self.now));
            requests.push(request);
            self.push(Action::WritePool {
                statefile: StatefileIndex(f),
                request,
                block: block.clone(),
                deadline,
            });
        }
        self.acquire = Some(Acquire {
            block,
            requests,
            ok: 0,
            done: 0,
        });
    }

    // ----- periodic I/O --------------------------------------------------

    fn send_heartbeat(&mut self) {
        let t = self.config.timeouts;
        // Up to 10% early, so that hosts started together do not send in lockstep.
        let jitter_ns = self
            .rng
            .gen_range(0..=t.heartbeat_interval.as_nanos() as u64 / 10);
        let next = self.now + (t.heartbeat_interval - Duration::from_nanos(jitter_ns));
        self.timers.set(Timer::Heartbeat, next);
        self.last_heartbeat_at = Some(self.now);
        let slot = self.current_slot();
        if self.joined && !slot.statefile_access {
            self.lost_heartbeat_sent = Some(self.now);
        }
        self.push(Action::SendHeartbeat { slot });
        self.heartbeat_warnings();
    }

    /// May this host write its slot now?
    fn may_write(&self) -> bool {
        let Some(_) = self.next_sequence else {
            return false;
        };
        let lease_valid = self.lease_end().is_some_and(|end| self.now < end);
        if self.joined {
            // A member writes only while its lease holds and it is in the
            // survivor set it computes itself: a loser stops renewing.
            let standing = self.survivors.contains(self.config.local);
            // Starting writes still in flight may land after member writes:
            // harmless, every landing is a change for the readers' anchors.
            // A loser still publishes a view that lost something (it does not
            // renew its lease with it: see `issue_writes`).
            return lease_valid && (standing || self.must_publish());
        }
        if self.join_requested && !lease_valid {
            return false;
        }
        // A rebooted host still in some member's liveset stays silent until
        // the members removed it, so its old lease can be proven over.
        !self.silent()
    }

    /// A member that lost must still write: its slot claims more than it
    /// knows (see `freshness::must_publish`).
    /// Also once more when every earlier write has completed, if the last
    /// one overlapped others: with slow storage an older write (claiming
    /// more) may have landed after it, and the slot must end on the
    /// current view.
    fn must_publish(&self) -> bool {
        self.joined
            && (freshness::must_publish(self.written_view, self.own_view())
                || (self.write_overlapped && self.rounds.is_empty()))
    }

    fn own_view(&self) -> OwnView {
        OwnView {
            heard: self.heard_view(),
            access: self.access,
        }
    }

    fn silent(&self) -> bool {
        let me = self.config.local;
        if self.join_requested {
            // Members may include this host now because they admitted it.
            return false;
        }
        // A host that was never a member (its own slot never showed a member
        // write) has no old lease to prove over: members counting it in did
        // so at formation or admission.
        self.was_member
            && self.live_members().iter().any(|m| {
                !self.peers[m].saw_without_me && self.row(m).is_some_and(|r| r.liveset.contains(me))
            })
    }

    fn issue_writes(&mut self) {
        if !self.may_write() {
            return;
        }
        let cap = self.config.timeouts.max_outstanding_writes;
        let targets: Vec<usize> = (0..self.config.statefiles)
            .filter(|&f| self.files[f].writes.len() < cap)
            .collect();
        if targets.is_empty() {
            return;
        }
        let Some(sequence) = self.next_sequence else {
            return;
        };
        self.next_sequence = Some(sequence + 1);
        self.last_sequence = sequence;
        let mut slot = self.current_slot();
        slot.sequence = sequence;
        // A member outside its own survivor set only publishes its view: the
        // write must not renew its lease (a loser stops renewing at once).
        let renews = !self.joined || self.survivors.contains(self.config.local);
        self.written_view = Some(OwnView {
            heard: slot.heard,
            access: slot.statefile_access,
        });
        self.write_overlapped = !self.rounds.is_empty();
        let deadline = self.now + self.config.timeouts.io_deadline;
        for &f in &targets {
            let request = self.request_id();
            self.files[f].writes.push((request, sequence));
            self.push(Action::WriteSlot {
                statefile: StatefileIndex(f),
                request,
                slot: slot.clone(),
                deadline,
            });
        }
        self.rounds.push_back(WriteRound {
            sequence,
            issued: self.now,
            sent: targets.len(),
            ok_in_time: 0,
            landed: 0,
            done: 0,
            renewed: !renews,
            member: self.joined,
            liveset: slot.liveset,
        });
        let cap_rounds = cap * self.config.statefiles;
        assert!(self.rounds.len() <= cap_rounds, "write rounds unbounded");
    }

    fn issue_reads(&mut self) {
        let t = self.config.timeouts;
        let mut next = self.now + t.statefile_interval;
        for f in 0..self.config.statefiles {
            if self.files[f].read.is_some() {
                continue;
            }
            let request = self.request_id();
            self.files[f].read = Some((request, self.now));
            self.push(Action::ReadStatefile {
                statefile: StatefileIndex(f),
                request,
                deadline: self.now + t.io_deadline,
            });
        }
        // A read exactly when a removal becomes provable saves an interval.
        if self.joined {
            let liveset = self.effective_liveset();
            for x in liveset.difference(self.survivors).iter() {
                for f in 0..self.files.len() {
                    if let Some(at) = self.proof_time(x, f)
                        && at > self.now
                    {
                        next = next.min(at);
                    }
                }
            }
        }
        self.timers.set(Timer::StatefileRead, next);
    }

    fn kick(&mut self) {
        if !self.watchdog_armed || !self.timers.due(Timer::Kick, self.now) {
            return;
        }
        let t = self.config.timeouts;
        self.timers.set(Timer::Kick, self.now + t.kick_interval);
        // The watchdog fires at the lease end, never later: a host frozen
        // after this kick is reset by then. With less than `watchdog_min`
        // left the kick is skipped and the previous, earlier deadline stands.
        if let Some(end) = self.lease_end()
            && self.now + t.watchdog_min <= end
        {
            self.push(Action::KickWatchdog { until: end });
        }
    }

    fn set_timers(&mut self) {
        let now = self.now;
        match self.lease_end() {
            Some(end) if self.armed && (self.joined || self.join_requested) && end > now => {
                self.timers.set(Timer::LeaseEnd, end)
            }
            _ => self.timers.stop(Timer::LeaseEnd),
        }
        // Wake when an outstanding I/O crosses its deadline (access may drop)
        // and when the survivor set has settled.
        let t = self.config.timeouts;
        let mut wake: Option<Instant> = None;
        for file in &self.files {
            if let Some((_, at)) = file.read {
                wake = min_future(wake, at + t.io_deadline + Duration::from_nanos(1), now);
            }
        }
        for r in &self.rounds {
            wake = min_future(
                wake,
                r.issued + t.io_deadline + Duration::from_nanos(1),
                now,
            );
        }
        if self.joined && self.survivors != self.effective_liveset() {
            wake = min_future(wake, self.survivors_since + t.settle, now);
        }
        match wake {
            Some(at) => self.timers.set(Timer::Evaluate, at),
            None => self.timers.stop(Timer::Evaluate),
        }
        if !self.watchdog_armed {
            self.timers.stop(Timer::Kick);
        }
    }

    // ----- helpers --------------------------------------------------------

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn latency_warning(&mut self, f: usize, latency: Duration) {
        let t = self.config.timeouts;
        if latency <= t.latency_warning {
            return;
        }
        let file = &mut self.files[f];
        if file
            .warned_at
            .is_some_and(|at| self.now.saturating_since(at) < t.base)
        {
            return;
        }
        file.warned_at = Some(self.now);
        self.push(Action::Warning(Warning::StatefileLatency {
            statefile: StatefileIndex(f),
            latency,
        }));
    }

    fn heartbeat_warnings(&mut self) {
        let t = self.config.timeouts;
        let threshold = t.heartbeat_timeout / 2;
        let me = self.config.local;
        for p in self.effective_liveset().iter().filter(|&p| p != me) {
            let Some(at) = self.peers[p].last_heard else {
                continue;
            };
            let silence = self.now.saturating_since(at);
            let recently = self.peers[p]
                .warned_at
                .is_some_and(|w| self.now.saturating_since(w) < t.base);
            if silence > threshold && silence < t.heartbeat_timeout && !recently {
                self.peers[p].warned_at = Some(self.now);
                self.push(Action::Warning(Warning::HeartbeatLatency {
                    host: HostIndex(p),
                    silence,
                }));
            }
        }
    }

    fn status_text(&self) -> String {
        let state = if self.fenced {
            "fenced"
        } else if self.stopped {
            "stopped"
        } else if !self.joined {
            "starting"
        } else if !self.access {
            "statefile lost"
        } else {
            match self.phase {
                Phase::Normal => "online",
                Phase::Stabilising => "losing",
                Phase::Agreeing => "agreeing",
                Phase::Deciding => "waiting for losers to fence",
                Phase::Fencing => "fencing",
            }
        };
        format!("{state}; liveset {}", self.effective_liveset())
    }

    fn current_slot(&self) -> Slot {
        let me = self.config.local;
        let (liveset, proposed) = if self.joined {
            (self.effective_liveset(), self.proposed)
        } else if self.join_requested {
            (HostSet::EMPTY, HostSet::single(me))
        } else {
            (HostSet::EMPTY, HostSet::EMPTY)
        };
        // The requests this host knows of; its own bit is its own request.
        let requests = if self.joined {
            self.requesters(self.requesting())
        } else {
            HostSet::EMPTY
        };
        let known_epoch = self.known_epoch();
        let mut status = self.status_text();
        status.truncate(sr_heartbeat::statefile::slot::STATUS_TEXT_MAX);
        Slot {
            host_uuid: self.config.hosts[me],
            host_index: me as u16,
            // The newest sequence this incarnation knows for its slot, so
            // that peers rank this state at least as fresh as the slot.
            sequence: self
                .next_sequence
                .map_or(0, |s| s.saturating_sub(1))
                .max(self.last_sequence),
            heard: self.heard_view(),
            seen: self.seen_view(),
            liveset,
            proposed,
            lock_request: requests,
            lock_grant: self.grant.map_or(HostSet::EMPTY, HostSet::single),
            master_epoch: known_epoch,
            fault_round: self.fault_round,
            phase: self.phase,
            excluded: self.excluded,
            starting: !self.joined,
            fence_request: self.fence_request,
            statefile_access: self.access,
            fencing_disarmed: !self.armed,
            net_round: self.net_round,
            status,
            diag_time_ms: 0,
        }
    }

    fn push(&mut self, action: Action) {
        assert!(
            self.actions.len() < ACTION_QUEUE_MAX,
            "action queue overflow"
        );
        self.actions.push_back(action);
    }

    /// Checked at the end of every `handle`, in release too.
    fn check_invariants(&self) {
        if self.fenced {
            assert!(
                self.actions
                    .iter()
                    .all(|a| matches!(a, Action::Fence { .. })),
                "fenced with actions queued"
            );
            assert!(!self.master, "a fenced master");
        }
        if self.master {
            assert!(self.is_member(), "master outside the liveset");
        }
        if self.joined && self.armed && !self.fenced && !self.stopped {
            let end = self.lease_end();
            assert!(
                end.is_some_and(|e| e > self.now),
                "an armed member without a valid lease"
            );
        }
        if let Some(ls) = self.pending_liveset {
            assert!(ls.contains(self.config.local), "pending liveset without me");
        }
        if !self.liveset.is_empty() {
            assert!(self.liveset.contains(self.config.local) || !self.joined);
        }
        if let Some(next) = self.poll_timeout() {
            assert!(next > self.now, "a timer is already due after handle");
        }
    }
}

fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn min_future(current: Option<Instant>, at: Instant, now: Instant) -> Option<Instant> {
    if at <= now {
        return current;
    }
    Some(current.map_or(at, |c| c.min(at)))
}
