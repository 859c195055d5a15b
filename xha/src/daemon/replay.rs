//! Replay floors: which authentic heartbeats of a peer are new enough to
//! accept (the last check of the receive path, after `wire::Codec::decode`),
//! and [`Receiver`], the whole receive path (decode, floors, drop counters;
//! also reachable as `wire::Receiver`).
//!
//! A receiver keeps, per peer, the floor: the last `(incarnation, sequence)`
//! it accepted, and accepts only a greater pair. A floor never moves back on
//! the network's word, so one forged packet (made with the pool secret)
//! carrying a much higher pair would make the receiver deaf to the real peer
//! for good; the peer would leave the network view after the heartbeat
//! timeout and the survival rules would act on a healthy pool. Two rules
//! bound that:
//!
//! 1. **Incarnations are bounded by this host's wall clock.** A peer's
//!    incarnation is `max(previous + 1, wall-clock microseconds)` at its
//!    start (`daemon::incarnation`), so an honest one is never ahead of this
//!    host's wall clock by more than the clock skew between the two hosts.
//!    A packet whose incarnation is more than [`INCARNATION_AHEAD_MAX`] ahead
//!    is refused (`future-incarnation`) and leaves the floor alone. (Pools
//!    keep their clocks in step with NTP; a host whose clock, or persisted
//!    incarnation, runs further ahead is refused by its peers, which count
//!    and log it.)
//! 2. **The statefile can lower a floor; the network cannot.** When a peer's
//!    packets have all been dropped as replayed for [`RECOVER_AFTER_INTERVALS`]
//!    heartbeat intervals, its statefile slot changed after the drops began
//!    (so it is alive and writing), and a dropped packet carries a slot
//!    sequence at least the newest one this host read from the peer's slot,
//!    that packet is accepted and becomes the floor. A recording cannot meet
//!    this: a heartbeat carries the sequence of its sender's latest slot
//!    write, and a peer that writes moves its slot past every packet it sent
//!    before that write, while no network attacker can write the statefile.
//!    So a floor raised by a forged packet falls back within about three
//!    intervals, well inside the heartbeat timeout (eight), and the real peer
//!    never leaves the network view.
//!
//! A peer whose packets are still dropped as replayed after
//! [`WARN_AFTER_INTERVALS`] intervals (no statefile evidence: the peer does
//! not write, or this host cannot read) is reported: "dropping host X's
//! packets as replayed for N s", at most once per T in the log and in the
//! liveset query while it lasts. The peer sees the other side of it: this
//! host's heartbeats stop listing it as heard while it hears this host
//! (`core::peer_alerts`).

use std::time::Duration;

use super::wire::{Codec, DropCounters, DropReason, Heartbeat};
use crate::core::Instant;

/// How far (microseconds) a peer's incarnation may be ahead of this host's
/// wall clock: 10 minutes of clock skew.
pub const INCARNATION_AHEAD_MAX: u64 = 600_000_000;

/// Heartbeat intervals of replay drops (with no packet accepted) before the
/// statefile may lower the floor.
pub const RECOVER_AFTER_INTERVALS: u32 = 2;

/// Heartbeat intervals of replay drops before the receiver warns.
pub const WARN_AFTER_INTERVALS: u32 = 4;

// Recovery happens before the warning and well before the peer leaves the
// network view (heartbeat timeout = 8 intervals).
const _: () = assert!(RECOVER_AFTER_INTERVALS < WARN_AFTER_INTERVALS);
const _: () = assert!(WARN_AFTER_INTERVALS < 8);

/// What this host read of a peer's statefile slot: the newest sequence, and
/// when (this host's monotonic clock) it last grew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotEvidence {
    pub sequence: u64,
    pub changed_at: Instant,
}

/// Why a pair was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not after the floor.
    Replayed { last: (u64, u64) },
    /// The incarnation is further ahead of this host's wall clock than
    /// [`INCARNATION_AHEAD_MAX`].
    FutureIncarnation { wall_us: u64 },
}

/// A pair accepted below the floor on statefile evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lowered {
    pub from: usize,
    pub old: (u64, u64),
    pub new: (u64, u64),
    pub slot_sequence: u64,
    pub evidence: u64,
}

/// One peer's floor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Floor {
    last: Option<(u64, u64)>,
    /// The first replay drop since the last accepted packet.
    dropping_since: Option<Instant>,
    /// The latest replay drop.
    last_drop: Option<Instant>,
    /// When a warning about the drops was last logged.
    warned_at: Option<Instant>,
}

