//! What the engine is told: the liveset, what the VM drivers report, what
//! operators do, the pool's configuration, and the passing of time.

use uuid::Uuid;

use crate::model::RestartPriority;

/// One event for [`Engine::handle`](super::Engine::handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The liveset changed: `live` are the hosts in it. Of the others,
    /// those in `fenced` are proven fenced (their VMs are gone); any other
    /// host out of the liveset is lost but not yet proven fenced (its VMs
    /// may still run: nothing may start them elsewhere). A host once fenced
    /// stays fenced until it is live again.
    Liveset { live: Vec<Uuid>, fenced: Vec<Uuid> },
    /// The VM runs on `host` (a start the engine asked for, or any other).
    VmStarted { vm: Uuid, host: Uuid },
    /// A start the engine asked for failed (driver error, no memory, ...).
    VmStartFailed {
        vm: Uuid,
        host: Uuid,
        reason: String,
    },
    /// The VM stopped by itself (shut down from inside the guest).
    VmStoppedByItself { vm: Uuid },
    /// A shutdown through the API began.
    VmStopRequested { vm: Uuid },
    /// A shutdown through the API finished (`ha_always_run` is now false).
    VmStoppedByApi { vm: Uuid },
    /// The VM is moving to `to`; a later `VmStarted` on `to` ends the move.
    VmMigrating { vm: Uuid, to: Uuid },
    /// The VM's HA configuration changed.
    VmConfig {
        vm: Uuid,
        priority: RestartPriority,
        always_run: bool,
        order: i64,
        start_delay_s: u64,
    },
    /// The VM's `affinity` or its `other_config:ha-failback` changed.
    VmFailback {
        vm: Uuid,
        affinity: Option<Uuid>,
        failback: bool,
    },
    /// A `Failback` the engine asked for ended: `Err` when the VM stayed
    /// where it was.
    FailbackDone {
        vm: Uuid,
        to: Uuid,
        result: Result<(), String>,
    },
    /// `host.enabled` changed.
    HostEnabled { host: Uuid, enabled: bool },
    /// The host entered or left maintenance.
    HostMaintenance { host: Uuid, on: bool },
    /// The pool's HA configuration changed.
    PoolConfig {
        ha_enabled: bool,
        reboot_on_internal_shutdown: bool,
        plan_exists_for: i64,
    },
    /// `pool.ha_prevent_restarts_for(seconds)`: no starts until then; 0
    /// resumes at once.
    PreventRestartsFor { seconds: u64 },
    /// Time passed (the instant given to `handle` is all it carries).
    Tick,
}
