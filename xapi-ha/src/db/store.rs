//! The durable database: the in-memory [`Database`] plus the
//! `sr_heartbeat::metadata` redo log it is kept in (a snapshot and the
//! deltas after it), on a plain file while HA is off or on the shared
//! metadata volume while it is on: one mechanism for both.
//!
//! - [`Store::commit`] applies a batch in memory (refused batches change
//!   nothing), appends it as one delta record and returns only when the
//!   record is durable (the device is opened `O_DIRECT | O_DSYNC`). If the
//!   write fails the batch is rolled back, so memory never runs ahead of
//!   the disk.
//! - When the delta area is full, the whole database (including the batch)
//!   is written as a new snapshot instead, which the metadata volume
//!   commits with one superblock write: the batch is durable exactly when
//!   that write is.
//! - [`Store::open`] replays the committed snapshot and every complete
//!   delta after it; a torn or partial last record is ignored (its batch
//!   was never acknowledged), so the result is exactly the acknowledged
//!   batches.
//! - [`Store::install`] replaces the whole database with a copy pushed by
//!   the master (a member), written as a snapshot.

use std::fs::OpenOptions;
use std::path::Path;

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::metadata::{Layout, MetaError, MetaIo, MetadataVolume, MetadataWriter};

use super::change::{Change, ChangeError};
use super::database::Database;
use super::encode::{
    DecodeError, ReplayError, decode_delta, decode_snapshot, encode_delta, encode_snapshot,
};

/// Why the store could not open or commit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The batch was refused (nothing changed).
    #[error("change refused: {0}")]
    Refused(#[from] ChangeError),
    /// The redo log could not be read or written. After a failed commit the
    /// batch is rolled back; after a failed snapshot commit the writer is
    /// unusable and the store must be reopened.
    #[error("redo log: {0}")]
    Log(#[from] MetaError),
    /// The committed snapshot does not decode.
    #[error("redo log snapshot: {0}")]
    Snapshot(#[source] DecodeError),
    /// A committed delta does not decode or apply: the log is corrupt.
    #[error("redo log delta {sequence}: {reason}")]
    Delta { sequence: u64, reason: String },
    /// The file could not be created or opened.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

/// What [`Store::open`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Deltas replayed on top of the snapshot.
    pub deltas_replayed: usize,
    /// Why replay stopped, when it was not the clean end of the log (a torn
    /// last record after a crash).
    pub stopped_at: Option<String>,
}

/// The database and its redo log, under one writer.
pub struct Store<I: MetaIo> {
    db: Database,
    writer: MetadataWriter<I>,
    snapshots_written: u64,
}

impl<I: MetaIo> Store<I> {
    /// Recovers the database from a formatted volume and becomes its writer
    /// under `epoch` (0 for a local file; the master epoch with HA).
    pub fn open(
        volume: MetadataVolume<I>,
        epoch: u64,
    ) -> Result<(Store<I>, OpenReport), StoreError> {
        let (writer, recovered) = volume.into_writer(epoch)?;
        let mut db = if recovered.snapshot.is_empty() {
            Database::new()
        } else {
            decode_snapshot(&recovered.snapshot).map_err(StoreError::Snapshot)?
        };
        for d in &recovered.deltas {
            let fail = |reason: String| StoreError::Delta {
                sequence: d.sequence,
                reason,
            };
            let delta = decode_delta(&d.payload).map_err(|e| fail(e.to_string()))?;
            db.replay(&delta)
                .map_err(|e: ReplayError| fail(e.to_string()))?;
        }
        let report = OpenReport {
            deltas_replayed: recovered.deltas.len(),
            stopped_at: (!recovered.stop.is_clean()).then(|| format!("{:?}", recovered.stop)),
        };
        Ok((
            Store {
                db,
                writer,
                snapshots_written: 0,
            },
            report,
        ))
    }

    /// The database as committed.
    #[must_use]
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Snapshots written since open (compactions and installs).
    #[must_use]
    pub fn snapshots_written(&self) -> u64 {
        self.snapshots_written
    }

    /// Bytes left in the delta area before the next compaction.
    #[must_use]
    pub fn free_log_bytes(&self) -> u64 {
        self.writer.free_delta_bytes()
    }

    /// Commits a batch durably and returns the database generation after
    /// it. An empty batch changes nothing and writes nothing.
    pub fn commit(&mut self, changes: &[Change]) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(self.db.generation());
        }
        let applied = self.db.apply(changes)?;
        let payload = encode_delta(applied.generation_before() + 1, changes);
        let written = match self.writer.append_delta(&payload) {
            Err(MetaError::DeltaFull { .. }) => self.write_snapshot(),
            other => other.map(|_| ()),
        };
        match written {
            Ok(()) => Ok(self.db.generation()),
            Err(e) => {
                self.db.rollback(applied);
                Err(StoreError::Log(e))
            }
        }
    }

    /// Writes the database as the new snapshot (the log starts empty after it).
    pub fn compact(&mut self) -> Result<(), StoreError> {
        self.write_snapshot().map_err(StoreError::Log)
    }

    fn write_snapshot(&mut self) -> Result<(), MetaError> {
        self.writer.write_snapshot(&encode_snapshot(&self.db))?;
        self.snapshots_written += 1;
        Ok(())
    }

    /// Replaces the database with `db` (a member installing the master's
    /// copy), durably, as a snapshot.
    pub fn install(&mut self, db: Database) -> Result<(), StoreError> {
        self.writer.write_snapshot(&encode_snapshot(&db))?;
        self.snapshots_written += 1;
        self.db = db;
        Ok(())
    }
}

impl Store<BlockDevice> {
    /// Opens the store kept in the file at `path`, creating and formatting
    /// it with `layout` first when there is no file yet. A new file is
    /// formatted under a temporary name and renamed into place, so a crash
    /// while creating it leaves no half-formatted store.
    pub fn open_file(
        path: &Path,
        layout: Layout,
        epoch: u64,
    ) -> Result<(Store<BlockDevice>, OpenReport), StoreError> {
        let file_err = |reason: String| StoreError::File {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(".new");
            let tmp = Path::new(&tmp);
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(tmp)
                .map_err(|e| file_err(format!("create {}: {e}", tmp.display())))?;
            f.set_len(layout.volume_bytes)
                .map_err(|e| file_err(format!("size {}: {e}", tmp.display())))?;
            f.sync_all().map_err(|e| file_err(e.to_string()))?;
            drop(f);
            let dev =
                BlockDevice::open(tmp, OpenMode::ReadWrite).map_err(|e| file_err(e.to_string()))?;
            MetadataVolume::format_with_layout(dev, layout)?;
            std::fs::rename(tmp, path).map_err(|e| file_err(format!("rename: {e}")))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| file_err(format!("sync directory: {e}")))?;
            }
        }
        let dev =
            BlockDevice::open(path, OpenMode::ReadWrite).map_err(|e| file_err(e.to_string()))?;
        Store::open(MetadataVolume::open(dev)?, epoch)
    }

    /// blocksr: opens the store kept in `region` of the device at `path`
    /// (the metadata volume of a block SR, formatted when it was
    /// allocated; never formatted here).
    pub fn open_region(
        path: &Path,
        region: sr_heartbeat::io::Region,
        epoch: u64,
    ) -> Result<(Store<BlockDevice>, OpenReport), StoreError> {
        let dev = BlockDevice::open_region(path, OpenMode::ReadWrite, region).map_err(|e| {
            StoreError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Store::open(MetadataVolume::open(dev)?, epoch)
    }
}