/// The floors of every peer.
#[derive(Clone, Debug)]
pub struct Floors {
    floors: Vec<Floor>,
    recover_after: Duration,
    warn_after: Duration,
    warn_every: Duration,
    /// Floors lowered on statefile evidence since start.
    pub lowered: u64,
}

impl Floors {
    /// Floors for `hosts` peers, timed from the heartbeat interval and T.
    #[must_use]
    pub fn new(hosts: usize, heartbeat_interval: Duration, t: Duration) -> Floors {
        Floors {
            floors: vec![Floor::default(); hosts],
            recover_after: heartbeat_interval * RECOVER_AFTER_INTERVALS,
            warn_after: heartbeat_interval * WARN_AFTER_INTERVALS,
            warn_every: t,
            lowered: 0,
        }
    }

    /// Judge pair `(incarnation, sequence)` of a packet from `from` carrying
    /// slot sequence `slot_sequence`, at `now` (monotonic) and `wall_us`
    /// (this host's wall clock), with what this host read of the sender's
    /// slot. `Ok(Some(_))`: accepted below the old floor. A refused pair
    /// changes no floor. Panics if `from` is not a host index (the decoder
    /// checked it).
    pub fn check(
        &mut self,
        from: usize,
        (incarnation, sequence): (u64, u64),
        slot_sequence: u64,
        now: Instant,
        wall_us: u64,
        evidence: Option<SlotEvidence>,
    ) -> Result<Option<Lowered>, Refused> {
        if incarnation > wall_us.saturating_add(INCARNATION_AHEAD_MAX) {
            return Err(Refused::FutureIncarnation { wall_us });
        }
        let f = &mut self.floors[from];
        let pair = (incarnation, sequence);
        let Some(last) = f.last.filter(|&l| pair <= l) else {
            f.last = Some(pair);
            f.dropping_since = None;
            return Ok(None);
        };
        let since = *f.dropping_since.get_or_insert(now);
        f.last_drop = Some(now);
        let recoverable = now.saturating_since(since) >= self.recover_after
            && evidence.is_some_and(|e| e.changed_at > since && slot_sequence >= e.sequence);
        if !recoverable {
            return Err(Refused::Replayed { last });
        }
        f.last = Some(pair);
        f.dropping_since = None;
        self.lowered = self.lowered.saturating_add(1);
        Ok(Some(Lowered {
            from,
            old: last,
            new: pair,
            slot_sequence,
            evidence: evidence.map_or(0, |e| e.sequence),
        }))
    }

    /// Since when `from`'s packets have all been dropped as replayed, if
    /// for longer than the warning threshold at `now` and still (a drop
    /// within the threshold: a peer that fell silent is the heartbeat
    /// timeout's business, not this warning's).
    #[must_use]
    pub fn dropping_since(&self, from: usize, now: Instant) -> Option<Instant> {
        let f = self.floors.get(from)?;
        let since = f.dropping_since?;
        let recent = f
            .last_drop
            .is_some_and(|at| now.saturating_since(at) <= self.warn_after);
        (recent && now.saturating_since(since) > self.warn_after).then_some(since)
    }

    /// Peers to warn about now (at most once per T each): `(peer, since)`.
    pub fn warnings(&mut self, now: Instant) -> Vec<(usize, Instant)> {
        let mut out = Vec::new();
        for p in 0..self.floors.len() {
            let Some(since) = self.dropping_since(p, now) else {
                continue;
            };
            let f = &mut self.floors[p];
            if f.warned_at
                .is_some_and(|at| now.saturating_since(at) < self.warn_every)
            {
                continue;
            }
            f.warned_at = Some(now);
            out.push((p, since));
        }
        out
    }

    /// The last accepted pair of `from`.
    #[must_use]
    pub fn last(&self, from: usize) -> Option<(u64, u64)> {
        self.floors.get(from).and_then(|f| f.last)
    }
}

/// The receive side of one host: decode, authenticate, reject replays
/// ([`super::replay`]), count drops. This is what the daemon's receive task
/// runs on each datagram before feeding `Input::Heartbeat` to the core.
///
/// The replay rules need the time and what this host read of each peer's
/// statefile slot: the receive task sets them with [`Receiver::set_time`]
/// and [`Receiver::set_evidence`] before each [`Receiver::accept`]. A new
/// receiver's wall clock is 0 (incarnations up to
/// [`super::replay::INCARNATION_AHEAD_MAX`] pass).
#[derive(Clone, Debug)]
pub struct Receiver {
    codec: Codec,
    floors: Floors,
    counters: DropCounters,
    now: Instant,
    wall_us: u64,
    evidence: Vec<Option<SlotEvidence>>,
    lowered: Vec<Lowered>,
}

