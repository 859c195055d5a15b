//! Every duration of the core, derived from one base timeout T.
//!
//! # Worked timeline (T = 10 s; at T = 30 s multiply every figure by 3)
//!
//! Host X issues its last slot write that completes in time at `t0 = 0`
//! (X's clock). A peer Y observes that write (its slot content changed) at
//! `s >= t0` on Y's own clock.
//!
//! | when (X's clock)  | what |
//! |-------------------|------|
//! | 0                 | X issues its last good write; it completes within `io_deadline` = 5 s, so X's lease runs to `0 + lease` = 7 s |
//! | 0 .. 7            | every kick sets X's watchdog to fire at the lease end (7 s), never later; no kick with less than `watchdog_min` = 1 s left |
//! | 7                 | X's lease ends: X fences itself (`Fence { LeaseExpired }`) |
//! | <= 7              | if X is frozen, its watchdog has fired (its deadline is the lease end of the last kick) |
//!
//! On Y's clock: Y may remove X once it completed a read of the statefile,
//! issued at `r >= s + peers_may_act = s + (lease + io_deadline) (1 + rho)^2 =
//! s + 12.24 s`, in which X's slot (and every statefile in a majority) was
//! unchanged. Why this is enough (rho = 1% clock-rate bound, each clock's
//! elapsed time within a factor `1 + rho` of real time):
//! - every write X issued more than `io_deadline` before `r` and that renewed
//!   X's lease completed, so it landed before `r` and Y saw the change;
//! - a renewing write that landed after `r` was issued after `r - io_deadline`
//!   (real: `r - d(1+rho)`), and X issues writes only while its lease is
//!   valid, a lease that came from a write Y saw, issued before `s`: so it was
//!   issued before `s + lease` (real: `s + L(1+rho)`);
//! - `r - s >= (L + d)(1+rho)^2` on Y's clock means real `r - s >= (L + d)(1+rho)`,
//!   so no such write exists, X's lease ended by real `s + L(1+rho) < r`, and X
//!   has fenced (or its watchdog fired) before Y acts.
//!
//! Failover after a crash at `t0` therefore costs `peers_may_act` plus at most
//! one statefile interval of observation lag: 12.24 + 0.2 + I/O latency
//! ~= 12.5 s at T = 10 (T + 2.5 s), against XenServer's T + ~18 s. A host
//! that loses only its network first needs `heartbeat_timeout` (1.6 s) to
//! notice that it lost and stop writing: 14.2 s, still under T + 5 s.
//!
//! Slow storage: a write that completes within `io_deadline` = T/2 renews the
//! lease from its issue time; writes are issued every `statefile_interval`
//! without waiting for the previous one (at most `max_outstanding_writes`
//! outstanding), so with every I/O taking T/2 the lease after each renewal
//! still has `lease - io_deadline - statefile_interval` = 0.18 T left, more
//! than `watchdog_min`: the watchdog keeps being kicked and nobody fences.
//!
//! Freeze tolerance: a host frozen (daemon stalled, SIGSTOP) survives a
//! freeze shorter than its remaining lease, about
//! `lease - statefile_interval - kick_interval` = 0.66 T with fast storage (6.6 s at T = 10) and 0.18 T
//! with storage at T/2 latency; a longer freeze ends in its watchdog firing
//! at the lease end, and peers remove it as after a crash.

use std::time::Duration;

use super::time::nanos;

/// The lowest base timeout accepted (XenServer's minimum).
pub const MIN_BASE: Duration = Duration::from_secs(10);
/// The highest base timeout accepted (keeps every derived figure sane).
pub const MAX_BASE: Duration = Duration::from_secs(3600);
/// The default base timeout.
pub const DEFAULT_BASE: Duration = Duration::from_secs(30);
/// Assumed bound on the clock-rate difference between any clock and real
/// time (1%), in parts per million.
pub const DRIFT_PPM: u64 = 10_000;

/// Parts of T, in units of T/200 (so every figure is exact in nanoseconds for
/// any whole number of milliseconds of T).
mod part {
    pub const HEARTBEAT_INTERVAL: u64 = 4; // T/50
    pub const HEARTBEAT_TIMEOUT: u64 = 32; // 4T/25
    pub const STATEFILE_INTERVAL: u64 = 4; // T/50
    pub const IO_DEADLINE: u64 = 100; // T/2
    pub const LATENCY_WARNING: u64 = 80; // 2T/5
    pub const LEASE: u64 = 140; // 7T/10
    pub const WATCHDOG_MIN: u64 = 20; // T/10
    pub const SETTLE: u64 = 120; // 3T/5
    pub const STATEFILE_TIMEOUT: u64 = 200; // T
    pub const DENOMINATOR: u64 = 200;
}

// Relations the safety and no-false-fence arguments rely on.
// Slow storage (every I/O at the deadline) must leave room to kick the watchdog.
const _: () =
    assert!(part::LEASE >= part::IO_DEADLINE + part::STATEFILE_INTERVAL + part::WATCHDOG_MIN + 10);
