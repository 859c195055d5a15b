//! Scenarios of the metadata volume, generic over the device, so the same
//! checks run in memory, on a regular file and on loop devices.
//!
//! Parts: this file (the helpers and the crash and recovery scenarios),
//! `refusals` (what is refused writes nothing; layouts and devices refused),
//! `model` (random operations checked against a model, with a crash).

mod model;
mod refusals;

// Each test binary that includes this module uses some of these.
#[allow(unused_imports)]
pub use model::{Op, run_model};
#[allow(unused_imports)]
pub use refusals::{device_refusals, refusals_write_nothing, standard_layout};

use sr_heartbeat::metadata::io::MetaIo;
use sr_heartbeat::metadata::layout::{BLOCK, Layout, SUPERBLOCK_OFFSETS};
use sr_heartbeat::metadata::replay::ReplayStop;
use sr_heartbeat::metadata::volume::{MetaError, MetadataVolume, MetadataWriter, Recovered};
use sr_heartbeat::metadata::{DecodeError, IoClass};

use super::{Faulty, Tear};

/// Size of the test disks.
pub const DISK_BYTES: u64 = 4 << 20;

/// A 4 MiB volume whose delta areas hold 32 one-block records, so "full" is
/// reached quickly even through O_DSYNC writes.
pub fn small_layout() -> Layout {
    Layout::new(DISK_BYTES, 768 << 10, 640 << 10).expect("small layout")
}

/// A device that can be opened many times, every handle on the same bytes.
pub trait Disk {
    type Io: MetaIo;
    fn io(&self) -> Self::Io;
}

fn fresh<D: Disk>(d: &D) {
    MetadataVolume::format_with_layout(d.io(), small_layout()).expect("format");
}

fn recover<D: Disk>(d: &D) -> Recovered {
    MetadataVolume::open(d.io())
        .expect("open")
        .recover()
        .expect("recover")
}

fn writer<D: Disk>(d: &D, epoch: u64) -> MetadataWriter<D::Io> {
    MetadataVolume::open(d.io())
        .expect("open")
        .into_writer(epoch)
        .expect("writer")
        .0
}

fn faulty_writer<D: Disk>(d: &D, epoch: u64) -> MetadataWriter<Faulty<D::Io>> {
    MetadataVolume::open(Faulty::counting(d.io()))
        .expect("open")
        .into_writer(epoch)
        .expect("writer")
        .0
}

/// Make the next write of `w` crash, landing as `tear` says.
fn crash_next<I: MetaIo>(w: &mut MetadataWriter<Faulty<I>>, after: usize, tear: Tear) {
    let io = w.io_mut();
    io.writes_ok = io.writes_seen + after;
    io.tear = tear;
}

/// The database as the model sees it: every payload ever applied.
/// Snapshots store it as length-prefixed payloads.
fn encode_history(h: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in h {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn decode_history(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut h = Vec::new();
    while !b.is_empty() {
        let len = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        h.push(b[4..4 + len].to_vec());
        b = &b[4 + len..];
    }
    h
}

/// The recovered state as a history: snapshot then deltas in order.
fn history(r: &Recovered) -> Vec<Vec<u8>> {
    let mut h = decode_history(&r.snapshot);
    for (i, d) in r.deltas.iter().enumerate() {
        assert_eq!(
            d.sequence,
            r.snapshot_base_seq + 1 + i as u64,
            "sequence order"
        );
        h.push(d.payload.clone());
    }
    assert_eq!(h.len() as u64, r.last_seq, "one sequence per change");
    h
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 7 + j) as u8).collect()
}

pub fn round_trip_through_snapshots<D: Disk>(d: &D) {
    fresh(d);
    let r = recover(d);
    assert!(r.snapshot.is_empty() && r.deltas.is_empty());
    assert_eq!(
        (r.epoch, r.last_seq, r.stop.clone()),
        (0, 0, ReplayStop::Unwritten)
    );
    let mut w = writer(d, 1);
    let mut h = Vec::new();
    for (i, len) in [0, 10, 4032, 4033, 9000].into_iter().enumerate() {
        let p = payload(i, len);
        let a = w.append_delta(&p).unwrap();
        assert_eq!(a.sequence, i as u64 + 1);
        h.push(p);
    }
    assert_eq!(history(&recover(d)), h);
    // Two snapshots: the second reuses half 0, whose old deltas (of the
    // first snapshot) must not come back.
    for round in 0..2 {
        w.write_snapshot(&encode_history(&h)).unwrap();
        let r = recover(d);
        assert_eq!(r.snapshot_base_seq, h.len() as u64);
        assert!(r.deltas.is_empty(), "round {round}: {:?}", r.stop);
        assert_eq!(r.superblock.active_half, 1 - round as u8);
        for i in 0..2 {
            let p = payload(100 + i, 300 * i);
            w.append_delta(&p).unwrap();
            h.push(p);
        }
        let r = recover(d);
        assert_eq!(history(&r), h);
        // Half 0 still holds the first snapshot's records: a clean end.
        assert!(r.stop.is_clean(), "{:?}", r.stop);
    }
    // A new writer of the same epoch continues the same log.
    drop(w);
    let mut w = writer(d, 1);
    w.append_delta(b"after reopen").unwrap();
    h.push(b"after reopen".to_vec());
    assert_eq!(history(&recover(d)), h);
}

