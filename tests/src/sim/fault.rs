//! The fault vocabulary: everything a scenario or a random schedule can do
//! to the simulated pool, applied at a real instant.

use sr_heartbeat::statefile::HostSet;

use super::storage::PathMode;
use super::time::Nanos;

/// A control request, as the toolstack would send it to one host's daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Control {
    ProposeMaster(bool),
    DisarmFencing,
    SetExcluded,
    ClearExcluded,
    /// Stop the daemon (a clean shutdown, after `SetExcluded`).
    Stop,
}

/// One thing that happens to the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Power loss: the host stops at once; its in-flight I/O may still land.
    Crash(usize),
    /// The host stops processing (its watchdog keeps running).
    Freeze(usize),
    /// A frozen host resumes.
    Thaw(usize),
    /// A dead host (crashed or fenced) boots again with a fresh core.
    Restart(usize),
    /// Cut every link of the host, both ways.
    Isolate(usize),
    /// Split into groups (hosts in no group are isolated).
    Partition(Vec<HostSet>),
    /// Cut or restore one direction of one link.
    OneWay { from: usize, to: usize, up: bool },
    /// All links up (quality kept).
    HealNetwork,
    /// Loss, duplication (ppm) and delay range on every link.
    NetQuality {
        loss_ppm: u32,
        dup_ppm: u32,
        delay_min: Nanos,
        delay_max: Nanos,
    },
    /// The host's path to statefile `sf` changes mode.
    Storage {
        host: usize,
        sf: usize,
        mode: PathMode,
    },
    /// The host's path to statefile `sf` gets this latency range.
    StorageLatency {
        host: usize,
        sf: usize,
        min: Nanos,
        max: Nanos,
    },
    /// Probability that a write tears, on every path.
    TornWrites { ppm: u32 },
    /// Every path healthy with LAN latency, no tearing.
    HealStorage,
    /// A control request to one host.
    Control { host: usize, request: Control },
    /// The host's watchdog backend fails (the supervisor dies, the device
    /// refuses writes): it will not fire, and the daemon's next kick fails.
    /// Until the host boots again.
    WatchdogLost(usize),
}

impl Fault {
    /// Whether this is a fault in the sense of invariant 4 (something that
    /// may legitimately make a host fence). Latency and loss within the
    /// "no fault" envelope are checked by the caller.
    #[must_use]
    pub fn is_disruptive(&self) -> bool {
        !matches!(
            self,
            Fault::Thaw(_)
                | Fault::Restart(_)
                | Fault::HealNetwork
                | Fault::HealStorage
                | Fault::NetQuality { .. }
                | Fault::StorageLatency { .. }
                | Fault::Control { .. }
        )
    }
}
