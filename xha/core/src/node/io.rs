//! Statefile I/O bookkeeping: reads, slot-write rounds, pool-block writes,
//! slot sequences, what each read found, and statefile access.
//!
//! Rules kept here:
//! - at most one read per statefile in flight; a completion counts only for
//!   the request in flight (a late or foreign one is ignored);
//! - a write round renews the lease once, when a majority completed within
//!   the I/O deadline from its issue; it persists its liveset once a
//!   majority landed (any latency), if written as a member;
//! - this host's slot sequence never repeats, even across incarnations:
//!   every landed write changes the slot for the readers;
//! - any change of a slot's identity on a statefile is a lease anchor there.

use std::collections::VecDeque;
use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, SlotError};

use super::lease::max_opt;
use crate::freshness::OwnView;
use crate::ids::RequestId;
use crate::time::Instant;
use crate::timeouts::Timeouts;

/// Identity of what a read found in one slot: any landed write changes it
/// (sequences are never reused), so "different" means "a write landed".
pub(super) type Observed = Result<u64, SlotError>;

/// Per-statefile I/O bookkeeping.
#[derive(Clone, Debug, Default)]
pub(super) struct FileState {
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
pub(super) struct WriteRound {
    pub(super) sequence: u64,
    pub(super) issued: Instant,
    /// Files the round went to.
    pub(super) sent: usize,
    /// Completions within the deadline.
    ok_in_time: usize,
    /// Completions that landed (any latency).
    landed: usize,
    /// Completions of any kind.
    done: usize,
    /// Already renewed the lease (or must not: a loser's write).
    renewed: bool,
    /// The slot was written as a member (starting flag clear).
    member: bool,
    /// The liveset the slot carried.
    liveset: HostSet,
}

impl WriteRound {
    /// A round of `sent` writes of slot `sequence` issued at `issued`.
    /// `renews`: whether it may renew the lease.
    pub(super) fn new(
        sequence: u64,
        issued: Instant,
        sent: usize,
        renews: bool,
        member: bool,
        liveset: HostSet,
    ) -> WriteRound {
        WriteRound {
            sequence,
            issued,
            sent,
            ok_in_time: 0,
            landed: 0,
            done: 0,
            renewed: !renews,
            member,
            liveset,
        }
    }
}

/// What one slot-write completion did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct WriteDone {
    /// From issue to completion.
    pub(super) latency: Duration,
    /// The round renews the lease from this issue time (once per round).
    pub(super) renew_from: Option<Instant>,
    /// A slot carrying this liveset, written as a member, is on a majority.
    pub(super) persisted: Option<HostSet>,
}

/// The statefile I/O of one node.
#[derive(Clone, Debug)]
pub(super) struct StatefileIo {
    files: Vec<FileState>,
    rounds: VecDeque<WriteRound>,
    /// The sequence of the next slot write (`None` until a read showed what
    /// earlier incarnations wrote).
    next_sequence: Option<u64>,
    /// The sequence of the last slot write issued (0: none yet).
    last_sequence: u64,
    /// The view (heard, access) the last issued slot write carried.
    written_view: Option<OwnView>,
    /// The last slot write was issued while earlier ones were in flight, so
    /// one of those may land after it (overlapping writes land in any order).
    write_overlapped: bool,
    /// Statefile access as last computed (`compute_access`).
    access: bool,
    /// Majority of the statefiles.
    majority: usize,
}

impl StatefileIo {
    /// Bookkeeping for `statefiles` files and `hosts` slots each.
    pub(super) fn new(statefiles: usize, hosts: usize) -> StatefileIo {
        assert!(statefiles >= 1);
        let files = (0..statefiles)
            .map(|_| FileState {
                observed: vec![None; hosts],
                anchor: vec![None; hosts],
                ..FileState::default()
            })
            .collect();
        StatefileIo {
            files,
            rounds: VecDeque::new(),
            next_sequence: None,
            last_sequence: 0,
            written_view: None,
            write_overlapped: false,
            access: false,
            majority: statefiles / 2 + 1,
        }
    }

