//! Replays the committed fuzz corpus (`fuzz/corpus/stamp_block/`) and
//! deterministic mutations of valid records through the check the cargo-fuzz
//! target runs, so CI checks the decoder even without cargo-fuzz.
//! `REGENERATE_FUZZ_SEEDS=1 cargo test -p xapi_vm --test fuzz_corpus_replay`
//! rewrites the `seed-*` files.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::PathBuf;

use uuid::Uuid;
use xapi_vm::stamp::StampRecord;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/stamp_block")
}

/// Seeds: the meaningful prefix of valid records (the fuzzer pads with zeros).
fn seeds() -> Vec<Vec<u8>> {
    let r = StampRecord {
        vm: Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888),
        host: "host-1".into(),
        boot: Uuid::from_u128(0x95cc_fe85_f72a_4dc0_9f04_d60f_9cc6_8275),
        seq: 16,
        time_ms: 1_796_324_167_627,
    };
    let max = StampRecord {
        host: "h".repeat(64),
        seq: u64::MAX,
        time_ms: u64::MAX,
        ..r.clone()
    };
    [r, max]
        .iter()
        .map(|r| {
            let b = r.encode().unwrap();
            let end = b.iter().position(|&x| x == b'\n').unwrap() + 1;
            b[..end].to_vec()
        })
        .collect()
}

#[test]
fn committed_seeds_match_and_the_corpus_replays() {
    let dir = corpus();
    if std::env::var_os("REGENERATE_FUZZ_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
        }
    }
    for (i, s) in seeds().iter().enumerate() {
        let committed = std::fs::read(dir.join(format!("seed-{i}"))).unwrap();
        assert_eq!(
            &committed, s,
            "seed-{i} is stale: regenerate (see the file's doc)"
        );
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        checks::check_stamp_block(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 2);
}

#[test]
fn mutations_of_valid_records_never_panic() {
    // A small deterministic generator (xorshift): flips, truncations, and
    // byte replacements across the record line.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in seeds() {
        for _ in 0..2000 {
            let mut m = seed.clone();
            match next() % 4 {
                0 => {
                    let i = (next() as usize) % m.len();
                    m[i] ^= 1 << (next() % 8);
                }
                1 => m.truncate((next() as usize) % m.len()),
                2 => {
                    let i = (next() as usize) % m.len();
                    m[i] = b" 0a-\n\x00Z9"[(next() % 8) as usize];
                }
                _ => m.extend_from_slice(b" 1"),
            }
            checks::check_stamp_block(&m);
        }
    }
}
