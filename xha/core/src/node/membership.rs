//! Membership: the published and pending liveset, the survivor set, the
//! phase, and where this host is in joining.
//!
//! Rules kept here:
//! - every liveset this host proposes or publishes contains itself;
//! - a pending liveset is published only once a slot carrying it is on a
//!   majority of statefiles (`persisted`);
//! - a fault round starts when the survivor set first leaves the liveset;
//! - joining is one-way: requested, then joined (never undone in one
//!   incarnation).

use sr_heartbeat::statefile::{HostSet, Phase};

use crate::time::Instant;

/// This host's membership state.
#[derive(Clone, Debug)]
pub(super) struct Membership {
    local: usize,
    /// The published (persisted) liveset.
    liveset: HostSet,
    /// A liveset written but not yet on a majority of statefiles.
    pending: Option<HostSet>,
    /// The survivor set this host computes from its views.
    survivors: HostSet,
    /// Since when `survivors` has been what it is.
    survivors_since: Instant,
    /// The liveset this host proposes (its slot's `proposed`).
    pub(super) proposed: HostSet,
    /// This host asks the losers to fence (its slot's `fence_request`).
    pub(super) fence_request: bool,
    pub(super) phase: Phase,
    /// Faults seen (its slot's `fault_round`).
    fault_round: u64,
    /// Decided to be a member (the liveset including me may still be
    /// unpersisted).
    joined: bool,
    /// Sent a join request: from here on, a lease end means fencing.
    join_requested: bool,
    /// This host's slot showed a member write of an earlier incarnation.
    was_member: bool,
    /// When this host decided to become a member.
    joined_at: Option<Instant>,
}

impl Membership {
    pub(super) fn new(local: usize, now: Instant) -> Membership {
        Membership {
            local,
            liveset: HostSet::EMPTY,
            pending: None,
            survivors: HostSet::EMPTY,
            survivors_since: now,
            proposed: HostSet::EMPTY,
            fence_request: false,
            phase: Phase::Normal,
            fault_round: 0,
            joined: false,
            join_requested: false,
            was_member: false,
            joined_at: None,
        }
    }

    /// The published (persisted) liveset.
    pub(super) fn liveset(&self) -> HostSet {
        self.liveset
    }

    /// The survivor set this host computes from its views.
    pub(super) fn survivors(&self) -> HostSet {
        self.survivors
    }

    pub(super) fn survivors_since(&self) -> Instant {
        self.survivors_since
    }

    pub(super) fn fault_round(&self) -> u64 {
        self.fault_round
    }

    /// Was this host's slot written by an earlier member incarnation?
    pub(super) fn was_member(&self) -> bool {
        self.was_member
    }

    /// A read showed this host's slot as written by an earlier member
    /// incarnation (or unreadable, which is taken as the same).
    pub(super) fn was_member_before(&mut self) {
        debug_assert!(!self.joined, "judged from a slot of this incarnation");
        self.was_member = true;
    }

    pub(super) fn joined(&self) -> bool {
        self.joined
    }

    pub(super) fn join_requested(&self) -> bool {
        self.join_requested
    }

    pub(super) fn joined_at(&self) -> Option<Instant> {
        self.joined_at
    }

    pub(super) fn pending(&self) -> Option<HostSet> {
        self.pending
    }

    /// Is this host in its published liveset?
    pub(super) fn is_member(&self) -> bool {
        self.liveset.contains(self.local)
    }

    /// The liveset decisions use: the pending one if any, else the
    /// published one.
    pub(super) fn effective(&self) -> HostSet {
        self.pending.unwrap_or(self.liveset)
    }

    /// The survivor set computed now is `w`.
    pub(super) fn survivors_are(&mut self, w: HostSet, now: Instant) {
        if w == self.survivors {
            return;
        }
        let liveset = self.effective();
        if self.survivors == liveset && w != liveset {
            self.fault_round += 1;
        }
        self.survivors = w;
        self.survivors_since = now;
    }

