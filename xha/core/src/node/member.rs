//! A member's decisions: its views, the survivor set, agreement, fence
//! requests, removal proofs, admissions, and the network rounds of
//! statefile-lost mode.

use sr_heartbeat::statefile::{HostSet, Phase, Slot};

use super::Node;
use crate::action::{Action, FenceReason, Warning};
use crate::fence_request::{self, PeerRows, Verdict};
use crate::freshness;
use crate::ids::HostIndex;
use crate::peer_alerts::PeerSight;
use crate::survival::{self, ViewMatrix};
use crate::time::Instant;
use crate::timer::Timer;

impl Node {
    // ----- views ---------------------------------------------------------

    /// Hosts heard on the network within the heartbeat timeout (and me).
    pub(super) fn heard_view(&self) -> HostSet {
        self.peers
            .heard(self.now, self.config.timeouts.heartbeat_timeout)
    }

    /// Hosts whose slot changed on the statefile within the statefile
    /// timeout (and me, when I have access).
    pub(super) fn seen_view(&self) -> HostSet {
        let timeout = self.config.timeouts.statefile_timeout;
        self.peers.seen(self.now, timeout, self.io.access())
    }

    /// The freshest state of peer `p` (see `peers::Peers::row`). Never
    /// called for this host.
    pub(super) fn row(&self, p: usize) -> Option<&Slot> {
        self.peers
            .row(p, self.now, self.config.timeouts.heartbeat_timeout)
    }

    pub(super) fn effective_liveset(&self) -> HostSet {
        self.membership.effective()
    }

    pub(super) fn pool_master_index(&self) -> Option<usize> {
        let uuid = self.lock.pool()?.master?;
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
                if self.io.access() {
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
            let last_heartbeat = self.peers.get(p).net.as_ref().map(|n| n.sequence);
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
    pub(super) fn peer_alerts(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let heard = self.heard_view();
        let seen = self.seen_view();
        let sights: Vec<(usize, PeerSight)> = (0..self.config.hosts.len())
            .filter(|&p| p != me)
            .map(|p| {
                let hb = self
                    .peers
                    .get(p)
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

    pub(super) fn evaluate_member(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let matrix = self.matrix();
        let w = survival::survivors(&matrix);
        self.membership.survivors_are(w, self.now);
        if self.armed && self.fence_requested() {
            return;
        }
        self.membership.proposed = w;
        if w == liveset {
            self.membership.phase = Phase::Normal;
            self.membership.fence_request = false;
            self.admit_joiners();
            return;
        }
        if !w.contains(me) {
            // I lost (by my own views): stop renewing, wait to be told or
            // for the lease to run out. If my slot still claims a peer I no
            // longer hear, publish my view now, before going quiet.
            self.membership.phase = Phase::Stabilising;
            self.membership.fence_request = false;
            if self.must_publish() {
                self.timers.set(Timer::SlotWrite, self.now);
            }
            return;
        }
        let since = self.membership.survivors_since();
        let settled = self.now.saturating_since(since) >= self.config.timeouts.settle;
        if settled && self.agreed(w) {
            self.membership.phase = Phase::Deciding;
            self.membership.fence_request = true;
        } else {
            self.membership.phase = Phase::Agreeing;
            self.membership.fence_request = false;
        }
        if self.armed && self.membership.pending().is_none() {
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
            .membership
            .joined_at()
            .is_some_and(|at| self.now.saturating_since(at) < self.config.timeouts.settle);
        let survivors = self.membership.survivors();
        let verdict = fence_request::judge(me, self.effective_liveset(), survivors, |q| PeerRows {
            row: self.row(q),
            disk: self.peers.get(q).disk.as_ref(),
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
        let also = self.lease.lost_heartbeat_sent();
        let proofs = self.io.proofs(x, also, self.config.timeouts.peers_may_act);
        proofs >= self.io.majority()
    }

    /// When a read of statefile `f` must be issued to prove `x` fenced there.
    pub(super) fn proof_time(&self, x: usize, f: usize) -> Option<Instant> {
        let also = self.lease.lost_heartbeat_sent();
        self.io
            .proof_time(x, f, also, self.config.timeouts.peers_may_act)
    }

    /// Propose liveset `ls` and persist it at once.
    pub(super) fn set_pending(&mut self, ls: HostSet) {
        // Adding a host is a lease anchor: its current incarnation's first
        // write was issued before its join request, which came before this
        // addition, so every lease it holds chains from a write issued before
        // now. (Its first write had no lease to chain from.)
        let me = self.config.local;
        let added = ls.difference(self.effective_liveset());
        for x in added.iter().filter(|&x| x != me) {
            self.io.anchor_everywhere(x, self.now);
        }
        self.membership.set_pending(ls);
        // Persist at once rather than at the next interval.
        self.timers.set(Timer::SlotWrite, self.now);
    }

    /// Add hosts that ask to join, or that other members admitted, and that
    /// I see fully (growing is always safe: only removal needs proof).
    fn admit_joiners(&mut self) {
        if self.membership.pending().is_some() || !self.io.access() {
            return;
        }
        let me = self.config.local;
        let liveset = self.membership.liveset();
        let heard = self.heard_view();
        let seen = self.seen_view();
        let joiners: HostSet = (0..self.config.hosts.len())
            .filter(|&j| !liveset.contains(j) && heard.contains(j) && seen.contains(j))
            .filter(|&j| {
                // A host asking to join, or a member that another member
                // admitted and that counts me in (livesets converge). Judged
                // from its heartbeat only: a slot on disk may be a late write
                // of an earlier incarnation.
                self.peers.get(j).net.as_ref().is_some_and(|r| {
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

    // ----- statefile-lost mode ---------------------------------------------

    /// The network lease of statefile-lost mode (`docs/fault-handling.md`,
    /// "Statefile-lost mode"; the renewal rule is `lease::Lease`): rounds
    /// advance when every other member reports, over the network, no
    /// statefile access and a round at least ours.
    pub(super) fn net_rounds(&mut self) {
        if !self.membership.joined() || self.io.access() {
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
        let round = self.lease.round();
        let mut highest = round;
        // Only a survivor renews (all members connected, SR2).
        let mut all_confirm = self.membership.survivors().contains(me);
        for p in peers.iter() {
            let lost_round = self
                .peers
                .get(p)
                .net
                .as_ref()
                .filter(|s| !s.statefile_access && !s.starting)
                .map(|s| s.net_round);
            match lost_round {
                Some(r) if heard.contains(p) => {
                    highest = highest.max(r);
                    if r < round {
                        all_confirm = false;
                    }
                }
                _ => all_confirm = false,
            }
        }
        let entered = if all_confirm {
            self.lease
                .complete_round(self.now, self.config.timeouts.lease);
            true
        } else {
            // Far behind (a host that rebooted, or whose peers kept rounds
            // from an earlier episode): catch up at once. Never by one: a
            // peer one round ahead only completed the round this host is in,
            // and jumping would abandon that round just before it completes
            // here too (with 64 hosts and 2% loss nearly every host kept
            // jumping and never completed a round itself).
            self.lease.catch_up(highest, self.now)
        };
        if entered {
            // Tell the peers soon rather than at the next interval (at most
            // four heartbeats per interval, so rounds cannot flood the
            // network).
            let t = self.config.timeouts;
            let soon = self
                .last_heartbeat_at
                .map_or(self.now, |at| (at + t.heartbeat_interval / 4).max(self.now));
            if self.timers.get(Timer::Heartbeat).is_none_or(|at| soon < at) {
                self.timers.set(Timer::Heartbeat, soon);
            }
        }
    }
}
