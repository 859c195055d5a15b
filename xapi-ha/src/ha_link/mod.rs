//! The agent's link to `xhad` (docs/ha-enable.md): the configuration it
//! writes for the daemon ([`xhad_config`]), the files an enable creates and
//! the local record that says HA is on ([`files`], [`state`]), and the pure
//! translation of `xhad`'s `watch` reports into database changes
//! ([`translate`]). The process side (starting `xhad`, following it, the
//! enable and disable sequences) is in `server::{xhad_launcher,
//! xhad_watch, ha_ops}`.

pub mod arm; // hamulti: what each host of N gets to arm HA
pub mod failover; // mfail: master failover under HA (pure decision)
pub mod fence_report; // alerts: a fence reported on the next boot
pub mod files;
pub mod regions; // blocksr: heartbeat volumes as regions of a block SR
pub mod state;
pub mod translate;
pub mod xhad_config;
