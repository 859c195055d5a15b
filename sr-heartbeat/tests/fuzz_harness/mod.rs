//! The corpus-replay harness shared by the fuzz replay tests of
//! `sr_heartbeat` (on-disk decoders) and `xha` (network and socket
//! decoders); each includes this file with `#[path]` and brings its own
//! targets, seed generators and mutations.
//!
//! - [`replay_corpora`]: every committed corpus file through its check;
//! - [`mutations_never_panic`]: every seed, then 300 stacked deterministic
//!   mutations of it, through its check;
//! - [`check_seed_files`]: the committed `seed-N` files equal what the
//!   generators make now (`REGENERATE_FUZZ_SEEDS=1` rewrites them).

use std::path::Path;

/// A fuzz check: panics when a property of the decoder is broken.
pub type Check = fn(&[u8]);

/// A small deterministic generator (xorshift64*), so the mutations are the
/// same on every run and a failure names its input by (target, seed, round).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What a crate's mutations add to the common ones.
pub struct Mutations {
    /// Integers written (little-endian) over 8 bytes at a random place.
    pub interesting: [u64; 6],
    /// Most bytes appended by one extension.
    pub max_extend: usize,
    /// The crate's own mutation (e.g. zero whole sectors, insert a token).
    pub special: fn(&mut Rng, &mut Vec<u8>),
}

/// One mutation of `input`: bit flip, byte set, interesting integer,
/// truncation, extension, the crate's special mutation, or bytes copied
/// elsewhere.
pub fn mutate_with(m: &Mutations, rng: &mut Rng, input: &[u8]) -> Vec<u8> {
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
            let val = m.interesting[rng.below(m.interesting.len())];
            let end = (i + 8).min(v.len());
            v[i..end].copy_from_slice(&val.to_le_bytes()[..end - i]);
        }
        3 => v.truncate(rng.below(v.len())),
        4 => v.extend(std::iter::repeat_n(
            rng.next() as u8,
            rng.below(m.max_extend),
        )),
        5 => (m.special)(rng, &mut v),
        _ => {
            let from = rng.below(v.len());
            let to = rng.below(v.len());
            let n = (rng.below(16) + 1).min(v.len() - from).min(v.len() - to);
            v.copy_within(from..from + n, to);
        }
    }
    v
}

/// Every file of `corpus/<target>/` through the target's check; each
/// corpus must hold at least one file.
pub fn replay_corpora(targets: &[(&str, Check)], corpus: &Path) {
    for (name, check) in targets {
        let dir = corpus.join(name);
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

/// Every seed of every target, then 300 stacked mutations of it (starting
/// again from the seed every 8 rounds), through the target's check.
pub fn mutations_never_panic(
    targets: &[(&str, Check)],
    seeds: impl Fn(&str) -> Vec<Vec<u8>>,
    mutate: fn(&mut Rng, &[u8]) -> Vec<u8>,
) {
    for (name, check) in targets {
        for (s, seed) in seeds(name).iter().enumerate() {
            check(seed);
            let mut rng =
                Rng(0x9e37_79b9_7f4a_7c15 ^ ((s as u64 + 1) * 0x1000_0001) ^ name.len() as u64);
            let mut input = seed.clone();
            for round in 0..300 {
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

/// The committed `corpus/<target>/seed-N` files equal the generators'
/// output; with `REGENERATE_FUZZ_SEEDS` set, rewrite them instead.
pub fn check_seed_files(
    targets: &[(&str, Check)],
    corpus: &Path,
    seeds: impl Fn(&str) -> Vec<Vec<u8>>,
) {
    let regenerate = std::env::var_os("REGENERATE_FUZZ_SEEDS").is_some();
    for (name, _) in targets {
        let dir = corpus.join(name);
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
