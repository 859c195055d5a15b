//! The one driver of the xha core, shared by `xhad` and the simulator.
//!
//! The core ([`xha_core::Node`]) decides; this crate carries its decisions
//! out and feeds the world back to it, written once for both hosts of the
//! core. The world is behind four small traits ([`Clock`], [`Network`],
//! [`Storage`], [`Watchdog`]) plus [`Host`], which receives the core's
//! decisions (fence, liveset and master changes, replies, warnings, stop).
//! `xhad` implements them with its sockets, O_DIRECT worker threads and
//! watchdog backend; the simulator with its simulated network, storage
//! paths, clocks and watchdogs (after TigerBeetle's replica, generic over its
//! message bus, storage and time).
//!
//! What the driver owns, so that the simulator runs the daemon's paths:
//! - the read deadline: a read still in flight at its deadline is reported
//!   to the core as [`IoFailure::Timeout`](xha_core::IoFailure) and
//!   [`Storage::abandon`] is told; its completion, if it ever comes, is late
//!   and ignored;
//! - refused I/O: a request the storage refuses at once (every worker is
//!   stuck, the statefile is not open) is reported to the core as failed,
//!   after the current batch of actions;
//! - the watchdog loss: a kick that fails feeds `Input::WatchdogLost`.
//!
//! No tokio, no system calls, no clock reads: the [`Clock`] says what time it
//! is. See `docs/daemon.md` ("The driver").

mod driver;
mod host;
mod io;

pub use driver::Driver;
pub use host::{Clock, Host, Network, Storage, Watchdog, WatchdogFailed};
pub use io::{Completion, Done, Op, Refused, io_capacity};
