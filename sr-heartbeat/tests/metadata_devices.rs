//! The metadata volume scenarios of `metadata_common::scenarios` on the real
//! O_DIRECT path: a regular file, and (when root) loop devices with 512- and
//! 4096-byte logical sectors. Plus the deadline path through the I/O thread.

mod metadata_common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use metadata_common::loopdev::{LoopDevice, image, is_root};
use metadata_common::scenarios::{self, Disk};
use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::metadata::{MetaError, MetadataVolume, ThreadedIo};

/// A device path opened anew (O_DIRECT | O_DSYNC) for every handle.
struct PathDisk(PathBuf);

impl Disk for PathDisk {
    type Io = BlockDevice;
    fn io(&self) -> BlockDevice {
        BlockDevice::open(&self.0, OpenMode::ReadWrite).expect("open device")
    }
}

/// Every handle on its own I/O thread with deadlines.
struct ThreadedDisk(PathBuf);

impl Disk for ThreadedDisk {
    type Io = ThreadedIo;
    fn io(&self) -> ThreadedIo {
        ThreadedIo::open(&self.0).expect("open device on its I/O thread")
    }
}

/// The devices of one test: the temp dir and loop devices live as long as it.
struct Devices {
    disks: Vec<(String, PathDisk)>,
    // Detached before the directory goes (field order).
    _loops: Vec<LoopDevice>,
    _dir: tempfile::TempDir,
}

fn devices(test: &str, size: u64) -> Devices {
    // Not tmpfs: O_DIRECT needs a filesystem that supports it.
    let dir = tempfile::Builder::new()
        .prefix("sr-metadata-")
        .tempdir_in(std::env::temp_dir())
        .expect("temp dir");
    let file = image(dir.path(), "file.img", size);
    let mut disks = vec![("regular file".to_string(), PathDisk(file))];
    let mut loops = Vec::new();
    if is_root() {
        for sector in [512, 4096] {
            let img = image(dir.path(), &format!("loop{sector}.img"), size);
            let l = LoopDevice::attach(&img, sector);
            disks.push((
                format!("loop device {} ({sector}-byte sectors)", l.path.display()),
                PathDisk(l.path.clone()),
            ));
            loops.push(l);
        }
    } else {
        println!("{test}: skipped the loop devices: needs root for losetup");
        eprintln!("{test}: skipped the loop devices: needs root for losetup");
    }
    Devices {
        disks,
        _loops: loops,
        _dir: dir,
    }
}

macro_rules! on_every_device {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let d = devices(stringify!($name), scenarios::DISK_BYTES);
            for (what, disk) in &d.disks {
                println!("{}: {what}", stringify!($name));
                scenarios::$name(disk);
            }
        }
    )*};
}

on_every_device!(
    round_trip_through_snapshots,
    torn_appends_are_ignored,
    inspection_reports_every_problem,
    rewritten_record_does_not_resurrect_the_old_tail,
    crash_during_snapshot_keeps_the_old_state,
    torn_superblock_falls_back,
    corrupt_newest_superblock_falls_back,
    stale_epoch_writer_is_refused_and_its_records_ignored,
    delta_full_then_snapshot,
    refusals_write_nothing,
);

#[test]
fn standard_layout_on_256_mib_devices() {
    let d = devices("standard_layout_on_256_mib_devices", 256 << 20);
    for (what, disk) in &d.disks {
        println!("standard layout: {what}");
        scenarios::standard_layout(disk);
    }
}

#[test]
fn too_small_device_is_refused_without_writing() {
    let dir = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let path = image(dir.path(), "small.img", 1 << 20);
    let dev = BlockDevice::open(&path, OpenMode::ReadWrite).unwrap();
    assert!(matches!(
        MetadataVolume::format(dev),
        Err(MetaError::DeviceTooSmall {
            size_bytes: 1048576,
            needed: 268435456
        })
    ));
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0));
    let dev = BlockDevice::open(&path, OpenMode::ReadWrite).unwrap();
    assert!(matches!(
        MetadataVolume::open(dev),
        Err(MetaError::NotFormatted { .. })
    ));
}

#[test]
fn scenarios_through_the_io_thread() {
    let d = devices("scenarios_through_the_io_thread", scenarios::DISK_BYTES);
    for (what, disk) in &d.disks {
        println!("through the I/O thread: {what}");
        let t = ThreadedDisk(disk.0.clone());
        scenarios::round_trip_through_snapshots(&t);
        scenarios::stale_epoch_writer_is_refused_and_its_records_ignored(&t);
        scenarios::delta_full_then_snapshot(&t);
    }
}

/// A delta write that misses its deadline returns a timeout at once; the
/// writer is unchanged, and once the device answers again the caller retries
/// and the log holds the retried record exactly once.
#[test]
fn delta_write_past_its_deadline_times_out_and_can_be_retried() {
    let d = devices("delta_write_past_its_deadline", scenarios::DISK_BYTES);
    let disk = ThreadedDisk(d.disks[0].1.0.clone());
    MetadataVolume::format_with_layout(disk.io(), scenarios::small_layout()).unwrap();
    let (mut w, _) = MetadataVolume::open(disk.io())
        .unwrap()
        .into_writer(1)
        .unwrap();
    w.append_delta(b"before").unwrap();
    let deadline = Duration::from_millis(200);
    let delay = Duration::from_secs(2);
    w.io_mut().deadlines.delta_write = deadline;
    w.io_mut().thread.inject_delay(delay);
    let started = Instant::now();
    let err = w.append_delta(b"slow").unwrap_err();
    let waited = started.elapsed();
    assert!(err.is_timeout(), "{err}");
    // Returned near its deadline, well before the device answered (generous
    // bound for a loaded machine; the device takes `delay`).
    assert!(
        waited < delay,
        "waited {waited:?} for a {deadline:?} deadline"
    );
    // Wait for the late write to complete, then retry with another payload.
    let until = Instant::now() + Duration::from_secs(60);
    while w.io_mut().thread.latency().in_flight_for.is_some() {
        assert!(Instant::now() < until, "late write never completed");
        std::thread::sleep(Duration::from_millis(20));
    }
    w.append_delta(b"retried").unwrap();
    w.append_delta(b"after").unwrap();
    let r = MetadataVolume::open(disk.io()).unwrap().recover().unwrap();
    let got: Vec<&[u8]> = r.deltas.iter().map(|d| &d.payload[..]).collect();
    assert_eq!(got, vec![&b"before"[..], b"retried", b"after"]);
}
