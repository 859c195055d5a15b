//! HA on the live pool: the restart engine (a pure state machine), the VMs'
//! HA states, the live failover plan and the overcommit check.
//!
//! - [`engine`]: events in (liveset, VM starts and stops, time, pool
//!   configuration), actions out (force halted, start, messages, `ha_state`);
//!   no clock, no I/O. The shell that feeds it is documented in
//!   `docs/restart-engine.md`.
//! - [`state`]: the `ha_state` values and their meaning.
//! - [`view`]: the part of the pool database the engine and the planner
//!   read, built from a [`Database`](crate::db::Database).
//! - [`live_plan`]: the planner on the live pool, and the pool fields and
//!   messages that follow from it after a commit.
//! - [`overcommit`]: the one check that refuses an operation breaking the
//!   failover plan (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN`).
//! - [`shell`]: the database changes of the engine's actions, and the
//!   engine inputs of a configuration change (the pure part of the wiring).
//! - [`wiring`]: what an `xhad` report, a committed change and a pause
//!   mean as engine inputs (the pure half of `server::ha_engine_task`).
//! - [`messages`]: the HA messages with xapi's names, priorities and texts.

pub mod engine;
pub mod live_plan;
pub mod messages;
pub mod overcommit;
pub mod shell;
pub mod state;
pub mod view;
pub mod wiring;

pub use engine::{Action, Engine, Input};
pub use state::HaState;
pub use view::{HostView, Liveness, PoolView, VmView};

use crate::model::RestartPriority;

/// Whether a VM is protected: `ha_always_run` and priority `restart`
/// (xapi's `vm_should_always_run`). The one definition, used by the engine,
/// the live plan and the overcommit check.
#[must_use]
pub fn is_protected(priority: RestartPriority, always_run: bool) -> bool {
    always_run && priority == RestartPriority::Restart
}

#[cfg(test)]
mod tests;
