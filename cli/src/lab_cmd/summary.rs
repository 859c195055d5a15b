//! What a run measured: the `--json` object (docs/lab.md, "Output").

use std::time::Duration;

use super::{Kept, secs};
use xha_lab::agent_pool::USER;

/// One VM's fate.
#[derive(Debug, Clone)]
pub struct VmOutcome {
    pub uuid: String,
    pub name: String,
    /// `ha_restart_priority`: `restart`, `best-effort` or empty.
    pub priority: String,
    pub order: i64,
    /// Host UUIDs.
    pub host_before: String,
    pub host_after: Option<String>,
    /// From the fault to its first stamp on its new host (`None`: it was
    /// not on the killed host, or it stayed down).
    pub running_again_after: Option<Duration>,
}

/// The results.
#[derive(Debug, Clone)]
pub struct Summary {
    pub hosts: usize,
    pub timeout_s: u64,
    pub killed: String,
    pub detected_after: Option<Duration>,
    pub fenced_after: Option<Duration>,
    pub shrink_after: Option<Duration>,
    pub vms: Vec<VmOutcome>,
    /// The last of the killed host's protected VMs to run again.
    pub protected_running_again_after: Option<Duration>,
    pub double_runs: usize,
    /// `http://127.0.0.1:PORT` of the master.
    pub api_url: String,
    /// For the `xe -s` line of `--keep`.
    pub master_address: String,
    pub tls_port: u16,
    pub master_fingerprint: Option<String>,
}

impl Summary {
    pub(super) fn to_json(&self, kept: Option<&Kept>) -> serde_json::Value {
        let vms: Vec<serde_json::Value> = self
            .vms
            .iter()
            .map(|v| {
                serde_json::json!({
                    "uuid": v.uuid,
                    "name": v.name,
                    "priority": v.priority,
                    "order": v.order,
                    "host_before": v.host_before,
                    "host_after": v.host_after,
                    "running_again_after_fault_s": v.running_again_after.map(secs),
                })
            })
            .collect();
        let mut o = serde_json::json!({
            "hosts": self.hosts,
            "timeout_s": self.timeout_s,
            "killed": self.killed,
            "detected_after_fault_s": self.detected_after.map(secs),
            "fenced_after_fault_s": self.fenced_after.map(secs),
            "shrink_after_fault_s": self.shrink_after.map(secs),
            "vms": vms,
            "protected_running_again_after_fault_s": self.protected_running_again_after.map(secs),
            "double_runs": self.double_runs,
            "api_url": self.api_url,
        });
        if let (Some(k), Some(map)) = (kept, o.as_object_mut()) {
            map.insert("dir".into(), k.dir.display().to_string().into());
            map.insert("username".into(), USER.into());
            map.insert(
                "password_file".into(),
                k.password_file.display().to_string().into(),
            );
        }
        o
    }
}
