//! Warnings about peers that the survival rules do not act on but an
//! operator must see:
//!
//! - **Not heard by a peer** (`Warning::NotHeardBy`): this host hears peer X
//!   (a recent heartbeat) but X's heartbeats say it does not hear this host,
//!   for longer than half the heartbeat timeout. Either the link is one-way,
//!   or X drops this host's packets (its replay floor for this host is
//!   wrong; X's liveset query says "dropping host ... as replayed"). Raised
//!   at most once per T per peer while it lasts.
//! - **Silent while fencing disarmed** (`Warning::SilentWhileDisarmed`): a
//!   liveset member whose last state says its fencing is disarmed is neither
//!   heard nor seen writing its slot (within the statefile timeout). Armed
//!   peers never remove a disarmed host (it does not fence, so its lease
//!   proves nothing), so if it died it stays in the liveset until an operator
//!   acts. Raised once when the condition starts (logged once) and reported
//!   in the liveset query for as long as it holds.
//!
//! Pure: the node hands in what it sees of each peer.

use std::time::Duration;

use sr_heartbeat::statefile::HostSet;

use super::action::Warning;
use super::ids::HostIndex;
use super::time::Instant;

/// What this host sees of one peer, for the checks above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSight {
    /// A liveset member (in this host's effective liveset).
    pub member: bool,
    /// Heard within the heartbeat timeout.
    pub heard: bool,
    /// Its slot changed within the statefile timeout.
    pub seen: bool,
    /// Its freshest state says its fencing is disarmed.
    pub disarmed: bool,
    /// Its latest heartbeat (heard recently, not starting) lists this host
    /// as heard: `None` when there is no such heartbeat.
    pub hears_me: Option<bool>,
}

/// Per-peer alert state.
#[derive(Clone, Debug, Default)]
pub struct PeerAlerts {
    /// Since when each peer has been heard but not hearing this host.
    one_way_since: Vec<Option<Instant>>,
    /// When the last `NotHeardBy` warning was raised per peer.
    one_way_warned: Vec<Option<Instant>>,
    /// Members silent while disarmed (the condition, for the status).
    silent_disarmed: HostSet,
}

impl PeerAlerts {
    /// Peers currently silent while their fencing is disarmed.
    #[must_use]
    pub fn silent_disarmed(&self) -> HostSet {
        self.silent_disarmed
    }

    /// Since when peer `p` has not heard this host while this host hears it.
    #[must_use]
    pub fn not_heard_by_since(&self, p: usize) -> Option<Instant> {
        self.one_way_since.get(p).copied().flatten()
    }

    /// Update with what this host sees of every peer at `now`; returns the
    /// warnings to raise. `heartbeat_timeout` sets the one-way threshold
    /// (half of it) and `every` the repeat period (T).
    pub fn update(
        &mut self,
        now: Instant,
        heartbeat_timeout: Duration,
        every: Duration,
        sights: impl Iterator<Item = (usize, PeerSight)>,
    ) -> Vec<Warning> {
        let mut out = Vec::new();
        for (p, s) in sights {
            if self.one_way_since.len() <= p {
                self.one_way_since.resize(p + 1, None);
                self.one_way_warned.resize(p + 1, None);
            }
            // One-way: heard, and its heartbeat says it does not hear me.
            if s.heard && s.hears_me == Some(false) {
                let since = *self.one_way_since[p].get_or_insert(now);
                let lasted = now.saturating_since(since);
                let recently =
                    self.one_way_warned[p].is_some_and(|at| now.saturating_since(at) < every);
                if lasted > heartbeat_timeout / 2 && !recently {
                    self.one_way_warned[p] = Some(now);
                    out.push(Warning::NotHeardBy {
                        host: HostIndex(p),
                        lasted,
                    });
                }
            } else {
                self.one_way_since[p] = None;
            }
            // Silent while disarmed: an edge, raised once.
            let silent = s.member && s.disarmed && !s.heard && !s.seen;
            if silent && !self.silent_disarmed.contains(p) {
                out.push(Warning::SilentWhileDisarmed { host: HostIndex(p) });
            }
            if silent {
                self.silent_disarmed.insert(p);
            } else {
                self.silent_disarmed.remove(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }
    const HB: Duration = Duration::from_millis(1600);
    const T: Duration = Duration::from_secs(10);

    #[test]
    fn one_way_warns_after_half_the_timeout_then_once_per_t() {
        let mut a = PeerAlerts::default();
        let deaf = PeerSight {
            member: true,
            heard: true,
            hears_me: Some(false),
            ..PeerSight::default()
        };
        assert!(
            a.update(at_ms(0), HB, T, [(1, deaf)].into_iter())
                .is_empty()
        );
        assert!(
            a.update(at_ms(700), HB, T, [(1, deaf)].into_iter())
                .is_empty()
        );
        let w = a.update(at_ms(900), HB, T, [(1, deaf)].into_iter());
        assert_eq!(
            w,
            vec![Warning::NotHeardBy {
                host: HostIndex(1),
                lasted: Duration::from_millis(900)
            }]
        );
        assert!(
            a.update(at_ms(5000), HB, T, [(1, deaf)].into_iter())
                .is_empty()
        );
        assert_eq!(
            a.update(at_ms(11000), HB, T, [(1, deaf)].into_iter()).len(),
            1
        );
        assert_eq!(a.not_heard_by_since(1), Some(at_ms(0)));
        // Healed: the clock restarts.
        let ok = PeerSight {
            hears_me: Some(true),
            ..deaf
        };
        assert!(
            a.update(at_ms(11100), HB, T, [(1, ok)].into_iter())
                .is_empty()
        );
        assert_eq!(a.not_heard_by_since(1), None);
        // Not heard at all is not one-way (the heartbeat timeout covers it).
        let gone = PeerSight {
            heard: false,
            ..deaf
        };
        assert!(
            a.update(at_ms(30000), HB, T, [(1, gone)].into_iter())
                .is_empty()
        );
    }

    #[test]
    fn silent_disarmed_is_raised_once_and_held_while_it_lasts() {
        let mut a = PeerAlerts::default();
        let silent = PeerSight {
            member: true,
            disarmed: true,
            ..PeerSight::default()
        };
        assert_eq!(
            a.update(at_ms(0), HB, T, [(2, silent)].into_iter()),
            vec![Warning::SilentWhileDisarmed { host: HostIndex(2) }]
        );
        assert!(
            a.update(at_ms(99_000), HB, T, [(2, silent)].into_iter())
                .is_empty()
        );
        assert!(a.silent_disarmed().contains(2));
        // Heard again (it was only partitioned, or it came back): cleared.
        let back = PeerSight {
            heard: true,
            ..silent
        };
        assert!(
            a.update(at_ms(100_000), HB, T, [(2, back)].into_iter())
                .is_empty()
        );
        assert!(a.silent_disarmed().is_empty());
        // An armed silent host is the lease's business, not a warning.
        let armed = PeerSight {
            disarmed: false,
            ..silent
        };
        assert!(
            a.update(at_ms(100_000), HB, T, [(2, armed)].into_iter())
                .is_empty()
        );
        // Still writing its slot: not silent.
        let writing = PeerSight {
            seen: true,
            ..silent
        };
        assert!(
            a.update(at_ms(100_000), HB, T, [(2, writing)].into_iter())
                .is_empty()
        );
    }
}
