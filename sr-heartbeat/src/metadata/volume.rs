//! Operations on a metadata volume: format, open, recover (read-only), and a
//! writer that appends deltas and writes snapshots under a master epoch.
//!
//! Crash safety, in one place:
//! - A delta append writes whole fresh blocks after the last accepted record;
//!   a torn append damages only itself and replay stops before it.
//! - A snapshot is staged in the inactive half, then committed by writing the
//!   next superblock generation into the other superblock slot. A crash before
//!   that write completes leaves the previous superblock (and state) in force.
//! - A failed delta write leaves the writer where it was: the caller may retry
//!   (the same position is rewritten; it held no committed record). A failed
//!   superblock write leaves the outcome unknown: the writer is poisoned and
//!   the caller must reopen (which recovers whichever superblock landed).

use uuid::Uuid;

use super::error::DecodeError;
use super::io::{IoClass, IoFailure, MetaIo};
use super::layout::{BLOCK, Layout, LayoutError, SUPERBLOCK_OFFSETS};
use super::replay::{Delta, DeltaSource, ReplayContext, ReplayStop, replay};
use super::snapshot::{SnapshotHeader, decode_snapshot, encode_snapshot, snapshot_disk_bytes};
use super::superblock::{Superblock, SuperblockPair};
use super::writer::WriterState;
pub use super::writer::{Appended, MetadataWriter};

/// Reads of the delta area during recovery are done in windows of this size
/// (a record larger than that is read whole).
const REPLAY_WINDOW_BYTES: usize = 1 << 20;

/// Why a metadata volume operation was refused or failed. Nothing is written
/// when an operation is refused.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The device's sector size does not divide the 4096-byte block.
    #[error("device sector size {sector_size} is not a divisor of {BLOCK} (512 or 4096 expected)")]
    UnsupportedSectorSize { sector_size: usize },
    /// The device is smaller than the layout.
    #[error("device has {size_bytes} bytes, the metadata volume needs {needed}")]
    DeviceTooSmall { size_bytes: u64, needed: u64 },
    /// The requested layout is invalid.
    #[error("invalid layout: {0}")]
    Layout(#[from] LayoutError),
    /// Neither superblock slot holds anything of this format.
    #[error("not a metadata volume: no superblock in either slot ({slot0}; {slot1})")]
    NotFormatted {
        slot0: DecodeError,
        slot1: DecodeError,
    },
    /// Both superblock slots hold something of ours, and neither is valid.
    #[error("no valid superblock: slot 0: {slot0}; slot 1: {slot1}")]
    NoValidSuperblock { slot0: String, slot1: String },
    /// The committed snapshot (named by the newest valid superblock) does
    /// not decode: media corruption, since a snapshot is only committed
    /// after it was written completely.
    #[error("committed snapshot in half {half} is unusable: {reason}")]
    SnapshotCorrupt { half: u8, reason: DecodeError },
    /// The committed half holds a valid snapshot that is not the one the
    /// superblock names.
    #[error(
        "snapshot in half {half} does not match the superblock: {field} is {found}, expected {expected}"
    )]
    SnapshotMismatch {
        half: u8,
        field: &'static str,
        found: String,
        expected: String,
    },
    /// A writer's epoch is older than the newest recorded on the volume: a
    /// newer master has taken over. Also returned by a writer that finds it
    /// was superseded when it re-reads the superblock before a snapshot.
    #[error("writer epoch {mine} is older than epoch {on_disk} recorded on the volume")]
    StaleEpoch { mine: u64, on_disk: u64 },
    /// The delta area of the active half cannot hold this record: write a
    /// snapshot, then append again.
    #[error(
        "delta area full: the record needs {needed_bytes} bytes, {free_bytes} left; write a snapshot"
    )]
    DeltaFull { needed_bytes: u64, free_bytes: u64 },
    /// The payload could not fit even an empty delta area.
    #[error("delta payload of {len} bytes exceeds the largest possible ({max})")]
    PayloadTooLarge { len: usize, max: u64 },
    /// The snapshot does not fit the snapshot region.
    #[error("snapshot of {len} bytes exceeds the capacity of {capacity}")]
    SnapshotTooLarge { len: usize, capacity: u64 },
    /// The superblock changed under this writer without a newer epoch: two
    /// writers with the same epoch, which the master lock must prevent.
    #[error("superblock generation {found} on disk, this writer wrote {expected}: another writer")]
    ConcurrentWriter { expected: u64, found: u64 },
    /// An earlier superblock write of this writer failed with an unknown
    /// outcome; reopen the volume to learn which state is committed.
    #[error("writer unusable after a failed superblock write; reopen the volume")]
    Poisoned,
    /// An I/O failed or missed its deadline.
    #[error("{class:?} I/O at offset {offset} failed: {source}")]
    Io {
        class: IoClass,
        offset: u64,
        #[source]
        source: IoFailure,
    },
}

