//! Which peer views are current enough to decide who survives, and when a
//! loser must still publish its own view (issue 9, section 1).
//!
//! A host decides with its own fresh `heard` set but with the *other* hosts'
//! rows, which may be older than the fault. When a switch fails, every host
//! stops hearing the others at about the heartbeat timeout while their last
//! rows still say "I hear everyone". Taken at face value, those rows make the
//! other hosts look like a larger clique, so every host concludes it lost and
//! stops writing before it publishes its own smaller view: nobody survives.
//! Two rules close this:
//!
//! 1. **Stale claims** ([`row_is_current`]). A row of a peer that this host no
//!    longer hears, and that claims to hear this host, may describe the
//!    network before the fault. It is used only if it was written well after
//!    the last heartbeat this host received from that peer: its sequence is
//!    at least [`Timeouts::claim_window_writes`] above that heartbeat's. A real one-way
//!    link keeps producing such new rows; a row from before the cut is never
//!    replaced by one (the author stops claiming this host within the
//!    heartbeat timeout). An unusable row gives its author no edge at all (it
//!    stays a candidate, as a singleton). The sequence, not a time, is used
//!    because it counts the author's own writes: a window in time would have
//!    to cover the write and read latencies, which storage latency stretches.
//! 2. **Publish before quitting** ([`must_publish`]). A member that is not in
//!    its own survivor set still writes its slot whenever its published view
//!    claims more than it now knows (a peer it no longer hears, or statefile
//!    access it lost). Such a write never renews the lease: it is issued
//!    under a valid lease, which is all the removal proof needs, and it moves
//!    the readers' anchors, which only delays removal by the time it is
//!    written. So the last row of every loser tells the truth about the
//!    edges it lost, and a survivor never waits on a clique that no longer
//!    exists.

use sr_heartbeat::statefile::{HostSet, Slot};

/// May `row`, the freshest known state of a peer this host (`me`) does not
/// hear now, be used as evidence of whom that peer hears?
/// `last_heartbeat_sequence` is the sequence of the last heartbeat received
/// from the peer (`None`: never heard, so no claim can predate a loss).
#[must_use]
pub fn row_is_current(
    me: usize,
    row: &Slot,
    last_heartbeat_sequence: Option<u64>,
    window_writes: u64,
) -> bool {
    if !row.heard.contains(me) {
        return true;
    }
    match last_heartbeat_sequence {
        None => true,
        Some(s) => row.sequence >= s.saturating_add(window_writes),
    }
}

/// The part of a member's own view that peers decide with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnView {
    pub heard: HostSet,
    pub access: bool,
}

/// Must a member that lost (by its own views) still write, so that its
/// slot stops claiming what it no longer knows? `written` is the view its
/// last issued write carried.
#[must_use]
pub fn must_publish(written: Option<OwnView>, now: OwnView) -> bool {
    match written {
        None => false,
        Some(w) => !w.heard.is_subset(now.heard) || (w.access && !now.access),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sequence: u64, heard: &[usize]) -> Slot {
        Slot {
            host_index: 1,
            sequence,
            heard: heard.iter().copied().collect(),
            ..Slot::default()
        }
    }

    #[test]
    fn stale_claims_are_not_evidence() {
        // A row claiming host 0, by a peer last heard at sequence 100.
        assert!(!row_is_current(0, &row(100, &[0, 1, 2]), Some(100), 12));
        assert!(!row_is_current(0, &row(111, &[0, 1, 2]), Some(100), 12));
        // Written long after: a real one-way link.
        assert!(row_is_current(0, &row(112, &[0, 1, 2]), Some(100), 12));
        // A row that does not claim me is the peer's view after it lost me.
        assert!(row_is_current(0, &row(101, &[1, 2]), Some(100), 12));
        // Never heard: nothing to be stale against.
        assert!(row_is_current(0, &row(5, &[0, 1]), None, 12));
    }

    #[test]
    fn a_loser_publishes_what_it_lost() {
        let view = |heard: &[usize], access| OwnView {
            heard: heard.iter().copied().collect(),
            access,
        };
        assert!(must_publish(
            Some(view(&[0, 1, 2], true)),
            view(&[0, 1], true)
        ));
        assert!(must_publish(Some(view(&[0], true)), view(&[0], false)));
        // Hearing more, or the same, claims nothing false.
        assert!(!must_publish(Some(view(&[0], true)), view(&[0, 1], true)));
        assert!(!must_publish(
            Some(view(&[0, 1], false)),
            view(&[0, 1], true)
        ));
        assert!(!must_publish(None, view(&[0], true)));
    }
}
