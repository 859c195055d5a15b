//! The master-lock state of one node: its request, its grant, the pool
//! block it knows, a pool-block write in progress, and whether it is master.
//! The rules every host applies to requests and grants are the pure
//! functions of `core::master_lock`; the decisions over views are in
//! `node/master.rs`.
//!
//! Rules kept here:
//! - the known pool block only moves forward, by (epoch, update sequence);
//!   a completed write of this host replaces it;
//! - the master epoch this host holds only grows;
//! - at most one pool-block write at a time; it completes once on a majority
//!   of statefiles, or fails once every write completed without one.

use sr_heartbeat::statefile::PoolBlock;

use crate::ids::RequestId;
use crate::time::Instant;

/// A pool-block write in progress (taking the lock, or a state change).
#[derive(Clone, Debug)]
struct Acquire {
    block: PoolBlock,
    requests: Vec<RequestId>,
    ok: usize,
    done: usize,
}

/// The master-lock state.
#[derive(Clone, Debug, Default)]
pub(super) struct LockState {
    /// When the current request began (None: not requesting).
    pub(super) request_started: Option<Instant>,
    /// Told to ask for the lock (control request).
    want_master: bool,
    /// The request lapses at this instant unless repeated (the master
    /// lease of `Config::master_lease`; `None`: never lapses).
    want_until: Option<Instant>,
    /// Told never to ask for it (control request).
    refuse_master: bool,
    /// Whom this host grants the lock to.
    pub(super) grant: Option<usize>,
    acquire: Option<Acquire>,
    master: bool,
    master_epoch: u64,
    /// The newest pool block known (read, or written by this host).
    pool: Option<PoolBlock>,
}

impl LockState {
    pub(super) fn is_master(&self) -> bool {
        self.master
    }

    /// The epoch of this host's own lock (0: never held).
    pub(super) fn master_epoch(&self) -> u64 {
        self.master_epoch
    }

    pub(super) fn pool(&self) -> Option<&PoolBlock> {
        self.pool.as_ref()
    }

    /// The operator asks this host to take the lock (`true`) or never to
    /// ask for it (`false`). A `true` holds until `until` (then lapses
    /// unless repeated), or for good when `until` is `None`.
    pub(super) fn propose(&mut self, on: bool, until: Option<Instant>) {
        self.want_master = on;
        self.refuse_master = !on;
        self.want_until = if on { until } else { None };
    }

    /// Told to ask for the lock, and the request has not lapsed at `now`.
    pub(super) fn wants(&self, now: Instant) -> bool {
        self.want_master && self.want_until.is_none_or(|until| now < until)
    }

    /// Told never to ask for the lock.
    pub(super) fn refuses(&self) -> bool {
        self.refuse_master
    }

    /// Is a pool-block write in progress?
    pub(super) fn writing(&self) -> bool {
        self.acquire.is_some()
    }

    /// The highest master epoch known: the pool block's or this host's own.
    pub(super) fn known_epoch(&self) -> u64 {
        self.pool
            .as_ref()
            .map_or(0, |p| p.master_epoch)
            .max(self.master_epoch)
    }

    /// A read found `block`: keep it if newer.
    pub(super) fn pool_read(&mut self, block: PoolBlock) {
        let newer = self.pool.as_ref().is_none_or(|p| {
            (block.master_epoch, block.update_seq) > (p.master_epoch, p.update_seq)
        });
        if newer {
            self.pool = Some(block);
        }
    }

    /// A pool-block write of `block` was issued as `requests`.
    pub(super) fn write_started(&mut self, block: PoolBlock, requests: Vec<RequestId>) {
        assert!(self.acquire.is_none(), "two pool-block writes at once");
        self.acquire = Some(Acquire {
            block,
            requests,
            ok: 0,
            done: 0,
        });
    }

