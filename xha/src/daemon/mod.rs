//! The daemon shell around the core (`docs/daemon.md` is the reference):
//!
//! - [`config`]: the TOML configuration, validated, with exit codes 6/7;
//! - [`wire`], [`incarnation`], [`net`]: the authenticated heartbeat packet,
//!   replay rejection across restarts, the UDP send and receive tasks;
//! - [`watchdog`], [`supervisor`] (with [`supervisor_line`], its request
//!   lines, [`supervisor_io`], its loop, [`supervisor_peer`], who may
//!   connect, [`supervisor_reaper`], its second watcher, and
//!   [`supervisor_cli`], the binary's command line), [`fence`], [`fence_record`]: watchdog
//!   backends, the external `xha-supervisor`, fence actions, and the record
//!   that stops a restarted daemon from re-arming after a fence decision;
//! - [`control`] (the `xha_control` crate, re-exported), [`control_server`],
//!   [`socket_path`]: the control protocol and its Unix-socket server;
//! - [`secret`]: the pool secret and the checks on its file;
//! - [`realtime`]: SCHED_RR and mlockall; [`exit`]: the named exit codes;
//!   [`ratelimit`]: the same error logged at most once per T;
//! - [`args`] (the command line), `prepare` (start-up checks), [`run`]
//!   (the runtime and main loop, which owns `xha_driver`'s driver, the one
//!   the simulator runs too) and `host_io` (what the driver runs on), with
//!   [`statefile_io`] (worker threads, several writes in flight per
//!   statefile) and [`report`] (the liveset report and the daemon's own
//!   measurements).
//!
//! Everything here that parses bytes from outside (config files, packets,
//! control lines, supervisor lines) is total: bad input gives a typed error,
//! never a panic.

pub mod args;
pub mod config;
pub use xha_control as control;
pub mod control_server;
pub mod exit;
pub mod fence;
pub mod fence_record;
mod host_io;
pub mod incarnation;
pub mod instance_lock;
pub mod logging;
pub mod net;
mod prepare;
pub mod ratelimit;
pub mod realtime;
pub mod replay;
pub mod report;
pub mod run;
pub mod secret;
pub mod socket_path;
pub mod startup;
pub mod statefile_io;
pub mod supervisor;
pub mod supervisor_cli;
pub mod supervisor_io;
pub mod supervisor_line;
pub mod supervisor_peer;
pub mod supervisor_reaper;
pub mod watchdog;
pub mod wire;
