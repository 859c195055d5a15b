//! The SR label on a device (a block device or a plain file used as one),
//! through the O_DIRECT layer: [`probe`] what the device holds,
//! [`write_label`] one slot, [`label_device`], what `SR.create
//! type=block` does (refuse someone else's data unless forced, zero the
//! label region of a fresh device, write the label), and
//! [`allocate_volume`], [`place_volume`] and [`free_volume`], which add a
//! volume (the statefile, the metadata volume, a VM disk) to the table or
//! remove it, each as one crash-safe label write.

use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::content::{Content, PROBE_BYTES, classify};
use super::label::{LABEL_BLOCK, LABEL_REGION, SrLabel};
use crate::io::{AlignedBuf, BlockDevice, IoError, OpenMode};

/// The smallest device `label_device` takes: the label region and room for
/// a statefile.
pub const MIN_DEVICE_BYTES: u64 = LABEL_REGION + (4 << 20);

/// Why a device could not be labelled.
#[derive(Debug, thiserror::Error)]
pub enum LabelDeviceError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// The device holds data that is not an SR label (`force` overrides).
    #[error("{path} holds {what}; refusing to overwrite it without force", path = path.display())]
    InUse { path: PathBuf, what: String },
    /// The device is too small.
    #[error("{path} has {size} bytes; an SR needs at least {MIN_DEVICE_BYTES}", path = path.display())]
    TooSmall { path: PathBuf, size: u64 },
}

/// What the device holds at its start (reads up to [`PROBE_BYTES`]).
pub fn probe(dev: &BlockDevice) -> Result<Content, IoError> {
    let sector = dev.sector_size() as u64;
    let len = (PROBE_BYTES as u64).min(dev.size_bytes() / sector * sector);
    if len == 0 {
        return Ok(Content::Blank);
    }
    let mut buf = AlignedBuf::new(len as usize)?;
    dev.read_at(0, &mut buf)?;
    Ok(classify(&buf))
}

/// Writes `label` to its slot (durable on return: `O_DSYNC`).
pub fn write_label(dev: &BlockDevice, label: &SrLabel) -> Result<(), IoError> {
    let buf = AlignedBuf::from_bytes(&label.to_bytes())?;
    dev.write_at((label.slot() * LABEL_BLOCK) as u64, &buf)
}

/// Labels the device at `path` for the SR `sr_uuid` and returns the label
/// written:
/// - all zero at the start: a new label with an empty volume table;
/// - our label (an SR forgotten and created again): taken over with its
///   volume table, under the new SR uuid, in the next generation;
/// - anything else: [`LabelDeviceError::InUse`], unless `force`, which
///   zeroes the label region and writes a new label.
pub fn label_device(path: &Path, sr_uuid: Uuid, force: bool) -> Result<SrLabel, LabelDeviceError> {
    let dev = BlockDevice::open(path, OpenMode::ReadWrite)?;
    let size = dev.size_bytes();
    if size < MIN_DEVICE_BYTES {
        return Err(LabelDeviceError::TooSmall {
            path: path.to_path_buf(),
            size,
        });
    }
    // Volumes end on the label's alignment, whatever the device's tail.
    let usable = size - size % super::label::VOLUME_ALIGN;
    let label = match probe(&dev)? {
        Content::Label(old) => SrLabel {
            sr_uuid,
            ..old.next()
        },
        Content::Foreign(what) if !force => {
            return Err(LabelDeviceError::InUse {
                path: path.to_path_buf(),
                what,
            });
        }
        Content::Blank | Content::Foreign(_) => {
            let zeros = AlignedBuf::new(LABEL_REGION as usize)?;
            dev.write_at(0, &zeros)?;
            SrLabel::new(sr_uuid, usable)
        }
    };
    write_label(&dev, &label)?;
    Ok(label)
}

/// The label on the device at `path` (the newer valid slot).
pub fn read_label(path: &Path) -> Result<SrLabel, AllocateError> {
    let dev = BlockDevice::open(path, OpenMode::ReadOnly)?;
    match probe(&dev)? {
        Content::Label(label) => Ok(label),
        _ => Err(AllocateError::NotLabelled {
            path: path.to_path_buf(),
        }),
    }
}

/// Reads the label, applies `change` to its next generation and writes that
/// to the other slot: the previous label stays intact until the new one is
/// durable, so a crash at any moment leaves the table before or after the
/// change, never a mix. Nothing is written when `change` fails.
fn update_label<T>(
    path: &Path,
    change: impl FnOnce(&mut SrLabel) -> Result<T, super::label::LabelError>,
) -> Result<T, AllocateError> {
    let dev = BlockDevice::open(path, OpenMode::ReadWrite)?;
    let Content::Label(current) = probe(&dev)? else {
        return Err(AllocateError::NotLabelled {
            path: path.to_path_buf(),
        });
    };
    let mut next = current.next();
    let out = change(&mut next)?;
    write_label(&dev, &next)?;
    Ok(out)
}

