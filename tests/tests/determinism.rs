//! Determinism is tested, not assumed: the same seed gives the same trace
//! (hash of every recorded event), and different seeds differ.

use ha_tests::sim::run::{RunOptions, run_seed};

#[test]
fn same_seed_same_trace() {
    let opts = RunOptions {
        max_hosts: 12,
        ..RunOptions::default()
    };
    let mut hashes = Vec::new();
    for seed in [3, 17, 4242, 90_001, 123_456_789] {
        let a = run_seed(seed, &opts);
        let b = run_seed(seed, &opts);
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed} replayed differently"
        );
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.fences, b.fences);
        assert_eq!(a.fault_to_shrink, b.fault_to_shrink);
        assert!(a.steps > 1_000, "seed {seed} hardly ran");
        hashes.push(a.trace_hash);
    }
    hashes.sort_unstable();
    hashes.dedup();
    assert_eq!(hashes.len(), 5, "different seeds gave the same trace");
}
