//! What the metadata volume needs from a device: aligned buffers and
//! positioned reads and writes, each tagged with its class so that a
//! deadline-enforcing implementation can give a delta 2 s and a snapshot 30 s
//! (XenServer's budgets). `device.rs` implements it for the O_DIRECT
//! `BlockDevice` and for the deadline-enforcing `IoThread`.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

/// Which operation an I/O belongs to; selects its deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoClass {
    /// Superblocks, snapshot, delta area during open and recovery.
    Read,
    /// One delta record append.
    DeltaWrite,
    /// One superblock write (a snapshot's commit point or a new epoch).
    SuperblockWrite,
    /// The staging write of a whole snapshot.
    SnapshotWrite,
    /// Format.
    FormatWrite,
}

/// Deadlines per class of I/O. Defaults follow XenServer's redo log: 2 s for
/// a delta, 30 s for a database dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub read: Duration,
    pub delta_write: Duration,
    pub superblock_write: Duration,
    pub snapshot_write: Duration,
    pub format_write: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            read: Duration::from_secs(30),
            delta_write: Duration::from_secs(2),
            superblock_write: Duration::from_secs(2),
            snapshot_write: Duration::from_secs(30),
            format_write: Duration::from_secs(30),
        }
    }
}

impl Deadlines {
    /// The deadline of one I/O of `class`.
    #[must_use]
    pub fn for_class(&self, class: IoClass) -> Duration {
        match class {
            IoClass::Read => self.read,
            IoClass::DeltaWrite => self.delta_write,
            IoClass::SuperblockWrite => self.superblock_write,
            IoClass::SnapshotWrite => self.snapshot_write,
            IoClass::FormatWrite => self.format_write,
        }
    }
}

/// An I/O that did not complete.
#[derive(Debug, thiserror::Error)]
pub enum IoFailure {
    /// The I/O missed its deadline. A write may still land later: the volume
    /// treats its outcome as unknown.
    #[error("missed its deadline of {deadline:?}")]
    Timeout { deadline: Duration },
    /// The device reported an error (EIO, misalignment, short transfer, ...).
    #[error(transparent)]
    Device(Box<dyn std::error::Error + Send + Sync>),
}

/// A device the metadata volume runs on. Every offset and length the volume
/// passes is a multiple of 4096; implementations check alignment against
/// their sector size anyway.
pub trait MetaIo {
    /// A buffer suitable for this device's I/O (page-aligned for O_DIRECT).
    type Buf: Deref<Target = [u8]> + DerefMut;
    /// Logical sector size in bytes.
    fn sector_size(&self) -> usize;
    /// Usable size in bytes.
    fn size_bytes(&self) -> u64;
    /// A zeroed buffer of `len` bytes.
    fn alloc(&self, len: usize) -> Result<Self::Buf, IoFailure>;
    /// Reads `len` bytes at `offset`.
    fn read(&mut self, offset: u64, len: usize, class: IoClass) -> Result<Self::Buf, IoFailure>;
    /// Writes all of `buf` at `offset`, durably (O_DSYNC or equivalent)
    /// before returning `Ok`.
    fn write(&mut self, offset: u64, buf: Self::Buf, class: IoClass) -> Result<(), IoFailure>;
}
