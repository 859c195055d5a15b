//! What the daemon measures beside the core, and the liveset report built
//! from both for the control socket (`query-liveset` and `watch`).
//!
//! The core knows the liveset, the views, the master and when it last heard
//! each peer and saw its slot change (the report's ages, on this host's
//! monotonic clock); the daemon adds what only it sees: whether a peer's slot
//! failed to decode, I/O and heartbeat latencies, the drop counters of the
//! receive path, and operator warnings (the core's, which expire, and the
//! daemon's own, which persist).

use std::net::SocketAddr;
use std::time::Duration;

use uuid::Uuid;

use super::control::{
    HostReport, Latency, LivesetReport, Status, TimeoutsReport, WarningKind, WarningReport,
};
use super::replay::SlotEvidence;
use super::wire::DropCounters;
use crate::core::{Instant, Node, NodeStatus, Slot, SlotError, Warning};

/// Per-peer measurements.
#[derive(Clone, Debug, Default)]
struct PeerSeen {
    /// For the heartbeat inter-arrival latency.
    last_heartbeat: Option<Instant>,
    /// The slot failed to decode on the last read of some statefile.
    corrupted: bool,
    /// The newest sequence read from any statefile and when it grew: the
    /// evidence that may lower a replay floor (`daemon::replay`).
    newest: Option<SlotEvidence>,
}

/// The daemon-side measurements and warnings.
#[derive(Debug)]
pub struct Measurements {
    peers: Vec<PeerSeen>,
    addresses: Vec<SocketAddr>,
    statefile_latency: Latency,
    heartbeat_latency: Latency,
    dropped: DropCounters,
    /// Per peer: since when the receive path drops all its packets as
    /// replayed (past the warning threshold).
    replay_dropping: Vec<Option<Instant>>,
    /// The core's warnings with when they were last raised.
    recent: Vec<(WarningReport, Instant)>,
    /// Conditions that last as long as the daemon (not real-time, no
    /// watchdog, secret permissions).
    standing: Vec<WarningReport>,
    /// How long a core warning stays in the report after it was last raised.
    warning_lifetime: Duration,
}

impl Measurements {
    /// Measurements for a pool whose hosts (by index) have `addresses`.
    #[must_use]
    pub fn new(addresses: Vec<SocketAddr>, warning_lifetime: Duration) -> Measurements {
        Measurements {
            peers: vec![PeerSeen::default(); addresses.len()],
            addresses,
            statefile_latency: Latency::default(),
            heartbeat_latency: Latency::default(),
            dropped: DropCounters::default(),
            replay_dropping: Vec::new(),
            recent: Vec::new(),
            standing: Vec::new(),
            warning_lifetime,
        }
    }

    /// A warning that lasts until withdrawn (or as long as the daemon).
    pub fn add_standing(&mut self, kind: WarningKind, message: String) {
        self.standing.push(WarningReport {
            kind,
            message,
            host: None,
            statefile: None,
        });
    }

    /// Withdraw the standing warning with exactly this message (its
    /// condition ended).
    pub fn remove_standing(&mut self, message: &str) {
        self.standing.retain(|w| w.message != message);
    }

    /// An accepted heartbeat from `from` at `now`.
    pub fn heartbeat(&mut self, now: Instant, from: usize) {
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        if let Some(prev) = p.last_heartbeat {
            self.heartbeat_latency
                .record(now.saturating_since(prev).as_secs_f64() * 1e3);
        }
        p.last_heartbeat = Some(now);
    }

    /// One completed statefile I/O took `latency`.
    pub fn io_latency(&mut self, latency: Duration) {
        self.statefile_latency.record(latency.as_secs_f64() * 1e3);
    }

    /// The slots of one successful read at `now` (index = host index).
    /// Returns whether a peer's corrupted flag changed (the report did).
    pub fn slots(&mut self, now: Instant, slots: &[Result<Slot, SlotError>]) -> bool {
        let mut changed = false;
        for (p, slot) in self.peers.iter_mut().zip(slots) {
            let corrupted = match slot {
                Ok(s) => {
                    if p.newest.is_none_or(|e| s.sequence > e.sequence) {
                        p.newest = Some(SlotEvidence {
                            sequence: s.sequence,
                            changed_at: now,
                        });
                    }
                    false
                }
                // A slot never written is not corrupt.
                Err(SlotError::NeverWritten) => false,
                Err(_) => true,
            };
            changed |= p.corrupted != corrupted;
            p.corrupted = corrupted;
        }
        changed
    }

    /// What this host read of each peer's slot, for the replay floors.
    #[must_use]
    pub fn evidence(&self) -> Vec<Option<SlotEvidence>> {
        self.peers.iter().map(|p| p.newest).collect()
    }

    /// Peers whose packets the receive path drops as replayed, and since
    /// when (by host index).
    pub fn set_replay_dropping(&mut self, dropping: Vec<Option<Instant>>) {
        self.replay_dropping = dropping;
    }

    /// The latest drop counters of the receive path.
    pub fn set_dropped(&mut self, dropped: DropCounters) {
        self.dropped = dropped;
    }

