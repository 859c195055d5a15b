//! xha: the per-host HA daemon.
//!
//! - [`core`]: the pure fault-handling state machine (liveset, survival rules,
//!   lease-based fencing, master lock, join). No I/O, no clock reads.

pub mod core;
pub mod daemon;
pub mod lab;
