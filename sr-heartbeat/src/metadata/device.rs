//! The metadata volume on real devices: [`MetaIo`] for the blocking O_DIRECT
//! [`BlockDevice`] (tools, tests) and for [`ThreadedIo`], which runs every
//! request on the device's [`IoThread`] with the deadline of its class (2 s for
//! a delta or a superblock, 30 s for a snapshot or a read: the daemon's path).

use std::path::Path;

use crate::io::{AlignedBuf, BlockDevice, IoError, IoThread, OpenMode, Region};

use super::io::{Deadlines, IoClass, IoFailure, MetaIo};

fn failure(e: IoError) -> IoFailure {
    match e {
        IoError::Timeout { deadline, .. } => IoFailure::Timeout { deadline },
        other => IoFailure::Device(Box::new(other)),
    }
}

impl MetaIo for BlockDevice {
    type Buf = AlignedBuf;
    fn sector_size(&self) -> usize {
        BlockDevice::sector_size(self)
    }
    fn size_bytes(&self) -> u64 {
        BlockDevice::size_bytes(self)
    }
    fn alloc(&self, len: usize) -> Result<AlignedBuf, IoFailure> {
        AlignedBuf::new(len).map_err(failure)
    }
    fn read(&mut self, offset: u64, len: usize, _: IoClass) -> Result<AlignedBuf, IoFailure> {
        let mut buf = AlignedBuf::new(len).map_err(failure)?;
        self.read_at(offset, &mut buf).map_err(failure)?;
        Ok(buf)
    }
    fn write(&mut self, offset: u64, buf: AlignedBuf, _: IoClass) -> Result<(), IoFailure> {
        self.write_at(offset, &buf).map_err(failure)
    }
}

/// A device driven through its I/O thread, each request with the deadline of
/// its class. A request that misses its deadline returns
/// [`IoFailure::Timeout`] to the caller while the thread keeps its buffer
/// until the late completion (see [`IoThread`]).
pub struct ThreadedIo {
    pub thread: IoThread,
    pub deadlines: Deadlines,
}

impl ThreadedIo {
    /// Starts the I/O thread for `dev` with XenServer's default deadlines.
    pub fn spawn(dev: BlockDevice) -> Result<ThreadedIo, IoError> {
        Ok(ThreadedIo {
            thread: IoThread::spawn(dev)?,
            deadlines: Deadlines::default(),
        })
    }
}

impl ThreadedIo {
    /// Opens `path` read-write (O_DIRECT | O_DSYNC) on a new I/O thread with
    /// the default deadlines: what the pool agent uses for its redo log.
    pub fn open(path: &Path) -> Result<ThreadedIo, IoError> {
        ThreadedIo::spawn(BlockDevice::open(path, OpenMode::ReadWrite)?)
    }

    /// Opens `region` of the device at `path` the same way: the metadata
    /// volume of a block SR, a region of the shared LUN.
    pub fn open_region(path: &Path, region: Region) -> Result<ThreadedIo, IoError> {
        ThreadedIo::spawn(BlockDevice::open_region(path, OpenMode::ReadWrite, region)?)
    }
}

impl MetaIo for ThreadedIo {
    type Buf = AlignedBuf;
    fn sector_size(&self) -> usize {
        self.thread.sector_size()
    }
    fn size_bytes(&self) -> u64 {
        self.thread.size_bytes()
    }
    fn alloc(&self, len: usize) -> Result<AlignedBuf, IoFailure> {
        AlignedBuf::new(len).map_err(failure)
    }
    fn read(&mut self, offset: u64, len: usize, class: IoClass) -> Result<AlignedBuf, IoFailure> {
        self.thread
            .read(offset, len, self.deadlines.for_class(class))
            .map_err(failure)
    }
    fn write(&mut self, offset: u64, buf: AlignedBuf, class: IoClass) -> Result<(), IoFailure> {
        self.thread
            .write(offset, buf, self.deadlines.for_class(class))
            .map_err(failure)
    }
}