/// Adds a volume of `size` bytes to the label on the device at `path`
/// (first fit, aligned; [`SrLabel::allocate`]), crash-safe
/// ([`update_label`]). Returns the volume.
pub fn allocate_volume(
    path: &Path,
    uuid: Uuid,
    kind: super::label::VolumeKind,
    size: u64,
) -> Result<super::label::Volume, AllocateError> {
    update_label(path, |l| l.allocate(uuid, kind, size))
}

/// Adds `volume` to the label exactly where it says ([`SrLabel::place`]:
/// an allocation the pool agent decided from its copy of the table);
/// refused when it conflicts with the table on the device.
pub fn place_volume(path: &Path, volume: super::label::Volume) -> Result<(), AllocateError> {
    update_label(path, |l| l.place(volume))
}

/// Removes the volume `uuid` from the label ([`SrLabel::free`]),
/// crash-safe; returns it. Its bytes are not overwritten.
pub fn free_volume(path: &Path, uuid: Uuid) -> Result<super::label::Volume, AllocateError> {
    update_label(path, |l| l.free(uuid))
}

/// Why a volume could not be added, placed or freed.
#[derive(Debug, thiserror::Error)]
pub enum AllocateError {
    #[error(transparent)]
    Io(#[from] IoError),
    /// The device holds no SR label.
    #[error("{path} holds no SR label", path = path.display())]
    NotLabelled { path: PathBuf },
    /// No room, the table is full, a conflict, or no such volume.
    #[error(transparent)]
    Label(#[from] super::label::LabelError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64, head: &[u8]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().set_len(len).unwrap();
        std::os::unix::fs::FileExt::write_all_at(f.as_file(), head, 0).unwrap();
        f
    }

    #[test]
    fn a_plain_file_is_labelled_retaken_and_foreign_data_refused() {
        let f = file(64 << 20, &[]);
        let sr = Uuid::from_u128(11);
        let l = label_device(f.path(), sr, false).unwrap();
        assert_eq!((l.sr_uuid, l.generation, l.device_bytes), (sr, 1, 64 << 20));
        let dev = BlockDevice::open(f.path(), OpenMode::ReadOnly).unwrap();
        assert_eq!(probe(&dev).unwrap(), Content::Label(l.clone()));
        // Taken over by a new SR, volumes kept, next generation (other slot).
        let again = label_device(f.path(), Uuid::from_u128(12), false).unwrap();
        assert_eq!(again.generation, 2);
        assert_eq!(probe(&dev).unwrap(), Content::Label(again));

        let mut xfs = vec![0u8; 4096];
        xfs[..4].copy_from_slice(b"XFSB");
        let f = file(64 << 20, &xfs);
        match label_device(f.path(), sr, false) {
            Err(LabelDeviceError::InUse { what, .. }) => assert_eq!(what, "an XFS filesystem"),
            other => panic!("{other:?}"),
        }
        let l = label_device(f.path(), sr, true).unwrap();
        let dev = BlockDevice::open(f.path(), OpenMode::ReadOnly).unwrap();
        assert_eq!(probe(&dev).unwrap(), Content::Label(l));

        // Volumes: allocated, aligned, kept across a takeover.
        use crate::srlabel::VolumeKind;
        let v = allocate_volume(
            f.path(),
            Uuid::from_u128(21),
            VolumeKind::Statefile,
            4 << 20,
        )
        .unwrap();
        assert_eq!((v.offset, v.size), (LABEL_REGION, 4 << 20));
        let w = allocate_volume(f.path(), Uuid::from_u128(22), VolumeKind::Metadata, 1000).unwrap();
        assert_eq!(w.offset, LABEL_REGION + (4 << 20));
        let Content::Label(l) = probe(&dev).unwrap() else {
            panic!("label")
        };
        assert_eq!(l.volumes, vec![v, w]);
        assert!(matches!(
            allocate_volume(f.path(), Uuid::from_u128(23), VolumeKind::Disk, 1 << 30),
            Err(AllocateError::Label(_))
        ));
        let taken = label_device(f.path(), Uuid::from_u128(13), false).unwrap();
        assert_eq!(taken.volumes, vec![v, w]);

        // Freed: the gap is reused first; a stale slot write leaves the
        // newer label in force.
        assert_eq!(free_volume(f.path(), v.uuid).unwrap(), v);
        assert!(matches!(
            free_volume(f.path(), v.uuid),
            Err(AllocateError::Label(
                crate::srlabel::LabelError::NoSuchVolume(_)
            ))
        ));
        let placed = crate::srlabel::Volume {
            uuid: Uuid::from_u128(24),
            kind: VolumeKind::Disk,
            offset: LABEL_REGION,
            size: 8192,
        };
        place_volume(f.path(), placed).unwrap();
        assert!(matches!(
            place_volume(f.path(), placed),
            Err(AllocateError::Label(
                crate::srlabel::LabelError::Conflict { .. }
            ))
        ));
        let now = read_label(f.path()).unwrap();
        assert_eq!(now.volumes, vec![placed, w]);
        assert_eq!(now.generation, taken.generation + 2);

        let small = file(1 << 20, &[]);
        assert!(matches!(
            label_device(small.path(), sr, false),
            Err(LabelDeviceError::TooSmall { .. })
        ));
    }
}
