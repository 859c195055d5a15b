//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and a few
//! hundred deterministic mutations of valid encodings through the same checks
//! the cargo-fuzz targets run (`fuzz/src/checks.rs`), so CI checks every
//! decoder for panics and pair mismatches even without cargo-fuzz.
//!
//! `REGENERATE_FUZZ_SEEDS=1 cargo test -p sr_heartbeat --test fuzz_corpus_replay
//! committed_seeds` rewrites the `seed-*` files of the corpora from [`seeds`].
//! The harness is shared with xha's replay test (`fuzz_harness/`).

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

#[path = "fuzz_harness/mod.rs"]
mod fuzz_harness;

use std::path::PathBuf;

use sr_heartbeat::metadata::layout::Layout;
use sr_heartbeat::metadata::record::DeltaRecord;
use sr_heartbeat::metadata::snapshot::{encode_snapshot, snapshot_disk_bytes};
use sr_heartbeat::metadata::superblock::Superblock;
use sr_heartbeat::statefile::{Header, HostSet, Phase, PoolBlock, PoolState, Slot};
use uuid::Uuid;

use checks::{FUZZ_GENERATION, TARGETS, fuzz_replay_context};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn slot_seeds() -> Vec<Vec<u8>> {
    let full = Slot {
        host_uuid: Uuid::from_u128(0xabc),
        host_index: 5,
        sequence: 991,
        heard: HostSet(0b1111_0111),
        seen: HostSet(0b0111_0111),
        liveset: HostSet(0b1111_1111),
        proposed: HostSet(0b0111_0111),
        lock_request: HostSet(0b10_0000),
        lock_grant: HostSet(0b10_0000),
        master_epoch: 7,
        fault_round: 3,
        phase: Phase::Deciding,
        excluded: false,
        starting: false,
        fence_request: true,
        statefile_access: true,
        status: "statefile latency 12 ms".into(),
        diag_time_ms: 1_763_000_000_000,
        // Fields added later keep their defaults: the seeds stay valid.
        ..Slot::default()
    };
    let mut fencing = full.clone();
    fencing.phase = Phase::Fencing;
    fencing.host_index = 63;
    fencing.status = "é".repeat(128);
    vec![
        Slot::default().to_bytes(FUZZ_GENERATION),
        full.to_bytes(FUZZ_GENERATION),
        fencing.to_bytes(FUZZ_GENERATION),
    ]
}

fn header_seeds() -> Vec<Vec<u8>> {
    [(4096, 64, 0), (512, 3, 1_763_000_000_000)]
        .into_iter()
        .map(|(sector_size, max_hosts, format_time_ms)| {
            Header {
                generation: FUZZ_GENERATION,
                sector_size,
                max_hosts,
                format_time_ms,
            }
            .to_bytes()
        })
        .collect()
}

fn pool_block_seeds() -> Vec<Vec<u8>> {
    [
        (PoolState::Init, None, 0),
        (PoolState::Active, Some(Uuid::from_u128(9)), 12),
        (
            PoolState::Invalid,
            Some(Uuid::from_u128(u128::MAX)),
            u64::MAX,
        ),
    ]
    .into_iter()
    .map(|(state, master, epoch)| {
        PoolBlock {
            state,
            master,
            master_epoch: epoch,
            update_seq: epoch / 2,
        }
        .to_bytes(FUZZ_GENERATION)
    })
    .collect()
}

fn superblock_seeds() -> Vec<Vec<u8>> {
    let sb = Superblock {
        volume_uuid: Uuid::from_u128(0x77),
        generation: 1,
        active_half: 0,
        epoch: 0,
        epoch_start_seq: 1,
        snapshot_id: 1,
        snapshot_base_seq: 0,
        layout: Layout::standard(),
    };
    let later = Superblock {
        generation: 42,
        active_half: 1,
        epoch: 9,
        epoch_start_seq: 300,
        snapshot_id: 40,
        snapshot_base_seq: 280,
        layout: Layout::for_volume(4 << 20).expect("4 MiB layout"),
        ..sb.clone()
    };
    vec![sb.to_bytes(), later.to_bytes()]
}

fn snapshot_seeds() -> Vec<Vec<u8>> {
    [&b""[..], b"{\"pool\":{}}", &[0x5a; 5000][..]]
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut out = vec![0u8; snapshot_disk_bytes(data.len() as u64) as usize];
            encode_snapshot(
                Uuid::from_u128(0x77),
                i as u64 + 1,
                (i % 2) as u8,
                i as u64,
                10 * i as u64,
                data,
                &mut out,
            );
            out
        })
        .collect()
}

/// A log as the fuzz replay context expects it: records (epoch, payload).
fn log(recs: &[(u64, Vec<u8>)], area_bytes: usize) -> Vec<u8> {
    let ctx = fuzz_replay_context();
    let mut area = vec![0u8; area_bytes];
    let (mut off, mut prev) = (0, ctx.snapshot_header_crc);
    for (i, (epoch, payload)) in recs.iter().enumerate() {
        let (bytes, crc) = DeltaRecord {
            volume_uuid: ctx.volume_uuid,
            snapshot_id: ctx.snapshot_id,
            epoch: *epoch,
            sequence: ctx.snapshot_base_seq + 1 + i as u64,
            prev_crc: prev,
            payload: payload.clone(),
        }
        .to_bytes();
        area[off..off + bytes.len()].copy_from_slice(&bytes);
        off += bytes.len();
        prev = crc;
    }
    area
}

