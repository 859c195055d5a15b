//! The node: one host's fault-handling state machine.

use std::collections::VecDeque;

use sr_heartbeat::statefile::{HostSet, MAX_HOSTS_LIMIT, Phase, Slot};
use uuid::Uuid;

use super::action::Action;
use super::input::Input;
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
    #[error("statefiles: {0} configured, expected 1 to 8")]
    StatefileCount(usize),
    #[error("pool_generation: the nil UUID is not a generation")]
    NilGeneration,
}

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
        if self.statefiles == 0 || self.statefiles > 8 {
            return Err(ConfigError::StatefileCount(self.statefiles));
        }
        if self.pool_generation.is_nil() {
            return Err(ConfigError::NilGeneration);
        }
        self.timeouts.check();
        Ok(())
    }
}

/// What a node reports about one host (for the control socket's query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostStatus {
    pub index: usize,
    pub uuid: Uuid,
    pub live: bool,
    pub master: bool,
    pub heard: bool,
    pub seen: bool,
    pub statefile_access: bool,
    pub excluded: bool,
    pub starting: bool,
}

/// A snapshot of the node for operators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub local: usize,
    pub member: bool,
    pub liveset: HostSet,
    pub phase: Phase,
    pub master: bool,
    pub master_epoch: u64,
    pub fenced: bool,
    pub stopped: bool,
    pub armed: bool,
    pub lease_end: Option<Instant>,
    pub hosts: Vec<HostStatus>,
    pub text: String,
}

/// Cap on queued actions: a handle emits a bounded number per peer and
/// statefile; exceeding this is a bug.
const ACTION_QUEUE_MAX: usize = 4096;

/// One host's fault-handling state machine.
pub struct Node {
    config: Config,
    now: Instant,
    actions: VecDeque<Action>,
    timers: Timers,
    liveset: HostSet,
    phase: Phase,
    fenced: bool,
    stopped: bool,
    master: bool,
    master_epoch: u64,
    lease_end: Option<Instant>,
    sequence: u64,
}

impl Node {
    /// A node that starts joining at `now`.
    pub fn new(config: Config, now: Instant) -> Result<Node, ConfigError> {
        config.validate()?;
        let mut timers = Timers::default();
        timers.set(Timer::Heartbeat, now);
        Ok(Node {
            config,
            now,
            actions: VecDeque::new(),
            timers,
            liveset: HostSet::EMPTY,
            phase: Phase::Normal,
            fenced: false,
            stopped: false,
            master: false,
            master_epoch: 0,
            lease_end: None,
            sequence: 0,
        })
    }

    /// Feed one input at `now` (never earlier than the previous `now`).
    pub fn handle(&mut self, now: Instant, input: Input) {
        assert!(now >= self.now, "time went backwards: {now} < {}", self.now);
        self.now = now;
        let _ = input;
        if self.timers.due(Timer::Heartbeat, now) {
            self.timers.set(
                Timer::Heartbeat,
                now + self.config.timeouts.heartbeat_interval,
            );
            let slot = self.current_slot();
            self.push(Action::SendHeartbeat { slot });
        }
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

    #[must_use]
    pub fn liveset(&self) -> HostSet {
        self.liveset
    }
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
    pub fn lease_end(&self) -> Option<Instant> {
        self.lease_end
    }
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }
    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.config.timeouts
    }

    fn current_slot(&self) -> Slot {
        Slot {
            host_uuid: self.config.hosts[self.config.local],
            host_index: self.config.local as u16,
            sequence: self.sequence,
            liveset: self.liveset,
            ..Slot::default()
        }
    }

    fn push(&mut self, action: Action) {
        assert!(
            self.actions.len() < ACTION_QUEUE_MAX,
            "action queue overflow"
        );
        self.actions.push_back(action);
    }

    fn check_invariants(&self) {
        if self.fenced {
            assert!(
                self.actions
                    .iter()
                    .all(|a| !matches!(a, Action::SendHeartbeat { .. }))
            );
        }
        if self.master {
            assert!(self.is_member(), "master outside the liveset");
        }
        if let Some(next) = self.poll_timeout() {
            assert!(next > self.now, "a timer is already due after handle");
        }
    }
}
