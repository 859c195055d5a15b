//! The host-to-host calls (docs/pool.md, "Host to host"). They go through
//! the same API as every other call, on a session made by
//! `session.login_with_password(PEER_USER, pool secret)`; only such a
//! session may make them. They are ours (xapi's internal calls differ) and
//! are not listed by `system.listMethods`.

/// The user name of a host-to-host login; its password is the pool secret.
pub const PEER_USER: &str = "__pool__";

/// master -> member: `(master_address, kind, payloads)`, `kind` `delta`
/// (payloads: committed batches in order, each `db::encode` delta bytes)
/// or `snapshot` (one payload: the whole database). Returns the member's
/// generation after applying them.
pub const SYNC: &str = "pool.peer_sync";
/// master -> member: `(spec)`: start the VM (a `xapi_vm::VmSpec` as JSON)
/// with this host's drivers.
pub const START_VM: &str = "host.peer_start_vm";
/// master -> member: `(vm_uuid, hard)`: stop the VM and wait until it is gone.
pub const STOP_VM: &str = "host.peer_stop_vm";
/// member -> master: `(host_uuid, vm_uuid)`: a VM of that host stopped by
/// itself; the master commits it Halted.
pub const VM_STOPPED: &str = "host.peer_vm_stopped";
/// master -> new master: `(snapshot)`: install this database and become
/// the master (`pool.designate_new_master`).
pub const TAKE_OVER: &str = "pool.peer_take_over";
/// (new) master -> member: `(master_address)`: rewrite `pool.conf`.
pub const SET_MASTER: &str = "pool.peer_set_master";
/// master -> ejected host: `()`: forget the pool and become the master of
/// a pool of one with a fresh database (`pool.eject`).
pub const EJECT: &str = "pool.peer_eject";

/// master -> source or target host: `(step)`: one step of a QEMU live
/// migration (`server::live_migration::Step` as JSON); returns the
/// target's listen address for the first step, "" for the others.
pub const MIGRATE: &str = "host.peer_migrate";

/// maint: master -> member: `(reboot)`: exclude this host in `xhad` and
/// stop (or restart) the agent (`host.shutdown`, `host.reboot`).
pub const SHUTDOWN: &str = "host.peer_shutdown";

/// hamulti: master -> every member, before HA is enabled: `(sr_dirs)`, a
/// JSON array of the heartbeat SR directories: the member probes each
/// (`CANNOT_CREATE_STATE_FILE`) and returns its `xhad` heartbeat address.
pub const HA_PREPARE: &str = "host.ha_prepare";
/// hamulti: master -> member: `(spec)`, a `ha_link::arm::ArmSpec` as JSON:
/// write this host's `xhad.toml` and heartbeat secret, `xhad --check`,
/// start `xhad` through the launcher, record `ha-state.toml` and follow it.
pub const HA_ARM: &str = "host.ha_arm";
/// hamulti: master -> member: `(stop)`: `disarm-fencing`; with `stop` also
/// stop `xhad` and remove its files and `ha-state.toml` (rollback, disable).
pub const HA_DISARM: &str = "host.ha_disarm";

/// alerts: member -> master: `(host_uuid, messages)`, the messages a
/// member raised (`alerts::forward`, a JSON array of `{uuid, name,
/// priority, cls, obj_uuid, body}`); the master records each uuid once.
pub const RAISE_MSGS: &str = "host.peer_raise_messages";

/// Every host-to-host call.
pub const METHODS: &[&str] = &[
    SYNC, START_VM, STOP_VM, VM_STOPPED, TAKE_OVER, SET_MASTER, EJECT, MIGRATE, SHUTDOWN,
    HA_PREPARE, HA_ARM, HA_DISARM, RAISE_MSGS,
];

/// `SYNC` kinds.
pub const KIND_DELTA: &str = "delta";
/// `SYNC` kinds.
pub const KIND_SNAPSHOT: &str = "snapshot";

/// Error codes of the host-to-host calls (ours).
pub mod code {
    /// A `SYNC` delta does not follow the member's copy: `[member
    /// generation]`; the master sends a snapshot instead.
    pub const POOL_DB_OUT_OF_SYNC: &str = "POOL_DB_OUT_OF_SYNC";
    /// A host-to-host call on a session that is not a pool-secret one.
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
}
