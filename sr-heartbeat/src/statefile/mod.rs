//! The statefile (4 MiB): header block, pool block, one slot per host.

pub mod hostset;
pub mod pool;
pub mod slot;

pub use hostset::{HostSet, MAX_HOSTS_LIMIT};
pub use pool::{PoolBlock, PoolState};
pub use slot::{Phase, Slot, SlotError};
