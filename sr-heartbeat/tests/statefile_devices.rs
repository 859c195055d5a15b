//! The statefile suite on real storage: a regular file, a 512-byte-sector
//! loop device and a 4096-byte-sector loop device (the loop devices when
//! root; otherwise the test says it skipped). Both I/O paths are exercised:
//! direct `BlockDevice` and the deadline `IoThread`.

mod io_support;

use std::path::Path;
use std::time::Duration;

use sr_heartbeat::io::{BlockDevice, BlockIo, DeadlineIo, IoError, OpenMode};
use sr_heartbeat::statefile::slot::{SLOT_SIZE, block_crc, off};
use sr_heartbeat::statefile::{
    HostSet, Phase, PoolBlock, PoolState, STATEFILE_SIZE, Slot, SlotError, Statefile,
    StatefileError, StatefileRead,
};
use uuid::Uuid;

fn slot(index: u16, seq: u64) -> Slot {
    Slot {
        host_uuid: Uuid::from_u128(0xabc0 + u128::from(index)),
        host_index: index,
        sequence: seq,
        heard: HostSet(0b1011 ^ seq),
        seen: HostSet(0b1001),
        liveset: HostSet(0b1111),
        proposed: HostSet(0b1011),
        lock_request: HostSet(1 << index),
        lock_grant: HostSet(1),
        master_epoch: 3,
        fault_round: 2,
        phase: Phase::Agreeing,
        starting: true,
        statefile_access: true,
        status: format!("host {index} seq {seq}"),
        diag_time_ms: 1_700_000_000_000 + seq,
        ..Slot::default()
    }
}

/// A check on the error a corrupted slot must give.
type Want<'a> = &'a dyn Fn(&SlotError) -> bool;

fn open_rw(path: &Path) -> BlockDevice {
    BlockDevice::open(path, OpenMode::ReadWrite).expect("open")
}

/// Flip `mask` at byte `at` of slot `index` on disk, optionally re-stamping
/// the CRC (to reach the checks behind the checksum).
fn corrupt(path: &Path, index: u16, at: usize, mask: u8, restamp: bool) {
    let dev = open_rw(path);
    let sf = Statefile::open(dev).expect("open statefile");
    let offset = sf.header().slot_offset(index);
    let dev = sf.into_device();
    let mut buf = dev.read(offset, SLOT_SIZE).expect("read slot");
    buf[at] ^= mask;
    if restamp {
        let crc = block_crc(&buf);
        buf[off::CRC..].copy_from_slice(&crc.to_le_bytes());
    }
    dev.write(offset, buf).expect("write slot");
}

fn expect_only(
    read: &StatefileRead,
    bad: u16,
    want: &dyn Fn(&SlotError) -> bool,
    written: &[Slot],
) {
    for (i, s) in read.slots.iter().enumerate() {
        if i == usize::from(bad) {
            let e = s.as_ref().expect_err("corrupted slot decoded");
            assert!(want(e), "slot {i}: unexpected error {e:?}");
        } else if let Some(w) = written.iter().find(|w| usize::from(w.host_index) == i) {
            assert_eq!(
                s.as_ref(),
                Ok(w),
                "slot {i} affected by corruption of slot {bad}"
            );
        } else {
            assert_eq!(s, &Err(SlotError::NeverWritten), "slot {i}");
        }
    }
}