pub fn torn_appends_are_ignored<D: Disk>(d: &D) {
    let sector = d.io().sector_size();
    for tear in [
        Tear::Nothing,
        Tear::Prefix(sector),
        Tear::Prefix(BLOCK),
        Tear::PrefixThenGarbage(sector),
        Tear::PrefixThenGarbage(0),
    ] {
        fresh(d);
        let mut w = faulty_writer(d, 1);
        let mut h = Vec::new();
        for i in 0..3 {
            let p = payload(i, 5000);
            w.append_delta(&p).unwrap();
            h.push(p);
        }
        crash_next(&mut w, 0, tear);
        let err = w.append_delta(&payload(9, 6000)).unwrap_err();
        assert!(
            matches!(
                err,
                MetaError::Io {
                    class: IoClass::DeltaWrite,
                    ..
                }
            ),
            "{err}"
        );
        let r = recover(d);
        assert_eq!(history(&r), h, "{tear:?}");
        match tear {
            Tear::Nothing => assert_eq!(r.stop, ReplayStop::Unwritten),
            Tear::PrefixThenGarbage(0) => assert!(!matches!(r.stop, ReplayStop::AreaEnd)),
            _ => assert!(
                matches!(r.stop, ReplayStop::Torn(_)),
                "{tear:?}: {:?}",
                r.stop
            ),
        }
        // The next writer appends over the torn record and the log goes on.
        let mut w = writer(d, 1);
        w.append_delta(b"next").unwrap();
        w.append_delta(b"and next").unwrap();
        h.push(b"next".to_vec());
        h.push(b"and next".to_vec());
        let r = recover(d);
        assert_eq!(history(&r), h, "{tear:?} then appends");
        assert_eq!(r.stop, ReplayStop::Unwritten);
    }
}

/// A committed record rots; the next writer continues at it. The records
/// that followed the rotten one must not come back after the rewritten one,
/// although they carry the right snapshot, epoch and sequences: the CRC
/// chain rejects them.
pub fn rewritten_record_does_not_resurrect_the_old_tail<D: Disk>(d: &D) {
    fresh(d);
    let mut w = writer(d, 1);
    for p in [b"a", b"b", b"c", b"d"] {
        w.append_delta(p).unwrap();
    }
    drop(w);
    let second = small_layout().delta_offset(0) + BLOCK as u64;
    flip_byte(&mut d.io(), second, 64);
    let r = recover(d);
    assert_eq!(history(&r), vec![b"a".to_vec()]);
    assert!(matches!(r.stop, ReplayStop::Torn(_)), "{:?}", r.stop);
    let mut w = writer(d, 1);
    w.append_delta(b"x").unwrap();
    let r = recover(d);
    assert_eq!(history(&r), vec![b"a".to_vec(), b"x".to_vec()]);
    assert_eq!(r.stop, ReplayStop::BrokenChain { sequence: 3 });
}

