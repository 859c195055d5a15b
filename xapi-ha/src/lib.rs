//! The pool agent: pool model, HA planner, and (later) restart engine and alerts.

pub mod config;
pub mod model;
pub mod planner;
pub mod pool_file;
pub mod rpc;
pub mod session;