    /// Propose liveset `ls` (written with the next slot write).
    pub(super) fn set_pending(&mut self, ls: HostSet) {
        assert!(ls.contains(self.local), "a liveset without me");
        self.pending = Some(ls);
    }

    /// A slot carrying `ls` is on a majority of statefiles. Returns whether
    /// the published liveset changed.
    pub(super) fn persisted(&mut self, ls: HostSet) -> bool {
        if self.pending != Some(ls) {
            return false;
        }
        self.pending = None;
        if self.liveset == ls {
            return false;
        }
        debug_assert!(ls.contains(self.local));
        self.liveset = ls;
        true
    }

    /// Ask to join (idempotent).
    pub(super) fn request_join(&mut self) {
        debug_assert!(!self.joined || self.join_requested);
        self.join_requested = true;
    }

    /// Decide to become a member of `ls` at `now`; the caller proposes it.
    pub(super) fn become_member(&mut self, ls: HostSet, now: Instant) {
        assert!(!self.joined, "joined twice");
        assert!(ls.contains(self.local), "a liveset without me");
        self.joined = true;
        self.joined_at = Some(now);
        self.join_requested = true;
        self.survivors = ls;
        self.survivors_since = now;
    }

    /// Checked by the node after every input.
    pub(super) fn check_invariants(&self) {
        if let Some(ls) = self.pending {
            assert!(ls.contains(self.local), "pending liveset without me");
        }
        if !self.liveset.is_empty() {
            assert!(self.liveset.contains(self.local) || !self.joined);
        }
        debug_assert!(!self.joined || self.join_requested);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> HostSet {
        v.iter().copied().collect()
    }

    #[test]
    fn a_liveset_is_published_once_its_pending_write_persisted() {
        let mut m = Membership::new(0, Instant::ZERO);
        m.become_member(set(&[0, 1]), Instant::ZERO);
        m.set_pending(set(&[0, 1]));
        assert_eq!(m.effective(), set(&[0, 1]));
        assert!(!m.is_member());
        // An older write persisting changes nothing.
        assert!(!m.persisted(set(&[0])));
        assert!(m.persisted(set(&[0, 1])));
        assert!(m.is_member() && m.pending().is_none());
        assert!(!m.persisted(set(&[0, 1])), "published twice");
        m.check_invariants();
    }

    #[test]
    #[should_panic(expected = "a liveset without me")]
    fn a_liveset_without_me_is_refused() {
        let mut m = Membership::new(0, Instant::ZERO);
        m.set_pending(set(&[1, 2]));
    }

    #[test]
    fn a_fault_round_starts_when_the_survivors_leave_the_liveset() {
        let t = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        let mut m = Membership::new(0, t(0));
        m.become_member(set(&[0, 1, 2]), t(0));
        m.set_pending(set(&[0, 1, 2]));
        m.persisted(set(&[0, 1, 2]));
        m.survivors_are(set(&[0, 1]), t(5));
        assert_eq!((m.fault_round, m.survivors_since), (1, t(5)));
        // Changing again within the fault is the same round.
        m.survivors_are(set(&[0]), t(6));
        assert_eq!((m.fault_round, m.survivors_since), (1, t(6)));
        m.survivors_are(set(&[0]), t(7));
        assert_eq!(m.survivors_since, t(6), "unchanged set, same since");
        m.survivors_are(set(&[0, 1, 2]), t(8));
        m.survivors_are(set(&[0, 2]), t(9));
        assert_eq!(m.fault_round, 2);
    }

    #[test]
    #[should_panic(expected = "joined twice")]
    fn joining_is_once_per_incarnation() {
        let mut m = Membership::new(0, Instant::ZERO);
        m.become_member(set(&[0]), Instant::ZERO);
        m.become_member(set(&[0]), Instant::ZERO);
    }
}