impl MetaError {
    /// True when an I/O missed its deadline (the caller raises an alert and
    /// retries with backoff, as XenServer does).
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            MetaError::Io {
                source: IoFailure::Timeout { .. },
                ..
            }
        )
    }
}

/// The newest consistent state of the volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// The committed snapshot's bytes.
    pub snapshot: Vec<u8>,
    /// Sequence of the last delta folded into the snapshot.
    pub snapshot_base_seq: u64,
    /// Deltas after the snapshot, in sequence order; apply them in order.
    pub deltas: Vec<Delta>,
    /// Why replay stopped (see [`ReplayStop::is_clean`]).
    pub stop: ReplayStop,
    /// Sequence of the last delta (or the snapshot's base).
    pub last_seq: u64,
    /// The newest master epoch recorded on the volume: the superblock's, or
    /// a newer one carried by an accepted record (after a fallback from a
    /// corrupt newest superblock). A writer needs at least this epoch.
    pub epoch: u64,
    /// The superblock in force.
    pub superblock: Superblock,
    /// Why the other superblock slot was not used, when it is invalid (not
    /// merely older): a torn or corrupt superblock that was fallen back from
    /// or is stale.
    pub other_slot_error: Option<DecodeError>,
}

/// Internal: recovery plus what a writer needs to continue the log.
struct RecoveredLog {
    public: Recovered,
    end_offset: u64,
    last_crc: u32,
}

pub(super) fn io_err(class: IoClass, offset: u64) -> impl FnOnce(IoFailure) -> MetaError {
    move |source| MetaError::Io {
        class,
        offset,
        source,
    }
}

fn check_device<I: MetaIo>(io: &I, layout: &Layout) -> Result<(), MetaError> {
    let sector_size = io.sector_size();
    if sector_size == 0 || !BLOCK.is_multiple_of(sector_size) {
        return Err(MetaError::UnsupportedSectorSize { sector_size });
    }
    if io.size_bytes() < layout.volume_bytes {
        return Err(MetaError::DeviceTooSmall {
            size_bytes: io.size_bytes(),
            needed: layout.volume_bytes,
        });
    }
    Ok(())
}

/// Reads and decodes both superblock slots (for inspection tools).
pub fn read_superblock_pair<I: MetaIo>(io: &mut I) -> Result<SuperblockPair, MetaError> {
    read_superblocks(io)
}

pub(super) fn read_superblocks<I: MetaIo>(io: &mut I) -> Result<SuperblockPair, MetaError> {
    let buf = io
        .read(SUPERBLOCK_OFFSETS[0], 2 * BLOCK, IoClass::Read)
        .map_err(io_err(IoClass::Read, 0))?;
    // Length is exactly two blocks by construction; a wrong length from a
    // faulty implementation decodes as an error, not a panic.
    let pair = SuperblockPair::decode(&buf).map_err(|e| MetaError::NoValidSuperblock {
        slot0: e.to_string(),
        slot1: e.to_string(),
    })?;
    Ok(pair)
}

