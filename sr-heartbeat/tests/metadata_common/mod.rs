//! Test devices for the metadata volume suites: an in-memory device with a
//! configurable sector size (shared between "processes" like a real shared
//! disk), and a fault wrapper over any device that crashes at a chosen write,
//! optionally tearing it (a prefix lands, the rest keeps old bytes or gets
//! garbage). Test-only: the product runs on `BlockDevice` / `IoThread`.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use sr_heartbeat::metadata::io::{IoClass, IoFailure, MetaIo};

fn failure(msg: String) -> IoFailure {
    IoFailure::Device(msg.into())
}

/// A shared in-memory disk. Clones share the bytes (two writers on one disk).
#[derive(Clone)]
pub struct MemDevice {
    bytes: Arc<Mutex<Vec<u8>>>,
    sector: usize,
}

impl MemDevice {
    pub fn new(size: usize, sector: usize) -> MemDevice {
        MemDevice {
            bytes: Arc::new(Mutex::new(vec![0; size])),
            sector,
        }
    }
    pub fn snapshot_bytes(&self) -> Vec<u8> {
        self.bytes.lock().unwrap().clone()
    }
    fn check(&self, offset: u64, len: usize) -> Result<(), IoFailure> {
        let size = self.bytes.lock().unwrap().len() as u64;
        if !offset.is_multiple_of(self.sector as u64) || !len.is_multiple_of(self.sector) {
            return Err(failure(format!(
                "unaligned I/O: offset {offset} len {len} sector {}",
                self.sector
            )));
        }
        if offset + len as u64 > size {
            return Err(failure(format!(
                "I/O beyond the end: {offset}+{len} > {size}"
            )));
        }
        Ok(())
    }
}

impl MetaIo for MemDevice {
    type Buf = Vec<u8>;
    fn sector_size(&self) -> usize {
        self.sector
    }
    fn size_bytes(&self) -> u64 {
        self.bytes.lock().unwrap().len() as u64
    }
    fn alloc(&self, len: usize) -> Result<Vec<u8>, IoFailure> {
        Ok(vec![0; len])
    }
    fn read(&mut self, offset: u64, len: usize, _: IoClass) -> Result<Vec<u8>, IoFailure> {
        self.check(offset, len)?;
        let b = self.bytes.lock().unwrap();
        Ok(b[offset as usize..offset as usize + len].to_vec())
    }
    fn write(&mut self, offset: u64, buf: Vec<u8>, _: IoClass) -> Result<(), IoFailure> {
        self.check(offset, buf.len())?;
        let mut b = self.bytes.lock().unwrap();
        b[offset as usize..offset as usize + buf.len()].copy_from_slice(&buf);
        Ok(())
    }
}

/// How the crashing write lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tear {
    /// Nothing of it lands.
    Nothing,
    /// Its first `n` bytes land (a multiple of the sector size); the rest
    /// keeps the old contents.
    Prefix(usize),
    /// Its first `n` bytes land; the rest of its range is overwritten with garbage.
    PrefixThenGarbage(usize),
}

/// Wraps a device: the first `writes_ok` writes go through, the next one
/// lands as `tear` says and fails, and every later write fails (the host
/// crashed). Reads keep working so the crash can be inspected.
pub struct Faulty<I: MetaIo> {
    pub inner: I,
    pub writes_ok: usize,
    pub tear: Tear,
    pub writes_seen: usize,
    pub crashed: bool,
    /// Classes of the writes that went through, in order.
    pub log: Vec<IoClass>,
}

impl<I: MetaIo> Faulty<I> {
    pub fn new(inner: I, writes_ok: usize, tear: Tear) -> Faulty<I> {
        Faulty {
            inner,
            writes_ok,
            tear,
            writes_seen: 0,
            crashed: false,
            log: Vec::new(),
        }
    }
    /// Never fails: counts writes (to learn how many an operation does).
    pub fn counting(inner: I) -> Faulty<I> {
        Faulty::new(inner, usize::MAX, Tear::Nothing)
    }
}

impl<I: MetaIo> MetaIo for Faulty<I> {
    type Buf = I::Buf;
    fn sector_size(&self) -> usize {
        self.inner.sector_size()
    }
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }
    fn alloc(&self, len: usize) -> Result<I::Buf, IoFailure> {
        self.inner.alloc(len)
    }
    fn read(&mut self, offset: u64, len: usize, class: IoClass) -> Result<I::Buf, IoFailure> {
        self.inner.read(offset, len, class)
    }
    fn write(&mut self, offset: u64, buf: I::Buf, class: IoClass) -> Result<(), IoFailure> {
        if self.crashed {
            return Err(failure("host crashed".into()));
        }
        self.writes_seen += 1;
        if self.writes_seen <= self.writes_ok {
            self.log.push(class);
            return self.inner.write(offset, buf, class);
        }
        self.crashed = true;
        let (keep, garbage) = match self.tear {
            Tear::Nothing => return Err(failure("crashed before the write".into())),
            Tear::Prefix(n) => (n.min(buf.len()), false),
            Tear::PrefixThenGarbage(n) => (n.min(buf.len()), true),
        };
        // Read the old contents of the range, lay the landed prefix (and the
        // garbage) over it, write it back whole: aligned on any device.
        let mut landed = self.inner.read(offset, buf.len(), IoClass::Read)?;
        landed[..keep].copy_from_slice(&buf[..keep]);
        if garbage {
            for (i, b) in landed[keep..].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(31) ^ 0xa5;
            }
        }
        self.inner.write(offset, landed, class)?;
        Err(failure(format!(
            "torn write: {keep} of {} bytes landed",
            buf.len()
        )))
    }
}

pub mod loopdev;
pub mod scenarios;