impl Receiver {
    /// A receiver timed for the smallest base timeout (T = 10 s).
    #[must_use]
    pub fn new(codec: Codec) -> Receiver {
        Receiver::with_timing(codec, Duration::from_millis(200), Duration::from_secs(10))
    }

    /// A receiver whose replay floors are timed from the heartbeat interval
    /// and T.
    #[must_use]
    pub fn with_timing(codec: Codec, heartbeat_interval: Duration, t: Duration) -> Receiver {
        let n = codec.hosts();
        Receiver {
            codec,
            floors: Floors::new(n, heartbeat_interval, t),
            counters: DropCounters::default(),
            now: Instant::from_nanos(0),
            wall_us: 0,
            evidence: vec![None; n],
            lowered: Vec::new(),
        }
    }

    /// The time of the next datagrams: monotonic (the daemon's clock) and
    /// wall clock in microseconds.
    pub fn set_time(&mut self, now: Instant, wall_us: u64) {
        self.now = now;
        self.wall_us = wall_us;
    }

    /// What this host last read of each peer's slot (by host index).
    pub fn set_evidence(&mut self, evidence: &[Option<SlotEvidence>]) {
        for (e, new) in self.evidence.iter_mut().zip(evidence) {
            *e = *new;
        }
    }

    /// Accept one datagram or count and return why it was dropped.
    pub fn accept(&mut self, datagram: &[u8]) -> Result<Heartbeat, DropReason> {
        let r = self.codec.decode(datagram).and_then(|hb| {
            let pair = (hb.incarnation, hb.packet_sequence);
            let evidence = self.evidence[hb.from];
            match self.floors.check(
                hb.from,
                pair,
                hb.slot.sequence,
                self.now,
                self.wall_us,
                evidence,
            ) {
                Ok(None) => Ok(hb),
                Ok(Some(lowered)) => {
                    self.counters.floors_lowered = self.floors.lowered;
                    self.lowered.push(lowered);
                    Ok(hb)
                }
                Err(Refused::FutureIncarnation { wall_us }) => Err(DropReason::FutureIncarnation {
                    incarnation: pair.0,
                    wall_us,
                }),
                Err(Refused::Replayed { last }) => Err(DropReason::Replayed {
                    incarnation: pair.0,
                    sequence: pair.1,
                    last_incarnation: last.0,
                    last_sequence: last.1,
                }),
            }
        });
        if let Err(e) = &r {
            self.counters.record(e.kind());
        }
        r
    }

    /// Floors lowered since the last call (for the log).
    pub fn take_lowered(&mut self) -> Vec<Lowered> {
        std::mem::take(&mut self.lowered)
    }

    /// Peers whose packets have all been dropped as replayed for a while,
    /// to warn about now (at most once per T each): `(peer, since)`.
    pub fn replay_warnings(&mut self) -> Vec<(usize, Instant)> {
        self.floors.warnings(self.now)
    }

    /// Since when every packet of each peer has been dropped as replayed
    /// (past the warning threshold), by host index.
    #[must_use]
    pub fn dropping_since(&self) -> Vec<Option<Instant>> {
        (0..self.codec.hosts())
            .map(|p| self.floors.dropping_since(p, self.now))
            .collect()
    }

