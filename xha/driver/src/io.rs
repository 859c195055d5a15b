//! Statefile requests and their completions, as the driver hands them to the
//! storage and gets them back: the operation kind is carried once, in
//! [`Op`] going out and in [`Done`] coming back.

use xha_core::{PoolBlock, RequestId, Slot, StatefileIndex, StatefileRead, Timeouts};

/// One statefile operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write this host's slot.
    WriteSlot(Slot),
    /// Read the pool block and every slot in one I/O.
    ReadAll,
    /// Write the pool block as is.
    WritePool(PoolBlock),
}

impl Op {
    /// A short name for logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Op::WriteSlot(_) => "slot write",
            Op::ReadAll => "read",
            Op::WritePool(_) => "pool write",
        }
    }
}

/// How an operation ended (an error is text for operators).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Done {
    SlotWritten(Result<(), String>),
    Read(Result<StatefileRead, String>),
    PoolWritten(Result<(), String>),
}

impl Done {
    /// The error, if the operation failed.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        match self {
            Done::SlotWritten(Err(e)) | Done::PoolWritten(Err(e)) | Done::Read(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// "read" or "write", for logs.
    #[must_use]
    pub fn what(&self) -> &'static str {
        match self {
            Done::Read(_) => "read",
            Done::SlotWritten(_) | Done::PoolWritten(_) => "write",
        }
    }
}

/// A finished operation: the core's request id on statefile `statefile`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub statefile: StatefileIndex,
    pub request: RequestId,
    pub done: Done,
}

/// The storage refused a request at once: it was never started and cannot
/// land (every worker is stuck in the kernel, or the statefile is not open).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Extra requests per statefile beyond the core's `max_outstanding_writes`:
/// one read and pool-block writes.
const EXTRA_REQUESTS: usize = 4;

/// How many requests one statefile may have in flight; the storage refuses
/// more ([`Refused`]). The daemon starts at most this many workers per
/// statefile and the simulator's paths hold at most this many requests.
#[must_use]
pub fn io_capacity(timeouts: &Timeouts) -> usize {
    timeouts.max_outstanding_writes + EXTRA_REQUESTS
}