    pub(super) fn count(&self) -> usize {
        self.files.len()
    }

    pub(super) fn majority(&self) -> usize {
        self.majority
    }

    /// Statefile access as last set.
    pub(super) fn access(&self) -> bool {
        self.access
    }

    pub(super) fn set_access(&mut self, access: bool) {
        self.access = access;
    }

    /// The view the last issued slot write carried.
    pub(super) fn written_view(&self) -> Option<OwnView> {
        self.written_view
    }

    // ----- reads ---------------------------------------------------------

    pub(super) fn read_in_flight(&self, f: usize) -> bool {
        self.files[f].read.is_some()
    }

    pub(super) fn read_issued(&mut self, f: usize, request: RequestId, now: Instant) {
        assert!(self.files[f].read.is_none(), "two reads of one statefile");
        self.files[f].read = Some((request, now));
    }

    /// The read `request` of file `f` completed: its issue time, if it is
    /// the read in flight (else the completion is ignored).
    pub(super) fn take_read(&mut self, f: usize, request: RequestId) -> Option<Instant> {
        let file = self.files.get_mut(f)?;
        match file.read {
            Some((req, issued)) if req == request => {
                file.read = None;
                Some(issued)
            }
            _ => None,
        }
    }

    pub(super) fn read_failed(&mut self, f: usize) {
        self.files[f].last_read_ok = false;
    }

    /// A read issued at `issued` succeeded at `now`.
    pub(super) fn read_succeeded(
        &mut self,
        f: usize,
        issued: Instant,
        now: Instant,
        in_time: bool,
    ) {
        let file = &mut self.files[f];
        file.last_read_ok = in_time;
        if in_time {
            file.last_good_read = Some(now);
        }
        let before = file.proof_issue;
        file.proof_issue = Some(max_opt(file.proof_issue, Some(issued)).unwrap_or(issued));
        debug_assert!(file.proof_issue >= before, "proof evidence moved back");
    }

    /// Record the identity read in slot `p` of file `f`; returns the one
    /// read before (`None`: never read).
    pub(super) fn observe(&mut self, f: usize, p: usize, identity: Observed) -> Option<Observed> {
        self.files[f].observed[p].replace(identity)
    }

    /// Slot `p` changed on file `f` at `now` (a lease anchor there).
    pub(super) fn anchor(&mut self, f: usize, p: usize, now: Instant) {
        self.files[f].anchor[p] = Some(now);
    }

    /// Host `x` joins the liveset at `now`: an anchor on every file (never
    /// earlier than one it has).
    pub(super) fn anchor_everywhere(&mut self, x: usize, now: Instant) {
        for file in &mut self.files {
            file.anchor[x] = Some(file.anchor[x].map_or(now, |a| a.max(now)));
        }
    }

    /// When a read of file `f` must be issued to prove `x` fenced there:
    /// `wait` after its anchor (or `also`, a later anchor for every host).
    pub(super) fn proof_time(
        &self,
        x: usize,
        f: usize,
        also: Option<Instant>,
        wait: Duration,
    ) -> Option<Instant> {
        let anchor = max_opt(self.files[f].anchor[x], also)?;
        Some(anchor + wait)
    }

    /// Files on which a read issued late enough completed: `x` has fenced
    /// there (see `proof_time`).
    pub(super) fn proofs(&self, x: usize, also: Option<Instant>, wait: Duration) -> usize {
        (0..self.files.len())
            .filter(|&f| {
                let need = self.proof_time(x, f, also, wait);
                let issued = self.files[f].proof_issue;
                matches!((need, issued), (Some(need), Some(at)) if at >= need)
            })
            .count()
    }

    // ----- sequences -----------------------------------------------------

