//! The fault-handling core of xha: a pure, deterministic state machine.
//!
//! No clock reads, no sockets, no threads, no hidden randomness: the caller
//! feeds [`Input`]s at monotonic [`Instant`]s and drains [`Action`]s. The real
//! daemon and the simulator in `tests/` run exactly this code.
//!
//! Contract (after `quinn-proto`): after every [`Node::handle`], drain
//! [`Node::poll_action`] until `None`, then call `handle(now, Input::Tick)` no
//! later than [`Node::poll_timeout`]. An early tick does nothing harmful.
//!
//! See `docs/fault-handling.md` for the state machine, the survival rules and
//! the timing argument that a host removed from a liveset has fenced.

pub mod action;
pub mod fence_request;
pub mod freshness;
pub mod ids;
pub mod input;
pub mod master_lock;
pub mod node;
pub mod peer_alerts;
pub mod survival;
pub mod time;
pub mod timeouts;
pub mod timer;

#[cfg(test)]
mod tests;

pub use action::{Action, ControlError, ControlReply, FenceReason, Warning};
pub use ids::{HostIndex, RequestId, StatefileIndex};
pub use input::{ControlRequest, Input, IoFailure, StatefileRead};
pub use node::{Config, ConfigError, HostStatus, Node, NodeStatus};
pub use sr_heartbeat::statefile::{HostSet, Phase, PoolBlock, PoolState, Slot, SlotError};
pub use time::Instant;
pub use timeouts::Timeouts;
