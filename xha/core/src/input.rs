//! Events fed to the core.

pub use sr_heartbeat::statefile::StatefileRead;
use sr_heartbeat::statefile::{PoolState, Slot};

use super::ids::{HostIndex, RequestId, StatefileIndex};

/// One event. Every I/O action carries a `request` id; its completion comes
/// back as an input with the same id. The core measures latency itself, from
/// the `now` of the `handle` call that emitted the request to the `now` of the
/// completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Time passed; the core checks its timers.
    Tick,
    /// An authenticated, decoded heartbeat from host `from` carrying the
    /// sender's current state (its slot as it would write it now). The daemon
    /// drops forged, foreign-pool, replayed and malformed packets before this.
    Heartbeat { from: HostIndex, slot: Slot },
    /// A read of the whole statefile (pool block and every slot) finished.
    StatefileRead {
        statefile: StatefileIndex,
        request: RequestId,
        result: Result<StatefileRead, IoFailure>,
    },
    /// A write of the local slot finished. Contract with the I/O layer: report
    /// a write only once it can no longer land (completed, failed, or
    /// cancelled for sure). A write still in flight past its deadline is the
    /// core's business: it judges lateness itself and does not issue another
    /// write to that statefile until this report comes.
    SlotWritten {
        statefile: StatefileIndex,
        request: RequestId,
        result: Result<(), IoFailure>,
    },
    /// A write of the pool block finished (same contract as `SlotWritten`).
    PoolWritten {
        statefile: StatefileIndex,
        request: RequestId,
        result: Result<(), IoFailure>,
    },
    /// A request from the control socket (toolstack or operator).
    Control(ControlRequest),
    /// The watchdog failed while armed (a kick was refused: the supervisor
    /// died, the device refused the write). Nothing would reset this host if
    /// its daemon hung now, and peers count it as fenced by its lease end: an
    /// armed node fences at once (`FenceReason::WatchdogLost`); a node whose
    /// watchdog is not armed ignores it.
    WatchdogLost,
}

/// Why an I/O failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoFailure {
    /// The device returned an error (text for operators).
    Error(String),
    /// The I/O layer gave up waiting and guarantees the request will not
    /// land later (for a write: cancelled or the device closed).
    Timeout,
}

/// Requests from the control socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlRequest {
    /// `true`: ask for the master lock; `false`: give it up / stop asking.
    ProposeMaster(bool),
    /// Stop fencing: this host never fences and never shrinks its liveset.
    DisarmFencing,
    /// Mark this host as cleanly leaving: peers do not wait for it.
    SetExcluded,
    /// Clear the excluded mark (the host is back).
    ClearExcluded,
    /// Set the pool state in the pool block (only the master may).
    SetPoolState(PoolState),
    /// Stop the node: stop writing, disarm the watchdog, report `Stopped`.
    Stop,
}