    /// The drop counters last set.
    #[must_use]
    pub fn dropped(&self) -> DropCounters {
        self.dropped
    }

    /// A warning from the core at `now`; replaces an earlier one about the
    /// same thing.
    pub fn warning(&mut self, now: Instant, w: &Warning, hosts: &[Uuid]) {
        let report = WarningReport::from_core(w, hosts);
        self.recent.retain(|(r, _)| {
            !(r.kind == report.kind && r.host == report.host && r.statefile == report.statefile)
        });
        self.recent.push((report, now));
    }

    /// Forget core warnings older than the lifetime; returns whether any was
    /// dropped (the report changed).
    pub fn expire(&mut self, now: Instant) -> bool {
        let before = self.recent.len();
        let life = self.warning_lifetime;
        self.recent
            .retain(|(_, at)| now.saturating_since(*at) <= life);
        before != self.recent.len()
    }

    /// When the oldest core warning expires.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Instant> {
        self.recent
            .iter()
            .map(|(_, at)| *at + self.warning_lifetime + Duration::from_millis(1))
            .min()
    }

    /// The report: the core's status plus these measurements at `now`.
    #[must_use]
    pub fn report(
        &self,
        node: &Node,
        now: Instant,
        status: Status,
        watchdog: &str,
    ) -> LivesetReport {
        let st = node.status();
        let cfg = node.config();
        let age = |at: Option<Instant>| {
            at.map(|t| u64::try_from(now.saturating_since(t).as_millis()).unwrap_or(u64::MAX))
        };
        let hosts = st
            .hosts
            .iter()
            .map(|h| {
                // The core's instants are `None` for this host itself.
                HostReport::from_core(
                    h,
                    self.addresses[h.index.0],
                    self.peers.get(h.index.0).is_some_and(|p| p.corrupted),
                    age(h.heard_at),
                    age(h.slot_changed_at),
                )
            })
            .collect::<Vec<_>>();
        let master = st.hosts.iter().find(|h| h.master).map(|h| h.uuid);
        let mut warnings = self.standing.clone();
        warnings.extend(self.recent.iter().map(|(r, _)| r.clone()));
        warnings.extend(self.conditions(&st, now));
        LivesetReport {
            status,
            pool_generation: cfg.pool_generation,
            local_host: cfg.hosts[cfg.local],
            local_index: cfg.local,
            fencing_armed: st.armed,
            watchdog: watchdog.to_owned(),
            master,
            master_epoch: st.master_epoch,
            liveset: st.liveset.iter().map(|i| cfg.hosts[i]).collect(),
            hosts,
            statefile_latency: self.statefile_latency,
            heartbeat_latency: self.heartbeat_latency,
            dropped_packets: self.dropped,
            fence_requests_refused: st.fence_requests_refused,
            timeouts: TimeoutsReport::from(&cfg.timeouts),
            warnings,
        }
    }
}

impl Measurements {
    /// Warnings that hold as long as their condition does: peers whose
    /// packets are dropped as replayed, and members silent while their
    /// fencing is disarmed.
    fn conditions(&self, st: &NodeStatus, now: Instant) -> Vec<WarningReport> {
        let uuid = |i: usize| st.hosts.get(i).map(|h| h.uuid);
        let mut out = Vec::new();
        for (p, since) in self.replay_dropping.iter().enumerate() {
            if let Some(since) = since {
                out.push(WarningReport {
                    kind: WarningKind::ReplayDropping,
                    message: format!(
                        "dropping host {p}'s packets as replayed for {:.1} s",
                        now.saturating_since(*since).as_secs_f64()
                    ),
                    host: uuid(p),
                    statefile: None,
                });
            }
        }
        for h in st.hosts.iter().filter(|h| h.silent_disarmed) {
            out.push(WarningReport {
                kind: WarningKind::SilentWhileDisarmed,
                message: format!(
                    "host {} silent while fencing disarmed: not heard, slot unchanged; it is never removed from the liveset (check it; re-arm or restart HA)",
                    h.index
                ),
                host: Some(h.uuid),
                statefile: None,
            });
        }
        out
    }
}

/// What a watcher is told about: the report without the fields that change
/// on every heartbeat or I/O (ages and latencies). A change of this key
/// publishes the full report at once.
#[must_use]
pub fn watch_key(report: &LivesetReport) -> LivesetReport {
    let mut key = report.clone();
    for h in &mut key.hosts {
        h.last_heartbeat_age_ms = None;
        h.last_statefile_update_age_ms = None;
    }
    key.statefile_latency = Latency::default();
    key.heartbeat_latency = Latency::default();
    for w in &mut key.warnings {
        // A re-raised warning with a new figure is the same condition.
        w.message.clear();
    }
    key
}

/// The status of the node for the report.
#[must_use]
pub fn status_of(node: &Node, stopping: bool) -> Status {
    if node.is_fenced() {
        Status::Fenced
    } else if stopping || node.is_stopped() {
        Status::Stopping
    } else if node.is_member() {
        Status::Online
    } else {
        Status::Starting
    }
}
