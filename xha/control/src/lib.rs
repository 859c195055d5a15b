//! xha_control: the control protocol of `xhad` (JSON lines over its Unix
//! stream socket, see `docs/daemon.md`) and a blocking client of it.
//!
//! The daemon serves this protocol; the lab, `xe`, the tests and the pool
//! agent speak it through [`client`]. It depends on the pure core only for
//! the values it reports (host status, pool state, timeouts, warnings), never
//! on the daemon.

pub mod client;
mod drop_counters;
mod protocol;

pub use drop_counters::{DropCounters, DropKind};
pub use protocol::*;
