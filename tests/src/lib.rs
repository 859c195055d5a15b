//! Simulator and end-to-end tests.
//!
//! [`sim`] runs the real `xha` core on simulated hosts, networks, disks,
//! clocks and watchdogs from a seed, and checks the safety invariants.

pub mod faultfs;
pub mod sim;
