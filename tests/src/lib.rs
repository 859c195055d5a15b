//! Simulator and end-to-end tests.
//!
//! [`sim`] runs the real `xha` core on simulated hosts, networks, disks,
//! clocks and watchdogs from a seed, and checks the safety invariants.
//! [`e2e`], [`netns`] and [`faultfs`] serve the end-to-end tests of real
//! `xhad` processes: the shared observations, network namespaces, and a
//! per-host storage fault layer ([`storage_lab`] puts a lab on it).

pub mod campaign;
pub mod e2e;
pub mod faultfs;
pub mod netns;
pub mod nft;
pub mod sim;
pub mod storage_lab;
