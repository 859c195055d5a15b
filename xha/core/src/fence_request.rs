//! Fence requests: when may a host fence because a peer asked it to?
//!
//! A survivor in `Deciding` sets `fence_request` with a `proposed` set that
//! leaves the losers out. The request only speeds up a loser's end: removal
//! never depends on it (it rests on the lease proof), and a real loser stops
//! renewing by itself and fences when its lease runs out. So a request is
//! obeyed only when this host's own evidence corroborates it, and it costs a
//! real loser at most one statefile read:
//!
//! 1. **The requester's statefile slot carries the request.** A network
//!    attacker holding the pool secret can forge a heartbeat, but cannot
//!    write the statefile; the request is judged on the requester's slot as
//!    this host last read it, never on a heartbeat. A partitioned loser hears
//!    nobody and learns of the request from the statefile anyway.
//! 2. **This host's own views say it lost:** it is not in the survivor set it
//!    computes itself (so it has already stopped renewing). A host that still
//!    hears and sees a partition that includes the requester, and so still
//!    survives by its own views, does not fence on anyone's word.
//!
//! A request that fails either check is refused: counted, and reported once
//! per T per requester (`Warning::FenceRequestRefused`), so an operator sees
//! forged or disputed requests. This module is pure: it judges rows the node
//! hands it.

use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, Phase, Slot};

use super::time::Instant;

/// Does `row`, the state of host `q`, ask host `me` to fence? (A member in
/// `Deciding` whose liveset still holds `me` and whose proposed set holds
/// itself but not `me`.)
#[must_use]
pub fn asks_to_fence(row: &Slot, q: usize, me: usize) -> bool {
    !row.starting
        && row.fence_request
        && row.phase == Phase::Deciding
        && row.liveset.contains(me)
        && !row.proposed.contains(me)
        && row.proposed.contains(q)
}

/// Why a fence request was not obeyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The requester's statefile slot (as last read here) does not carry the
    /// request: it came over the network only (forged, or not yet written).
    NotOnStatefile,
    /// This host is in its own survivor set: it still hears and sees a
    /// partition that includes the requester.
    StillSurvivor,
}

impl Refusal {
    /// Text for operators.
    #[must_use]
    pub fn text(self) -> &'static str {
        match self {
            Refusal::NotOnStatefile => "its statefile slot does not carry the request",
            Refusal::StillSurvivor => {
                "this host still hears and sees a surviving partition that includes it"
            }
        }
    }
}

/// The verdict on the requests visible to one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody asks this host to fence.
    None,
    /// Host `by` asks and this host's own evidence agrees: fence now.
    Fence { by: usize },
    /// Host `by` asks (its freshest row does) but the evidence disagrees.
    Refused { by: usize, why: Refusal },
}

/// What one peer shows this host: its freshest row (heartbeat or slot) and
/// its slot as last read from the statefile.
#[derive(Clone, Copy, Debug)]
pub struct PeerRows<'a> {
    pub row: Option<&'a Slot>,
    pub disk: Option<&'a Slot>,
}

/// Judge the requests of the liveset members for host `me`, whose own
/// survivor set is `survivors`. A request counts when the requester's
/// freshest row carries it; it is obeyed when its slot carries it too and
/// `me` is not in `survivors`. A corroborated request from any member wins
/// over refused ones; among refused ones the lowest requester is reported.
pub fn judge<'a>(
    me: usize,
    liveset: HostSet,
    survivors: HostSet,
    rows: impl Fn(usize) -> PeerRows<'a>,
) -> Verdict {
    let mut refused = Verdict::None;
    for q in liveset.iter().filter(|&q| q != me) {
        let PeerRows { row, disk } = rows(q);
        // The freshest row must ask (a newer heartbeat without the request
        // means the requester withdrew it), and so must the slot.
        if !row.is_some_and(|r| asks_to_fence(r, q, me)) {
            continue;
        }
        let on_disk = disk.is_some_and(|d| asks_to_fence(d, q, me));
        let why = if !on_disk {
            Refusal::NotOnStatefile
        } else if survivors.contains(me) {
            Refusal::StillSurvivor
        } else {
            return Verdict::Fence { by: q };
        };
        if refused == Verdict::None {
            refused = Verdict::Refused { by: q, why };
        }
    }
    refused
}

/// Counts refused requests and rate-limits their warnings.
#[derive(Clone, Debug, Default)]
pub struct Refusals {
    /// Requests refused since start: one per requester and request (a
    /// request that stays visible across evaluations counts once).
    pub count: u64,
    /// The last refused request: requester, why, and when.
    pub last: Option<(usize, Refusal, Instant)>,
    /// Per requester: the slot sequence of the last request counted, and
    /// when a warning about it was last raised.
    seen: Vec<(Option<u64>, Option<Instant>)>,
}

