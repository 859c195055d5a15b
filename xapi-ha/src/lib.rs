//! The pool agent: pool model, HA planner, the pool database and the pure
//! call handlers, the wire codecs, sessions and configuration of the agent
//! process; the restart engine and the live failover plan (`ha`).

pub mod alerts;
pub mod api;
pub mod config;
pub mod db;
pub mod ha;
pub mod ha_link;
pub mod metrics;
pub mod model;
pub mod planner;
pub mod pool;
pub mod pool_file;
pub mod rpc;
pub mod server;
pub mod session;
pub mod status_page;
pub mod value;
