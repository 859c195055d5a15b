//! xha: the per-host HA daemon.
//!
//! - [`core`]: the pure fault-handling state machine (liveset, survival rules,
//!   lease-based fencing, master lock, join). No I/O, no clock reads.

pub use xha_core as core;
pub mod daemon;
