//! The property every decoder must have, one function per fuzz target:
//! decoding arbitrary bytes never panics, and when it succeeds, encoding the
//! value and decoding again gives the same value (a pair check).
//!
//! Shared word for word by the cargo-fuzz targets (`fuzz_targets/*.rs`) and by
//! `sr-heartbeat/tests/fuzz_corpus_replay.rs`, which replays the committed
//! corpora in ordinary CI without cargo-fuzz. Depends only on `sr_heartbeat`
//! and `uuid`.

use sr_heartbeat::metadata::layout::BLOCK;
use sr_heartbeat::metadata::record::DeltaRecord;
use sr_heartbeat::metadata::replay::{ReplayContext, replay_slice};
use sr_heartbeat::metadata::snapshot::{decode_snapshot, encode_snapshot, snapshot_disk_bytes};
use sr_heartbeat::metadata::superblock::Superblock;
use sr_heartbeat::srlabel::{Content, SrLabel, classify};
use sr_heartbeat::statefile::{Header, PoolBlock, Slot};
use uuid::Uuid;

/// Pool generation the slot and pool-block targets decode against (the
/// committed seeds are encoded with it, so fuzzing starts past the checks).
pub const FUZZ_GENERATION: Uuid = Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0001);

/// The committed state the replay target replays against.
pub fn fuzz_replay_context() -> ReplayContext {
    ReplayContext {
        volume_uuid: Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0002),
        snapshot_id: 4,
        snapshot_header_crc: 0x0bad_cafe,
        snapshot_base_seq: 100,
        snapshot_epoch: 2,
        volume_epoch: 3,
        epoch_start_seq: 104,
    }
}

/// Largest input a check looks at: bounds the work per input (the replay
/// target in particular) so fuzzing stays fast.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

fn bounded(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT_BYTES)]
}

/// `Slot::decode`, at the position named by the slot's own index field
/// (modulo 64, so the index check both passes and fails).
pub fn check_slot(data: &[u8]) {
    let data = bounded(data);
    let position = if data.len() >= 12 {
        u16::from_le_bytes([data[10], data[11]]) % 64
    } else {
        0
    };
    if let Ok(slot) = Slot::decode(data, FUZZ_GENERATION, position) {
        let again = slot.to_bytes(FUZZ_GENERATION);
        assert_eq!(
            Slot::decode(&again, FUZZ_GENERATION, position).as_ref(),
            Ok(&slot),
            "slot pair check"
        );
    }
}

/// `PoolBlock::decode`.
pub fn check_pool_block(data: &[u8]) {
    let data = bounded(data);
    if let Ok(pool) = PoolBlock::decode(data, FUZZ_GENERATION) {
        let again = pool.to_bytes(FUZZ_GENERATION);
        assert_eq!(
            PoolBlock::decode(&again, FUZZ_GENERATION).as_ref(),
            Ok(&pool),
            "pool block pair check"
        );
    }
}

/// `Header::decode` (the statefile header).
pub fn check_header(data: &[u8]) {
    let data = bounded(data);
    if let Ok(h) = Header::decode(data) {
        assert_eq!(
            Header::decode(&h.to_bytes()).as_ref(),
            Ok(&h),
            "statefile header pair check"
        );
    }
}

/// `Superblock::decode`.
pub fn check_superblock(data: &[u8]) {
    let data = bounded(data);
    if let Ok(sb) = Superblock::decode(data) {
        assert_eq!(
            Superblock::decode(&sb.to_bytes()).as_ref(),
            Ok(&sb),
            "superblock pair check"
        );
    }
}