    #[must_use]
    pub fn counters(&self) -> DropCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HB: Duration = Duration::from_millis(200);
    const T: Duration = Duration::from_secs(10);
    const WALL: u64 = 1_700_000_000_000_000;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }
    fn ev(sequence: u64, at: u64) -> Option<SlotEvidence> {
        Some(SlotEvidence {
            sequence,
            changed_at: ms(at),
        })
    }

    #[test]
    fn far_future_incarnations_are_refused_and_leave_the_floor() {
        let mut f = Floors::new(3, HB, T);
        assert_eq!(f.check(1, (WALL, 1), 10, ms(0), WALL, None), Ok(None));
        let future = WALL + INCARNATION_AHEAD_MAX + 1;
        assert_eq!(
            f.check(1, (future, 1), 10, ms(1), WALL, None),
            Err(Refused::FutureIncarnation { wall_us: WALL })
        );
        assert_eq!(f.last(1), Some((WALL, 1)));
        // Within the allowance (clock skew): accepted.
        let skewed = WALL + INCARNATION_AHEAD_MAX;
        assert_eq!(f.check(1, (skewed, 1), 10, ms(2), WALL, None), Ok(None));
    }

    /// A forged packet raised the floor; the real peer's packets are dropped
    /// until the statefile shows it alive with a slot sequence its packets
    /// match, two intervals later.
    #[test]
    fn the_statefile_lowers_a_forged_floor() {
        let mut f = Floors::new(3, HB, T);
        assert_eq!(
            f.check(0, (WALL, 50), 100, ms(0), WALL, ev(100, 0)),
            Ok(None)
        );
        // Forged: a higher sequence of the same incarnation.
        assert_eq!(
            f.check(0, (WALL, 1 << 40), 100, ms(10), WALL, ev(100, 0)),
            Ok(None)
        );
        // The real packets: dropped (no evidence after the drops began yet).
        for (i, at) in [200u64, 400].iter().enumerate() {
            let r = f.check(
                0,
                (WALL, 51 + i as u64),
                101 + i as u64,
                ms(*at),
                WALL,
                ev(101, 100),
            );
            assert_eq!(
                r,
                Err(Refused::Replayed {
                    last: (WALL, 1 << 40)
                })
            );
        }
        // Slot changed after the drops began, two intervals passed, and the
        // packet's slot sequence is the newest on disk: accepted.
        let r = f.check(0, (WALL, 53), 103, ms(600), WALL, ev(103, 500));
        assert_eq!(
            r,
            Ok(Some(Lowered {
                from: 0,
                old: (WALL, 1 << 40),
                new: (WALL, 53),
                slot_sequence: 103,
                evidence: 103
            }))
        );
        assert_eq!(f.lowered, 1);
        assert_eq!(
            f.check(0, (WALL, 54), 104, ms(800), WALL, ev(103, 500)),
            Ok(None)
        );
    }

    /// A recording never lowers a floor: its slot sequence is behind the
    /// slot on disk, or the slot does not change (the peer is dead).
    #[test]
    fn recordings_never_lower_a_floor() {
        let mut f = Floors::new(3, HB, T);
        assert_eq!(
            f.check(2, (WALL, 90), 190, ms(0), WALL, ev(190, 0)),
            Ok(None)
        );
        // Replays of packets 10..20 (slot sequences 110..120) for 10 s while
        // the peer keeps writing (disk at 190 + k).
        for k in 0..50u64 {
            let at = 200 * (k + 1);
            let r = f.check(
                2,
                (WALL, 10 + k % 10),
                110 + k % 10,
                ms(at),
                WALL,
                ev(190 + k, at),
            );
            assert!(matches!(r, Err(Refused::Replayed { .. })), "{k}: {r:?}");
        }
        // The peer died after sequence 190: a replay of its last packet,
        // with a slot that no longer changes.
        let mut f = Floors::new(3, HB, T);
        assert_eq!(
            f.check(2, (WALL, 90), 190, ms(0), WALL, ev(190, 0)),
            Ok(None)
        );
        for k in 1..50u64 {
            let r = f.check(2, (WALL, 90), 190, ms(200 * k), WALL, ev(190, 0));
            assert!(matches!(r, Err(Refused::Replayed { .. })));
        }
    }

    #[test]
    fn lasting_drops_warn_once_per_t() {
        let mut f = Floors::new(3, HB, T);
        assert_eq!(f.check(1, (WALL, 9), 1, ms(0), WALL, None), Ok(None));
        assert!(f.check(1, (WALL, 5), 1, ms(100), WALL, None).is_err());
        assert!(f.warnings(ms(800)).is_empty());
        assert_eq!(f.dropping_since(1, ms(800)), None);
        assert!(f.check(1, (WALL, 6), 1, ms(1000), WALL, None).is_err());
        assert_eq!(f.warnings(ms(1000)), vec![(1, ms(100))]);
        assert!(f.warnings(ms(5000)).is_empty());
        // Drops go on: warned again after T.
        assert!(f.check(1, (WALL, 7), 1, ms(11_000), WALL, None).is_err());
        assert_eq!(f.warnings(ms(11_100)), vec![(1, ms(100))]);
        // No drop for longer than the threshold (the peer fell silent).
        assert_eq!(f.dropping_since(1, ms(11_900)), None);
        // An accepted packet ends it.
        assert_eq!(f.check(1, (WALL, 10), 1, ms(12_000), WALL, None), Ok(None));
        assert_eq!(f.dropping_since(1, ms(20_000)), None);
    }
}