// The watchdog must be kickable several times within its shortest timeout.
const _: () = assert!(part::WATCHDOG_MIN >= 4 * part::HEARTBEAT_INTERVAL);
// 10% packet loss must not empty the network view: 8 heartbeats per timeout.
const _: () = assert!(part::HEARTBEAT_TIMEOUT >= 8 * part::HEARTBEAT_INTERVAL);
// Latency warnings come before the deadline.
const _: () = assert!(part::LATENCY_WARNING < part::IO_DEADLINE);
// Survivors ask losers to fence only once every host has had time to notice a
// hung statefile (so "every host lost it" is not mistaken for a split).
const _: () = assert!(part::SETTLE > part::IO_DEADLINE + 2 * part::STATEFILE_INTERVAL);

/// Every duration the core uses. Build with [`Timeouts::derive`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// The base T everything derives from.
    pub base: Duration,
    /// Heartbeat send period (T/50).
    pub heartbeat_interval: Duration,
    /// A peer silent this long drops out of the network view (4T/25).
    pub heartbeat_timeout: Duration,
    /// Slot write and statefile read period (T/50).
    pub statefile_interval: Duration,
    /// An I/O completing later than this does not count (T/2).
    pub io_deadline: Duration,
    /// Latency above this raises a warning (2T/5).
    pub latency_warning: Duration,
    /// How long one timely slot write keeps this host alive, from its issue (7T/10).
    pub lease: Duration,
    /// Shortest watchdog timeout the core asks for (T/10, >= 1 s for T >= 10 s):
    /// a kick sets the watchdog to fire at the lease end, and is skipped when
    /// less than this is left (the previous kick's deadline, earlier, stands).
    pub watchdog_min: Duration,
    /// How often the watchdog is kicked (T/50).
    pub kick_interval: Duration,
    /// How long a survival decision must stay the same before survivors ask
    /// the losers to fence (3T/5). Only a courtesy: removal waits for the
    /// lease, not for this.
    pub settle: Duration,
    /// A slot unchanged this long drops out of the statefile view (T).
    pub statefile_timeout: Duration,
    /// Wait after the last observed change of a peer's slot before a
    /// statefile read may prove the peer fenced: `(lease + io_deadline) (1+rho)^2`.
    pub peers_may_act: Duration,
    /// Cap on slot writes in flight per statefile: `io_deadline / statefile_interval + 1`.
    pub max_outstanding_writes: usize,
}

/// Why a base timeout was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutsError {
    #[error("base timeout {0:?} is below the minimum of {MIN_BASE:?}")]
    TooShort(Duration),
    #[error("base timeout {0:?} is above the maximum of {MAX_BASE:?}")]
    TooLong(Duration),
    #[error("base timeout {0:?} is not a whole number of milliseconds")]
    NotWholeMillis(Duration),
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::derive_any(DEFAULT_BASE)
    }
}

impl Timeouts {
    /// Derive every duration from `base` (between 10 s and 1 h, whole ms).
    pub fn derive(base: Duration) -> Result<Timeouts, TimeoutsError> {
        if base < MIN_BASE {
            return Err(TimeoutsError::TooShort(base));
        }
        if base > MAX_BASE {
            return Err(TimeoutsError::TooLong(base));
        }
        if !base.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(TimeoutsError::NotWholeMillis(base));
        }
        Ok(Timeouts::derive_any(base))
    }

    /// Derive without the 10 s minimum: for simulations exploring whether a
    /// shorter base is safe. `base` must be at least 200 ms and whole ms.
    #[must_use]
    pub fn derive_any(base: Duration) -> Timeouts {
        let t = nanos(base);
        assert!(t >= 200_000_000, "base timeout below 200 ms");
        assert!(
            t.is_multiple_of(1_000_000),
            "base timeout not whole milliseconds"
        );
        let p = |n: u64| Duration::from_nanos(t / part::DENOMINATOR * n);
        let lease = p(part::LEASE);
        let io_deadline = p(part::IO_DEADLINE);
        let statefile_interval = p(part::STATEFILE_INTERVAL);
        let t_o = Timeouts {
            base,
            heartbeat_interval: p(part::HEARTBEAT_INTERVAL),
            heartbeat_timeout: p(part::HEARTBEAT_TIMEOUT),
            statefile_interval,
            io_deadline,
            latency_warning: p(part::LATENCY_WARNING),
            lease,
            watchdog_min: p(part::WATCHDOG_MIN),
            kick_interval: p(part::HEARTBEAT_INTERVAL),
            settle: p(part::SETTLE),
            statefile_timeout: p(part::STATEFILE_TIMEOUT),
            peers_may_act: with_drift(with_drift(lease + io_deadline)),
            max_outstanding_writes: (nanos(io_deadline) / nanos(statefile_interval)) as usize + 1,
        };
        t_o.check();
        t_o
    }

    /// The relations the safety argument relies on (kept on in release).
    pub fn check(&self) {
        assert!(self.lease >= self.io_deadline + self.statefile_interval + self.watchdog_min);
        assert!(self.peers_may_act > self.lease + self.io_deadline);
        assert!(self.watchdog_min < self.lease);
        assert!(self.kick_interval * 4 <= self.watchdog_min);
        assert!(self.heartbeat_timeout >= self.heartbeat_interval * 8);
        assert!(self.latency_warning < self.io_deadline);
        assert!(self.settle > self.io_deadline + self.statefile_interval * 2);
        assert!(self.max_outstanding_writes >= 2 && self.max_outstanding_writes <= 64);
    }

    /// Upper bound on this host's fence-to-publish latency after a single
    /// host fault (for documentation and benchmarks): detection plus the
    /// lease wait plus one interval of observation lag.
    #[must_use]
    pub fn fault_to_shrink_bound(&self) -> Duration {
        self.heartbeat_timeout + self.statefile_interval * 2 + self.peers_may_act
    }

    /// How many writes of a peer, after the last heartbeat heard from it, before
    /// its rows that still claim this host are believed (`core::freshness`).
    ///
    /// The peer's last heartbeat heard carried sequence `s`, the newest write the
    /// peer had issued when it sent it (at `t_h`). The link may have been cut up
    /// to one heartbeat interval after `t_h` (plus network delay), and the peer's
    /// `heard` set keeps this host for the heartbeat timeout after the last
    /// packet it got. Writes after `s` are issued at least one write interval
    /// apart (the first possibly at once), so write `s + k` is issued no earlier
    /// than `t_h + (k - 1) * interval`. With `k - 1` intervals exceeding the
    /// heartbeat timeout plus two intervals (one heartbeat interval of cut
    /// position, one of network delay and clock-rate slack), a row from before
    /// the peer noticed the cut is always below `s + k`; one spare write covers
    /// an immediate (persisting) write. At T = 10 s: 8 + 4 = 12 writes, 2.2 s.
    #[must_use]
    pub fn claim_window_writes(&self) -> u64 {
        let interval = self.statefile_interval.as_nanos().max(1);
        let per_timeout = self.heartbeat_timeout.as_nanos().div_ceil(interval);
        u64::try_from(per_timeout).unwrap_or(u64::MAX / 2) + 4
    }
}

