//! The planner on pools too big for the oracle: never below XenServer's
//! heuristics, strictly above them with one big VM among many small ones, and
//! sound where it can be checked constructively: for failure sets of the
//! reported size, the restart plan places every protected VM.

mod planner_support;

use planner_support::generator::{self, Shape};
use planner_support::*;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xapi_ha::model::Pool;
use xapi_ha::planner::{self, xenserver};

fn medium_pool(seed: u64) -> Pool {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let hosts = rng.gen_range(9..=24);
    let vms = rng.gen_range(30..=300);
    // Loads from comfortable to nearly full, so that small answers (where
    // XenServer enumerates failure sets) are covered too.
    let load = rng.gen_range(0.5..0.95);
    let mean = (60.0 * load * hosts as f64 / vms as f64).max(1.5);
    generator::pool(
        &mut rng,
        Shape {
            hosts,
            vms,
            host_gib: (32, 96),
            vm_gib: (1, 1 + (3.0 * (mean - 1.0)).round() as u64),
            odd: seed.is_multiple_of(3),
        },
    )
}

/// Random failure sets of size `n`, plus the hosts holding the most.
fn sample_sets(pool: &Pool, n: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let live = live_hosts(pool);
    let mut sets = Vec::new();
    for _ in 0..4 {
        let mut s = live.clone();
        s.shuffle(rng);
        s.truncate(n);
        sets.push(s);
    }
    let mut by_load = live.clone();
    by_load.sort_by_key(|&h| std::cmp::Reverse(must_place(pool, &[h]).len()));
    by_load.truncate(n);
    sets.push(by_load);
    sets
}

#[test]
fn never_below_xenserver_and_plans_back_the_answer() {
    let mut strictly_better = 0;
    let seeds = 0..150u64;
    for seed in seeds.clone() {
        let pool = medium_pool(seed);
        let ours = planner::max_host_failures(&pool);
        let xs = xenserver::max_host_failures(&pool);
        assert!(
            ours.max_host_failures >= xs,
            "seed {seed}: ours {} below XenServer {xs}",
            ours.max_host_failures
        );
        strictly_better += usize::from(ours.max_host_failures > xs);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        if ours.max_host_failures >= 0 {
            let n = ours.max_host_failures as usize;
            for set in sample_sets(&pool, n, &mut rng) {
                let uuids: Vec<_> = set.iter().map(|&h| pool.hosts[h].uuid).collect();
                let plan = planner::restart_plan(&pool, &uuids).expect("valid set");
                let unplaced = check_plan(&pool, &set, &plan);
                assert_eq!(
                    unplaced, 0,
                    "seed {seed}: {n} failures claimed, set {set:?} unplaced"
                );
            }
        }
        // The limiting set is named and has max + 1 hosts.
        if ours.max_host_failures < ours.live_hosts as i64 {
            assert_eq!(
                ours.limiting_failure_set.len() as i64,
                ours.max_host_failures + 1,
                "seed {seed}"
            );
        }
    }
    eprintln!("strictly above XenServer on {strictly_better} of 150 pools");
    assert!(strictly_better > 0);
}

/// One 64 GiB VM among hundreds of 1-4 GiB VMs on 256 GiB hosts. XenServer's
/// approximation counts every VM as 64 GiB: each host has 3 slots, so only a
/// few failures are tolerated; ours treats the big VM on its own.
#[test]
fn one_big_vm_among_many_small_beats_xenserver() {
    for (seed, hosts, vms) in [(1u64, 16usize, 500usize), (2, 24, 1000), (3, 40, 2000)] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pool = generator::one_big_among_small(&mut rng, hosts, vms);
        let ours = planner::max_host_failures(&pool);
        let xs = xenserver::max_host_failures(&pool);
        eprintln!(
            "{hosts} hosts, {vms} VMs: ours {} XenServer {xs}",
            ours.max_host_failures
        );
        assert!(
            ours.max_host_failures > xs + 3,
            "{hosts}x{vms}: ours {} vs {xs}",
            ours.max_host_failures
        );
        // Sound for the hosts holding the most, including the big VM's host.
        let big = pool
            .vms
            .iter()
            .find(|v| v.name == "big")
            .and_then(|v| v.resident_on);
        let mut set: Vec<usize> = indices(&pool, &[big.expect("big VM is resident")]);
        let mut others = live_hosts(&pool);
        others.retain(|h| !set.contains(h));
        others.sort_by_key(|&h| std::cmp::Reverse(must_place(&pool, &[h]).len()));
        set.extend(others.into_iter().take(ours.max_host_failures as usize - 1));
        let uuids: Vec<_> = set.iter().map(|&h| pool.hosts[h].uuid).collect();
        let plan = planner::restart_plan(&pool, &uuids).expect("valid set");
        assert_eq!(check_plan(&pool, &set, &plan), 0);
    }
}
