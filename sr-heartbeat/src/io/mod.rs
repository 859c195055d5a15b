//! Sector-aligned block I/O with `O_DIRECT`, and deadlines on top of it.
//!
//! - [`AlignedBuf`]: a page-aligned buffer (an anonymous mapping), the only
//!   kind of buffer the direct path accepts.
//! - [`BlockDevice`]: a regular file or block device opened with `O_DIRECT`
//!   (and `O_DSYNC` when writable); every offset, length and buffer address is
//!   checked against the device's logical sector size before the syscall.
//!   Opened as a [`Region`] (a volume of a block SR), offsets are relative
//!   to the region, which behaves as the whole device.
//! - [`IoThread`]: one dedicated thread per device that runs the requests, so
//!   a caller waits at most until its deadline even when the device hangs.
//! - [`BlockIo`]: what the on-disk formats need from either of them, so the
//!   statefile layout code is written once for both paths.

mod buf;
mod device;
mod error;
mod thread;

pub use buf::{AlignedBuf, PAGE_SIZE};
pub use device::{BlockDevice, OpenMode, REGION_ALIGN, Region};
pub use error::{IoError, IoOp};
pub use thread::{DeadlineIo, IoThread, LatencyStats, Pending, QUEUE_DEPTH};

/// Block I/O as the formats use it: whole sectors, aligned buffers.
///
/// Implemented by [`BlockDevice`] (blocking, no deadline: tools and tests) and
/// by [`DeadlineIo`] (through an [`IoThread`] with a deadline: the daemon).
pub trait BlockIo {
    /// Logical sector size in bytes: offsets and lengths are multiples of it.
    fn sector_size(&self) -> usize;
    /// Size of the device or file in bytes.
    fn size_bytes(&self) -> u64;
    /// The path the device was opened from, for messages.
    fn path(&self) -> &std::path::Path;
    /// Read `len` bytes at `offset` into a fresh aligned buffer.
    fn read(&self, offset: u64, len: usize) -> Result<AlignedBuf, IoError>;
    /// Write the whole of `buf` at `offset` (durable on return: `O_DSYNC`).
    fn write(&self, offset: u64, buf: AlignedBuf) -> Result<(), IoError>;
}
