//! `format-statefile` and `format-metadata`: refuse a device that holds
//! something unless forced, then write a fresh volume.

use std::path::Path;
use std::process::ExitCode;

use uuid::Uuid;

use sr_heartbeat::io::{BlockDevice, BlockIo, IoError, OpenMode};
use sr_heartbeat::le::get_u64;
use sr_heartbeat::metadata::superblock::SUPERBLOCK_MAGIC;
use sr_heartbeat::statefile::header::HEADER_SIZE;
use sr_heartbeat::statefile::{Header, HeaderError, MAX_HOSTS_LIMIT, STATEFILE_SIZE, Statefile};

use crate::Res;

/// Refuse a regular file smaller than `need` before opening it, so a short
/// file gets "too small" rather than a sector-alignment complaint.
pub(crate) fn open_device(path: &Path, mode: OpenMode, need: u64) -> Res<BlockDevice> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
        && meta.len() < need
    {
        return Err(IoError::TooSmall {
            path: path.to_owned(),
            need,
            have: meta.len(),
        }
        .to_string());
    }
    let dev = BlockDevice::open(path, mode).map_err(|e| e.to_string())?;
    dev.require_size(need).map_err(|e| e.to_string())?;
    Ok(dev)
}

/// Create (or grow from empty) a regular file to `size` bytes. Returns true
/// if this call created or sized it, so a failed format can undo it.
pub(crate) fn prepare_file(path: &Path, size: u64) -> Res<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
            f.set_len(size)
                .map_err(|e| format!("{}: cannot size to {size} bytes: {e}", path.display()))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
            f.set_len(size)
                .map_err(|e| format!("{}: cannot size to {size} bytes: {e}", path.display()))?;
            Ok(true)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Whether the first two blocks hold a metadata superblock, in either slot:
/// a metadata volume may have written only its second slot, or its first
/// may be damaged, and it is still recognised.
pub(crate) fn holds_metadata_superblock(blocks: &[u8]) -> bool {
    get_u64(blocks, 0) == SUPERBLOCK_MAGIC || get_u64(blocks, HEADER_SIZE) == SUPERBLOCK_MAGIC
}

/// What the first two blocks say about the device, for refusing to
/// overwrite it: `None` when both are all zero. Two blocks, because a
/// metadata volume may have written only its second superblock slot.
fn describe_existing(blocks: &[u8]) -> Option<String> {
    if blocks.iter().all(|&b| b == 0) {
        return None;
    }
    if holds_metadata_superblock(blocks) {
        return Some("holds an HA metadata volume".into());
    }
    Some(match Header::decode(&blocks[..HEADER_SIZE]) {
        Ok(h) => format!("holds an HA statefile (generation {})", h.generation),
        Err(HeaderError::BadMagic { .. } | HeaderError::NotFormatted) => {
            "is not blank (it holds data of another kind)".into()
        }
        Err(e) => format!("holds a damaged HA statefile ({e})"),
    })
}

fn refuse_unless_blank(dev: &BlockDevice, force: bool) -> Res<()> {
    if force {
        return Ok(());
    }
    let blocks = dev.read(0, 2 * HEADER_SIZE).map_err(|e| e.to_string())?;
    match describe_existing(&blocks) {
        None => Ok(()),
        Some(what) => Err(format!(
            "{}: {what}; refusing to overwrite it without --force",
            dev.path().display()
        )),
    }
}

pub(crate) fn format_statefile(
    path: &Path,
    pool: Uuid,
    hosts: usize,
    force: bool,
) -> Res<ExitCode> {
    if hosts == 0 || hosts > MAX_HOSTS_LIMIT {
        return Err(format!("--hosts {hosts}: must be 1 to {MAX_HOSTS_LIMIT}"));
    }
    if pool.is_nil() {
        return Err("--pool-uuid: the nil UUID cannot name a pool".into());
    }
    let created = prepare_file(path, STATEFILE_SIZE)?;
    let result = (|| {
        let dev = open_device(path, OpenMode::ReadWrite, STATEFILE_SIZE)?;
        refuse_unless_blank(&dev, force)?;
        let sf = Statefile::format(dev, pool, hosts).map_err(|e| e.to_string())?;
        println!(
            "formatted {} as a statefile: generation {}, {} host slots, {}-byte sectors",
            path.display(),
            sf.generation(),
            sf.max_hosts(),
            sf.header().sector_size
        );
        Ok(ExitCode::SUCCESS)
    })();
    if result.is_err() && created {
        // Undo our own creation only: the file did not exist (or was empty).
        let _ = std::fs::remove_file(path);
    }
    result
}

pub(crate) fn format_metadata(path: &Path, force: bool) -> Res<ExitCode> {
    use sr_heartbeat::metadata::{MetadataVolume, STANDARD_VOLUME_BYTES};
    let created = prepare_file(path, STANDARD_VOLUME_BYTES)?;
    let result = (|| {
        let dev = open_device(path, OpenMode::ReadWrite, STANDARD_VOLUME_BYTES)?;
        refuse_unless_blank(&dev, force)?;
        let vol = MetadataVolume::format(dev).map_err(|e| e.to_string())?;
        println!(
            "formatted {} as a metadata volume: volume uuid {}",
            path.display(),
            vol.superblock().volume_uuid
        );
        Ok(ExitCode::SUCCESS)
    })();
    if result.is_err() && created {
        // Undo our own creation only: the file did not exist (or was empty).
        let _ = std::fs::remove_file(path);
    }
    result
}
