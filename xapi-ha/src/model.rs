//! The pool as the planner sees it: hosts and VMs with the fields that matter
//! for placement. A plain value type; the pool description file parser
//! (`pool_file`) and, later, the pool database both produce it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `ha-restart-priority`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPriority {
    /// `restart`: protected; restarted by plan, retried until it runs.
    Restart,
    /// `best-effort`: restarted after protected VMs where room is left.
    BestEffort,
    /// empty: never restarted by HA.
    #[default]
    Unprotected,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    Running,
    #[default]
    Halted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    pub uuid: Uuid,
    pub name: String,
    /// Bytes.
    pub memory_total: u64,
    /// Bytes reserved for the host itself.
    pub memory_overhead: u64,
    pub enabled: bool,
    pub live: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vm {
    pub uuid: Uuid,
    pub name: String,
    /// Bytes (static max).
    pub memory: u64,
    /// Bytes of per-VM overhead; a VM needs `memory + memory_overhead`.
    pub memory_overhead: u64,
    pub priority: RestartPriority,
    /// Restart group: ascending, 0 first.
    pub order: i64,
    pub power_state: PowerState,
    /// The host it runs on (by UUID), when running.
    pub resident_on: Option<Uuid>,
    /// False for VMs tied to one host (local disks or networks): not planned.
    pub agile: bool,
    /// Preferred host for restarts, when it has room.
    pub affinity: Option<Uuid>,
}

impl Vm {
    /// Memory the VM occupies on a host, in bytes.
    #[must_use]
    pub fn footprint(&self) -> u64 {
        self.memory.saturating_add(self.memory_overhead)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// `ha-host-failures-to-tolerate`: the operator's target.
    pub ha_host_failures_to_tolerate: u32,
    pub hosts: Vec<Host>,
    pub vms: Vec<Vm>,
}