/// The newest valid superblock and the other slot's error, or why there is
/// none (`NotFormatted`, `NoValidSuperblock`).
pub fn newest_superblock(
    pair: &SuperblockPair,
) -> Result<(Superblock, Option<DecodeError>), MetaError> {
    newest(pair)
}

pub(super) fn newest(
    pair: &SuperblockPair,
) -> Result<(Superblock, Option<DecodeError>), MetaError> {
    if let Some(sb) = pair.newest() {
        let other = &pair.slots[1 - sb.slot()];
        let other_err = other.as_ref().err().cloned();
        return Ok((sb.clone(), other_err));
    }
    let describe = |r: &Result<Superblock, DecodeError>| match r {
        Ok(sb) => DecodeError::BadField {
            what: "superblock",
            field: "generation",
            reason: format!("generation {} does not belong in this slot", sb.generation),
        },
        Err(e) => e.clone(),
    };
    let (slot0, slot1) = (describe(&pair.slots[0]), describe(&pair.slots[1]));
    if pair.unformatted() {
        Err(MetaError::NotFormatted { slot0, slot1 })
    } else {
        Err(MetaError::NoValidSuperblock {
            slot0: slot0.to_string(),
            slot1: slot1.to_string(),
        })
    }
}

pub(super) fn write_superblock<I: MetaIo>(io: &mut I, sb: &Superblock) -> Result<(), MetaError> {
    let offset = SUPERBLOCK_OFFSETS[sb.slot()];
    let mut buf = io
        .alloc(BLOCK)
        .map_err(io_err(IoClass::SuperblockWrite, offset))?;
    sb.encode(&mut buf);
    io.write(offset, buf, IoClass::SuperblockWrite)
        .map_err(io_err(IoClass::SuperblockWrite, offset))
}

/// Reads the delta area of one half through windows of the device.
struct DeviceSource<'a, I: MetaIo> {
    io: &'a mut I,
    base: u64,
    area: u64,
    window_offset: u64,
    window: Option<I::Buf>,
}

impl<I: MetaIo> DeltaSource for DeviceSource<'_, I> {
    type Error = MetaError;
    fn area_bytes(&self) -> u64 {
        self.area
    }
    fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], MetaError> {
        let end = offset + len as u64;
        let covered = self.window.as_ref().is_some_and(|w| {
            offset >= self.window_offset && end <= self.window_offset + w.len() as u64
        });
        if !covered {
            // Both bounds are block multiples and within the area (the
            // DeltaSource contract), so the read is aligned and in range.
            let want = (len.max(REPLAY_WINDOW_BYTES) as u64).min(self.area - offset);
            let at = self.base + offset;
            let buf = self
                .io
                .read(at, want as usize, IoClass::Read)
                .map_err(io_err(IoClass::Read, at))?;
            self.window_offset = offset;
            self.window = Some(buf);
        }
        let w = self.window.as_deref().unwrap_or(&[]);
        let start = (offset - self.window_offset) as usize;
        Ok(w.get(start..start + len).unwrap_or(&[]))
    }
}

fn mismatch(
    half: u8,
    field: &'static str,
    found: impl ToString,
    expected: impl ToString,
) -> MetaError {
    MetaError::SnapshotMismatch {
        half,
        field,
        found: found.to_string(),
        expected: expected.to_string(),
    }
}

