//! What the engine asks the shell to do.

use std::time::Duration;

use uuid::Uuid;

use crate::ha::HaState;
use crate::ha::messages::HaMessage;

/// One decision, for the shell to perform in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The host is proven fenced: set `host_metrics.live = false`.
    MarkHostDead { host: Uuid },
    /// The VM ran on a fenced host: force it `Halted` (`resident_on` NULL),
    /// without stopping anything (it is gone already).
    ForceHalted { vm: Uuid, host: Uuid },
    /// Start the VM on the host; answer with `VmStarted` or
    /// `VmStartFailed`.
    StartVm { vm: Uuid, host: Uuid },
    /// Set `ha_always_run = false` (a protected VM shut down from inside
    /// while `ha_reboot_vm_on_internal_shutdown` is false).
    ClearAlwaysRun { vm: Uuid },
    /// Raise a message.
    Message(HaMessage),
    /// Store the VM's new `ha_state`.
    SetHaState { vm: Uuid, state: HaState },
    /// The VM's next start attempt is at `at` (engine time); the shell
    /// needs nothing but `poll_timeout`, this is for the log.
    ScheduleRetry {
        vm: Uuid,
        at: Duration,
        reason: String,
    },
    /// Move the running VM from `from` back to its affinity host `to`
    /// (`VM.pool_migrate`); answer with `FailbackDone`. Its arrival comes
    /// as `VmStarted` on `to` from the committed database.
    Failback { vm: Uuid, from: Uuid, to: Uuid },
    /// A decision worth logging that changes nothing by itself.
    Note(String),
}
