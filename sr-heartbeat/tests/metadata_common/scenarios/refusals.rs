//! Refusals write nothing; the standard layout; devices the volume refuses.

use super::*;

pub fn refusals_write_nothing<D: Disk>(d: &D) {
    fresh(d);
    let mut w = writer(d, 1);
    w.append_delta(b"x").unwrap();
    let before = recover(d);
    let max = w.max_payload_bytes();
    assert!(matches!(
        w.append_delta(&vec![0; max as usize + 1]),
        Err(MetaError::PayloadTooLarge { .. })
    ));
    let cap = small_layout().snapshot_capacity();
    assert!(matches!(
        w.write_snapshot(&vec![0; cap as usize + 1]),
        Err(MetaError::SnapshotTooLarge { .. })
    ));
    assert_eq!(recover(d), before);
    // The largest snapshot fits.
    w.write_snapshot(&vec![7; cap as usize]).unwrap();
    assert_eq!(recover(d).snapshot.len() as u64, cap);
}

pub fn standard_layout<D: Disk>(d: &D) {
    MetadataVolume::format(d.io()).unwrap();
    let mut w = writer(d, 3);
    w.append_delta(b"hello").unwrap();
    w.write_snapshot(b"db").unwrap();
    w.append_delta(b"world").unwrap();
    let r = recover(d);
    assert_eq!(r.superblock.layout, Layout::standard());
    assert_eq!(r.snapshot, b"db");
    assert_eq!(r.deltas.len(), 1);
    assert_eq!(r.epoch, 3);
}

/// Refusals that depend on the device itself, with a constructor of blank
/// devices of a given size and sector size.
pub fn device_refusals<I: MetaIo>(make: impl Fn(usize, usize) -> I) {
    let small = make(1 << 20, 4096);
    assert!(matches!(
        MetadataVolume::format(small),
        Err(MetaError::DeviceTooSmall {
            size_bytes: 1048576,
            needed: 268435456
        })
    ));
    assert!(matches!(
        MetadataVolume::format_with_layout(make(DISK_BYTES as usize, 8192), small_layout()),
        Err(MetaError::UnsupportedSectorSize { sector_size: 8192 })
    ));
    assert!(matches!(
        MetadataVolume::open(make(DISK_BYTES as usize, 4096)),
        Err(MetaError::NotFormatted { .. })
    ));
}
