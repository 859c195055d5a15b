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
    /// The header now names another pool generation: the statefile was
    /// reformatted for another HA enablement since it was opened. Nothing
    /// was written.
    #[error(
        "{path}: this statefile is not ours: it now belongs to pool generation {found}, we opened it as {expected} (reformatted?)"
    )]
    Foreign {
        path: String,
        found: Uuid,
        expected: Uuid,
    },
    /// The header still names our generation but differs from the one read
    /// at open (another format time, slot count or sector size): the
    /// statefile was formatted again. Nothing was written.
    #[error(
        "{path}: this statefile is not ours: its header changed since it was opened (formatted again at unix ms {found_format_ms}, opened as formatted at {expected_format_ms})"
    )]
    Reformatted {
        path: String,
        found_format_ms: u64,
        expected_format_ms: u64,
    },
}

impl StatefileError {
    /// Whether this error says the statefile no longer belongs to the pool
    /// that opened it: its header does not decode any more (`Header`), names
    /// another generation (`Foreign`) or was rewritten (`Reformatted`).
    #[must_use]
    pub fn is_not_ours(&self) -> bool {
        matches!(
            self,
            StatefileError::Header { .. }
                | StatefileError::Foreign { .. }
                | StatefileError::Reformatted { .. }
        )
    }
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

    /// Read the header, the pool block and every slot with ONE I/O, so the
    /// caller sees all hosts at the same instant and re-validates the header
    /// on every read. A header that no longer decodes or differs from the one
    /// read at open is an error ([`StatefileError::is_not_ours`]): the
    /// statefile was reformatted under us and nothing in it is ours. Each
    /// other block is decoded on its own.
    pub fn read_all(&self) -> Result<StatefileRead, StatefileError> {
        let (_, len) = self.header.read_all_range();
        let buf = self.dev.read(0, HEADER_SIZE + len)?;
        self.check_header(&buf[..HEADER_SIZE])?;
        Ok(StatefileRead::decode(
            &buf[HEADER_SIZE..],
            self.header.generation,
            self.header.max_hosts,
        ))
    }

    /// Check a header block just read against the one read at open.
    fn check_header(&self, block: &[u8]) -> Result<(), StatefileError> {
        let path = || self.dev.path().display().to_string();
        let now = Header::decode(block).map_err(|source| StatefileError::Header {
            path: path(),
            source,
        })?;
        if now.generation != self.header.generation {
            return Err(StatefileError::Foreign {
                path: path(),
                found: now.generation,
                expected: self.header.generation,
            });
        }
        if now != self.header {
            return Err(StatefileError::Reformatted {
                path: path(),
                found_format_ms: now.format_time_ms,
                expected_format_ms: self.header.format_time_ms,
            });
        }
        Ok(())
    }