/// `d * (1 + rho)`, rounded up to the nanosecond.
#[must_use]
pub fn with_drift(d: Duration) -> Duration {
    let n = u128::from(nanos(d));
    let scaled = (n * u128::from(1_000_000 + DRIFT_PPM)).div_ceil(1_000_000);
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_timeline_at_ten_seconds() {
        let t = Timeouts::derive(Duration::from_secs(10)).unwrap();
        assert_eq!(t.lease, Duration::from_millis(7000));
        assert_eq!(t.io_deadline, Duration::from_millis(5000));
        assert_eq!(t.watchdog_min, Duration::from_millis(1000));
        assert_eq!(t.heartbeat_interval, Duration::from_millis(200));
        assert_eq!(t.heartbeat_timeout, Duration::from_millis(1600));
        // (7 + 5) * 1.01 * 1.01 = 12.2412 s
        assert_eq!(t.peers_may_act, Duration::from_nanos(12_241_200_000));
        assert_eq!(t.max_outstanding_writes, 26);
        // The speed goal: a single-host fault is handled within T + 5 s.
        assert!(t.fault_to_shrink_bound() <= Duration::from_secs(15));
    }

    #[test]
    fn thirty_seconds_scales() {
        let t = Timeouts::derive(Duration::from_secs(30)).unwrap();
        assert_eq!(t.lease, Duration::from_secs(21));
        assert_eq!(t.peers_may_act, Duration::from_nanos(36_723_600_000));
        assert_eq!(Timeouts::default(), t);
    }

    #[test]
    fn bounds_are_enforced() {
        assert_eq!(
            Timeouts::derive(Duration::from_secs(9)),
            Err(TimeoutsError::TooShort(Duration::from_secs(9)))
        );
        assert!(matches!(
            Timeouts::derive(Duration::from_secs(4000)),
            Err(TimeoutsError::TooLong(_))
        ));
        assert!(matches!(
            Timeouts::derive(Duration::from_micros(10_000_500)),
            Err(TimeoutsError::NotWholeMillis(_))
        ));
        for s in [10, 11, 17, 30, 60, 3600] {
            Timeouts::derive(Duration::from_secs(s)).unwrap().check();
        }
        Timeouts::derive_any(Duration::from_millis(200)).check();
    }

    #[test]
    fn claim_window_covers_the_heartbeat_timeout() {
        for base in [1, 10, 30] {
            let t = Timeouts::derive_any(Duration::from_secs(base));
            let k = t.claim_window_writes();
            assert!(t.statefile_interval * (k as u32 - 1) > t.heartbeat_timeout);
            assert_eq!(k, 12);
        }
    }

    #[test]
    fn drift_rounds_up() {
        assert_eq!(with_drift(Duration::from_nanos(1)), Duration::from_nanos(2));
        assert_eq!(
            with_drift(Duration::from_secs(100)),
            Duration::from_secs(101)
        );
    }
}