    /// A read found this host's own slot at `sequence` (maybe written by an
    /// earlier incarnation): never reuse it.
    pub(super) fn own_slot_seen(&mut self, sequence: u64) {
        let next = sequence.saturating_add(1);
        self.next_sequence = Some(self.next_sequence.map_or(next, |s| s.max(next)));
    }

    /// A read completed: an own slot never written (or unreadable) starts
    /// at 1.
    pub(super) fn sequence_known(&mut self) {
        if self.next_sequence.is_none() {
            self.next_sequence = Some(1);
        }
    }

    pub(super) fn sequence_is_known(&self) -> bool {
        self.next_sequence.is_some()
    }

    /// The newest sequence this incarnation knows for its slot.
    pub(super) fn current_sequence(&self) -> u64 {
        self.next_sequence
            .map_or(0, |s| s.saturating_sub(1))
            .max(self.last_sequence)
    }

    /// Take the next sequence for a write.
    pub(super) fn take_sequence(&mut self) -> Option<u64> {
        let sequence = self.next_sequence?;
        self.next_sequence = Some(sequence + 1);
        self.last_sequence = sequence;
        Some(sequence)
    }

    // ----- slot writes ---------------------------------------------------

    /// Files with room for another slot write (`cap` in flight each).
    pub(super) fn write_targets(&self, cap: usize) -> Vec<usize> {
        (0..self.files.len())
            .filter(|&f| self.files[f].writes.len() < cap)
            .collect()
    }

    /// A new round is issued now: remember whether it overlaps others.
    pub(super) fn round_starts(&mut self, view: OwnView) {
        self.written_view = Some(view);
        self.write_overlapped = !self.rounds.is_empty();
    }

    pub(super) fn write_issued(&mut self, f: usize, request: RequestId, sequence: u64) {
        self.files[f].writes.push((request, sequence));
    }

    pub(super) fn round_issued(&mut self, round: WriteRound, cap: usize) {
        debug_assert_eq!(round.sequence, self.last_sequence);
        self.rounds.push_back(round);
        let cap_rounds = cap * self.files.len();
        assert!(self.rounds.len() <= cap_rounds, "write rounds unbounded");
    }

    /// Slot write `request` of file `f` completed at `now`.
    pub(super) fn write_done(
        &mut self,
        f: usize,
        request: RequestId,
        ok: bool,
        now: Instant,
        deadline: Duration,
    ) -> Option<WriteDone> {
        let file = self.files.get_mut(f)?;
        let pos = file.writes.iter().position(|&(r, _)| r == request)?;
        let (_, sequence) = file.writes.swap_remove(pos);
        let round = self.rounds.iter_mut().find(|r| r.sequence == sequence)?;
        let latency = now.saturating_since(round.issued);
        round.done += 1;
        if ok {
            round.landed += 1;
            if latency <= deadline {
                round.ok_in_time += 1;
            }
        }
        debug_assert!(round.ok_in_time <= round.landed && round.landed <= round.done);
        debug_assert!(round.done <= round.sent, "more completions than writes");
        let renew = !round.renewed && round.ok_in_time >= self.majority;
        if renew {
            round.renewed = true;
        }
        let persisted = (round.landed >= self.majority && round.member).then_some(round.liveset);
        let done = WriteDone {
            latency,
            renew_from: renew.then_some(round.issued),
            persisted,
        };
        self.rounds.retain(|r| r.done < r.sent);
        Some(done)
    }

    /// Must the slot be written once more to end on the current view? The
    /// last write overlapped others, and every write has completed.
    pub(super) fn overlap_settled(&self) -> bool {
        self.write_overlapped && self.rounds.is_empty()
    }

    // ----- pool-block writes ---------------------------------------------

    pub(super) fn pool_write_issued(&mut self, f: usize, request: RequestId, now: Instant) {
        self.files[f].pool_writes.push((request, now));
    }

