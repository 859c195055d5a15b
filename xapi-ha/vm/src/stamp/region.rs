//! Where a VM's stamps live on its disk, and the O_DIRECT reads and writes.
//!
//! Slot `n` owns blocks `n * REGION_BLOCKS ..`: the first holds the latest
//! record, the next `RING_RECORDS` a ring. Record `seq` of a boot goes to ring
//! block `(ring_start(boot) + seq) % RING_RECORDS`: each boot starts at a
//! place of its own (from its boot id), so a later boot, or one running at
//! the same time, does not overwrite an earlier boot's records with its own
//! record of the same sequence number. The ring is written before the latest
//! block, so the latest record is always in the ring too. O_DIRECT, so a write is on the
//! (shared) storage when it returns and a read sees the storage, not a cache.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use memmap2::MmapMut;
use nix::sys::uio::{pread, pwrite};

use super::record::{BLOCK_BYTES, DecodeError, StampRecord, decode};

/// Records in a slot's ring: 1024 x 200 ms = 204.8 s of history.
pub const RING_RECORDS: u64 = 1024;
/// Blocks of one slot's region: the latest block plus the ring.
pub const REGION_BLOCKS: u64 = 1 + RING_RECORDS;
/// Bytes a disk needs for slot `n` (`(n + 1) * REGION_BYTES`).
pub const REGION_BYTES: u64 = REGION_BLOCKS * BLOCK_BYTES as u64;

/// Byte offset of slot `slot`'s latest block.
pub fn latest_offset(slot: u64) -> u64 {
    slot * REGION_BYTES
}

/// Where a boot's records start in the ring: its boot id's first 32 bits
/// (the first 8 hex digits) modulo the ring size.
pub fn ring_start(boot: &uuid::Uuid) -> u64 {
    let b = boot.as_bytes();
    u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])) % RING_RECORDS
}

/// Byte offset of the ring block that record `seq` of `boot` in slot `slot` goes to.
pub fn ring_offset(slot: u64, boot: &uuid::Uuid, seq: u64) -> u64 {
    latest_offset(slot) + (1 + (ring_start(boot) + seq) % RING_RECORDS) * BLOCK_BYTES as u64
}

/// I/O failures of stamp reads and writes.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("stamp disk {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("stamp disk {path}: {bytes} bytes, too small for slot {slot} ({need} bytes needed)")]
    TooSmall {
        path: String,
        bytes: u64,
        slot: u64,
        need: u64,
    },
    #[error("stamp: {0}")]
    Encode(#[from] super::record::EncodeError),
}

fn io_err(path: &Path, source: impl Into<std::io::Error>) -> RegionError {
    RegionError::Io {
        path: path.display().to_string(),
        source: source.into(),
    }
}

fn open(path: &Path, write: bool) -> Result<File, RegionError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(nix::libc::O_DIRECT | if write { nix::libc::O_DSYNC } else { 0 })
        .open(path)
        .map_err(|e| io_err(path, e))
}

fn disk_bytes(file: &File, path: &Path) -> Result<u64, RegionError> {
    use std::io::{Seek, SeekFrom};
    // Seek to the end: works for regular files and block devices alike.
    let mut f = file;
    f.seek(SeekFrom::End(0)).map_err(|e| io_err(path, e))
}

/// Where a disk is on its device: the whole device (a file on a `file`
/// SR), or the region `base .. base + len` of it (a volume of a `block`
/// SR). Slot offsets are relative to `base`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskArea {
    pub base: u64,
    /// `None`: up to the end of the device.
    pub len: Option<u64>,
}

impl DiskArea {
    /// Parses one entry of `XHA_VM_DISK_REGIONS`: `OFFSET+LENGTH` (bytes),
    /// or empty for the whole device.
    pub fn parse(text: &str) -> Result<DiskArea, String> {
        if text.is_empty() {
            return Ok(DiskArea::default());
        }
        let (o, l) = text
            .split_once('+')
            .ok_or_else(|| format!("disk region {text:?}: expected OFFSET+LENGTH"))?;
        let num = |what: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|e| format!("disk region {text:?}: {what} {v:?}: {e}"))
        };
        Ok(DiskArea {
            base: num("offset", o)?,
            len: Some(num("length", l)?),
        })
    }

    /// The bytes of the area on a device of `device_bytes`.
    fn bytes(&self, device_bytes: u64) -> u64 {
        let rest = device_bytes.saturating_sub(self.base);
        self.len.map_or(rest, |l| l.min(rest))
    }
}