    /// Pool write `request` completed. Returns the block once it is on a
    /// `majority` (then the known pool block and this host's epoch).
    pub(super) fn pool_written(
        &mut self,
        request: RequestId,
        ok: bool,
        majority: usize,
    ) -> Option<PoolBlock> {
        let acq = self.acquire.as_mut()?;
        if !acq.requests.contains(&request) {
            return None;
        }
        acq.done += 1;
        if ok {
            acq.ok += 1;
        }
        debug_assert!(acq.ok <= acq.done && acq.done <= acq.requests.len());
        if acq.ok >= majority {
            let block = acq.block.clone();
            self.acquire = None;
            self.master_epoch = self.master_epoch.max(block.master_epoch);
            self.pool = Some(block.clone());
            Some(block)
        } else {
            if acq.done == acq.requests.len() {
                self.acquire = None;
            }
            None
        }
    }

    /// This host became master (its pool block is on a majority).
    pub(super) fn gain(&mut self) {
        assert!(!self.master, "became master twice");
        debug_assert!(self.master_epoch > 0);
        self.master = true;
    }

    /// Checked by the node after every input.
    pub(super) fn check_invariants(&self) {
        debug_assert!(
            !self.master || self.master_epoch > 0,
            "a master without an epoch"
        );
        debug_assert!(
            self.acquire
                .as_ref()
                .is_none_or(|a| a.ok <= a.done && a.done < a.requests.len().max(1)),
            "a finished pool write still in progress"
        );
    }

    /// This host stops being master. Returns whether it was.
    pub(super) fn lose(&mut self) -> bool {
        std::mem::replace(&mut self.master, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sr_heartbeat::statefile::PoolState;

    fn block(epoch: u64, seq: u64) -> PoolBlock {
        PoolBlock {
            state: PoolState::Active,
            master: None,
            master_epoch: epoch,
            update_seq: seq,
        }
    }

    #[test]
    fn the_known_pool_block_only_moves_forward() {
        let mut l = LockState::default();
        l.pool_read(block(2, 5));
        l.pool_read(block(1, 9));
        l.pool_read(block(2, 4));
        assert_eq!(
            l.pool().map(|p| (p.master_epoch, p.update_seq)),
            Some((2, 5))
        );
        l.pool_read(block(2, 6));
        assert_eq!(l.known_epoch(), 2);
    }

    #[test]
    fn a_pool_write_completes_once_on_a_majority() {
        let mut l = LockState::default();
        let ids = vec![RequestId(1), RequestId(2), RequestId(3)];
        l.write_started(block(3, 1), ids);
        assert!(l.writing());
        assert_eq!(l.pool_written(RequestId(9), true, 2), None, "foreign");
        assert_eq!(l.pool_written(RequestId(1), false, 2), None);
        assert_eq!(l.pool_written(RequestId(2), true, 2), None);
        assert_eq!(l.pool_written(RequestId(3), true, 2), Some(block(3, 1)));
        assert!(!l.writing());
        assert_eq!((l.master_epoch(), l.known_epoch()), (3, 3));
        l.gain();
        assert!(l.is_master());
        assert!(l.lose());
        assert!(!l.lose());
    }

    #[test]
    fn a_leased_request_lapses_unless_repeated() {
        let mut l = LockState::default();
        let at = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        l.propose(true, Some(at(4)));
        assert!(l.wants(at(3)));
        assert!(!l.wants(at(4)), "lapsed");
        l.propose(true, Some(at(7)));
        assert!(l.wants(at(5)), "renewed");
        l.propose(true, None);
        assert!(l.wants(at(1000)), "no lease: held until withdrawn");
        l.propose(false, Some(at(2000)));
        assert!(!l.wants(at(1)) && l.refuses());
    }

    #[test]
    fn a_pool_write_without_a_majority_ends_when_all_completed() {
        let mut l = LockState::default();
        l.write_started(block(1, 1), vec![RequestId(1), RequestId(2)]);
        assert_eq!(l.pool_written(RequestId(1), true, 2), None);
        assert!(l.writing());
        assert_eq!(l.pool_written(RequestId(2), false, 2), None);
        assert!(!l.writing());
        assert_eq!(l.master_epoch(), 0);
    }
}