/// The block SR label: `SrLabel::decode` of one block (pair check), and
/// `classify` of the whole input (a label it finds is the newest slot's).
pub fn check_sr_label(data: &[u8]) {
    let data = bounded(data);
    if let Ok(label) = SrLabel::decode(data) {
        assert_eq!(
            SrLabel::decode(&label.to_bytes()).as_ref(),
            Ok(&label),
            "SR label pair check"
        );
        // The table operations keep a decoded table valid: freeing a
        // volume and placing it back gives the same label; a first-fit
        // allocation in the freed room stays valid and encodes.
        if let Some(first) = label.volumes.first().copied() {
            let mut l = label.clone();
            assert_eq!(l.free(first.uuid), Ok(first), "SR label free");
            assert!(l.validate().is_ok(), "SR label invalid after free");
            let mut back = l.clone();
            assert_eq!(back.place(first), Ok(()), "SR label place back");
            assert_eq!(back, label, "SR label free + place");
            if let Ok(v) = l.allocate(first.uuid, first.kind, first.size) {
                assert!(v.offset <= first.offset, "first fit skipped a gap");
                assert_eq!(
                    SrLabel::decode(&l.to_bytes()).as_ref(),
                    Ok(&l),
                    "SR label after allocate"
                );
            }
        }
    }
    if let Content::Label(label) = classify(data) {
        assert!(
            label.validate().is_ok(),
            "classify returned an invalid label"
        );
    }
}

/// `decode_snapshot` (header block + data), with the input's data length as
/// the capacity.
pub fn check_snapshot(data: &[u8]) {
    let data = bounded(data);
    let capacity = data.len().saturating_sub(BLOCK) as u64;
    if let Ok((h, crc, bytes)) = decode_snapshot(data, capacity) {
        let mut out = vec![0u8; snapshot_disk_bytes(h.data_len) as usize];
        let (h2, crc2) = encode_snapshot(
            h.volume_uuid,
            h.snapshot_id,
            h.half,
            h.epoch,
            h.base_seq,
            bytes,
            &mut out,
        );
        assert_eq!((&h2, crc2), (&h, crc), "snapshot header pair check");
        let (h3, crc3, bytes3) = decode_snapshot(&out, capacity).expect("re-encoded snapshot");
        assert_eq!((h3, crc3, bytes3), (h, crc, bytes), "snapshot pair check");
    }
}

/// `DeltaRecord::decode`.
pub fn check_delta_record(data: &[u8]) {
    let data = bounded(data);
    if let Ok((rec, crc, used)) = DeltaRecord::decode(data) {
        assert!(
            used as usize <= data.len(),
            "record claims more than the input"
        );
        let (again, crc2) = rec.to_bytes();
        assert_eq!(crc2, crc, "record crc pair check");
        assert_eq!(
            DeltaRecord::decode(&again),
            Ok((rec, crc, used)),
            "record pair check"
        );
    }
}

/// `replay_slice` over the input as a delta area: the accepted records form a
/// contiguous sequence after the snapshot, and writing exactly those records
/// again replays to the same deltas.
pub fn check_replay(data: &[u8]) {
    let data = bounded(data);
    let ctx = fuzz_replay_context();
    let r = replay_slice(&ctx, data);
    assert!(r.end_offset as usize <= data.len(), "end beyond the area");
    let mut area = vec![0u8; data.len() - data.len() % BLOCK];
    let (mut off, mut prev) = (0usize, ctx.snapshot_header_crc);
    for (i, d) in r.deltas.iter().enumerate() {
        assert_eq!(
            d.sequence,
            ctx.snapshot_base_seq + 1 + i as u64,
            "sequence order"
        );
        let rec = DeltaRecord {
            volume_uuid: ctx.volume_uuid,
            snapshot_id: ctx.snapshot_id,
            epoch: d.epoch,
            sequence: d.sequence,
            prev_crc: prev,
            payload: d.payload.clone(),
        };
        let (bytes, crc) = rec.to_bytes();
        area[off..off + bytes.len()].copy_from_slice(&bytes);
        off += bytes.len();
        prev = crc;
    }
    assert_eq!(
        off as u64, r.end_offset,
        "accepted records fill up to end_offset"
    );
    let again = replay_slice(&ctx, &area);
    assert_eq!(again.deltas, r.deltas, "replay pair check");
    assert_eq!(again.last_crc, r.last_crc, "replay chain pair check");
}

/// A decoder check: panics on a violated property.
pub type Check = fn(&[u8]);

/// Every target: (name = the fuzz target and corpus directory, check).
pub const TARGETS: &[(&str, Check)] = &[
    ("header", check_header),
    ("slot", check_slot),
    ("pool_block", check_pool_block),
    ("superblock", check_superblock),
    ("snapshot", check_snapshot),
    ("delta_record", check_delta_record),
    ("replay", check_replay),
    ("sr_label", check_sr_label),
];
