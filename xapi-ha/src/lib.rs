//! The pool agent: pool model, HA planner, and (later) restart engine and alerts.

pub mod model;