fn suite(path: &Path, expect_sector: usize) {
    let generation = Uuid::new_v4();
    let dev = open_rw(path);
    assert_eq!(dev.sector_size(), expect_sector);
    assert!(dev.size_bytes() >= STATEFILE_SIZE);
    let sf = Statefile::format(dev, generation, 64).expect("format");
    assert_eq!(sf.max_hosts(), 64);
    drop(sf);

    // Reopen, check the header, the fresh pool block and the empty slots.
    let sf = Statefile::open(open_rw(path)).expect("open");
    assert_eq!(sf.generation(), generation);
    assert_eq!(sf.header().sector_size as usize, expect_sector);
    let read = sf.read_all().expect("read_all");
    assert_eq!(
        read.pool,
        Ok(PoolBlock {
            state: PoolState::Init,
            master: None,
            master_epoch: 0,
            update_seq: 0
        })
    );
    assert_eq!(read.slots.len(), 64);
    assert!(
        read.slots
            .iter()
            .all(|s| s == &Err(SlotError::NeverWritten))
    );

    // Write three slots (first, middle, last) and read them back in one I/O.
    let mut written = vec![slot(0, 1), slot(5, 1), slot(63, 1)];
    for s in &written {
        sf.write_slot(s).expect("write_slot");
    }
    written[1] = slot(5, 2);
    sf.write_slot(&written[1]).expect("rewrite");
    let read = sf.read_all().expect("read_all");
    expect_only(&read, 1, &|e| e == &SlotError::NeverWritten, &written);
    assert_eq!(sf.read_slot(5).expect("read_slot"), Ok(written[1].clone()));

    // Bad slots are refused and write nothing.
    let before = sf.read_all().expect("read_all");
    assert!(matches!(
        sf.write_slot(&Slot {
            host_index: 64,
            ..slot(0, 9)
        }),
        Err(StatefileError::HostIndexOutOfRange {
            index: 64,
            max_hosts: 64
        })
    ));
    assert!(matches!(
        sf.write_slot(&Slot {
            status: "x".repeat(257),
            ..slot(0, 9)
        }),
        Err(StatefileError::StatusTooLong { len: 257 })
    ));
    assert_eq!(sf.read_all().expect("read_all"), before);

    // Pool block compare-and-set.
    let active = PoolBlock {
        state: PoolState::Active,
        master: Some(Uuid::from_u128(0xabc0)),
        master_epoch: 1,
        update_seq: 999, // ignored: the written block carries expected + 1
    };
    let w = sf.compare_and_set_pool(0, active.clone()).expect("cas");
    assert_eq!(w.update_seq, 1);
    assert_eq!(sf.read_pool().expect("read_pool"), w);
    assert!(matches!(
        sf.compare_and_set_pool(0, active.clone()),
        Err(StatefileError::PoolChanged {
            expected: 0,
            found: 1
        })
    ));
    assert!(matches!(
        sf.compare_and_set_pool(
            1,
            PoolBlock {
                master: Some(Uuid::nil()),
                ..active.clone()
            }
        ),
        Err(StatefileError::NilMaster)
    ));
    assert_eq!(sf.read_pool().expect("read_pool"), w);
    // A plain pool write (the daemon's, under the master lock) lands as is;
    // a nil master is refused and changes nothing.
    let epoch2 = PoolBlock {
        master_epoch: 2,
        update_seq: w.update_seq,
        ..active.clone()
    };
    sf.write_pool(&epoch2).expect("write_pool");
    assert_eq!(sf.read_pool().expect("read_pool"), epoch2);
    assert!(matches!(
        sf.write_pool(&PoolBlock {
            master: Some(Uuid::nil()),
            ..epoch2.clone()
        }),
        Err(StatefileError::NilMaster)
    ));
    assert_eq!(sf.read_pool().expect("read_pool"), epoch2);
    drop(sf);

    // Corrupt each field of slot 5 in turn: exactly slot 5 is rejected with
    // the error for that field; the others still decode.
    let fields: &[(&str, usize)] = &[
        ("magic", off::MAGIC),
        ("version", off::VERSION),
        ("host_index", off::HOST_INDEX),
        ("flags", off::FLAGS),
        ("generation", off::GENERATION),
        ("host_uuid", off::HOST_UUID),
        ("sequence", off::SEQUENCE),
        ("heard", off::HEARD),
        ("seen", off::SEEN),
        ("liveset", off::LIVESET),
        ("proposed", off::PROPOSED),
        ("lock_request", off::LOCK_REQUEST),
        ("lock_grant", off::LOCK_GRANT),
        ("master_epoch", off::MASTER_EPOCH),
        ("fault_round", off::FAULT_ROUND),
        ("phase", off::PHASE),
        ("status_len", off::STATUS_LEN),
        ("diag_time_ms", off::DIAG_TIME_MS),
        ("net_round", off::NET_ROUND),
        ("status_text", off::STATUS_TEXT),
        ("reserved", off::RESERVED_START + 100),
        ("crc", off::CRC),
    ];
    for &(name, at) in fields {
        let sf = Statefile::open(open_rw(path)).expect("open");
        sf.write_slot(&written[1]).expect("restore slot 5");
        drop(sf);
        corrupt(path, 5, at, 0x40, false);
        let read = Statefile::open(open_rw(path))
            .expect("open")
            .read_all()
            .expect("read_all");
        let want: &dyn Fn(&SlotError) -> bool = if at == off::MAGIC {
            &|e| matches!(e, SlotError::BadMagic { .. })
        } else {
            &|e| matches!(e, SlotError::ChecksumMismatch { .. })
        };
        expect_only(&read, 5, want, &written);
        assert!(read.pool.is_ok(), "{name}: pool block affected");
    }

    // Behind a valid checksum, the semantic checks name the field.
    let semantic: &[(usize, u8, Want)] = &[
        (off::VERSION, 0x02, &|e| {
            matches!(e, SlotError::WrongVersion { found: 3 })
        }),
        (off::GENERATION, 0x01, &|e| {
            matches!(e, SlotError::WrongGeneration { .. })
        }),
        (off::HOST_INDEX, 0x01, &|e| {
            matches!(
                e,
                SlotError::WrongIndex {
                    position: 5,
                    found: 4
                }
            )
        }),
        (off::FLAGS + 3, 0x80, &|e| {
            matches!(e, SlotError::BadField { field: "flags", .. })
        }),
        (off::PHASE, 0x80, &|e| {
            matches!(e, SlotError::BadField { field: "phase", .. })
        }),
        (off::STATUS_LEN + 1, 0x10, &|e| {
            matches!(
                e,
                SlotError::BadField {
                    field: "status_len",
                    ..
                }
            )
        }),
    ];
    for (at, mask, want) in semantic {
        let sf = Statefile::open(open_rw(path)).expect("open");
        sf.write_slot(&written[1]).expect("restore slot 5");
        drop(sf);
        corrupt(path, 5, *at, *mask, true);
        let read = Statefile::open(open_rw(path))
            .expect("open")
            .read_all()
            .expect("read_all");
        expect_only(&read, 5, *want, &written);
    }

    // The same statefile through the I/O thread with a deadline.
    let io = DeadlineIo::spawn(open_rw(path), Duration::from_secs(30)).expect("spawn");
    let sf = Statefile::open(io).expect("open via io thread");
    written[1] = slot(5, 3);
    sf.write_slot(&written[1]).expect("write via io thread");
    let read = sf.read_all().expect("read_all via io thread");
    expect_only(&read, 1, &|e| e == &SlotError::NeverWritten, &written);
    let w2 = sf
        .compare_and_set_pool(
            1,
            PoolBlock {
                master_epoch: 2,
                ..active
            },
        )
        .expect("cas via io thread");
    assert_eq!(w2.update_seq, 2);
    let lat = sf.device().thread().latency();
    assert!(lat.completed >= 4, "{lat:?}");
    assert!(lat.min.is_some() && lat.max >= lat.min && lat.last.is_some());
    assert_eq!((lat.timeouts, lat.busy, lat.errors), (0, 0, 0));
}

