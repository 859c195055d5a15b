//! A deterministic simulator that runs the real `xha` core on N simulated
//! hosts (after TigerBeetle's VOPR): one seed drives the network, the
//! statefile paths, the host clocks, crashes, freezes and control requests;
//! a discrete-event loop jumps from event to event; the invariants in
//! [`checker`] are checked after every step.

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
