//! The master lock: requests and grants travel in host slots.
//!
//! Rules (pure functions, used by every host):
//! - A host requests the lock by setting its own bit in `lock_request`.
//! - Every liveset member grants the lock to at most one host: the current
//!   master if it still requests; else the host it granted before if that one
//!   still requests (no preemption of a requester that may be acquiring);
//!   else the lowest-index requester (lowest index wins contention).
//! - A requester holds the lock when every liveset member grants it. It then
//!   writes the pool block with itself as master and a new epoch (one more
//!   than any epoch it knows) and becomes master only once that write is on a
//!   majority of statefiles.
//! - Only liveset members can request, grant or hold.

use sr_heartbeat::statefile::HostSet;

/// Whom this host grants the lock to.
#[must_use]
pub fn grant(
    liveset: HostSet,
    requesters: HostSet,
    master: Option<usize>,
    previous: Option<usize>,
) -> Option<usize> {
    let requesters = requesters.intersection(liveset);
    if let Some(m) = master
        && requesters.contains(m)
    {
        return Some(m);
    }
    if let Some(p) = previous
        && requesters.contains(p)
    {
        return Some(p);
    }
    requesters.lowest()
}

/// Does `me` hold the lock, given each liveset member's grant?
/// `grants[p]` is `p`'s latest published grant.
#[must_use]
pub fn holds(me: usize, liveset: HostSet, grants: &[Option<usize>]) -> bool {
    liveset.contains(me)
        && liveset
            .iter()
            .all(|p| grants.get(p).copied().flatten() == Some(me))
}

/// The epoch a new holder writes: one more than the highest known.
#[must_use]
pub fn next_epoch(known: impl IntoIterator<Item = u64>) -> u64 {
    known.into_iter().max().unwrap_or(0).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> HostSet {
        v.iter().copied().collect()
    }

    #[test]
    fn lowest_requester_wins_contention() {
        let live = set(&[0, 1, 2, 3]);
        assert_eq!(grant(live, set(&[3, 1]), None, None), Some(1));
        assert_eq!(grant(live, HostSet::EMPTY, None, None), None);
    }

    #[test]
    fn no_preemption_of_a_granted_requester() {
        let live = set(&[0, 1, 2]);
        assert_eq!(grant(live, set(&[0, 2]), None, Some(2)), Some(2));
        // ...unless it stopped requesting.
        assert_eq!(grant(live, set(&[0]), None, Some(2)), Some(0));
    }

    #[test]
    fn the_master_keeps_the_lock() {
        let live = set(&[0, 1, 2]);
        assert_eq!(grant(live, set(&[0, 2]), Some(2), Some(0)), Some(2));
    }

    #[test]
    fn only_members_are_granted() {
        let live = set(&[1, 2]);
        assert_eq!(grant(live, set(&[0, 2]), Some(0), None), Some(2));
    }

    #[test]
    fn holding_needs_every_member() {
        let live = set(&[0, 1, 2]);
        let mut grants = vec![Some(1), Some(1), Some(1)];
        assert!(holds(1, live, &grants));
        assert!(!holds(0, live, &grants));
        grants[2] = Some(0);
        assert!(!holds(1, live, &grants));
        assert!(!holds(5, live, &grants));
        assert!(!holds(1, live, &grants[..1]));
    }

    /// Exhaustive over 3 members, every request set and previous grant: at
    /// most one host can hold the lock at once when every member applies the
    /// same rule to the same requests.
    #[test]
    fn at_most_one_holder() {
        let live = HostSet::first_n(3);
        let opts = [None, Some(0), Some(1), Some(2)];
        for req in 0u64..8 {
            for master in opts {
                for p0 in opts {
                    for p1 in opts {
                        for p2 in opts {
                            let prev = [p0, p1, p2];
                            let grants: Vec<_> = (0..3)
                                .map(|h| grant(live, HostSet(req), master, prev[h]))
                                .collect();
                            let holders = (0..3).filter(|&h| holds(h, live, &grants)).count();
                            assert!(holders <= 1);
                            for g in grants.iter().flatten() {
                                assert!(HostSet(req).contains(*g));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn epochs_grow() {
        assert_eq!(next_epoch([3, 7, 2]), 8);
        assert_eq!(next_epoch([]), 1);
    }
}
