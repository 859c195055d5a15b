//! Statefile operations on a device: format, open, write my slot, read all
//! slots in one I/O, read and compare-and-set the pool block.
//!
//! `Statefile<D>` works over any [`BlockIo`]: a [`BlockDevice`] directly
//! (tools, tests: blocking, no deadline) or a [`DeadlineIo`] (the daemon: each
//! request on the device's I/O thread, `Timeout` past the deadline). The layout
//! and encoding live in one place for both.
//!
//! [`DeadlineIo`]: crate::io::DeadlineIo

use uuid::Uuid;

use super::header::{HEADER_SIZE, Header, HeaderError, POOL_OFFSET, STATEFILE_SIZE};
use super::hostset::MAX_HOSTS_LIMIT;
use super::pool::{POOL_BLOCK_SIZE, PoolBlock, PoolState};
use super::slot::{SLOT_SIZE, STATUS_TEXT_MAX, Slot, SlotError};
use crate::io::{AlignedBuf, BlockDevice, BlockIo, DeadlineIo, IoError};

/// A statefile reached through its I/O thread with a deadline per request.
pub type StatefileIo = Statefile<DeadlineIo>;

/// Why a statefile operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StatefileError {
    /// The device failed, timed out, was busy, or is too small.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Block 0 is not a valid statefile header.
    #[error("{path}: {source}")]
    Header {
        path: String,
        #[source]
        source: HeaderError,
    },
    /// The header was written through a device with another sector size (for
    /// example formatted through a loop device, opened through its backing
    /// file): hosts must all reach the statefile the same way.
    #[error(
        "{path}: statefile was formatted with {header}-byte sectors, device has {device}-byte sectors"
    )]
    SectorSizeMismatch {
        path: String,
        header: u32,
        device: usize,
    },
    /// `format` was asked for 0 or more than 64 hosts.
    #[error("max hosts {requested} out of range (1 to {MAX_HOSTS_LIMIT})")]
    MaxHostsOutOfRange { requested: usize },
    /// A slot's host index is beyond this statefile's `max_hosts`.
    #[error("host index {index} out of range: this statefile has {max_hosts} slots")]
    HostIndexOutOfRange { index: u16, max_hosts: u16 },
    /// A slot's status text is longer than the slot can hold.
    #[error("status text is {len} bytes, at most {STATUS_TEXT_MAX} fit in a slot")]
    StatusTooLong { len: usize },
    /// A pool block naming the nil UUID as master (use `None` for no master).
    #[error("the nil UUID cannot be a master (use no master instead)")]
    NilMaster,
    /// The pool block on disk did not decode.
    #[error("pool block: {0}")]
    Pool(SlotError),
    /// Compare-and-set lost: the pool block changed since it was read.
    #[error("pool block changed: expected update_seq {expected}, found {found}")]
    PoolChanged { expected: u64, found: u64 },
}

/// The result of reading the pool block and every slot in one I/O.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefileRead {
    pub pool: Result<PoolBlock, SlotError>,
    /// One entry per slot index `0..max_hosts`; a corrupt slot affects only
    /// its own entry.
    pub slots: Vec<Result<Slot, SlotError>>,
}

impl StatefileRead {
    /// Decode a buffer covering the pool block and `max_hosts` slots. Never
    /// panics: a block the buffer does not fully cover decodes as
    /// `BadLength` (the read path always passes the exact length).
    pub fn decode(buf: &[u8], generation: Uuid, max_hosts: u16) -> StatefileRead {
        let block = |i: usize| {
            let start = i * SLOT_SIZE;
            buf.get(start..start + SLOT_SIZE)
                .ok_or(SlotError::BadLength {
                    len: buf.len().saturating_sub(start),
                })
        };
        let pool = block(0).and_then(|b| PoolBlock::decode(b, generation));
        let slots = (0..max_hosts)
            .map(|index| {
                block(1 + usize::from(index)).and_then(|b| Slot::decode(b, generation, index))
            })
            .collect();
        StatefileRead { pool, slots }
    }
}

/// An open, validated statefile.
pub struct Statefile<D: BlockIo = BlockDevice> {
    dev: D,
    header: Header,
}

fn unix_ms_now() -> u64 {
    // Diagnosis only (shown by `dump`); a clock before 1970 shows as 0.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn sector_size_u32(dev: &impl BlockIo) -> u32 {
    // BlockDevice guarantees 512..=4096.
    u32::try_from(dev.sector_size()).unwrap_or(u32::MAX)
}

impl<D: BlockIo> Statefile<D> {
    /// Format `dev` as the statefile of pool generation `generation` with
    /// `max_hosts` slots: header, pool block (`Init`, no master, epoch 0,
    /// update_seq 0), every slot zero (= never written).
    ///
    /// Order of writes: the header block is zeroed first, then the pool block
    /// and slots are written, then the new header. A crash part-way leaves a
    /// device that reads as "not formatted", never as a mix of two pools.
    pub fn format(dev: D, generation: Uuid, max_hosts: usize) -> Result<Self, StatefileError> {
        if max_hosts == 0 || max_hosts > MAX_HOSTS_LIMIT {
            return Err(StatefileError::MaxHostsOutOfRange {
                requested: max_hosts,
            });
        }
        require_size(&dev)?;
        let header = Header {
            generation,
            sector_size: sector_size_u32(&dev),
            // <= 64, checked above.
            max_hosts: max_hosts as u16,
            format_time_ms: unix_ms_now(),
        };
        dev.write(0, AlignedBuf::new(HEADER_SIZE)?)?;
        let body_len = usize::try_from(STATEFILE_SIZE - POOL_OFFSET).unwrap_or(usize::MAX);
        let mut body = AlignedBuf::new(body_len)?;
        let pool = PoolBlock {
            state: PoolState::Init,
            master: None,
            master_epoch: 0,
            update_seq: 0,
        };
        pool.encode(generation, &mut body[..POOL_BLOCK_SIZE]);
        dev.write(POOL_OFFSET, body)?;
        let mut head = AlignedBuf::new(HEADER_SIZE)?;
        header.encode(&mut head);
        dev.write(0, head)?;
        Ok(Statefile { dev, header })
    }

