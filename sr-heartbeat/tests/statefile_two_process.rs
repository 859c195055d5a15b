//! Two processes share a statefile: a child process writes its slot in a
//! loop (O_DIRECT + O_DSYNC), the parent reads all slots with O_DIRECT as
//! fast as it can. The reader must see the sequence only ever advance, and
//! never a torn slot: every slot it decodes is internally consistent with its
//! sequence, and no read fails its checksum.
//!
//! The child is this test binary re-executed with an environment variable
//! (`child_writer` below does nothing when the variable is absent).

mod io_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::{HostSet, STATEFILE_SIZE, Slot, SlotError, Statefile};
use uuid::Uuid;

const ENV_PATH: &str = "SR_HEARTBEAT_TEST_WRITER_PATH";
const WRITES: u64 = 1500;
const INDEX: u16 = 7;

/// Every field derives from the sequence, so a slot mixing two writes is
/// caught even if its checksum happened to pass.
fn slot_for(seq: u64) -> Slot {
    Slot {
        host_uuid: Uuid::from_u128(0x5eed),
        host_index: INDEX,
        sequence: seq,
        heard: HostSet(seq),
        seen: HostSet(!seq),
        liveset: HostSet(seq.rotate_left(17)),
        proposed: HostSet(seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        master_epoch: seq / 3,
        fault_round: seq / 5,
        net_round: seq / 7,
        status: format!("{seq:0>200}"),
        diag_time_ms: seq,
        ..Slot::default()
    }
}

#[test]
fn child_writer() {
    let Ok(path) = std::env::var(ENV_PATH) else {
        return; // Not the child.
    };
    let dev = BlockDevice::open(Path::new(&path), OpenMode::ReadWrite).expect("child open");
    let sf = Statefile::open(dev).expect("child statefile");
    for seq in 1..=WRITES {
        sf.write_slot(&slot_for(seq)).expect("child write");
    }
}

fn run(path: &Path) {
    let generation = Uuid::new_v4();
    let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("open");
    drop(Statefile::format(dev, generation, 64).expect("format"));
    let reader = Statefile::open(BlockDevice::open(path, OpenMode::ReadOnly).expect("open ro"))
        .expect("open statefile");

    let mut child = Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "child_writer", "--test-threads=1", "--nocapture"])
        .env(ENV_PATH, path)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child");

    let mut last = 0u64;
    let mut distinct = 0u64;
    let mut reads = 0u64;
    let until = Instant::now() + Duration::from_secs(300);
    let status = loop {
        let exited = child.try_wait().expect("try_wait");
        let read = reader.read_all().expect("read_all");
        reads += 1;
        match &read.slots[usize::from(INDEX)] {
            Err(SlotError::NeverWritten) => assert_eq!(last, 0, "slot vanished after seq {last}"),
            Err(e) => panic!("torn or corrupt slot after seq {last}: {e}"),
            Ok(s) => {
                assert_eq!(s, &slot_for(s.sequence), "inconsistent slot");
                assert!(
                    s.sequence >= last,
                    "sequence went back: {} after {last}",
                    s.sequence
                );
                if s.sequence > last {
                    distinct += 1;
                    last = s.sequence;
                }
            }
        }
        for (i, s) in read.slots.iter().enumerate() {
            if i != usize::from(INDEX) {
                assert_eq!(s, &Err(SlotError::NeverWritten), "slot {i}");
            }
        }
        if let Some(status) = exited {
            break status; // This read started after the child had exited.
        }
        assert!(Instant::now() < until, "child writer did not finish");
    };
    assert!(status.success(), "child writer failed: {status}");
    assert_eq!(last, WRITES, "the final write is visible");
    println!("{reads} reads saw {distinct} distinct sequences advancing to {last}");
    assert!(distinct >= 2, "reads never overlapped the writes");
}

#[test]
fn statefile_two_processes_on_file() {
    if std::env::var(ENV_PATH).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    run(&io_support::image(dir.path(), "statefile", STATEFILE_SIZE));
}

#[test]
fn statefile_two_processes_on_loop_512() {
    if std::env::var(ENV_PATH).is_ok()
        || io_support::skip_unless_root("512-byte-sector loop device")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = io_support::image(dir.path(), "img", STATEFILE_SIZE);
    let lo = io_support::LoopDevice::attach(&img, 512).expect("losetup");
    run(&lo.path);
}
