//! The randomized fault campaign (issue 16): a lab pool of real agents
//! (`xha_lab::agent_pool::AgentPool`, process VMs running the stamp
//! workload) driven from outside from a seed, then checked.
//!
//! Parts: `schedule` (seed -> timed faults, heals and API operations;
//! pure), `check` (the safety checks over what a run recorded; pure), and
//! `run` (the runner: the pool, the steps, the records, the verdict).
//! The test binary is `tests/tests/fault_campaign.rs`; docs/lab.md says how
//! to run it and what it covers.

pub mod api;
pub mod by_hand;
pub mod check;
pub mod hosts;
pub mod run;
pub mod schedule;
