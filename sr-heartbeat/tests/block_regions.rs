//! The statefile and the metadata volume as regions of one block SR: a
//! labelled device with a statefile, a metadata volume and a VM disk in its
//! volume table, each opened with `BlockDevice::open_region`. Every region
//! is filled with its own byte and the whole device read back (no region
//! reaches into another or into the label), then the statefile and the
//! metadata volume are formatted and used inside their regions and found
//! again, the disk's bytes and the label untouched. Runs on a regular file
//! always and on 512- and 4096-byte-sector loop devices when root
//! (otherwise it says it skipped them).

mod io_support;

use std::path::Path;
use std::time::Duration;

use sr_heartbeat::io::{AlignedBuf, BlockDevice, DeadlineIo, IoError, OpenMode, Region};
use sr_heartbeat::metadata::{Layout, MetadataVolume, ThreadedIo};
use sr_heartbeat::srlabel::device::{allocate_volume, free_volume, label_device, read_label};
use sr_heartbeat::srlabel::label::LABEL_REGION;
use sr_heartbeat::srlabel::{Volume, VolumeKind};
use sr_heartbeat::statefile::{STATEFILE_SIZE, Slot, Statefile};
use uuid::Uuid;

/// The metadata region's size here: a small layout keeps the test's
/// writes (three devices) modest; the I/O path is the same as for 256 MiB.
const META_BYTES: u64 = 16 << 20;
const DISK_BYTES: u64 = 1 << 20;
const DEVICE_BYTES: u64 = 32 << 20;

fn region(v: &Volume) -> Region {
    Region {
        offset: v.offset,
        len: v.size,
    }
}

fn fill(path: &Path, v: &Volume, byte: u8) {
    let dev = BlockDevice::open_region(path, OpenMode::ReadWrite, region(v)).expect("open region");
    let mut buf = AlignedBuf::new(v.size as usize).expect("buf");
    buf.fill(byte);
    dev.write_at(0, &buf).expect("fill region");
    // One block more is refused and names the region.
    let one = AlignedBuf::new(4096).expect("buf");
    match dev.write_at(v.size, &one) {
        Err(IoError::OutsideRegion {
            region_offset,
            region_len,
            ..
        }) => assert_eq!((region_offset, region_len), (v.offset, v.size)),
        other => panic!("write past the region: {other:?}"),
    }
}

fn whole(path: &Path) -> AlignedBuf {
    let dev = BlockDevice::open(path, OpenMode::ReadOnly).expect("open whole");
    let mut buf = AlignedBuf::new(dev.size_bytes() as usize).expect("buf");
    dev.read_at(0, &mut buf).expect("read whole");
    buf
}