    /// Pool write `request` of file `f` completed: its issue time, if it
    /// was in flight.
    pub(super) fn take_pool_write(&mut self, f: usize, request: RequestId) -> Option<Instant> {
        let file = self.files.get_mut(f)?;
        let pos = file.pool_writes.iter().position(|&(r, _)| r == request)?;
        Some(file.pool_writes.swap_remove(pos).1)
    }

    // ----- access, warnings, wake-ups ------------------------------------

    /// Statefile access: a majority of statefiles whose last read succeeded
    /// in time, recently, with no read or write stuck past the deadline.
    pub(super) fn compute_access(&self, now: Instant, t: &Timeouts) -> bool {
        let stale = t.io_deadline + t.statefile_interval * 2;
        let healthy = self
            .files
            .iter()
            .filter(|file| {
                let read_stuck = file
                    .read
                    .is_some_and(|(_, at)| now.saturating_since(at) > t.io_deadline);
                let write_stuck = file.writes.iter().any(|&(_, seq)| {
                    self.rounds.iter().any(|r| {
                        r.sequence == seq && now.saturating_since(r.issued) > t.io_deadline
                    })
                });
                let recent = file
                    .last_good_read
                    .is_some_and(|at| now.saturating_since(at) <= stale);
                file.last_read_ok && recent && !read_stuck && !write_stuck
            })
            .count();
        healthy >= self.majority
    }

    /// Should a latency warning for file `f` be raised at `now` (at most one
    /// per `every`)? Records it if so.
    pub(super) fn latency_warning_due(&mut self, f: usize, now: Instant, every: Duration) -> bool {
        let file = &mut self.files[f];
        if file
            .warned_at
            .is_some_and(|at| now.saturating_since(at) < every)
        {
            return false;
        }
        file.warned_at = Some(now);
        true
    }

