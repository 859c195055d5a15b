//! The lease: how long this host may act, and how it is renewed.
//!
//! Two renewals, each from an instant that causally precedes every
//! confirmation it rests on (`docs/fault-handling.md`, "The lease" and
//! "Statefile-lost mode"):
//! - a slot write that completed within the I/O deadline on a majority of
//!   statefiles renews the *write lease* to its issue time plus L;
//! - in statefile-lost mode, completing network round R renews the *network
//!   lease* to the time this host entered round R - 1 plus L, but only if it
//!   entered R by completing R - 1 (a round entered by a jump renews nothing).
//!
//! Rules kept here: lease ends never move back (except `forget`, for a
//! starting host that has nothing to protect); rounds only advance.

use std::time::Duration;

use crate::time::Instant;

/// This host's lease and its network rounds.
#[derive(Clone, Debug)]
pub(super) struct Lease {
    /// End granted by timely slot writes.
    write_end: Option<Instant>,
    /// End granted by completed network rounds (statefile-lost mode).
    net_end: Option<Instant>,
    /// The network round this host is in.
    round: u64,
    /// When it entered `round`.
    round_entered: Instant,
    /// The round before, and when it was entered.
    prev_round: Option<(u64, Instant)>,
    /// When this member last sent a heartbeat saying it has no statefile
    /// access: peers may renew from it, so it anchors removal proofs too.
    lost_heartbeat_sent: Option<Instant>,
}

impl Lease {
    pub(super) fn new(now: Instant) -> Lease {
        Lease {
            write_end: None,
            net_end: None,
            round: 0,
            round_entered: now,
            prev_round: None,
            lost_heartbeat_sent: None,
        }
    }

    /// When the lease ends (the later of the two renewals).
    pub(super) fn end(&self) -> Option<Instant> {
        max_opt(self.write_end, self.net_end)
    }

    /// Does the lease hold at `now`?
    pub(super) fn holds_at(&self, now: Instant) -> bool {
        self.end().is_some_and(|end| now < end)
    }

    /// The network round this host is in.
    pub(super) fn round(&self) -> u64 {
        self.round
    }

    pub(super) fn lost_heartbeat_sent(&self) -> Option<Instant> {
        self.lost_heartbeat_sent
    }

    /// A heartbeat saying "no statefile access" went out at `now`.
    pub(super) fn lost_heartbeat(&mut self, now: Instant) {
        debug_assert!(self.lost_heartbeat_sent.is_none_or(|at| at <= now));
        self.lost_heartbeat_sent = Some(now);
    }

    /// A slot write issued at `issued` completed in time on a majority.
    pub(super) fn renew_by_write(&mut self, issued: Instant, lease: Duration) {
        let before = self.end();
        self.write_end = max_opt(self.write_end, Some(issued + lease));
        debug_assert!(self.end() >= before, "the lease moved back");
    }

    /// A starting host without a join request whose lease ran out: it has
    /// nothing to protect and starts again with its next timely write.
    pub(super) fn forget(&mut self) {
        self.write_end = None;
        self.net_end = None;
    }

    /// Every required member confirmed this host's round at `now`: renew
    /// from the entry into the previous round if this round was entered by
    /// completing it, then enter the next round.
    pub(super) fn complete_round(&mut self, now: Instant, lease: Duration) {
        if let Some((r, at)) = self.prev_round
            && r + 1 == self.round
        {
            let before = self.end();
            self.net_end = max_opt(self.net_end, Some(at + lease));
            debug_assert!(self.end() >= before, "the lease moved back");
        }
        self.enter(self.round + 1, now);
    }

    /// A peer reports round `highest`: catch up if it is at least two
    /// rounds ahead (never by one: that peer only completed the round this
    /// host is in). Returns whether a round was entered.
    pub(super) fn catch_up(&mut self, highest: u64, now: Instant) -> bool {
        if highest >= self.round + 2 {
            self.enter(highest, now);
            true
        } else {
            false
        }
    }

    /// Checked by the node after every input.
    pub(super) fn check_invariants(&self, now: Instant) {
        debug_assert!(self.round_entered <= now, "a round entered in the future");
        debug_assert!(
            self.prev_round
                .is_none_or(|(r, at)| r < self.round && at <= self.round_entered),
            "the previous round is not before the current one"
        );
    }

    fn enter(&mut self, round: u64, now: Instant) {
        assert!(round > self.round, "network rounds only advance");
        debug_assert!(now >= self.round_entered);
        self.prev_round = Some((self.round, self.round_entered));
        self.round = round;
        self.round_entered = now;
    }
}

/// The later of two optional instants.
pub(super) fn max_opt(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Duration = Duration::from_secs(7);

    fn s(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn a_write_renews_from_its_issue_and_never_shortens() {
        let mut l = Lease::new(s(0));
        assert_eq!(l.end(), None);
        l.renew_by_write(s(10), L);
        assert_eq!(l.end(), Some(s(17)));
        // A slower, earlier write completing later changes nothing.
        l.renew_by_write(s(5), L);
        assert_eq!(l.end(), Some(s(17)));
        assert!(l.holds_at(s(16)) && !l.holds_at(s(17)));
        l.forget();
        assert_eq!(l.end(), None);
    }

    #[test]
    fn completing_round_r_renews_from_entering_r_minus_one() {
        let mut l = Lease::new(s(0));
        // Round 0 -> 1: round 0 was not entered by completion: no renewal.
        l.complete_round(s(1), L);
        assert_eq!((l.round(), l.end()), (1, None));
        // Round 1 completed at 2 s, entered by completing 0 (entered at 0).
        l.complete_round(s(2), L);
        assert_eq!((l.round(), l.end()), (2, Some(s(7))));
        l.complete_round(s(3), L);
        assert_eq!(l.end(), Some(s(8)));
    }

    #[test]
    fn a_round_entered_by_a_jump_renews_nothing() {
        let mut l = Lease::new(s(0));
        assert!(!l.catch_up(1, s(1)), "never jump by one");
        assert!(l.catch_up(5, s(1)));
        assert_eq!(l.round(), 5);
        l.complete_round(s(2), L);
        assert_eq!((l.round(), l.end()), (6, None));
        // Round 6 was entered by completing 5: completing it renews.
        l.complete_round(s(3), L);
        assert_eq!(l.end(), Some(s(1) + L));
    }

    #[test]
    fn the_lease_is_the_later_renewal() {
        let mut l = Lease::new(s(0));
        l.complete_round(s(1), L);
        l.complete_round(s(2), L);
        l.renew_by_write(s(1), L);
        assert_eq!(l.end(), Some(s(8)));
        l.lost_heartbeat(s(3));
        assert_eq!(l.lost_heartbeat_sent(), Some(s(3)));
    }
}