fn scenario(path: &Path) {
    let sr = Uuid::new_v4();
    let label = label_device(path, sr, false).expect("label");
    assert!(label.volumes.is_empty());
    let sf = allocate_volume(path, Uuid::new_v4(), VolumeKind::Statefile, STATEFILE_SIZE)
        .expect("statefile volume");
    let md =
        allocate_volume(path, Uuid::new_v4(), VolumeKind::Metadata, META_BYTES).expect("metadata");
    let disk = allocate_volume(path, Uuid::new_v4(), VolumeKind::Disk, DISK_BYTES).expect("disk");
    assert_eq!(sf.offset, LABEL_REGION);
    assert_eq!(md.offset, sf.offset + sf.size);
    assert_eq!(disk.offset, md.offset + md.size);

    // 1. Each region filled with its own byte: the device shows exactly
    //    the map, the label intact.
    for (v, byte) in [(&sf, 0x51), (&md, 0x4d), (&disk, 0xd1)] {
        fill(path, v, byte);
    }
    let all = whole(path);
    let end = (disk.offset + disk.size) as usize;
    for (v, byte) in [(&sf, 0x51u8), (&md, 0x4d), (&disk, 0xd1)] {
        let bytes = &all[v.offset as usize..(v.offset + v.size) as usize];
        assert!(bytes.iter().all(|&b| b == byte), "region {:?}", v.kind);
    }
    assert!(all[end..].iter().all(|&b| b == 0), "past the last region");
    assert!(
        all[2 * 4096..LABEL_REGION as usize].iter().all(|&b| b == 0),
        "the label region after the two slots"
    );
    let l = read_label(path).expect("label after fills");
    assert_eq!(l.volumes, vec![sf, md, disk]);

    // 2. The formats inside their regions, through the deadline paths the
    //    daemons use.
    let generation = Uuid::new_v4();
    let dev = BlockDevice::open_region(path, OpenMode::ReadWrite, region(&sf)).expect("sf");
    drop(Statefile::format(dev, generation, 64).expect("format statefile"));
    let io = DeadlineIo::spawn(
        BlockDevice::open_region(path, OpenMode::ReadWrite, region(&sf)).expect("sf"),
        Duration::from_secs(10),
    )
    .expect("io thread");
    let statefile = Statefile::open(io).expect("open statefile in its region");
    for index in 0..64u16 {
        let slot = Slot {
            host_uuid: Uuid::from_u128(0x100 + u128::from(index)),
            host_index: index,
            sequence: 7,
            status: format!("host {index}"),
            ..Slot::default()
        };
        statefile.write_slot(&slot).expect("write slot");
    }
    drop(statefile);

    let layout = Layout::for_volume(META_BYTES).expect("layout");
    let meta = ThreadedIo::open_region(path, region(&md)).expect("metadata io");
    let volume = MetadataVolume::format_with_layout(meta, layout).expect("format metadata");
    let (mut writer, _) = volume.into_writer(1).expect("writer");
    for i in 0..200u32 {
        writer
            .append_delta(format!("change {i}").as_bytes())
            .expect("delta");
    }
    writer
        .write_snapshot(b"snapshot of 200 changes")
        .expect("snapshot");
    for i in 200..250u32 {
        writer
            .append_delta(format!("change {i}").as_bytes())
            .expect("delta");
    }
    drop(writer);

    // 3. Both found again in their regions; the disk and the label are
    //    as they were.
    let dev = BlockDevice::open_region(path, OpenMode::ReadOnly, region(&sf)).expect("sf");
    let statefile = Statefile::open(dev).expect("statefile again");
    assert_eq!(statefile.generation(), generation);
    let read = statefile.read_all().expect("read all");
    for (i, s) in read.slots.iter().enumerate() {
        let s = s.as_ref().expect("slot decodes");
        assert_eq!(s.status, format!("host {i}"));
    }
    let meta = ThreadedIo::open_region(path, region(&md)).expect("metadata io");
    let recovered = MetadataVolume::open(meta)
        .expect("metadata again")
        .recover()
        .expect("recover");
    assert_eq!(recovered.snapshot, b"snapshot of 200 changes");
    assert_eq!(recovered.deltas.len(), 50);
    assert_eq!(recovered.deltas[49].payload, b"change 249");
    let all = whole(path);
    let bytes = &all[disk.offset as usize..(disk.offset + disk.size) as usize];
    assert!(bytes.iter().all(|&b| b == 0xd1), "the disk region changed");
    assert!(all[end..].iter().all(|&b| b == 0), "past the last region");
    assert_eq!(read_label(path).expect("label").volumes, vec![sf, md, disk]);

    // 4. The whole device is not a statefile: the offsets really are the
    //    region's (the label is at byte 0).
    let dev = BlockDevice::open(path, OpenMode::ReadOnly).expect("whole");
    assert!(Statefile::open(dev).is_err());

    // 5. Freed regions leave the others as they are; the room is reused.
    assert_eq!(free_volume(path, md.uuid).expect("free"), md);
    let again = allocate_volume(path, Uuid::new_v4(), VolumeKind::Disk, 4 << 20).expect("reuse");
    assert_eq!(again.offset, md.offset);
    let dev = BlockDevice::open_region(path, OpenMode::ReadOnly, region(&sf)).expect("sf");
    assert_eq!(Statefile::open(dev).expect("sf").generation(), generation);
}

#[test]
fn statefile_and_metadata_volume_in_regions_of_a_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = io_support::image(dir.path(), "lun.img", DEVICE_BYTES);
    scenario(&image);
}

#[test]
fn statefile_and_metadata_volume_in_regions_of_loop_devices() {
    if io_support::skip_unless_root("regions of 512- and 4096-byte-sector loop devices") {
        return;
    }
    for sector in [512, 4096] {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = io_support::image(dir.path(), "lun.img", DEVICE_BYTES);
        let dev = io_support::LoopDevice::attach(&image, sector).expect("losetup");
        let opened = BlockDevice::open(&dev.path, OpenMode::ReadOnly).expect("open loop");
        assert!(opened.is_block_device());
        assert_eq!(opened.sector_size(), sector as usize);
        drop(opened);
        scenario(&dev.path);
    }
}
