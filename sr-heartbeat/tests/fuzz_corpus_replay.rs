//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and a few
//! hundred deterministic mutations of valid encodings through the same checks
//! the cargo-fuzz targets run (`fuzz/src/checks.rs`), so CI checks every
//! decoder for panics and pair mismatches even without cargo-fuzz.
//!
//! `cargo test -p sr_heartbeat --test fuzz_corpus_replay -- --ignored regenerate`
//! rewrites the `seed-*` files of the corpora from [`seeds`].

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::PathBuf;

use sr_heartbeat::metadata::layout::Layout;
use sr_heartbeat::metadata::record::DeltaRecord;
use sr_heartbeat::metadata::snapshot::{encode_snapshot, snapshot_disk_bytes};
use sr_heartbeat::metadata::superblock::Superblock;
use sr_heartbeat::statefile::{Header, HostSet, Phase, PoolBlock, PoolState, Slot};
use uuid::Uuid;

use checks::{FUZZ_GENERATION, TARGETS, fuzz_replay_context};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
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

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "header" => header_seeds(),
        "slot" => slot_seeds(),
        "pool_block" => pool_block_seeds(),
        "superblock" => superblock_seeds(),
        "snapshot" => snapshot_seeds(),
        "delta_record" => delta_record_seeds(),
        "replay" => replay_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

/// A small deterministic generator (xorshift64*), so the mutations are the
/// same on every run and a failure names its input by (target, seed, round).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One mutation of `input`: bit flip, byte set, interesting integer,
/// truncation, extension, block zeroing, or a field copied elsewhere.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    if v.is_empty() {
        v.push(0);
    }
    match rng.below(7) {
        0 => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(v.len());
            v[i] = rng.next() as u8;
        }
        2 => {
            let i = rng.below(v.len().saturating_sub(8).max(1));
            let val = [0u64, 1, u64::from(u32::MAX), u64::MAX, 4096, 4097][rng.below(6)];
            let end = (i + 8).min(v.len());
            v[i..end].copy_from_slice(&val.to_le_bytes()[..end - i]);
        }
        3 => v.truncate(rng.below(v.len())),
        4 => v.extend(std::iter::repeat_n(rng.next() as u8, rng.below(9000))),
        5 => {
            let start = rng.below(v.len()) / 512 * 512;
            let end = (start + 512 * (1 + rng.below(8))).min(v.len());
            v[start..end].fill(0);
        }
        _ => {
            let from = rng.below(v.len());
            let to = rng.below(v.len());
            let n = (rng.below(16) + 1).min(v.len() - from).min(v.len() - to);
            v.copy_within(from..from + n, to);
        }
    }
    v
}

#[test]
fn committed_corpora_replay() {
    for (name, check) in TARGETS {
        let dir = corpus_dir(name);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("corpus {} unreadable: {e}", dir.display()));
        let mut n = 0;
        for e in entries {
            let path = e.expect("corpus entry").path();
            let bytes = std::fs::read(&path).expect("corpus file");
            println!("{name}: {}", path.display());
            check(&bytes);
            n += 1;
        }
        assert!(n > 0, "corpus {} is empty", dir.display());
    }
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    for (name, check) in TARGETS {
        let seeds = seeds(name);
        for (s, seed) in seeds.iter().enumerate() {
            check(seed);
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ ((s as u64 + 1) * 0x1000_0001) ^ name.len() as u64);
            let mut input = seed.clone();
            for round in 0..300 {
                // Stack mutations, starting again from the seed now and then.
                input = if round % 8 == 0 {
                    mutate(&mut rng, seed)
                } else {
                    mutate(&mut rng, &input)
                };
                let result = std::panic::catch_unwind(|| check(&input));
                assert!(result.is_ok(), "{name}: seed {s} round {round} panicked");
            }
        }
    }
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
    let regenerate = std::env::var_os("REGENERATE_FUZZ_SEEDS").is_some();
    for (name, _) in TARGETS {
        let dir = corpus_dir(name);
        if regenerate {
            std::fs::create_dir_all(&dir).expect("corpus dir");
        }
        for (i, seed) in seeds(name).iter().enumerate() {
            let path = dir.join(format!("seed-{i}"));
            if regenerate {
                std::fs::write(&path, seed).expect("seed file");
            } else {
                let on_disk = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("{}: {e} (regenerate the seeds)", path.display()));
                assert!(
                    on_disk == *seed,
                    "{} differs from its generator: set REGENERATE_FUZZ_SEEDS=1 after a deliberate format change",
                    path.display()
                );
            }
        }
    }
}
