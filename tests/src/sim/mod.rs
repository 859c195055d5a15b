//! A deterministic simulator that runs the real `xha` core on N simulated
//! hosts (after TigerBeetle's VOPR): one seed drives the network, the
//! statefile paths, the host clocks, crashes, freezes and control requests;
//! a discrete-event loop jumps from event to event; the invariants in
//! [`checker`] are checked after every step.
//!
//! Each host runs the core under `xha_driver`'s driver, the same code as
//! `xhad`: read deadlines, refused I/O, late completions and watchdog loss
//! are handled there, not modelled here. What the simulator assumes of the
//! rest of the real daemon (a daemon that differs makes these results
//! void):
//! - heartbeats go to every peer; the receiver's replay filter delivers a
//!   sender's packets only in sending order (older and duplicate packets
//!   are dropped);
//! - statefile I/Os run in parallel, each with its own latency, so writes
//!   of one slot may complete out of order, up to `xha_driver::io_capacity`
//!   per path (more are refused); a read abandoned at its deadline stays in
//!   the path and completes late when it recovers (nothing of it lands); a
//!   write is reported only once it completed or failed: a write on a hung
//!   path is never reported until the path recovers, and then lands late,
//!   even for a host that died meanwhile; a torn write lands a prefix of
//!   512-byte sectors and reports an error;
//! - the watchdog fires when the host's clock reaches the `until` of the
//!   last arm or kick, also while the host is frozen; a kick executed after
//!   its `until` is dropped;
//! - every host clock runs within 1% of real time
//!   (`xha::core::timeouts::DRIFT_PPM`) and starts at an arbitrary offset.
//!
//! Modules: [`time`] (real and host clocks), [`queue`] (the event queue),
//! [`net`] (per-link network), [`storage`] (statefile image and I/O paths),
//! [`cluster`] (hosts, the driver's traits over the simulation, event loop), [`fault`] (what can
//! happen), [`checker`] (invariants), [`trace`] (recent events and the
//! determinism hash), [`run`] (one random schedule from a seed),
//! [`scenario`] (the vocabulary of the scenario tests).

pub mod checker;
pub mod cluster;
pub mod fault;
pub mod net;
pub mod queue;
pub mod run;
pub mod scenario;
pub mod storage;
pub mod time;
pub mod trace;