/// Writes one VM's stamps into its slot (the `xha-stamp` workload).
pub struct StampWriter {
    file: File,
    path: String,
    slot: u64,
    base: u64,
    // Page-aligned by construction (an anonymous mapping): O_DIRECT needs it.
    buf: MmapMut,
}

impl StampWriter {
    pub fn open(path: &Path, slot: u64) -> Result<Self, RegionError> {
        Self::open_in(path, DiskArea::default(), slot)
    }

    /// Opens slot `slot` of the disk that is `area` of the device at
    /// `path` (a region of a block SR): every write lands inside it.
    pub fn open_in(path: &Path, area: DiskArea, slot: u64) -> Result<Self, RegionError> {
        let file = open(path, true)?;
        let bytes = area.bytes(disk_bytes(&file, path)?);
        let need = (slot + 1) * REGION_BYTES;
        if bytes < need {
            return Err(RegionError::TooSmall {
                path: path.display().to_string(),
                bytes,
                slot,
                need,
            });
        }
        let buf = MmapMut::map_anon(BLOCK_BYTES).map_err(|e| io_err(path, e))?;
        Ok(Self {
            file,
            path: path.display().to_string(),
            slot,
            base: area.base,
            buf,
        })
    }

    /// Writes `record` to its ring block, then to the latest block.
    pub fn write(&mut self, record: &StampRecord) -> Result<(), RegionError> {
        self.buf.copy_from_slice(&record.encode()?);
        for off in [
            ring_offset(self.slot, &record.boot, record.seq),
            latest_offset(self.slot),
        ] {
            let n = pwrite(&self.file, &self.buf, (self.base + off) as i64)
                .map_err(|e| io_err(Path::new(&self.path), e))?;
            if n != BLOCK_BYTES {
                return Err(io_err(
                    Path::new(&self.path),
                    std::io::Error::other(format!("short write: {n} bytes")),
                ));
            }
        }
        Ok(())
    }
}

/// What one read of a slot found.
#[derive(Debug, Default)]
pub struct RegionRead {
    /// Valid records (the latest block and every ring block), duplicates included.
    pub records: Vec<StampRecord>,
    /// Blocks that were written but do not decode (torn or foreign data).
    pub damaged: Vec<(u64, DecodeError)>,
}

/// Reads slot `slot` of the disk at `path` with O_DIRECT.
pub fn read_region(path: &Path, slot: u64) -> Result<RegionRead, RegionError> {
    read_region_in(path, DiskArea::default(), slot)
}

/// Reads slot `slot` of the disk that is `area` of the device at `path`.
pub fn read_region_in(path: &Path, area: DiskArea, slot: u64) -> Result<RegionRead, RegionError> {
    let file = open(path, false)?;
    let bytes = area.bytes(disk_bytes(&file, path)?);
    let start = latest_offset(slot);
    // A disk shorter than the region (or than slot 0) simply has no records there.
    let len =
        REGION_BYTES.min(bytes.saturating_sub(start)) / BLOCK_BYTES as u64 * BLOCK_BYTES as u64;
    let mut out = RegionRead::default();
    if len == 0 {
        return Ok(out);
    }
    let mut buf = MmapMut::map_anon(len as usize).map_err(|e| io_err(path, e))?;
    let mut done = 0usize;
    while done < len as usize {
        let n = pread(
            &file,
            &mut buf[done..],
            (area.base + start + done as u64) as i64,
        )
        .map_err(|e| io_err(path, e))?;
        if n == 0 {
            break;
        }
        done += n;
    }
    for (i, block) in buf[..done - done % BLOCK_BYTES]
        .chunks_exact(BLOCK_BYTES)
        .enumerate()
    {
        match decode(block) {
            Ok(Some(r)) => out.records.push(r),
            Ok(None) => {}
            Err(e) => out.damaged.push((start + (i * BLOCK_BYTES) as u64, e)),
        }
    }
    Ok(out)
}
