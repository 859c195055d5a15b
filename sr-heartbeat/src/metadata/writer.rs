//! The single writer of a metadata volume under one master epoch: appends
//! deltas and writes snapshots (the crash-safety rules are in `volume`).

use super::io::{IoClass, MetaIo};
use super::layout::{BLOCK, BLOCK_U64};
use super::record::{DeltaRecord, MAX_PAYLOAD_BYTES, RECORD_HEADER_BYTES, record_disk_bytes};
use super::snapshot::{encode_snapshot, snapshot_disk_bytes};
use super::superblock::Superblock;
use super::volume::{MetaError, io_err, newest, read_superblocks, write_superblock};

/// What an append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub sequence: u64,
    /// Bytes left in the delta area after this record.
    pub free_bytes: u64,
}

/// The single writer of a volume under one master epoch.
pub struct MetadataWriter<I: MetaIo> {
    pub(super) io: I,
    pub(super) superblock: Superblock,
    pub(super) epoch: u64,
    /// Offset in the active delta area where the next record goes.
    pub(super) cursor: u64,
    pub(super) last_seq: u64,
    pub(super) last_crc: u32,
    pub(super) state: WriterState,
}

/// Whether a writer may still write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WriterState {
    Ok,
    /// A superblock write failed with an unknown outcome.
    Poisoned,
    /// A newer epoch was found on disk.
    Superseded {
        on_disk: u64,
    },
}

impl<I: MetaIo> MetadataWriter<I> {
    fn usable(&self) -> Result<(), MetaError> {
        match self.state {
            WriterState::Ok => Ok(()),
            WriterState::Poisoned => Err(MetaError::Poisoned),
            WriterState::Superseded { on_disk } => Err(MetaError::StaleEpoch {
                mine: self.epoch,
                on_disk,
            }),
        }
    }

    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sequence of the last record written (or of the snapshot's base).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The superblock this writer last wrote or read.
    #[must_use]
    pub fn superblock(&self) -> &Superblock {
        &self.superblock
    }

    /// Bytes left in the active delta area.
    #[must_use]
    pub fn free_delta_bytes(&self) -> u64 {
        self.superblock.layout.delta_capacity() - self.cursor
    }

    /// Largest payload one record can carry on this volume.
    #[must_use]
    pub fn max_payload_bytes(&self) -> u64 {
        (self.superblock.layout.delta_capacity() - RECORD_HEADER_BYTES as u64)
            .min(MAX_PAYLOAD_BYTES as u64)
    }

    /// Appends one delta. `DeltaFull` when the active delta area cannot hold
    /// it (nothing written; write a snapshot, then append again). On an I/O
    /// failure nothing changes in the writer: a retry rewrites the same blocks.
    pub fn append_delta(&mut self, payload: &[u8]) -> Result<Appended, MetaError> {
        self.usable()?;
        let max = self.max_payload_bytes();
        if payload.len() as u64 > max {
            return Err(MetaError::PayloadTooLarge {
                len: payload.len(),
                max,
            });
        }
        let needed = record_disk_bytes(payload.len() as u64);
        let free = self.free_delta_bytes();
        if needed > free {
            return Err(MetaError::DeltaFull {
                needed_bytes: needed,
                free_bytes: free,
            });
        }
        let rec = DeltaRecord {
            volume_uuid: self.superblock.volume_uuid,
            snapshot_id: self.superblock.snapshot_id,
            epoch: self.epoch,
            sequence: self.last_seq + 1,
            prev_crc: self.last_crc,
            payload: payload.to_vec(),
        };
        let at = self
            .superblock
            .layout
            .delta_offset(self.superblock.active_half)
            + self.cursor;
        let class = IoClass::DeltaWrite;
        let mut buf = self.io.alloc(needed as usize).map_err(io_err(class, at))?;
        let crc = rec.encode(&mut buf);
        self.io.write(at, buf, class).map_err(io_err(class, at))?;
        self.cursor += needed;
        self.last_seq = rec.sequence;
        self.last_crc = crc;
        Ok(Appended {
            sequence: rec.sequence,
            free_bytes: self.free_delta_bytes(),
        })
    }

    /// Writes `data` as the new snapshot (it must include every delta up to
    /// [`MetadataWriter::last_seq`]): staged in the inactive half, then
    /// committed by the next superblock. Re-reads the superblocks first and
    /// refuses if a newer epoch or another writer has written since. A
    /// failure while staging changes nothing (the active half is untouched);
    /// a failure of the commit write poisons the writer.
    pub fn write_snapshot(&mut self, data: &[u8]) -> Result<(), MetaError> {
        self.usable()?;
        let layout = self.superblock.layout;
        if data.len() as u64 > layout.snapshot_capacity() {
            return Err(MetaError::SnapshotTooLarge {
                len: data.len(),
                capacity: layout.snapshot_capacity(),
            });
        }
        self.check_still_writer()?;
        let target = 1 - self.superblock.active_half;
        let id = self.superblock.generation + 1;
        let at = layout.snapshot_offset(target);
        let class = IoClass::SnapshotWrite;
        let disk = snapshot_disk_bytes(data.len() as u64) as usize;
        let mut buf = self.io.alloc(disk).map_err(io_err(class, at))?;
        let (_, header_crc) = encode_snapshot(
            self.superblock.volume_uuid,
            id,
            target,
            self.epoch,
            self.last_seq,
            data,
            &mut buf,
        );
        self.io.write(at, buf, class).map_err(io_err(class, at))?;
        let sb = Superblock {
            generation: id,
            active_half: target,
            snapshot_id: id,
            snapshot_base_seq: self.last_seq,
            ..self.superblock.clone()
        };
        if let Err(e) = write_superblock(&mut self.io, &sb) {
            self.state = WriterState::Poisoned;
            return Err(e);
        }
        self.superblock = sb;
        self.cursor = 0;
        self.last_crc = header_crc;
        Ok(())
    }

    /// Refuses when the on-disk superblock is no longer the one this writer
    /// wrote: a newer epoch (StaleEpoch) or another writer.
    fn check_still_writer(&mut self) -> Result<(), MetaError> {
        let (on_disk, _) = newest(&read_superblocks(&mut self.io)?)?;
        if on_disk.epoch > self.epoch {
            self.state = WriterState::Superseded {
                on_disk: on_disk.epoch,
            };
            return Err(MetaError::StaleEpoch {
                mine: self.epoch,
                on_disk: on_disk.epoch,
            });
        }
        if on_disk != self.superblock {
            self.state = WriterState::Poisoned;
            return Err(MetaError::ConcurrentWriter {
                expected: self.superblock.generation,
                found: on_disk.generation,
            });
        }
        Ok(())
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

const _: () = assert!(BLOCK_U64 == BLOCK as u64);
