//! Simulated time: one real (simulator) clock and one drifting monotonic
//! clock per host.
//!
//! Real time is what the ground truth and the invariants use. A host only ever
//! sees its own clock, which starts at an arbitrary offset when the host boots
//! and runs at `1 + rate_ppm / 1e6` times real speed. Timeouts the core asks
//! for in host time are converted back to the earliest real instant at which
//! the host clock reaches them, so a timer never fires early.

/// Real simulator time, nanoseconds since the start of the run.
pub type Nanos = u64;

pub const MICROSECOND: Nanos = 1_000;
pub const MILLISECOND: Nanos = 1_000_000;
pub const SECOND: Nanos = 1_000_000_000;

/// One part per million of rate: the unit of clock drift.
pub const PPM: i64 = 1_000_000;

/// Seconds with millisecond precision, for traces and reports.
#[must_use]
pub fn secs(ns: Nanos) -> f64 {
    ns as f64 / SECOND as f64
}

/// A host's monotonic clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostClock {
    /// Real instant at which the clock read `offset_ns` (the host's boot).
    boot_real: Nanos,
    /// Host-clock reading at boot.
    offset_ns: u64,
    /// Rate error in parts per million: +10_000 runs 1% fast.
    rate_ppm: i64,
}

impl HostClock {
    /// A clock that reads `offset_ns` at real instant `boot_real` and drifts
    /// by `rate_ppm`. A rate of -100% or slower would stop or reverse time.
    #[must_use]
    pub fn new(boot_real: Nanos, offset_ns: u64, rate_ppm: i64) -> HostClock {
        assert!(
            rate_ppm.abs() < PPM / 2,
            "clock rate {rate_ppm} ppm is absurd"
        );
        HostClock {
            boot_real,
            offset_ns,
            rate_ppm,
        }
    }

    #[must_use]
    pub fn rate_ppm(&self) -> i64 {
        self.rate_ppm
    }

    /// The host clock's reading at real instant `real` (>= boot).
    #[must_use]
    pub fn host_time(&self, real: Nanos) -> u64 {
        let d = i128::from(real.saturating_sub(self.boot_real));
        let drift = (d * i128::from(self.rate_ppm)).div_euclid(i128::from(PPM));
        let t = i128::from(self.offset_ns) + d + drift;
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// The earliest real instant at which the host clock reads at least
    /// `target`: when a timer set for host time `target` is due.
    #[must_use]
    pub fn real_time(&self, target: u64) -> Nanos {
        if target <= self.host_time(self.boot_real) {
            return self.boot_real;
        }
        let delta = i128::from(target - self.offset_ns);
        let rate = i128::from(PPM + self.rate_ppm);
        // First estimate, then correct for the floor in `host_time`.
        let est = (delta * i128::from(PPM) + rate - 1) / rate;
        let mut r = self
            .boot_real
            .saturating_add(u64::try_from(est).unwrap_or(u64::MAX / 2));
        while self.host_time(r) < target {
            r += 1;
        }
        while r > self.boot_real && self.host_time(r - 1) >= target {
            r -= 1;
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_inverts_host_time() {
        for &rate in &[-10_000, -1, 0, 1, 9_999, 10_000] {
            let c = HostClock::new(5 * SECOND, 1_234_567_891, rate);
            for &t in &[0u64, 1, 999, SECOND, 77 * SECOND + 3, 3_600 * SECOND] {
                let target = 1_234_567_891 + t;
                let r = c.real_time(target);
                assert!(c.host_time(r) >= target, "rate {rate} t {t}");
                assert!(r == 5 * SECOND || c.host_time(r - 1) < target);
            }
        }
    }

    #[test]
    fn drift_is_applied() {
        let fast = HostClock::new(0, 0, 10_000);
        assert_eq!(fast.host_time(100 * SECOND), 101 * SECOND);
        let slow = HostClock::new(0, 0, -10_000);
        assert_eq!(slow.host_time(100 * SECOND), 99 * SECOND);
    }
}
