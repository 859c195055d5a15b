//! Errors of the block I/O layer.

use std::path::PathBuf;
use std::time::Duration;

/// Which kind of request an error refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoOp {
    Read,
    Write,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::Read => "read",
            IoOp::Write => "write",
        })
    }
}

/// Why a block I/O request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// `open(2)` failed (missing path, permissions, `O_DIRECT` unsupported by
    /// the filesystem, ...).
    #[error("{path}: cannot open: {source}", path = path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The path is neither a regular file nor a block device (a FIFO, a
    /// directory, a character device): refused before opening it, so opening
    /// never blocks.
    #[error("{path}: is {kind}, expected a regular file or a block device", path = path.display())]
    NotBlockOrFile { path: PathBuf, kind: &'static str },
    /// A block-device ioctl (`BLKSSZGET`, `BLKGETSIZE64`) failed.
    #[error("{path}: ioctl {ioctl} failed: {source}", path = path.display())]
    Ioctl {
        path: PathBuf,
        ioctl: &'static str,
        #[source]
        source: nix::errno::Errno,
    },
    /// The device reports a logical sector size this layer cannot use (not a
    /// power of two between 512 and 4096).
    #[error("{path}: unsupported logical sector size {sector_size} (expected a power of two from 512 to 4096)", path = path.display())]
    BadSectorSize { path: PathBuf, sector_size: usize },
    /// The device size is not a whole number of sectors.
    #[error("{path}: size {size} bytes is not a multiple of the {sector_size}-byte sector", path = path.display())]
    SizeNotAligned {
        path: PathBuf,
        size: u64,
        sector_size: usize,
    },
    /// The device is smaller than the format needs.
    #[error("{path}: too small: need {need} bytes, have {have}", path = path.display())]
    TooSmall { path: PathBuf, need: u64, have: u64 },
    /// An offset, a length or a buffer address is not a multiple of the
    /// sector size (`what` names which one).
    #[error("{what} {value:#x} is not a multiple of the {sector_size}-byte sector")]
    Misaligned {
        what: &'static str,
        value: u64,
        sector_size: usize,
    },
    /// The request reaches past the end of the device.
    #[error("{op} of {len} bytes at offset {offset} ends past the device size {size}")]
    OutOfRange {
        op: IoOp,
        offset: u64,
        len: usize,
        size: u64,
    },
    /// A region to open is empty or not aligned (`open_region`).
    #[error("{path}: region at offset {offset} of length {len} is empty or not a multiple of {align} bytes", path = path.display())]
    RegionMisaligned {
        path: PathBuf,
        offset: u64,
        len: u64,
        align: u64,
    },
    /// A region to open reaches past the end of its device.
    #[error("{path}: region at offset {offset} of length {len} ends past the device size {device_size}", path = path.display())]
    RegionOutOfRange {
        path: PathBuf,
        offset: u64,
        len: u64,
        device_size: u64,
    },
    /// A request on a device opened as a region leaves the region (the
    /// offset is relative to the region's start).
    #[error(
        "{op} of {len} bytes at offset {offset} leaves the region at offset {region_offset} of length {region_len}"
    )]
    OutsideRegion {
        op: IoOp,
        offset: u64,
        len: usize,
        region_offset: u64,
        region_len: u64,
    },
    /// An aligned buffer must be a non-zero multiple of the page size.
    #[error("buffer length {len} is not a non-zero multiple of {page}", page = super::PAGE_SIZE)]
    BufferLength { len: usize },
    /// The anonymous mapping for a buffer could not be created.
    #[error("cannot allocate an aligned buffer of {len} bytes: {source}")]
    Alloc {
        len: usize,
        #[source]
        source: std::io::Error,
    },
    /// A write on a device opened read-only.
    #[error("{path}: opened read-only, cannot write", path = path.display())]
    ReadOnly { path: PathBuf },
    /// The read or write system call failed.
    #[error("{op} at offset {offset} failed: {source}")]
    Io {
        op: IoOp,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// The request did not complete within its deadline. It may still be in
    /// flight (and, for a write, may still land); its buffer is freed only
    /// when it completes.
    #[error("{op} at offset {offset} did not complete within {deadline:?}")]
    Timeout {
        op: IoOp,
        offset: u64,
        deadline: Duration,
    },
    /// Refused without queueing: an earlier request is stuck past its own
    /// deadline (or the queue is full), and queueing more behind it would grow
    /// without bound.
    #[error("{op} at offset {offset} refused: device busy ({reason})")]
    Busy {
        op: IoOp,
        offset: u64,
        reason: String,
    },
    /// The I/O thread could not be started.
    #[error("cannot start the I/O thread: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    /// The I/O thread is gone (it panicked): no request can run any more.
    #[error("the I/O thread has exited")]
    ThreadGone,
}

impl IoError {
    /// The request missed its deadline (its outcome is unknown: a write may
    /// still land).
    pub fn is_timeout(&self) -> bool {
        matches!(self, IoError::Timeout { .. })
    }

    /// Refused without running because the device is stuck or the queue full.
    pub fn is_busy(&self) -> bool {
        matches!(self, IoError::Busy { .. })
    }
}