    /// Issue times of the reads and write rounds in flight: access may drop
    /// when one crosses its deadline.
    pub(super) fn in_flight_issues(&self) -> impl Iterator<Item = Instant> + '_ {
        let reads = self.files.iter().filter_map(|f| f.read.map(|(_, at)| at));
        reads.chain(self.rounds.iter().map(|r| r.issued))
    }

    /// Checked by the node after every input.
    pub(super) fn check_invariants(&self) {
        debug_assert!(
            self.next_sequence
                .map_or(self.last_sequence == 0, |n| n > self.last_sequence),
            "a slot sequence could repeat"
        );
        debug_assert!(
            self.files.iter().all(|file| file
                .writes
                .iter()
                .all(|&(_, seq)| self.rounds.iter().any(|r| r.sequence == seq))),
            "a slot write in flight without its round"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(5);

    fn s(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    fn round_of(io: &mut StatefileIo, now: Instant, member: bool) -> (u64, Vec<RequestId>) {
        let seq = io.take_sequence().expect("sequence known");
        let targets = io.write_targets(4);
        let mut ids = Vec::new();
        for &f in &targets {
            let id = RequestId(seq * 10 + f as u64);
            io.write_issued(f, id, seq);
            ids.push(id);
        }
        io.round_issued(
            WriteRound::new(seq, now, targets.len(), true, member, HostSet::first_n(2)),
            4,
        );
        (seq, ids)
    }

    #[test]
    fn a_round_renews_once_at_a_majority_in_time() {
        let mut io = StatefileIo::new(3, 2);
        io.sequence_known();
        let (_, ids) = round_of(&mut io, s(10), true);
        let first = io.write_done(0, ids[0], true, s(11), D).unwrap();
        assert_eq!(first.renew_from, None);
        let second = io.write_done(1, ids[1], true, s(12), D).unwrap();
        assert_eq!(second.renew_from, Some(s(10)));
        assert_eq!(second.persisted, Some(HostSet::first_n(2)));
        let third = io.write_done(2, ids[2], true, s(13), D).unwrap();
        assert_eq!(third.renew_from, None, "renewed twice");
        // The round is complete and forgotten: a repeat is ignored.
        assert_eq!(io.write_done(2, ids[2], true, s(13), D), None);
        io.check_invariants();
    }

    #[test]
    fn late_writes_persist_but_do_not_renew() {
        let mut io = StatefileIo::new(1, 2);
        io.sequence_known();
        let (_, ids) = round_of(&mut io, s(10), true);
        let done = io.write_done(0, ids[0], true, s(16), D).unwrap();
        assert_eq!(done.renew_from, None);
        assert_eq!(done.latency, Duration::from_secs(6));
        assert_eq!(done.persisted, Some(HostSet::first_n(2)));
        // A starting host's write persists no liveset.
        let (_, ids) = round_of(&mut io, s(20), false);
        let done = io.write_done(0, ids[0], true, s(21), D).unwrap();
        assert_eq!((done.renew_from, done.persisted), (Some(s(20)), None));
    }

    #[test]
    fn sequences_never_repeat_across_incarnations() {
        let mut io = StatefileIo::new(1, 2);
        assert_eq!(io.take_sequence(), None, "no write before a read");
        io.own_slot_seen(41);
        io.sequence_known();
        assert_eq!(io.take_sequence(), Some(42));
        // An older slot read later does not move the sequence back.
        io.own_slot_seen(7);
        assert_eq!(io.take_sequence(), Some(43));
        assert_eq!(io.current_sequence(), 43);
        io.check_invariants();
    }

    #[test]
    fn only_the_read_in_flight_completes() {
        let mut io = StatefileIo::new(2, 2);
        io.read_issued(0, RequestId(1), s(1));
        assert_eq!(io.take_read(0, RequestId(2)), None);
        assert_eq!(io.take_read(1, RequestId(1)), None);
        assert_eq!(io.take_read(5, RequestId(1)), None);
        assert_eq!(io.take_read(0, RequestId(1)), Some(s(1)));
        assert_eq!(io.take_read(0, RequestId(1)), None, "completed twice");
    }

    #[test]
    fn access_needs_a_recent_timely_read_on_a_majority() {
        let t = Timeouts::derive_any(Duration::from_secs(10));
        let mut io = StatefileIo::new(3, 1);
        assert!(!io.compute_access(s(5), &t));
        io.read_succeeded(0, s(5), s(5), true);
        assert!(!io.compute_access(s(5), &t));
        io.read_succeeded(1, s(5), s(5), false);
        assert!(
            !io.compute_access(s(5), &t),
            "a late read counts for nothing"
        );
        io.read_succeeded(1, s(5), s(5), true);
        io.read_succeeded(2, s(5), s(5), true);
        assert!(io.compute_access(s(5), &t));
        // Reads stuck past the deadline on two files lose it.
        io.read_issued(1, RequestId(8), s(5));
        io.read_issued(2, RequestId(9), s(5));
        assert!(io.compute_access(s(10), &t));
        assert!(!io.compute_access(s(10) + Duration::from_millis(1), &t));
    }

    #[test]
    fn removal_proof_needs_late_enough_reads_on_a_majority() {
        let wait = Duration::from_secs(12);
        let mut io = StatefileIo::new(3, 2);
        for f in 0..3 {
            io.anchor(f, 1, s(10));
        }
        io.read_succeeded(0, s(22), s(23), true);
        assert_eq!(io.proofs(1, None, wait), 1);
        io.read_succeeded(1, s(22), s(23), true);
        assert_eq!(io.proofs(1, None, wait), 2);
        // A later anchor for every host (a lost-mode heartbeat) resets it.
        assert_eq!(io.proofs(1, Some(s(11)), wait), 0);
        // Joining the liveset is an anchor too.
        io.anchor_everywhere(1, s(20));
        assert_eq!(io.proof_time(1, 2, None, wait), Some(s(32)));
    }
}
