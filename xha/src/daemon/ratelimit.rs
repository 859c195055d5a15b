//! Rate limits for repeated log lines: the same error at most once per
//! period (the pool's base timeout T), with the count of repeats suppressed
//! since the last line. A failing statefile is read five times a second and
//! a flood of identical lines hides the one line that matters.
//!
//! Keys name the condition (site and subject, e.g. `"read failed/0"`), not
//! the message, so a repeated error whose text carries a changing figure is
//! still one condition. The table is bounded: past [`MAX_KEYS`] conditions
//! the least recently logged one is forgotten (its next repeat logs at once).

use std::time::Duration;

use crate::core::Instant;

/// Most distinct conditions tracked at once.
pub const MAX_KEYS: usize = 64;

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    logged_at: Instant,
    suppressed: u64,
}

/// The state of one rate limiter.
#[derive(Clone, Debug)]
pub struct RateLimit {
    period: Duration,
    entries: Vec<Entry>,
}

impl RateLimit {
    /// A limiter letting each condition through once per `period`.
    #[must_use]
    pub fn new(period: Duration) -> RateLimit {
        RateLimit {
            period,
            entries: Vec::new(),
        }
    }

    /// Whether the condition `key`, occurring at `now`, is to be logged:
    /// `Some(n)` with the `n` repeats suppressed since it was last logged,
    /// `None` to suppress this one.
    pub fn check(&mut self, key: &str, now: Instant) -> Option<u64> {
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            if now.saturating_since(e.logged_at) < self.period {
                e.suppressed = e.suppressed.saturating_add(1);
                return None;
            }
            let n = e.suppressed;
            e.logged_at = now;
            e.suppressed = 0;
            return Some(n);
        }
        if self.entries.len() >= MAX_KEYS
            && let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.logged_at)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(oldest);
        }
        self.entries.push(Entry {
            key: key.to_owned(),
            logged_at: now,
            suppressed: 0,
        });
        assert!(self.entries.len() <= MAX_KEYS);
        Some(0)
    }
}

/// The suffix a rate-limited line carries: empty, or how many repeats were
/// suppressed before it.
#[must_use]
pub fn suffix(suppressed: u64, period: Duration) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(
            " ({suppressed} more like this in the last {} s not logged)",
            period.as_secs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn once_per_period_with_the_count_of_repeats() {
        let mut r = RateLimit::new(T);
        assert_eq!(r.check("read/0", at(0)), Some(0));
        // Five a second for just under T: all suppressed.
        for k in 1..50 {
            assert_eq!(r.check("read/0", at(k * 200)), None);
        }
        // Another condition is independent.
        assert_eq!(r.check("read/1", at(100)), Some(0));
        assert_eq!(r.check("read/0", at(10_000)), Some(49));
        assert_eq!(r.check("read/0", at(10_200)), None);
        assert_eq!(suffix(0, T), "");
        assert!(suffix(49, T).contains("49 more"));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut r = RateLimit::new(T);
        for k in 0..(MAX_KEYS as u64 + 10) {
            assert_eq!(r.check(&format!("k{k}"), at(k)), Some(0));
        }
        assert_eq!(r.entries.len(), MAX_KEYS);
        // The most recent ones are still limited.
        assert_eq!(r.check(&format!("k{}", MAX_KEYS + 9), at(100)), None);
    }
}
