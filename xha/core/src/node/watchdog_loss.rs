//! `Input::WatchdogLost`: the watchdog failed (a kick was refused).

use super::Node;
use crate::action::FenceReason;

impl Node {
    /// An armed watchdog is lost: nothing would reset this host if its
    /// daemon hung now, and peers count it as fenced by its lease end, so it
    /// fences at once. Not armed: nothing counts on the watchdog (the daemon
    /// only learns of a loss through a kick, which needs it armed). Returns
    /// whether the views need evaluating (never).
    pub(super) fn on_watchdog_lost(&mut self) -> bool {
        if self.watchdog_armed {
            self.fence(FenceReason::WatchdogLost);
        }
        false
    }
}
