//! The statefile (4 MiB): header block, pool block, one slot per host.
//!
//! - [`header`], [`pool`], [`slot`]: the byte layout of each block.
//! - [`file`]: the operations on a device ([`Statefile`]).
//! - [`inspect`]: a read-only look at whatever is on a device, reporting every
//!   problem instead of stopping at the first (`sr-heartbeat dump` / `check`).

#[cfg(feature = "io")]
pub mod file;
pub mod header;
pub mod hostset;
#[cfg(feature = "io")]
pub mod inspect;
pub mod pool;
pub mod slot;

#[cfg(feature = "io")]
pub use file::{Statefile, StatefileError, StatefileIo, StatefileRead};
pub use header::{HEADER_MAGIC, Header, HeaderError, STATEFILE_SIZE};
pub use hostset::{HostSet, MAX_HOSTS_LIMIT};
#[cfg(feature = "io")]
pub use inspect::{Inspection, inspect};
pub use pool::{PoolBlock, PoolState};
pub use slot::{Phase, Slot, SlotError};
