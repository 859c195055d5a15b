//! The daemon shell around the core: configuration, wire format, watchdogs,
//! the external supervisor, the control protocol and the exit codes.
//!
//! Everything here that parses bytes from outside (config files, packets,
//! control lines) is total: bad input gives a typed error, never a panic.

pub mod config;
pub mod control;
pub mod control_server;
pub mod exit;
pub mod fence;
pub mod fence_record;
pub mod incarnation;
pub mod net;
pub mod realtime;
pub mod socket_path;
pub mod supervisor;
pub mod watchdog;
pub mod wire;