/// The read-only inspection used by the tool reports each problem in a line.
pub fn inspection_reports_every_problem<D: Disk>(d: &D) {
    use sr_heartbeat::metadata::inspect;
    // Blank device: not formatted.
    let mut io = d.io();
    let blank = io.alloc(2 * BLOCK).unwrap();
    io.write(0, blank, IoClass::FormatWrite).unwrap();
    let i = inspect(&mut d.io()).unwrap();
    assert!(
        i.problems[0].contains("not a metadata volume"),
        "{:?}",
        i.problems
    );
    assert_eq!(i.log, None);
    // Healthy.
    fresh(d);
    let mut w = writer(d, 2);
    for p in [b"a", b"b", b"c"] {
        w.append_delta(p).unwrap();
    }
    drop(w);
    let i = inspect(&mut d.io()).unwrap();
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    let log = i.log.clone().unwrap();
    assert_eq!(
        (log.deltas, log.last_seq, log.epoch, log.clean),
        (3, 3, 2, true)
    );
    assert_eq!(i.layout, Some(small_layout()));
    assert!(serde_json::to_string(&i).unwrap().contains("\"deltas\":3"));
    // A rotten record and a rotten superblock slot: two problems.
    flip_byte(
        &mut d.io(),
        small_layout().delta_offset(0) + BLOCK as u64,
        64,
    );
    let older = 1 - i.in_force.unwrap();
    flip_byte(&mut d.io(), SUPERBLOCK_OFFSETS[older], 40);
    let i = inspect(&mut d.io()).unwrap();
    assert_eq!(i.problems.len(), 2, "{:?}", i.problems);
    assert!(
        i.problems
            .iter()
            .any(|p| p.contains("torn or corrupt record"))
    );
    assert!(
        i.problems
            .iter()
            .any(|p| p.contains(&format!("slot {older}")))
    );
    assert_eq!(i.log.unwrap().deltas, 1);
}

pub fn crash_during_snapshot_keeps_the_old_state<D: Disk>(d: &D) {
    let sector = d.io().sector_size();
    // (writes that land before the crash, how the crashing one lands):
    // the snapshot write itself torn, or the snapshot complete and the
    // superblock flip lost or torn.
    for (after, tear) in [
        (0, Tear::Nothing),
        (0, Tear::Prefix(BLOCK)),
        (0, Tear::PrefixThenGarbage(sector)),
        (1, Tear::Nothing),
        (1, Tear::Prefix(512)),
        (1, Tear::PrefixThenGarbage(512)),
    ] {
        fresh(d);
        let mut w = faulty_writer(d, 1);
        let mut h = Vec::new();
        for i in 0..3 {
            let p = payload(i, 700);
            w.append_delta(&p).unwrap();
            h.push(p);
        }
        w.write_snapshot(&encode_history(&h)).unwrap();
        for i in 3..5 {
            let p = payload(i, 700);
            w.append_delta(&p).unwrap();
            h.push(p);
        }
        crash_next(&mut w, after, tear);
        assert!(w.write_snapshot(&encode_history(&h)).is_err());
        let r = recover(d);
        assert_eq!(history(&r), h, "crash after {after} writes, {tear:?}");
        // The old snapshot (after 3 deltas) is still the committed one.
        assert_eq!(
            r.snapshot_base_seq, 3,
            "crash after {after} writes, {tear:?}"
        );
    }
}

pub fn torn_superblock_falls_back<D: Disk>(d: &D) {
    fresh(d);
    let mut w = faulty_writer(d, 1);
    w.append_delta(b"one").unwrap();
    let before = recover(d);
    crash_next(&mut w, 1, Tear::PrefixThenGarbage(512));
    assert!(w.write_snapshot(b"").is_err());
    // The writer is poisoned: its superblock write may or may not have landed.
    assert!(matches!(w.append_delta(b"x"), Err(MetaError::Poisoned)));
    let r = recover(d);
    assert_eq!(history(&r), history(&before));
    assert_eq!(r.superblock, before.superblock);
    assert!(
        matches!(
            r.other_slot_error,
            Some(DecodeError::ChecksumMismatch { .. })
        ),
        "{:?}",
        r.other_slot_error
    );
    // A new writer replaces the torn slot with the next generation.
    let mut w = writer(d, 1);
    w.write_snapshot(&encode_history(&[b"one".to_vec()]))
        .unwrap();
    let r = recover(d);
    assert_eq!(r.other_slot_error, None);
    assert_eq!(history(&r), vec![b"one".to_vec()]);
}

fn flip_byte<I: MetaIo>(io: &mut I, offset: u64, at: usize) {
    let mut b = io.read(offset, BLOCK, IoClass::Read).unwrap();
    let mut w = io.alloc(BLOCK).unwrap();
    w.copy_from_slice(&b);
    w[at] ^= 0x10;
    b[at] ^= 0x10;
    io.write(offset, w, IoClass::FormatWrite).unwrap();
}