/// Reads and checks the committed snapshot, then replays its delta area.
fn recover_log<I: MetaIo>(
    io: &mut I,
    sb: Superblock,
    other_slot_error: Option<DecodeError>,
) -> Result<RecoveredLog, MetaError> {
    let layout = sb.layout;
    let half = sb.active_half;
    let at = layout.snapshot_offset(half);
    let head = io
        .read(at, BLOCK, IoClass::Read)
        .map_err(io_err(IoClass::Read, at))?;
    let (h, _) = SnapshotHeader::decode(&head)
        .map_err(|reason| MetaError::SnapshotCorrupt { half, reason })?;
    if h.data_len > layout.snapshot_capacity() {
        return Err(MetaError::SnapshotCorrupt {
            half,
            reason: DecodeError::BadField {
                what: "snapshot header",
                field: "data_len",
                reason: format!(
                    "{} exceeds the capacity {}",
                    h.data_len,
                    layout.snapshot_capacity()
                ),
            },
        });
    }
    let disk = snapshot_disk_bytes(h.data_len);
    let whole = io
        .read(at, disk as usize, IoClass::Read)
        .map_err(io_err(IoClass::Read, at))?;
    let (h, header_crc, data) = decode_snapshot(&whole, layout.snapshot_capacity())
        .map_err(|reason| MetaError::SnapshotCorrupt { half, reason })?;
    if h.volume_uuid != sb.volume_uuid {
        return Err(mismatch(half, "volume_uuid", h.volume_uuid, sb.volume_uuid));
    }
    if h.snapshot_id != sb.snapshot_id {
        return Err(mismatch(half, "snapshot_id", h.snapshot_id, sb.snapshot_id));
    }
    if h.half != half {
        return Err(mismatch(half, "half", h.half, half));
    }
    if h.base_seq != sb.snapshot_base_seq {
        return Err(mismatch(half, "base_seq", h.base_seq, sb.snapshot_base_seq));
    }
    let snapshot = data.to_vec();
    drop(whole);
    let ctx = ReplayContext {
        volume_uuid: sb.volume_uuid,
        snapshot_id: sb.snapshot_id,
        snapshot_header_crc: header_crc,
        snapshot_base_seq: h.base_seq,
        snapshot_epoch: h.epoch,
        volume_epoch: sb.epoch,
        epoch_start_seq: sb.epoch_start_seq,
    };
    let mut src = DeviceSource {
        io,
        base: layout.delta_offset(half),
        area: layout.delta_capacity(),
        window_offset: 0,
        window: None,
    };
    let r = replay(&ctx, &mut src)?;
    Ok(RecoveredLog {
        end_offset: r.end_offset,
        last_crc: r.last_crc,
        public: Recovered {
            snapshot,
            snapshot_base_seq: h.base_seq,
            deltas: r.deltas,
            stop: r.stop,
            last_seq: r.last_seq,
            epoch: sb.epoch.max(r.last_epoch),
            superblock: sb,
            other_slot_error,
        },
    })
}

/// Recovers the state committed by `sb` (read-only): the snapshot it names
/// and the deltas after it.
pub fn recover_with<I: MetaIo>(
    io: &mut I,
    sb: Superblock,
    other_slot_error: Option<DecodeError>,
) -> Result<Recovered, MetaError> {
    Ok(recover_log(io, sb, other_slot_error)?.public)
}

/// A formatted metadata volume, opened for reading.
pub struct MetadataVolume<I: MetaIo> {
    io: I,
    superblock: Superblock,
}

impl<I: MetaIo> MetadataVolume<I> {
    /// Formats the device with the standard 256 MiB layout: an empty
    /// snapshot, no deltas, epoch 0. Refuses a device smaller than 256 MiB or
    /// with an unsupported sector size, without writing.
    pub fn format(io: I) -> Result<MetadataVolume<I>, MetaError> {
        MetadataVolume::format_with_layout(io, Layout::standard())
    }