fn delta_record_seeds() -> Vec<Vec<u8>> {
    vec![
        log(&[(2, b"set vm.1.power=running".to_vec())], 4096),
        log(&[(3, vec![0xee; 4100])], 8192),
        log(&[(3, vec![])], 4096),
    ]
}

fn replay_seeds() -> Vec<Vec<u8>> {
    let mut torn = log(
        &[(2, vec![1; 100]), (3, vec![2; 5000]), (3, vec![3])],
        20480,
    );
    torn[4096 + 4096..4096 + 8192].fill(0x33);
    vec![
        log(
            &[(2, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())],
            16384,
        ),
        // Epoch 2 at sequence 104 (epoch_start_seq): stale.
        log(
            &[
                (2, vec![]),
                (2, vec![]),
                (2, vec![]),
                (2, vec![]),
                (3, vec![]),
            ],
            24576,
        ),
        log(&[(3, vec![9; 9000])], 16384),
        torn,
    ]
}

fn sr_label_seeds() -> Vec<Vec<u8>> {
    use sr_heartbeat::srlabel::{SrLabel, VolumeKind};
    let empty = SrLabel::new(Uuid::from_u128(0x51), 64 << 20);
    let mut full = SrLabel::new(Uuid::from_u128(0x52), 1 << 40);
    full.allocate(Uuid::from_u128(1), VolumeKind::Statefile, 4 << 20)
        .expect("statefile");
    full.allocate(Uuid::from_u128(2), VolumeKind::Metadata, 256 << 20)
        .expect("metadata");
    for i in 0..40 {
        full.allocate(
            Uuid::from_u128(100 + i),
            VolumeKind::Disk,
            (i as u64 + 1) << 30,
        )
        .expect("disk");
    }
    // Both slots of a device, as `classify` sees them.
    let mut device = vec![0u8; 8192];
    device[..4096].copy_from_slice(&full.next().to_bytes());
    device[4096..].copy_from_slice(&full.to_bytes());
    vec![empty.to_bytes(), full.to_bytes(), device]
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "header" => header_seeds(),
        "slot" => slot_seeds(),
        "pool_block" => pool_block_seeds(),
        "superblock" => superblock_seeds(),
        "snapshot" => snapshot_seeds(),
        "delta_record" => delta_record_seeds(),
        "replay" => replay_seeds(),
        "sr_label" => sr_label_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

/// The common mutations, plus zeroing whole 512-byte sectors (a torn or
/// blank write).
fn mutate(rng: &mut fuzz_harness::Rng, input: &[u8]) -> Vec<u8> {
    #[expect(clippy::ptr_arg, reason = "the signature of Mutations::special")]
    fn zero_sectors(rng: &mut fuzz_harness::Rng, v: &mut Vec<u8>) {
        let start = rng.below(v.len()) / 512 * 512;
        let end = (start + 512 * (1 + rng.below(8))).min(v.len());
        v[start..end].fill(0);
    }
    let m = fuzz_harness::Mutations {
        interesting: [0, 1, u64::from(u32::MAX), u64::MAX, 4096, 4097],
        max_extend: 9000,
        special: zero_sectors,
    };
    fuzz_harness::mutate_with(&m, rng, input)
}

#[test]
fn committed_corpora_replay() {
    fuzz_harness::replay_corpora(TARGETS, &corpus_root());
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    fuzz_harness::mutations_never_panic(TARGETS, seeds, mutate);
}

#[test]
fn seeds_are_accepted_by_their_decoder() {
    // The seeds must reach past the checksum, or fuzzing starts from nothing.
    use sr_heartbeat::metadata::replay::replay_slice;
    for s in slot_seeds() {
        let pos = u16::from_le_bytes([s[10], s[11]]);
        assert!(Slot::decode(&s, FUZZ_GENERATION, pos).is_ok());
    }
    for s in header_seeds() {
        assert!(Header::decode(&s).is_ok());
    }
    for s in pool_block_seeds() {
        assert!(PoolBlock::decode(&s, FUZZ_GENERATION).is_ok());
    }
    for s in superblock_seeds() {
        assert!(Superblock::decode(&s).is_ok());
    }
    for s in &sr_label_seeds()[..2] {
        assert!(sr_heartbeat::srlabel::SrLabel::decode(s).is_ok());
    }
    for s in delta_record_seeds() {
        assert!(DeltaRecord::decode(&s).is_ok());
    }
    let replayed: Vec<usize> = replay_seeds()
        .iter()
        .map(|s| replay_slice(&fuzz_replay_context(), s).deltas.len())
        .collect();
    assert_eq!(replayed, vec![3, 3, 1, 1]);
}

/// The committed `seed-N` files are exactly what the generators above
/// produce, so the corpus cannot drift from the formats. After a deliberate
/// format change, rewrite them with `REGENERATE_FUZZ_SEEDS=1 cargo test -p
/// sr_heartbeat --test fuzz_corpus_replay committed_seeds`.
#[test]
fn committed_seeds_match_the_generators() {
    fuzz_harness::check_seed_files(TARGETS, &corpus_root(), seeds);
}
