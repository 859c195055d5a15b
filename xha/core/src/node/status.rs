//! What the node reports: its status snapshot, the watched part of it
//! (`Action::StatusChanged`), its status text and the slot it would write.

use sr_heartbeat::statefile::{HostSet, Phase, Slot};
use uuid::Uuid;

use super::Node;
use crate::action::Action;
use crate::fence_request::Refusal;
use crate::ids::HostIndex;
use crate::time::Instant;

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

/// The part of [`NodeStatus`] a `watch` client is told about, compactly:
/// a change emits `Action::StatusChanged`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StatusKey {
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
    /// A snapshot for the control socket's liveset query.
    #[must_use]
    pub fn status(&self) -> NodeStatus {
        let heard = self.heard_view();
        let seen = self.seen_view();
        let master_index = self.lock_holder_index();
        let hosts = (0..self.config.hosts.len())
            .map(|p| self.host_status(p, heard, seen, master_index))
            .collect();
        NodeStatus {
            local: HostIndex(self.config.local),
            member: self.is_member(),
            liveset: self.membership.liveset(),
            phase: self.membership.phase,
            master: self.lock.is_master(),
            master_epoch: self.lock.known_epoch(),
            fenced: self.fenced,
            stopped: self.stopped,
            armed: self.armed,
            statefile_access: self.io.access(),
            lease_end: self.lease.end(),
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
            (
                self.io.access(),
                self.excluded,
                !self.membership.joined(),
                !self.armed,
            )
        } else {
            let row = self.row(p);
            (
                row.is_some_and(|r| r.statefile_access),
                row.is_some_and(|r| r.excluded),
                row.is_none_or(|r| r.starting),
                row.is_some_and(|r| r.fencing_disarmed),
            )
        };
        let peer = self.peers.get(p);
        HostStatus {
            index: HostIndex(p),
            uuid: self.config.hosts[p],
            live: self.membership.liveset().contains(p),
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
        let master_index = self.lock_holder_index();
        let mut key = StatusKey {
            joined: self.membership.joined(),
            member: self.is_member(),
            fenced: self.fenced,
            stopped: self.stopped,
            armed: self.armed,
            access: self.io.access(),
            phase: self.membership.phase,
            liveset: self.membership.liveset(),
            master: self.lock.is_master(),
            master_epoch: self.lock.known_epoch(),
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
    pub(super) fn status_changed(&mut self) {
        if self.fenced {
            return;
        }
        let key = self.status_key();
        if self.watched != Some(key) {
            self.watched = Some(key);
            self.push(Action::StatusChanged);
        }
    }

    pub(super) fn status_text(&self) -> String {
        let state = if self.fenced {
            "fenced"
        } else if self.stopped {
            "stopped"
        } else if !self.membership.joined() {
            "starting"
        } else if !self.io.access() {
            "statefile lost"
        } else {
            match self.membership.phase {
                Phase::Normal => "online",
                Phase::Stabilising => "losing",
                Phase::Agreeing => "agreeing",
                Phase::Deciding => "waiting for losers to fence",
                Phase::Fencing => "fencing",
            }
        };
        format!("{state}; liveset {}", self.effective_liveset())
    }

    pub(super) fn current_slot(&self) -> Slot {
        let me = self.config.local;
        let joined = self.membership.joined();
        let (liveset, proposed) = if joined {
            (self.effective_liveset(), self.membership.proposed)
        } else if self.membership.join_requested() {
            (HostSet::EMPTY, HostSet::single(me))
        } else {
            (HostSet::EMPTY, HostSet::EMPTY)
        };
        // The requests this host knows of; its own bit is its own request.
        let requests = if joined {
            self.requesters(self.requesting())
        } else {
            HostSet::EMPTY
        };
        let known_epoch = self.lock.known_epoch();
        let mut status = self.status_text();
        status.truncate(sr_heartbeat::statefile::slot::STATUS_TEXT_MAX);
        Slot {
            host_uuid: self.config.hosts[me],
            host_index: me as u16,
            // The newest sequence this incarnation knows for its slot, so
            // that peers rank this state at least as fresh as the slot.
            sequence: self.io.current_sequence(),
            heard: self.heard_view(),
            seen: self.seen_view(),
            liveset,
            proposed,
            lock_request: requests,
            lock_grant: self.lock.grant.map_or(HostSet::EMPTY, HostSet::single),
            master_epoch: known_epoch,
            fault_round: self.membership.fault_round(),
            phase: self.membership.phase,
            excluded: self.excluded,
            starting: !joined,
            fence_request: self.membership.fence_request,
            statefile_access: self.io.access(),
            fencing_disarmed: !self.armed,
            net_round: self.lease.round(),
            status,
            diag_time_ms: 0,
        }
    }
}
