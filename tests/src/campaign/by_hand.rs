//! Schedules written by hand (`tests/tests/switch_faults.rs`,
//! `tests/tests/storage_faults.rs`): one schedule on a fresh 3-host pool
//! with the campaign's runner and checks, and what the tests read from
//! its outcome.
//!
//! Host indices: 0 is the first master (`host-1`); VM `i` starts on host
//! `i % 3` (VM 0 protected, 1 protected, 2 best-effort, 3 and 4
//! unprotected).

use std::path::PathBuf;

use super::run::{Outcome, RunSpec, run_schedule};
use super::schedule::{Action, Params, Schedule, Step};

/// HA's base timeout: the least `pool.enable_ha` accepts.
pub const T_S: u64 = 10;

/// What a schedule needs of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// nftables (root): network faults.
    Network,
    /// FUSE and root (the hosts' mount namespaces): storage faults.
    Storage,
}

#[must_use]
pub fn step(at_ms: u64, action: Action) -> Step {
    Step { at_ms, action }
}

/// Why this machine cannot play schedules that need `needs`, if it cannot.
#[must_use]
pub fn unavailable(needs: Needs) -> Option<String> {
    match needs {
        Needs::Network => crate::nft::unavailable(),
        Needs::Storage => match crate::faultfs::fuse_available() {
            Err(why) => Some(why),
            Ok(()) if !nix::unistd::Uid::effective().is_root() => {
                Some("not root (the hosts' mount namespaces)".into())
            }
            Ok(()) => None,
        },
    }
}

/// Plays `steps` (faults with their heals) on a fresh 3-host pool, prints
/// the verdict and asserts it passed; `None` (printed) when the machine
/// cannot. `bin_dir`: where the workspace's binaries are
/// (`xha_lab::workspace_build::build_workspace_bins`).
pub fn play(name: &str, needs: Needs, bin_dir: PathBuf, steps: Vec<Step>) -> Option<Outcome> {
    if let Some(why) = unavailable(needs) {
        println!("skipped: {name}: {why}");
        return None;
    }
    let spec = RunSpec {
        seed: 0,
        params: Params {
            hosts: 3,
            vms: 5,
            protected: 2,
            best_effort: 1,
            t_s: T_S,
            faults: 1,
            network: needs == Needs::Network,
            storage: needs == Needs::Storage,
        },
        bin_dir,
        logs_on_failure: Some(
            std::env::var_os("XHA_CAMPAIGN_LOGS")
                .map_or_else(|| std::env::temp_dir().join("xha-campaign"), PathBuf::from)
                .join(name),
        ),
    };
    let schedule = Schedule { seed: 0, steps };
    let o = run_schedule(&spec, &schedule).unwrap_or_else(|e| panic!("{name}: the run: {e}"));
    println!(
        "BY-HAND {name} took_s={:.1} net_cuts={} storage_faults={} verdict: {}",
        o.took.as_secs_f64(),
        o.network_cuts,
        o.storage_faults,
        o.verdict.summary()
    );
    for d in o.verdict.details() {
        println!("  {name} {d}");
    }
    assert!(!o.verdict.failed(), "{name}: {}", o.verdict.summary());
    Some(o)
}

/// The hosts that fenced, by name.
#[must_use]
pub fn fenced(o: &Outcome) -> Vec<String> {
    o.verdict
        .notes
        .iter()
        .filter_map(|n| Some(n.split_once(" fenced (xhad gone)")?.0.trim().to_owned()))
        .collect()
}

/// The renames the pool acknowledged: a refused or unanswered call is
/// followed by the runner's note naming `VM.set_name_label`.
#[must_use]
pub fn acknowledged_renames(o: &Outcome) -> Vec<String> {
    let notes = &o.verdict.notes;
    notes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let name = n.split_once("Rename {")?.1.split('"').nth(1)?.to_owned();
            let refused = notes
                .get(i + 1)
                .is_some_and(|next| next.contains("VM.set_name_label"));
            (!refused).then_some(name)
        })
        .collect()
}

/// A rename of VM 1 to `during-<tag>-<n>` at `at_ms`.
#[must_use]
pub fn rename(at_ms: u64, tag: &str, n: usize) -> Step {
    step(
        at_ms,
        Action::Rename {
            vm: 1,
            name: format!("during-{tag}-{n}"),
        },
    )
}
