//! The master's memory of recent commits, so a member that is only a few
//! batches behind gets those batches (`db::encode` deltas, the redo-log
//! format) rather than the whole database. Pure bookkeeping: the server
//! records every commit and asks what to send a member whose copy is at a
//! given generation.

use std::collections::VecDeque;

use crate::db::Change;
use crate::db::encode::encode_delta;

/// Batches remembered by default: enough for a member that missed a few
/// seconds of a busy master; one further behind gets a snapshot.
pub const DEFAULT_BATCHES: usize = 4096;

/// One committed batch.
#[derive(Clone, Debug, PartialEq)]
struct Batch {
    /// Generation of the database before the batch.
    before: u64,
    /// Generation after it.
    after: u64,
    /// The delta as the redo log holds it.
    payload: Vec<u8>,
}

/// What to send a member.
#[derive(Clone, Debug, PartialEq)]
pub enum Catchup {
    /// Nothing: the member is current.
    Current,
    /// These deltas, in order; the member ends at `after`.
    Deltas { payloads: Vec<Vec<u8>>, after: u64 },
    /// The member's generation is unknown or no longer covered: send the
    /// whole database.
    Snapshot,
}

/// The recent batches, oldest first, each following the one before.
#[derive(Clone, Debug)]
pub struct Backlog {
    batches: VecDeque<Batch>,
    cap: usize,
}

impl Backlog {
    /// Remembers at most `cap` batches.
    #[must_use]
    pub fn new(cap: usize) -> Backlog {
        Backlog {
            batches: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Records a batch committed from generation `before` to `after`. A
    /// batch that does not follow the last one (the database was replaced)
    /// starts the backlog afresh.
    pub fn record(&mut self, before: u64, after: u64, changes: &[Change]) {
        if after <= before {
            return;
        }
        if self.batches.back().is_some_and(|b| b.after != before) {
            self.batches.clear();
        }
        if self.batches.len() == self.cap {
            self.batches.pop_front();
        }
        self.batches.push_back(Batch {
            before,
            after,
            payload: encode_delta(before + 1, changes),
        });
    }

    /// Forgets everything (the database was replaced, or this host is no
    /// longer the master).
    pub fn clear(&mut self) {
        self.batches.clear();
    }

    /// What a member whose copy is at `member` (None: unknown) needs to
    /// reach `current`, at most `max` batches at a time.
    #[must_use]
    pub fn catchup(&self, member: Option<u64>, current: u64, max: usize) -> Catchup {
        let Some(at) = member else {
            return Catchup::Snapshot;
        };
        if at == current {
            return Catchup::Current;
        }
        let Some(start) = self.batches.iter().position(|b| b.before == at) else {
            return Catchup::Snapshot;
        };
        let taken: Vec<&Batch> = self.batches.iter().skip(start).take(max.max(1)).collect();
        let after = taken.last().map_or(at, |b| b.after);
        Catchup::Deltas {
            payloads: taken.iter().map(|b| b.payload.clone()).collect(),
            after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Class;
    use crate::value::{Ref, Value};

    fn change(n: u128) -> Vec<Change> {
        vec![Change::set(
            Class::Vm,
            Ref::from_uuid(uuid::Uuid::from_u128(n)),
            "name_label",
            Value::String(n.to_string()),
        )]
    }

    #[test]
    fn members_get_the_batches_they_miss_or_a_snapshot() {
        let mut b = Backlog::new(3);
        b.record(10, 11, &change(1));
        b.record(11, 13, &change(2));
        b.record(13, 14, &change(3));
        assert_eq!(b.catchup(None, 14, 10), Catchup::Snapshot);
        assert_eq!(b.catchup(Some(14), 14, 10), Catchup::Current);
        match b.catchup(Some(11), 14, 10) {
            Catchup::Deltas { payloads, after } => {
                assert_eq!(after, 14);
                assert_eq!(payloads.len(), 2);
                let d = crate::db::encode::decode_delta(&payloads[0]).unwrap();
                assert_eq!(d.first_generation, 12);
                assert_eq!(d.changes, change(2));
            }
            other => panic!("{other:?}"),
        }
        match b.catchup(Some(10), 14, 1) {
            Catchup::Deltas { payloads, after } => {
                assert_eq!((payloads.len(), after), (1, 11));
            }
            other => panic!("{other:?}"),
        }
        // A generation between batches, or older than the backlog.
        assert_eq!(b.catchup(Some(12), 14, 10), Catchup::Snapshot);
        b.record(14, 15, &change(4));
        assert_eq!(b.catchup(Some(10), 15, 10), Catchup::Snapshot, "evicted");
        // A batch that does not follow: the database was replaced.
        b.record(3, 4, &change(5));
        assert_eq!(b.catchup(Some(14), 4, 10), Catchup::Snapshot);
        assert!(matches!(b.catchup(Some(3), 4, 10), Catchup::Deltas { .. }));
    }
}