    /// Formats with an explicit layout (small volumes, tests, tools).
    ///
    /// Order: both superblock slots are zeroed first (so a crash mid-format
    /// leaves an unformatted volume, never the previous format's state), then
    /// the empty snapshot is written to half 0, then superblock generation 1.
    pub fn format_with_layout(mut io: I, layout: Layout) -> Result<MetadataVolume<I>, MetaError> {
        layout.validate()?;
        check_device(&io, &layout)?;
        let class = IoClass::FormatWrite;
        let zero = io.alloc(2 * BLOCK).map_err(io_err(class, 0))?;
        io.write(SUPERBLOCK_OFFSETS[0], zero, class)
            .map_err(io_err(class, 0))?;
        let volume_uuid = Uuid::new_v4();
        let at = layout.snapshot_offset(0);
        let mut snap = io.alloc(BLOCK).map_err(io_err(class, at))?;
        encode_snapshot(volume_uuid, 1, 0, 0, 0, &[], &mut snap);
        io.write(at, snap, class).map_err(io_err(class, at))?;
        let superblock = Superblock {
            volume_uuid,
            generation: 1,
            active_half: 0,
            epoch: 0,
            epoch_start_seq: 1,
            snapshot_id: 1,
            snapshot_base_seq: 0,
            layout,
        };
        write_superblock(&mut io, &superblock)?;
        Ok(MetadataVolume { io, superblock })
    }

    /// Opens a formatted volume: reads both superblocks and checks the
    /// newest valid one's layout against the device.
    pub fn open(mut io: I) -> Result<MetadataVolume<I>, MetaError> {
        let sector_size = io.sector_size();
        if sector_size == 0 || !BLOCK.is_multiple_of(sector_size) {
            return Err(MetaError::UnsupportedSectorSize { sector_size });
        }
        let (superblock, _) = newest(&read_superblocks(&mut io)?)?;
        check_device(&io, &superblock.layout)?;
        Ok(MetadataVolume { io, superblock })
    }

    /// The superblock read at open (or by the last recovery).
    #[must_use]
    pub fn superblock(&self) -> &Superblock {
        &self.superblock
    }

    /// Reads the newest consistent state: the committed snapshot and the
    /// deltas after it. Writes nothing. Re-reads the superblocks, so it
    /// sees what other writers committed since open.
    pub fn recover(&mut self) -> Result<Recovered, MetaError> {
        Ok(self.recover_log()?.public)
    }

    fn recover_log(&mut self) -> Result<RecoveredLog, MetaError> {
        let (sb, other) = newest(&read_superblocks(&mut self.io)?)?;
        check_device(&self.io, &sb.layout)?;
        self.superblock = sb.clone();
        recover_log(&mut self.io, sb, other)
    }

    /// Becomes the writer for master epoch `epoch`: recovers, refuses an
    /// epoch older than the volume's, and records a newer one durably (a
    /// superblock write) before returning, so older writers are refused from
    /// then on. Records after the recovered state that carry an older epoch
    /// are stale from now on (the superblock's `epoch_start_seq`).
    pub fn into_writer(mut self, epoch: u64) -> Result<(MetadataWriter<I>, Recovered), MetaError> {
        let log = self.recover_log()?;
        let mut sb = log.public.superblock.clone();
        if epoch < log.public.epoch {
            return Err(MetaError::StaleEpoch {
                mine: epoch,
                on_disk: log.public.epoch,
            });
        }
        if epoch > sb.epoch {
            sb = Superblock {
                generation: sb.generation + 1,
                epoch,
                epoch_start_seq: log.public.last_seq + 1,
                ..sb
            };
            write_superblock(&mut self.io, &sb)?;
        }
        let writer = MetadataWriter {
            io: self.io,
            superblock: sb.clone(),
            epoch,
            cursor: log.end_offset,
            last_seq: log.public.last_seq,
            last_crc: log.last_crc,
            state: WriterState::Ok,
        };
        let mut public = log.public;
        public.superblock = sb;
        public.epoch = epoch;
        Ok((writer, public))
    }

    /// The device (for inspection and fault injection in tests; writing
    /// through it bypasses the format).
    pub fn io_mut(&mut self) -> &mut I {
        &mut self.io
    }

    /// Gives the device back.
    pub fn into_inner(self) -> I {
        self.io
    }
}
