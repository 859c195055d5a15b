//! blocksr: the heartbeat volumes of an enable on a `type=block` SR: the
//! statefile (4 MiB) and the metadata volume (256 MiB) are regions of the
//! SR's device, entries of its label's volume table
//! (docs/on-disk-format.md, "Volumes as regions"; docs/ha-enable.md). A
//! `file` SR keeps its files (`files`).
//!
//! [`HaVolume`] names one such region; it is recorded in `ha-state.toml`
//! (so a restart opens the database in it and a disable frees it), in the
//! VDI records (`sm_config:region_offset`/`region_size`) and, for a
//! statefile, in `xhad.toml` as `{ path, offset, length }`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sr_heartbeat::io::{BlockDevice, OpenMode, Region};
use sr_heartbeat::metadata::{Layout, MetadataVolume};
use sr_heartbeat::srlabel::VolumeKind;
use sr_heartbeat::srlabel::device::{allocate_volume, free_volume};
use sr_heartbeat::statefile::{MAX_HOSTS_LIMIT, STATEFILE_SIZE, Statefile};
use uuid::Uuid;

use super::files::FileError;

/// A heartbeat volume that is a region of a block SR's device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaVolume {
    /// The SR's device.
    pub path: PathBuf,
    /// The volume's uuid in the label.
    pub uuid: Uuid,
    /// Bytes from the device's start.
    pub offset: u64,
    /// Bytes.
    pub len: u64,
}

impl HaVolume {
    /// The region to open.
    #[must_use]
    pub fn region(&self) -> Region {
        Region {
            offset: self.offset,
            len: self.len,
        }
    }
}

fn fail<'a>(step: &'static str, path: &'a Path) -> impl Fn(String) -> FileError + 'a {
    move |reason| FileError {
        step,
        path: path.to_path_buf(),
        reason,
    }
}

fn allocate(device: &Path, kind: VolumeKind, size: u64) -> Result<HaVolume, String> {
    let v = allocate_volume(device, Uuid::new_v4(), kind, size).map_err(|e| e.to_string())?;
    Ok(HaVolume {
        path: device.to_path_buf(),
        uuid: v.uuid,
        offset: v.offset,
        len: v.size,
    })
}

/// Allocates a statefile region on `device` and formats it for
/// `generation` with a slot for every host the format allows. The region
/// is freed again if formatting fails.
pub fn create_statefile(device: &Path, generation: Uuid) -> Result<HaVolume, FileError> {
    let err = fail("create the statefile region", device);
    let v = allocate(device, VolumeKind::Statefile, STATEFILE_SIZE).map_err(&err)?;
    let formatted = BlockDevice::open_region(device, OpenMode::ReadWrite, v.region())
        .map_err(|e| e.to_string())
        .and_then(|dev| {
            Statefile::format(dev, generation, MAX_HOSTS_LIMIT).map_err(|e| e.to_string())
        });
    if let Err(e) = formatted {
        free(&v);
        return Err(err(e));
    }
    Ok(v)
}

/// Allocates a metadata volume region (the standard 256 MiB layout) on
/// `device` and formats it. The region is freed again if formatting fails.
pub fn create_metadata(device: &Path) -> Result<HaVolume, FileError> {
    let err = fail("create the metadata volume region", device);
    let layout = Layout::standard();
    let v = allocate(device, VolumeKind::Metadata, layout.volume_bytes).map_err(&err)?;
    let formatted = BlockDevice::open_region(device, OpenMode::ReadWrite, v.region())
        .map_err(|e| e.to_string())
        .and_then(|dev| {
            MetadataVolume::format_with_layout(dev, layout)
                .map(drop)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = formatted {
        free(&v);
        return Err(err(e));
    }
    Ok(v)
}

/// Frees `v` in its device's label (logged when it cannot be: a region
/// left allocated wastes room but harms nothing).
pub fn free(v: &HaVolume) {
    match free_volume(&v.path, v.uuid) {
        Ok(_) => tracing::info!(device = %v.path.display(), volume = %v.uuid, "HA region freed"),
        Err(e) => {
            tracing::warn!(device = %v.path.display(), volume = %v.uuid, error = %e, "HA region not freed")
        }
    }
}

/// Frees every region of `all`.
pub fn free_all(all: &[HaVolume]) {
    for v in all {
        free(v);
    }
}