#[test]
fn statefile_on_regular_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = io_support::image(dir.path(), "statefile", STATEFILE_SIZE);
    suite(&path, 4096);
}

fn on_loop(sector: u32) {
    if io_support::skip_unless_root(&format!("{sector}-byte-sector loop device")) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let img = io_support::image(dir.path(), "img", STATEFILE_SIZE);
    let lo = io_support::LoopDevice::attach(&img, sector).expect("losetup");
    suite(&lo.path, sector as usize);

    // Alignment is checked against the device's own sector size.
    let dev = open_rw(&lo.path);
    let r = dev.read(512, 4096);
    if sector == 512 {
        r.expect("512-aligned read on a 512-byte-sector device");
    } else {
        assert!(matches!(
            r,
            Err(IoError::Misaligned {
                what: "offset",
                value: 512,
                sector_size: 4096
            })
        ));
    }
    drop(dev);

    if sector == 512 {
        // Formatted through 512-byte sectors, opened through the backing file
        // (4096): refused, not silently accepted.
        drop(lo);
        let r = Statefile::open(open_rw(&img));
        assert!(
            matches!(
                r,
                Err(StatefileError::SectorSizeMismatch {
                    header: 512,
                    device: 4096,
                    ..
                })
            ),
            "{:?}",
            r.err()
        );
    }
}

