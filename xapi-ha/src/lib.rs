//! The pool agent: pool model, HA planner, the pool database and the pure
//! call handlers; (later) restart engine and alerts.

pub mod api;
pub mod db;
pub mod model;
pub mod planner;
pub mod pool_file;
pub mod value;
