//! What the driver needs from the host it runs on: a clock, a network, the
//! statefile storage, a watchdog, and somewhere to report the core's
//! decisions. `xhad` and the simulator each implement these once.

use xha_core::{Action, Instant, Node, RequestId, Slot, StatefileIndex};

use crate::io::{Op, Refused};

/// The host's monotonic clock, in the core's time base.
pub trait Clock {
    fn now(&self) -> Instant;
}

/// The heartbeat network.
pub trait Network {
    /// Send this state to every peer (UDP, authenticated); never blocks.
    fn send_heartbeat(&mut self, slot: Slot);
}

/// The statefile storage.
pub trait Storage {
    /// Start `op` on statefile `statefile`; its [`crate::Completion`] comes
    /// back later through [`crate::Driver::completion`]. `Err`: refused at
    /// once, never started.
    fn submit(
        &mut self,
        statefile: StatefileIndex,
        request: RequestId,
        op: Op,
    ) -> Result<(), Refused>;

    /// The driver gave up on read `request` at its deadline and told the
    /// core it timed out; a completion for it is late and will be ignored.
    /// Nothing to undo (a read changes nothing on disk): for logs.
    fn abandon(&mut self, statefile: StatefileIndex, request: RequestId);
}

/// A watchdog failed: text for the fence record and the logs.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WatchdogFailed(pub String);

/// The watchdog that resets this host unless kicked.
pub trait Watchdog {
    /// Arm it to fire at `until` (this host's clock) unless kicked. `Err`
    /// stops the driver through [`Host::arm_failed`].
    fn arm(&mut self, now: Instant, until: Instant) -> Result<(), WatchdogFailed>;
    /// Push the expiry to `until`; a kick executed after `until` is dropped
    /// (the implementation says so in its logs). `Err`: the watchdog is lost
    /// (the driver feeds `Input::WatchdogLost`).
    fn kick(&mut self, now: Instant, until: Instant) -> Result<(), WatchdogFailed>;
    /// Disarm it cleanly (failures are the implementation's to log).
    fn disarm(&mut self);
}

/// The host the driver runs on: the four traits plus where the core's
/// decisions go.
pub trait Host: Clock + Network + Storage + Watchdog {
    /// Why the driver stops (the daemon: its exit status).
    type Stop;

    /// Arming the watchdog failed: the driver stops with this.
    fn arm_failed(&mut self, e: WatchdogFailed) -> Self::Stop;

    /// One of the core's decisions that is not I/O: `Fence`,
    /// `LivesetChanged`, `MasterChanged`, `Reply`, `Warning`, `Stopped`,
    /// `StatusChanged` (what `watch` clients see changed);
    /// `node` is the core that made it (for its status). `Err` stops the
    /// driver (a fence the host carried out).
    fn decided(&mut self, node: &Node, action: Action) -> Result<(), Self::Stop>;
}
