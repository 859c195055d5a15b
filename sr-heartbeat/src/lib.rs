//! On-disk formats of the HA heartbeat SR and the I/O that reads and writes them.
//!
//! - [`io`]: sector-aligned `O_DIRECT` I/O, and an I/O thread per device that
//!   gives every request a deadline.
//! - [`statefile`]: the 4 MiB statefile (header, pool block, one slot per host).
//! - [`metadata`]: the 256 MiB metadata volume (pool database redo log).
//! - [`srlabel`]: the label of a block SR and its volume table.
//! - [`text`]: control characters of outside text escaped for terminals.
//! - [`le`]: little-endian field access, shared with `xha`'s heartbeat packets.
//!
//! The I/O (`io`, `statefile::file`, `statefile::inspect`, `metadata::device`)
//! is behind the cargo feature `io`: without it the crate is the formats
//! alone, with no nix, memmap2 or libc (what the pure core `xha_core` uses).

#[cfg(feature = "io")]
pub mod io;
pub mod le;
pub mod metadata;
pub mod srlabel;
pub mod statefile;
pub mod text;
