//! What the engine remembers of one VM beyond the pool view: its start in
//! flight, its failed attempts and retry instant, and why it is halted.

use std::time::Duration;

use uuid::Uuid;

/// The first retry of a failed start comes after this long...
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
/// ...each next one after twice as long, up to this.
pub const RETRY_MAX: Duration = Duration::from_secs(120);
/// Attempts a best-effort VM gets before HA gives up on it (until the
/// liveset grows again).
pub const BEST_EFFORT_ATTEMPTS: u32 = 3;

const _: () = assert!(RETRY_FIRST.as_millis() <= 1000 && RETRY_MAX.as_secs() == 120);

/// The engine's memory of one VM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Track {
    /// The host a start was asked of, until it answers.
    pub starting_on: Option<Uuid>,
    /// `starting_on` is the last master's start, whose answer nobody will
    /// hear: asked again of the same host once that host is live.
    pub inherited: bool,
    /// Failed attempts since it last ran.
    pub failures: u32,
    /// No attempt before this instant.
    pub next_attempt: Duration,
    /// `HA_PROTECTED_VM_RESTART_FAILED` was raised since it last ran.
    pub alerted: bool,
    /// HA is bringing it back (its host failed, or a start failed).
    pub recovering: bool,
    /// A best-effort VM HA is restoring (reset by a host failure).
    pub best_effort: bool,
    /// A best-effort VM HA gave up on.
    pub gave_up: bool,
    /// Frozen with its host, which is in maintenance: no failover.
    pub frozen_on: Option<Uuid>,
    /// An API shutdown is in progress.
    pub stopping: bool,
    /// Moving to this host.
    pub migrating_to: Option<Uuid>,
    /// The last attempt found no room: retried at once when room may have
    /// appeared (a VM stopped, a host joined or was enabled).
    pub no_room: bool,
    /// No failback before this instant (after a failed one).
    pub failback_next: Duration,
    /// The host its last start failed on: when that host leaves the
    /// liveset the retry comes at once (the plan then places it on a live
    /// host) instead of after the backoff.
    pub failed_on: Option<Uuid>,
}

/// The delay before the next attempt after `failures` failed ones (>= 1):
/// 1 s, 2 s, 4 s, ... at most 120 s.
#[must_use]
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    RETRY_FIRST.saturating_mul(1 << exp).min(RETRY_MAX)
}

impl Track {
    /// It runs: forget the attempts.
    pub fn ran(&mut self) {
        self.starting_on = None;
        self.inherited = false;
        self.failures = 0;
        self.alerted = false;
        self.recovering = false;
        self.best_effort = false;
        self.gave_up = false;
        self.frozen_on = None;
        self.migrating_to = None;
        self.no_room = false;
        self.failed_on = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_within_a_second_and_stops_growing_at_two_minutes() {
        let delays: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 120, 120, 120]);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }
}
