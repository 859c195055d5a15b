//! On-disk formats of the HA heartbeat SR and the I/O that reads and writes them.
//!
//! - [`statefile`]: the 4 MiB statefile (header, pool block, one slot per host).
//! - [`metadata`]: the 256 MiB metadata volume (pool database redo log).

pub mod metadata;
pub mod statefile;