    /// Open a formatted statefile: read and validate the header (magic,
    /// checksum, version, layout) and check that the device has the sector
    /// size the statefile was formatted with.
    pub fn open(dev: D) -> Result<Self, StatefileError> {
        require_size(&dev)?;
        let buf = dev.read(0, HEADER_SIZE)?;
        let header = Header::decode(&buf).map_err(|source| StatefileError::Header {
            path: dev.path().display().to_string(),
            source,
        })?;
        if header.sector_size as usize != dev.sector_size() {
            return Err(StatefileError::SectorSizeMismatch {
                path: dev.path().display().to_string(),
                header: header.sector_size,
                device: dev.sector_size(),
            });
        }
        Ok(Statefile { dev, header })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn generation(&self) -> Uuid {
        self.header.generation
    }

    pub fn max_hosts(&self) -> u16 {
        self.header.max_hosts
    }

    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Give the device back (e.g. to reopen it another way).
    pub fn into_device(self) -> D {
        self.dev
    }

    /// Write `slot` into its own block: one aligned 4 KiB I/O, durable on
    /// return. The slot is checked first, so a bad slot writes nothing.
    pub fn write_slot(&self, slot: &Slot) -> Result<(), StatefileError> {
        if slot.host_index >= self.header.max_hosts {
            return Err(StatefileError::HostIndexOutOfRange {
                index: slot.host_index,
                max_hosts: self.header.max_hosts,
            });
        }
        if slot.status.len() > STATUS_TEXT_MAX {
            return Err(StatefileError::StatusTooLong {
                len: slot.status.len(),
            });
        }
        let mut buf = AlignedBuf::new(SLOT_SIZE)?;
        slot.encode(self.header.generation, &mut buf);
        self.dev
            .write(self.header.slot_offset(slot.host_index), buf)?;
        Ok(())
    }

    /// Read the pool block and every slot with ONE I/O, so the caller sees
    /// all hosts at the same instant. Each block is decoded on its own.
    pub fn read_all(&self) -> Result<StatefileRead, StatefileError> {
        let (offset, len) = self.header.read_all_range();
        let buf = self.dev.read(offset, len)?;
        Ok(StatefileRead::decode(
            &buf,
            self.header.generation,
            self.header.max_hosts,
        ))
    }

    /// Read one slot (tools; the heartbeat loop uses [`Statefile::read_all`]).
    pub fn read_slot(&self, index: u16) -> Result<Result<Slot, SlotError>, StatefileError> {
        if index >= self.header.max_hosts {
            return Err(StatefileError::HostIndexOutOfRange {
                index,
                max_hosts: self.header.max_hosts,
            });
        }
        let buf = self.dev.read(self.header.slot_offset(index), SLOT_SIZE)?;
        Ok(Slot::decode(&buf, self.header.generation, index))
    }

    /// Read and decode the pool block.
    pub fn read_pool(&self) -> Result<PoolBlock, StatefileError> {
        let buf = self.dev.read(POOL_OFFSET, POOL_BLOCK_SIZE)?;
        PoolBlock::decode(&buf, self.header.generation).map_err(StatefileError::Pool)
    }

    /// Write `block` as the pool block, as is (its `update_seq` included):
    /// one aligned I/O, durable on return. The caller holds the master lock
    /// (the daemon writes the block its core built).
    pub fn write_pool(&self, block: &PoolBlock) -> Result<(), StatefileError> {
        if block.master.is_some_and(|m| m.is_nil()) {
            return Err(StatefileError::NilMaster);
        }
        let mut buf = AlignedBuf::new(POOL_BLOCK_SIZE)?;
        block.encode(self.header.generation, &mut buf);
        self.dev.write(POOL_OFFSET, buf)?;
        Ok(())
    }

    /// Replace the pool block if its `update_seq` is still
    /// `expected_update_seq`; the block written (and returned) carries
    /// `update_seq = expected_update_seq + 1`, whatever `new.update_seq` said.
    ///
    /// This is a read, a compare and a write: NOT an atomic operation across
    /// hosts. It protects one writer against acting on a stale read of its
    /// own; that only one host writes the pool block at a time is guaranteed
    /// by the master lock (held through the slots), not by this call.
    pub fn compare_and_set_pool(
        &self,
        expected_update_seq: u64,
        new: PoolBlock,
    ) -> Result<PoolBlock, StatefileError> {
        if new.master.is_some_and(|m| m.is_nil()) {
            return Err(StatefileError::NilMaster);
        }
        let current = self.read_pool()?;
        if current.update_seq != expected_update_seq {
            return Err(StatefileError::PoolChanged {
                expected: expected_update_seq,
                found: current.update_seq,
            });
        }
        let written = PoolBlock {
            update_seq: expected_update_seq.wrapping_add(1),
            ..new
        };
        let mut buf = AlignedBuf::new(POOL_BLOCK_SIZE)?;
        written.encode(self.header.generation, &mut buf);
        self.dev.write(POOL_OFFSET, buf)?;
        Ok(written)
    }
}

fn require_size(dev: &impl BlockIo) -> Result<(), IoError> {
    if dev.size_bytes() < STATEFILE_SIZE {
        return Err(IoError::TooSmall {
            path: dev.path().to_owned(),
            need: STATEFILE_SIZE,
            have: dev.size_bytes(),
        });
    }
    Ok(())
}
