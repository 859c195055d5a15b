//! The metadata volume's behaviour, as scenarios run on every kind of device:
//! an in-memory disk with 512- and 4096-byte sectors here, and the real
//! O_DIRECT path (regular file, loop devices) in `metadata_devices.rs`, which
//! includes this file's scenarios through `metadata_common::scenarios`.

mod metadata_common;

use metadata_common::MemDevice;
use metadata_common::scenarios::{self, Disk};

struct MemDisk(MemDevice);

impl Disk for MemDisk {
    type Io = MemDevice;
    fn io(&self) -> MemDevice {
        self.0.clone()
    }
}

fn disks() -> Vec<(String, MemDisk)> {
    [512, 4096]
        .into_iter()
        .map(|s| {
            (
                format!("memory, {s}-byte sectors"),
                MemDisk(MemDevice::new(scenarios::DISK_BYTES as usize, s)),
            )
        })
        .collect()
}

macro_rules! on_every_disk {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            for (what, disk) in disks() {
                println!("{}: {what}", stringify!($name));
                scenarios::$name(&disk);
            }
        }
    )*};
}

on_every_disk!(
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
fn standard_layout_on_256_mib() {
    let disk = MemDisk(MemDevice::new(256 << 20, 4096));
    scenarios::standard_layout(&disk);
}

#[test]
fn too_small_device_and_odd_sector_sizes_are_refused() {
    scenarios::device_refusals(MemDevice::new);
}

mod model {
    //! Random operation sequences with a crash at a random write, checked
    //! against a model: the recovered history is the one before or after the
    //! operation that was in flight, never anything else.
    use super::*;
    use metadata_common::scenarios::{Op, run_model};
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0usize..9000, any::<u8>()).prop_map(|(len, byte)| Op::Append { len, byte }),
            1 => Just(Op::Snapshot),
            1 => Just(Op::Reopen),
            1 => (1u64..3).prop_map(Op::NewEpoch),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn prop_crash_anywhere_recovers_a_prefix(
            ops in proptest::collection::vec(op(), 1..40),
            crash_at in 0usize..60,
            tear in 0u8..4,
            sector in prop_oneof![Just(512usize), Just(4096usize)],
        ) {
            let disk = MemDisk(MemDevice::new(scenarios::DISK_BYTES as usize, sector));
            run_model(&disk, &ops, Some((crash_at, tear)));
        }

        #[test]
        fn prop_without_crash_everything_is_kept(
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            let disk = MemDisk(MemDevice::new(scenarios::DISK_BYTES as usize, 4096));
            run_model(&disk, &ops, None);
        }
    }
}