pub fn corrupt_newest_superblock_falls_back<D: Disk>(d: &D) {
    fresh(d);
    let mut w = writer(d, 1);
    let mut h = vec![b"a".to_vec(), b"b".to_vec()];
    for p in &h {
        w.append_delta(p).unwrap();
    }
    w.write_snapshot(&encode_history(&h)).unwrap();
    let at_snapshot = h.clone();
    w.append_delta(b"c").unwrap();
    h.push(b"c".to_vec());
    let r = recover(d);
    assert_eq!(history(&r), h);
    // Rot in the newest superblock: the older one (before the snapshot) wins,
    // with the state it commits: the deltas of the previous half, not the
    // ones chained to the snapshot it does not know.
    let newest = r.superblock.slot();
    flip_byte(&mut d.io(), SUPERBLOCK_OFFSETS[newest], 40);
    let r = recover(d);
    assert_eq!(history(&r), at_snapshot);
    assert_eq!(r.epoch, 1);
    assert!(matches!(
        r.other_slot_error,
        Some(DecodeError::ChecksumMismatch { .. })
    ));
    // Both corrupt: a clear error, not a guess.
    flip_byte(&mut d.io(), SUPERBLOCK_OFFSETS[1 - newest], 40);
    assert!(matches!(
        MetadataVolume::open(d.io()),
        Err(MetaError::NoValidSuperblock { .. })
    ));
}

pub fn stale_epoch_writer_is_refused_and_its_records_ignored<D: Disk>(d: &D) {
    fresh(d);
    drop(writer(d, 5));
    match MetadataVolume::open(d.io()).unwrap().into_writer(4) {
        Err(MetaError::StaleEpoch {
            mine: 4,
            on_disk: 5,
        }) => {}
        other => panic!("expected StaleEpoch, got {:?}", other.err()),
    }
    // Old master A (epoch 5) and new master B (epoch 6) on the same disk.
    let mut a = writer(d, 5);
    a.append_delta(b"a1").unwrap();
    a.append_delta(b"a2").unwrap();
    let (mut b, seen) = MetadataVolume::open(d.io())
        .unwrap()
        .into_writer(6)
        .unwrap();
    assert_eq!(history(&seen), vec![b"a1".to_vec(), b"a2".to_vec()]);
    assert_eq!(seen.epoch, 6);
    // A does not know yet and appends after B took over: ignored on replay.
    a.append_delta(b"a3 (stale)").unwrap();
    let r = recover(d);
    assert_eq!(history(&r), vec![b"a1".to_vec(), b"a2".to_vec()]);
    assert_eq!(
        r.stop,
        ReplayStop::StaleEpoch {
            sequence: 3,
            epoch: 5,
            newer: 6
        }
    );
    b.append_delta(b"b1").unwrap();
    // A's next record (epoch 5 after B's epoch 6 record) is ignored too.
    a.append_delta(b"a4 (stale)").unwrap();
    let r = recover(d);
    assert_eq!(
        history(&r),
        vec![b"a1".to_vec(), b"a2".to_vec(), b"b1".to_vec()]
    );
    assert!(!r.stop.is_clean(), "{:?}", r.stop);
    // A's snapshot is refused, and so is everything A tries afterwards.
    assert!(matches!(
        a.write_snapshot(b"x"),
        Err(MetaError::StaleEpoch {
            mine: 5,
            on_disk: 6
        })
    ));
    assert!(matches!(
        a.append_delta(b"x"),
        Err(MetaError::StaleEpoch {
            mine: 5,
            on_disk: 6
        })
    ));
    b.append_delta(b"b2").unwrap();
    let r = recover(d);
    assert_eq!(history(&r).len(), 4);
    assert_eq!(r.stop, ReplayStop::Unwritten);
}

pub fn delta_full_then_snapshot<D: Disk>(d: &D) {
    fresh(d);
    let mut w = writer(d, 1);
    let capacity = small_layout().delta_capacity();
    let mut h = Vec::new();
    let mut n = 0;
    loop {
        let p = payload(n, 4000);
        match w.append_delta(&p) {
            Ok(_) => h.push(p),
            Err(MetaError::DeltaFull {
                needed_bytes,
                free_bytes,
            }) => {
                assert_eq!((needed_bytes, free_bytes), (4096, 0));
                break;
            }
            Err(e) => panic!("{e}"),
        }
        n += 1;
        assert!(n <= 1000, "never full");
    }
    assert_eq!(n as u64, capacity / 4096);
    let r = recover(d);
    assert_eq!(history(&r), h);
    assert_eq!(r.stop, ReplayStop::AreaEnd);
    w.write_snapshot(&encode_history(&h)).unwrap();
    assert_eq!(w.free_delta_bytes(), capacity);
    for i in 0..3 {
        let p = payload(1000 + i, 10);
        w.append_delta(&p).unwrap();
        h.push(p);
    }
    assert_eq!(history(&recover(d)), h);
}