impl Refusals {
    /// Record a refusal of `by`'s request carried in a row with `sequence`
    /// at `now`. Returns whether to raise a warning (at most once per
    /// `every` per requester).
    pub fn record(
        &mut self,
        now: Instant,
        by: usize,
        sequence: u64,
        why: Refusal,
        every: Duration,
    ) -> bool {
        if self.seen.len() <= by {
            self.seen.resize(by + 1, (None, None));
        }
        let (counted, warned) = &mut self.seen[by];
        if *counted == Some(sequence) {
            return false;
        }
        *counted = Some(sequence);
        self.count = self.count.saturating_add(1);
        self.last = Some((by, why, now));
        if warned.is_some_and(|at| now.saturating_since(at) < every) {
            return false;
        }
        *warned = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> HostSet {
        v.iter().copied().collect()
    }

    /// Host `q`'s row asking host 2 to fence (or a normal row).
    fn row(q: usize, asking: bool) -> Slot {
        Slot {
            host_index: q as u16,
            sequence: 10,
            liveset: set(&[0, 1, 2]),
            proposed: if asking {
                set(&[0, 1])
            } else {
                set(&[0, 1, 2])
            },
            phase: if asking {
                Phase::Deciding
            } else {
                Phase::Normal
            },
            fence_request: asking,
            statefile_access: true,
            ..Slot::default()
        }
    }

    #[test]
    fn the_request_predicate() {
        assert!(asks_to_fence(&row(0, true), 0, 2));
        assert!(!asks_to_fence(&row(0, false), 0, 2));
        // Not for a host outside the requester's liveset, nor for one it
        // proposes to keep, nor from a requester that drops itself.
        assert!(!asks_to_fence(&row(0, true), 0, 1));
        let mut r = row(0, true);
        r.liveset = set(&[0, 1]);
        assert!(!asks_to_fence(&r, 0, 2));
        let mut r = row(0, true);
        r.proposed = set(&[1]);
        assert!(!asks_to_fence(&r, 0, 2));
        let mut r = row(0, true);
        r.starting = true;
        assert!(!asks_to_fence(&r, 0, 2));
        let mut r = row(0, true);
        r.phase = Phase::Agreeing;
        assert!(!asks_to_fence(&r, 0, 2));
    }

    /// The forged packet of issue 9: host 0's heartbeat asks host 2 to fence,
    /// its statefile slot does not, and host 2 survives by its own views.
    #[test]
    fn a_request_only_on_the_network_is_refused() {
        let forged = row(0, true);
        let real = row(0, false);
        let normal = row(1, false);
        let v = judge(2, set(&[0, 1, 2]), set(&[0, 1, 2]), |q| match q {
            0 => PeerRows {
                row: Some(&forged),
                disk: Some(&real),
            },
            _ => PeerRows {
                row: Some(&normal),
                disk: Some(&normal),
            },
        });
        assert_eq!(
            v,
            Verdict::Refused {
                by: 0,
                why: Refusal::NotOnStatefile
            }
        );
        // Even when the forged row also made this host lose by its views.
        let v = judge(2, set(&[0, 1, 2]), set(&[0, 1]), |q| match q {
            0 => PeerRows {
                row: Some(&forged),
                disk: Some(&real),
            },
            _ => PeerRows {
                row: Some(&normal),
                disk: None,
            },
        });
        assert!(matches!(
            v,
            Verdict::Refused {
                why: Refusal::NotOnStatefile,
                ..
            }
        ));
    }

    /// A real loser (it hears nobody, its views exclude it) fences on the
    /// request it reads in the requester's slot.
    #[test]
    fn a_real_loser_fences_on_the_slot() {
        let asking = row(1, true);
        let quiet = row(0, false);
        let v = judge(2, set(&[0, 1, 2]), set(&[0, 1]), |q| match q {
            1 => PeerRows {
                row: Some(&asking),
                disk: Some(&asking),
            },
            _ => PeerRows {
                row: Some(&quiet),
                disk: Some(&quiet),
            },
        });
        assert_eq!(v, Verdict::Fence { by: 1 });
        // A newer heartbeat without the request: withdrawn, nothing to do.
        let v = judge(2, set(&[0, 1, 2]), set(&[0, 1]), |q| match q {
            1 => PeerRows {
                row: Some(&quiet),
                disk: Some(&asking),
            },
            _ => PeerRows {
                row: Some(&quiet),
                disk: Some(&quiet),
            },
        });
        assert_eq!(v, Verdict::None);
    }

    /// A genuine request that this host's views dispute: no fence yet (it
    /// keeps renewing; the views converge within a few intervals).
    #[test]
    fn a_disputed_request_is_refused() {
        let asking = row(0, true);
        let v = judge(2, set(&[0, 1, 2]), set(&[0, 1, 2]), |_| PeerRows {
            row: Some(&asking),
            disk: Some(&asking),
        });
        assert_eq!(
            v,
            Verdict::Refused {
                by: 0,
                why: Refusal::StillSurvivor
            }
        );
        assert_eq!(
            judge(2, set(&[0, 1, 2]), set(&[0, 1, 2]), |_| PeerRows {
                row: None,
                disk: None
            }),
            Verdict::None
        );
    }

    #[test]
    fn refusals_count_once_per_request_and_warn_once_per_period() {
        let mut r = Refusals::default();
        let t = Duration::from_secs(10);
        let at = |s: u64| Instant::from_nanos(s * 1_000_000_000);
        assert!(r.record(at(1), 0, 5, Refusal::NotOnStatefile, t));
        // The same request seen again: not counted again.
        assert!(!r.record(at(2), 0, 5, Refusal::NotOnStatefile, t));
        // A new request within T: counted, no new warning.
        assert!(!r.record(at(3), 0, 6, Refusal::NotOnStatefile, t));
        // Another requester warns on its own.
        assert!(r.record(at(3), 1, 6, Refusal::StillSurvivor, t));
        assert!(r.record(at(12), 0, 7, Refusal::NotOnStatefile, t));
        assert_eq!(r.count, 4);
        assert_eq!(r.last, Some((0, Refusal::NotOnStatefile, at(12))));
    }
}
