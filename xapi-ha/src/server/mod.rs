//! The agent's shell: HTTP/1.1 listeners (TLS, plain loopback, Unix
//! socket), the routes of the three encodings, the dispatcher with
//! sessions and commits, the role file and the TLS identity.

pub mod agent;
pub mod emergency; // emerg: emergency mode and calls
pub mod fence_alerts; // alerts: HA_HOST_WAS_FENCED on the next boot
mod ha_emergency; // emerg: host.emergency_ha_disable
pub mod ha_engine_task; // haengine: the restart engine on the live pool
pub mod ha_hosts; // hamulti: the per-host steps of HA on N hosts
pub mod ha_ops;
pub mod ha_volumes; // blocksr: heartbeat files or block SR regions
pub mod http;
pub mod listen;
mod live_migration; // qemu: live VM.pool_migrate of QEMU VMs
#[cfg(test)]
mod lock_tests;
mod lun_alerts; // alerts: the redo log's writes failing and working again
pub mod mailer;
pub mod maintenance; // maint: host.evacuate, host.shutdown/reboot
pub mod master_failover; // mfail: master failover under HA
pub mod master_lease; // mfail: the agent renews its claim on the master lock
pub mod member_alerts; // alerts: a member's messages reach the master
pub mod membership;
mod migration; // migrate: VM.pool_migrate's effect
pub mod password;
mod peer_calls;
pub mod peers;
pub mod replicate;
pub mod role;
mod start_guard; // the fence rule: a VM starts only on a host in its own liveset
pub mod storage;
pub mod tls;
pub mod vms;
pub mod volumes; // blocksr: block SR regions and VDI removal
pub mod web; // metrics: GET /metrics and the status page
pub mod xhad_launcher;
pub mod xhad_watch;

pub use agent::Agent;
