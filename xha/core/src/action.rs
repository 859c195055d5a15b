//! Actions the core asks its caller to perform.

use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, PoolBlock, Slot};

use super::fence_request::Refusal;
use super::ids::{HostIndex, RequestId, StatefileIndex};
use super::time::Instant;

/// One action. The caller performs them in order, at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this state to every peer over UDP.
    SendHeartbeat { slot: Slot },
    /// Write the local slot to one statefile; report with `Input::SlotWritten`.
    /// `deadline` is when the core stops counting on it (informational for the
    /// I/O layer: the core keeps its own deadline).
    WriteSlot {
        statefile: StatefileIndex,
        request: RequestId,
        slot: Slot,
        deadline: Instant,
    },
    /// Read the whole statefile; report with `Input::StatefileRead`.
    ReadStatefile {
        statefile: StatefileIndex,
        request: RequestId,
        deadline: Instant,
    },
    /// Write the pool block; report with `Input::PoolWritten`.
    WritePool {
        statefile: StatefileIndex,
        request: RequestId,
        block: PoolBlock,
        deadline: Instant,
    },
    /// Arm the watchdog so that it fires at `until` (this host's clock)
    /// unless kicked. The core emits it only with `until - now >=
    /// Timeouts::watchdog_min` (>= 1 s for T >= 10 s).
    ArmWatchdog { until: Instant },
    /// Kick the watchdog so that it fires at `until` at the latest: the lease
    /// end, so a host frozen after this kick is reset by its lease end and
    /// freezes shorter than the remaining lease are tolerated. A device with
    /// coarse granularity rounds `until - now` DOWN (never fire later); the
    /// core keeps `until - now >= watchdog_min`. A kick executed after
    /// `until` must be dropped.
    KickWatchdog { until: Instant },
    /// Disarm the watchdog cleanly (fencing disarmed or clean stop).
    DisarmWatchdog,
    /// Fence now: reboot at once (lab: kill the process group).
    Fence { reason: FenceReason },
    /// The published liveset changed (persisted in the local slot already).
    LivesetChanged { liveset: HostSet },
    /// This host became, or stopped being, the master (the pool block holding
    /// the new epoch is already on disk).
    MasterChanged { is_master: bool, epoch: u64 },
    /// The answer to a control request, in request order.
    Reply(ControlReply),
    /// A condition an operator should see.
    Warning(Warning),
    /// The node stopped cleanly (after `ControlRequest::Stop`).
    Stopped,
    /// Something a `watch` client sees in [`crate::Node::status`] changed
    /// (membership, liveset, phase, master, arming, access, a host's flags,
    /// the refused-request count; not the lease end, the peer instants or
    /// the text). Emitted at most once per `handle`, after the other
    /// actions, and never by a fenced node (`Fence` is its last word).
    StatusChanged,
}

/// Why this host fences.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceReason {
    /// The lease ran out: no timely slot write (nor network confirmation in
    /// statefile-lost mode) renewed it.
    LeaseExpired,
    /// A survivor whose agreed liveset excludes this host asked it to fence.
    FenceRequested { by: HostIndex },
    /// The watchdog failed while armed (`Input::WatchdogLost`): the caller
    /// fences with its configured action, not through the lost watchdog.
    WatchdogLost,
}

/// Operator-visible conditions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A statefile I/O took longer than the warning threshold (approaching its
    /// deadline of T/2).
    StatefileLatency {
        statefile: StatefileIndex,
        latency: Duration,
    },
    /// No heartbeat from `host` for longer than the warning threshold.
    HeartbeatLatency { host: HostIndex, silence: Duration },
    /// This host cannot reach a majority of the statefiles.
    StatefileLost,
    /// A slot or pool block failed to decode (torn or corrupt).
    StatefileCorrupt {
        statefile: StatefileIndex,
        host: Option<HostIndex>,
    },
    /// A fence request from `by` was not obeyed: this host's own evidence
    /// does not corroborate it (see `core::fence_request`). At most once per
    /// T per requester; every refusal is counted in the status.
    FenceRequestRefused { by: HostIndex, why: Refusal },
    /// This host hears `host`, but `host`'s heartbeats have said for `lasted`
    /// that it does not hear this host (a one-way link, or `host` drops this
    /// host's packets as replayed). At most once per T per peer.
    NotHeardBy { host: HostIndex, lasted: Duration },
    /// Liveset member `host` has fencing disarmed and is neither heard nor
    /// writing its slot: it is never removed (a disarmed host's lease proves
    /// nothing). Raised once when the condition starts; the status reports
    /// it while it lasts.
    SilentWhileDisarmed { host: HostIndex },
}

/// Answer to a control request.
pub type ControlReply = Result<(), ControlError>;

/// Why a control request was refused (nothing changed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("the node has fenced and accepts no requests")]
    Fenced,
    #[error("the node has stopped")]
    Stopped,
    #[error("only the master may set the pool state")]
    NotMaster,
    #[error("this host is not in the liveset yet")]
    NotLive,
    #[error("stopping an armed member needs it excluded first (set excluded, then stop)")]
    NotExcluded,
    #[error("a pool block write is already in progress")]
    Busy,
}
