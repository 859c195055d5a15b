//! The core's timers: a closed enum indexed into a fixed table.

use super::time::Instant;

/// Every timer of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Send the next heartbeat.
    Heartbeat = 0,
    /// Issue the next slot write.
    SlotWrite = 1,
    /// Issue the next statefile read.
    StatefileRead = 2,
    /// Kick the watchdog.
    Kick = 3,
    /// The lease runs out: fence.
    LeaseEnd = 4,
    /// Re-evaluate views and decisions (a view entry expires, a wait ends).
    Evaluate = 5,
}

pub const TIMER_COUNT: usize = 6;

impl Timer {
    pub const ALL: [Timer; TIMER_COUNT] = [
        Timer::Heartbeat,
        Timer::SlotWrite,
        Timer::StatefileRead,
        Timer::Kick,
        Timer::LeaseEnd,
        Timer::Evaluate,
    ];
}

/// A fixed table of optional deadlines.
#[derive(Clone, Debug, Default)]
pub struct Timers {
    at: [Option<Instant>; TIMER_COUNT],
}

impl Timers {
    pub fn set(&mut self, timer: Timer, at: Instant) {
        self.at[timer as usize] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.at[timer as usize] = None;
    }

    #[must_use]
    pub fn get(&self, timer: Timer) -> Option<Instant> {
        self.at[timer as usize]
    }

    /// Is `timer` set and due at `now`?
    #[must_use]
    pub fn due(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest deadline of all timers.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    pub fn stop_all(&mut self) {
        self.at = [None; TIMER_COUNT];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Kick, Instant(5));
        t.set(Timer::Heartbeat, Instant(3));
        assert_eq!(t.next(), Some(Instant(3)));
        assert!(t.due(Timer::Heartbeat, Instant(3)));
        assert!(!t.due(Timer::Kick, Instant(3)));
        t.stop(Timer::Heartbeat);
        assert_eq!(t.next(), Some(Instant(5)));
        assert_eq!(Timer::ALL.len(), TIMER_COUNT);
        for (i, timer) in Timer::ALL.iter().enumerate() {
            assert_eq!(*timer as usize, i);
        }
    }
}