    /// Read the header and the pool block in one I/O; the header must still
    /// be ours.
    fn read_checked_pool(&self) -> Result<Result<PoolBlock, SlotError>, StatefileError> {
        let buf = self.dev.read(0, HEADER_SIZE + POOL_BLOCK_SIZE)?;
        self.check_header(&buf[..HEADER_SIZE])?;
        Ok(PoolBlock::decode(
            &buf[HEADER_SIZE..],
            self.header.generation,
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

    /// Read and decode the pool block (with the header, which must still be
    /// ours).
    pub fn read_pool(&self) -> Result<PoolBlock, StatefileError> {
        self.read_checked_pool()?.map_err(StatefileError::Pool)
    }

    /// Write `block` as the pool block (its `update_seq` included) by
    /// compare-and-set against this statefile's generation: one I/O reads
    /// the header (and the pool block) and checks that the header is still
    /// the one read at open, then one aligned write, durable on return. A
    /// header of another generation, one that was rewritten or one that no
    /// longer decodes refuses the write ([`StatefileError::is_not_ours`]) and
    /// nothing is written. The pool block itself may be damaged (a torn
    /// write): the header, not the block, says whose statefile this is, and
    /// this write repairs it. The caller holds the master lock (the daemon
    /// writes the block its core built).
    ///
    /// What the check does not do: a check and a write are two I/Os, not one
    /// atomic compare-and-write, so a format that lands between them is
    /// still overwritten (a window of one read's latency). The damage is then
    /// bounded: the block written carries the old generation, so readers of
    /// the new statefile reject it (`WrongGeneration`) and never take it for
    /// theirs.
    pub fn write_pool(&self, block: &PoolBlock) -> Result<(), StatefileError> {
        if block.master.is_some_and(|m| m.is_nil()) {
            return Err(StatefileError::NilMaster);
        }
        let mut buf = AlignedBuf::new(POOL_BLOCK_SIZE)?;
        block.encode(self.header.generation, &mut buf);
        // The block on disk may be damaged: only the header says whose
        // statefile this is.
        let _current = self.read_checked_pool()?;
        self.dev.write(POOL_OFFSET, buf)?;
        Ok(())
    }

    /// Replace the pool block if the header is still ours (as
    /// [`Statefile::write_pool`]) and the block's `update_seq` is still
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

#[cfg(test)]
mod tests {
    //! The compare-and-set pool write and the header re-validation of
    //! `read_all`, on a regular file reformatted under an open statefile.
    use super::*;
    use crate::io::OpenMode;

    const OURS: Uuid = Uuid::from_u128(0x0001);
    const THEIRS: Uuid = Uuid::from_u128(0x0002);

    fn image(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let path = dir.path().join("statefile");
        let f = std::fs::File::create(&path).expect("create");
        f.set_len(STATEFILE_SIZE).expect("set_len");
        path
    }

    fn open(path: &std::path::Path) -> Statefile {
        Statefile::open(BlockDevice::open(path, OpenMode::ReadWrite).expect("dev")).expect("open")
    }

    fn format(path: &std::path::Path, generation: Uuid) -> Statefile {
        let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("dev");
        Statefile::format(dev, generation, 4).expect("format")
    }

    fn active(epoch: u64) -> PoolBlock {
        PoolBlock {
            state: PoolState::Active,
            master: Some(Uuid::from_u128(0xabc)),
            master_epoch: epoch,
            update_seq: epoch,
        }
    }

    fn raw(path: &std::path::Path) -> Vec<u8> {
        std::fs::read(path).expect("read image")
    }

    #[test]
    fn pool_write_on_our_statefile_lands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = image(&dir);
        let sf = format(&path, OURS);
        sf.write_pool(&active(1)).expect("write_pool");
        assert_eq!(sf.read_pool().expect("read_pool"), active(1));
        assert_eq!(sf.read_all().expect("read_all").pool, Ok(active(1)));
    }

    #[test]
    fn pool_write_refused_on_a_foreign_generation_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = image(&dir);
        let old = format(&path, OURS);
        old.write_pool(&active(1)).expect("first write lands");
        // Reformatted for another enablement under the open statefile.
        drop(format(&path, THEIRS));
        let before = raw(&path);
        let e = old.write_pool(&active(2)).expect_err("foreign: refused");
        assert!(
            matches!(&e, StatefileError::Foreign { found, expected, .. }
                if *found == THEIRS && *expected == OURS),
            "{e:?}"
        );
        assert!(e.is_not_ours());
        assert!(e.to_string().contains("not ours"), "{e}");
        let e = old
            .compare_and_set_pool(1, active(2))
            .expect_err("cas refused");
        assert!(e.is_not_ours(), "{e:?}");
        assert_eq!(raw(&path), before, "nothing written");
        // The new pool's block is intact and theirs.
        let theirs = open(&path).read_pool().expect("their pool block");
        assert_eq!(theirs.state, PoolState::Init);
        assert_eq!(theirs.update_seq, 0);
    }

    #[test]
    fn read_all_refuses_a_statefile_that_is_not_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = image(&dir);
        let old = format(&path, OURS);
        assert!(old.read_all().is_ok());
        drop(format(&path, THEIRS));
        let e = old.read_all().expect_err("foreign");
        assert!(matches!(e, StatefileError::Foreign { .. }), "{e:?}");

        // The same generation formatted again: the header changed.
        let path2 = dir.path().join("again");
        std::fs::File::create(&path2)
            .and_then(|f| f.set_len(STATEFILE_SIZE))
            .expect("image");
        let first = format(&path2, OURS);
        let mut again = format(&path2, OURS);
        again.header.format_time_ms = first.header.format_time_ms.wrapping_add(1);
        let mut head = AlignedBuf::new(HEADER_SIZE).expect("buf");
        again.header.encode(&mut head);
        again.dev.write(0, head).expect("rewrite header");
        let before = raw(&path2);
        let e = first.read_all().expect_err("reformatted");
        assert!(matches!(e, StatefileError::Reformatted { .. }), "{e:?}");
        let e = first.write_pool(&active(1)).expect_err("refused");
        assert!(e.is_not_ours(), "{e:?}");
        assert_eq!(raw(&path2), before, "nothing written");

        // A header that no longer decodes.
        let zero = AlignedBuf::new(HEADER_SIZE).expect("buf");
        again.dev.write(0, zero).expect("zero header");
        let before = raw(&path2);
        let e = first.write_pool(&active(1)).expect_err("refused");
        assert!(
            matches!(
                &e,
                StatefileError::Header {
                    source: HeaderError::NotFormatted,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(first.read_all().expect_err("not ours").is_not_ours());
        assert_eq!(raw(&path2), before, "nothing written");
    }
}