#[test]
fn statefile_on_loop_512() {
    on_loop(512);
}

#[test]
fn statefile_on_loop_4096() {
    on_loop(4096);
}

#[test]
fn statefile_device_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let small = io_support::image(dir.path(), "small", STATEFILE_SIZE - 4096);
    match Statefile::format(open_rw(&small), Uuid::new_v4(), 64) {
        Err(StatefileError::Io(IoError::TooSmall { need, have, .. })) => {
            assert_eq!((need, have), (STATEFILE_SIZE, STATEFILE_SIZE - 4096));
        }
        other => panic!("{:?}", other.err()),
    }
    let unaligned = io_support::image(dir.path(), "unaligned", STATEFILE_SIZE + 100);
    assert!(matches!(
        BlockDevice::open(&unaligned, OpenMode::ReadWrite),
        Err(IoError::SizeNotAligned { size, sector_size: 4096, .. }) if size == STATEFILE_SIZE + 100
    ));
    assert!(matches!(
        BlockDevice::open(&dir.path().join("missing"), OpenMode::ReadOnly),
        Err(IoError::Open { .. })
    ));
    assert!(matches!(
        BlockDevice::open(dir.path(), OpenMode::ReadOnly),
        Err(IoError::NotBlockOrFile {
            kind: "a directory",
            ..
        })
    ));
    let fifo = dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    // Refused before open(2), which would block on a FIFO without a writer.
    assert!(matches!(
        BlockDevice::open(&fifo, OpenMode::ReadOnly),
        Err(IoError::NotBlockOrFile { kind: "a FIFO", .. })
    ));
    let blank = io_support::image(dir.path(), "blank", STATEFILE_SIZE);
    assert!(matches!(
        Statefile::open(open_rw(&blank)),
        Err(StatefileError::Header {
            source: sr_heartbeat::statefile::HeaderError::NotFormatted,
            ..
        })
    ));
    assert!(matches!(
        Statefile::format(open_rw(&blank), Uuid::new_v4(), 65),
        Err(StatefileError::MaxHostsOutOfRange { requested: 65 })
    ));
    // Read-only devices refuse writes; requests are checked against the size.
    let ro = BlockDevice::open(&blank, OpenMode::ReadOnly).expect("open ro");
    let buf = sr_heartbeat::io::AlignedBuf::new(4096).expect("buf");
    assert!(matches!(
        ro.write_at(0, &buf),
        Err(IoError::ReadOnly { .. })
    ));
    assert!(matches!(
        ro.read(STATEFILE_SIZE, 4096),
        Err(IoError::OutOfRange { .. })
    ));
    assert!(matches!(
        ro.read(100, 4096),
        Err(IoError::Misaligned {
            what: "offset",
            value: 100,
            ..
        })
    ));
}
