//! The randomized fault campaign (issue 16, docs/lab.md): for each seed, a
//! lab pool of real agents with process VMs running the stamp workload,
//! driven from outside by the seed's schedule (power cuts, the master's
//! included; freezes of `xhad` or of a whole host; agent kills; network
//! partitions and one-way links (heartbeats and the agents' host-to-host
//! traffic), dropped by nftables on loopback; API
//! operations in between), every fault healed, then checked: no VM ran on
//! two hosts at once, no two masters in one epoch, every acknowledged
//! change survived, no unprotected VM started by HA, no best-effort VM
//! booted more than its starts plus three per host failure it suffered,
//! every protected VM running again at the end. Restart times after power
//! cuts are reported (median, max, and the ones beyond T + 4 s + the
//! allowance).
//!
//! CI runs `XHA_CAMPAIGN_SEEDS` seeds (default 2) from
//! `XHA_CAMPAIGN_SEED_START` (default 1). Also: `XHA_CAMPAIGN_HOSTS`
//! (default 3; 3 to 7), `XHA_CAMPAIGN_FAULTS` (default 2),
//! `XHA_CAMPAIGN_T` (default 10 s, the least HA accepts),
//! `XHA_CAMPAIGN_NET` (default 1: network faults, when nftables can be
//! used; 0: none, and each seed gives the schedule of the generator before
//! network faults), `XHA_CAMPAIGN_STORAGE` (default 1: per-host storage
//! errors, hangs and slowness, each host reaching the SR through a
//! `faultfs` view of its own, when FUSE and mount namespaces can be used;
//! 0: none, and each seed gives the schedule of the generator before
//! storage faults), `XHA_CAMPAIGN_LOGS` (where a failing seed's logs go;
//! default the temporary directory). A failing seed prints the command
//! that replays it.

use std::time::Duration;

use ha_tests::campaign::by_hand::{Needs, unavailable};
use ha_tests::campaign::run::{RunSpec, run};
use ha_tests::campaign::schedule::Params;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_fault_schedules_keep_every_vm_single_and_the_pool_consistent() {
    let bin_dir = xha_lab::workspace_build::build_workspace_bins(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_ha-sim"),
    );
    let seeds: u64 = env_or("XHA_CAMPAIGN_SEEDS", 2);
    let start: u64 = env_or("XHA_CAMPAIGN_SEED_START", 1);
    let hosts: usize = env_or("XHA_CAMPAIGN_HOSTS", 3);
    let faults: usize = env_or("XHA_CAMPAIGN_FAULTS", 2);
    let t_s: u64 = env_or("XHA_CAMPAIGN_T", 10);
    // Network faults need nftables, storage faults FUSE (both root):
    // without, the other faults.
    let wanted = |var: &str, needs: Needs, what: &str| {
        env_or(var, 1u8) != 0
            && match unavailable(needs) {
                None => true,
                Some(why) => {
                    println!("CAMPAIGN no {what} faults: {why}");
                    false
                }
            }
    };
    let network = wanted("XHA_CAMPAIGN_NET", Needs::Network, "network");
    let storage = wanted("XHA_CAMPAIGN_STORAGE", Needs::Storage, "storage");
    assert!((3..=7).contains(&hosts), "XHA_CAMPAIGN_HOSTS: 3 to 7");
    let logs = std::env::var_os("XHA_CAMPAIGN_LOGS")
        .map_or_else(|| std::env::temp_dir().join("xha-campaign"), Into::into);
    let params = Params {
        hosts,
        vms: 5,
        protected: 2,
        best_effort: 1,
        t_s,
        faults,
        network,
        storage,
    };
    let mut failed = Vec::new();
    let mut took = Vec::new();
    for seed in start..start + seeds {
        let spec = RunSpec {
            seed,
            params: params.clone(),
            bin_dir: bin_dir.clone(),
            logs_on_failure: Some(logs.clone()),
        };
        let replay = format!(
            "XHA_CAMPAIGN_SEED_START={seed} XHA_CAMPAIGN_SEEDS=1 XHA_CAMPAIGN_HOSTS={hosts} XHA_CAMPAIGN_FAULTS={faults} XHA_CAMPAIGN_T={t_s} XHA_CAMPAIGN_NET={} XHA_CAMPAIGN_STORAGE={} cargo nextest run -p ha_tests --test fault_campaign --no-capture",
            u8::from(network),
            u8::from(storage)
        );
        match run(&spec) {
            Ok(o) => {
                println!(
                    "CAMPAIGN seed={seed} hosts={hosts} T={t_s} faults={} net_cuts={} storage_faults={} steps={} took_s={:.1} verdict: {}",
                    o.faults,
                    o.network_cuts,
                    o.storage_faults,
                    o.steps,
                    o.took.as_secs_f64(),
                    o.verdict.summary()
                );
                for d in o.verdict.details() {
                    println!("  seed={seed} {d}");
                }
                took.push(o.took);
                if o.verdict.failed() {
                    println!(
                        "CAMPAIGN seed={seed} FAILED; logs in {}; replay: {replay}",
                        logs.join(format!("seed-{seed}")).display()
                    );
                    failed.push(seed);
                }
            }
            Err(e) => {
                println!(
                    "CAMPAIGN seed={seed} hosts={hosts} ERROR (the run could not go on): {e}; replay: {replay}"
                );
                failed.push(seed);
            }
        }
    }
    took.sort();
    println!(
        "CAMPAIGN seeds={seeds} from {start} failed={failed:?} took_median_s={:.1} took_max_s={:.1}",
        took.get(took.len() / 2)
            .copied()
            .unwrap_or(Duration::ZERO)
            .as_secs_f64(),
        took.last().copied().unwrap_or(Duration::ZERO).as_secs_f64()
    );
    assert!(failed.is_empty(), "failing seeds: {failed:?}");
}
