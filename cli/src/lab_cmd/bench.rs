//! `xe lab bench`: the lab's failover K times on fresh pools of N hosts
//! with M VMs at base timeout T, then the median and maximum of each time
//! (detection, fence, liveset shrink, the last protected VM running
//! again, and each VM's restart) beside XenServer's figure from its
//! formula. Each run's progress goes to stderr; the tables (Markdown, as
//! in the README and docs/lab.md) or, with `--json`, one object go to
//! stdout.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::{LabArgs, Setup, Summary, failure, run_once, secs};
use crate::error::CliError;

/// XenServer's margin after detection before the liveset shrinks: the
/// survivors wait for the lost host's watchdog, about max(watchdogs) -
/// min(timeouts) + max(intervals) (about 18 s; see docs/restart-engine.md,
/// "Measured").
pub(super) const XENSERVER_MARGIN_S: u64 = 18;
/// xapi reads the daemon's liveset every 20 s.
pub(super) const XENSERVER_POLL_S: u64 = 20;

/// One measured time over the runs.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Stat {
    pub median: f64,
    pub max: f64,
    /// Runs that measured it.
    pub n: usize,
}

/// The median and maximum of `values` (seconds), `None` when empty.
pub(super) fn stat(values: &[f64]) -> Option<Stat> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    };
    Some(Stat {
        median,
        max: v[n - 1],
        n,
    })
}

/// XenServer's figure for each row from its formula at base timeout `t`
/// (seconds), as text: detection after the heartbeat timeout T; the
/// liveset shrinks T + the margin later; xapi sees it (and marks the host
/// dead, and restarts its VMs) at its next poll of the liveset.
pub(super) fn xenserver(t: u64) -> [String; 4] {
    let shrink = t + XENSERVER_MARGIN_S;
    let polled = shrink + XENSERVER_POLL_S;
    [
        format!("{t} s (heartbeat timeout T)"),
        format!(
            "{shrink} to {polled} s (T + about {XENSERVER_MARGIN_S} s, then xapi's poll every {XENSERVER_POLL_S} s)"
        ),
        format!("{shrink} s (T + about {XENSERVER_MARGIN_S} s of watchdog margin)"),
        format!("{shrink} to {polled} s + the VM's start"),
    ]
}

/// Seconds of an optional duration.
fn s(d: Option<Duration>) -> Option<f64> {
    d.map(secs)
}

/// The four rows' values over the runs.
fn rows(runs: &[Summary]) -> [(&'static str, Vec<f64>); 4] {
    let col = |f: fn(&Summary) -> Option<Duration>| -> Vec<f64> {
        runs.iter().filter_map(|r| s(f(r))).collect()
    };
    [
        ("detection (a survivor's xhad)", col(|r| r.detected_after)),
        (
            "fence (the master declares the host dead)",
            col(|r| r.fenced_after),
        ),
        (
            "liveset shrink (every survivor's xhad)",
            col(|r| r.shrink_after),
        ),
        (
            "the last protected VM running again",
            col(|r| r.protected_running_again_after),
        ),
    ]
}

/// One VM over the runs.
struct VmRow {
    name: String,
    priority: String,
    order: i64,
    /// It was on the killed host (the plan is the same in every run).
    on_killed: bool,
    /// Its restart times, from the runs that restarted it.
    times: Vec<f64>,
}

fn vm_rows(runs: &[Summary]) -> Vec<VmRow> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .vms
        .iter()
        .enumerate()
        .map(|(i, vm)| VmRow {
            name: vm.name.clone(),
            priority: vm.priority.clone(),
            order: vm.order,
            on_killed: vm.host_before == first.killed,
            times: runs
                .iter()
                .filter_map(|r| s(r.vms.get(i)?.running_again_after))
                .collect(),
        })
        .collect()
}

fn fmt(st: Option<&Stat>, f: impl Fn(&Stat) -> f64) -> String {
    st.map_or_else(|| "-".to_owned(), |st| format!("{:.2} s", f(st)))
}

/// The build this `xe` is.
fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The Markdown tables.
pub(super) fn tables(opts: &LabArgs, runs: &[Summary]) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut t = format!(
        "{} runs: {} hosts, {} {} VMs, T = {} s; {} build, {cpus} CPUs\n\n",
        runs.len(),
        opts.hosts,
        opts.vms,
        opts.driver.as_str(),
        opts.timeout_s,
        profile(),
    );
    t += &format!(
        "| from the power cut to | median | max | runs | XenServer (formula, T = {} s) |\n|---|---:|---:|---:|---|\n",
        opts.timeout_s
    );
    for ((name, v), xs) in rows(runs).into_iter().zip(xenserver(opts.timeout_s)) {
        let st = stat(&v);
        t += &format!(
            "| {name} | {} | {} | {} | {xs} |\n",
            fmt(st.as_ref(), |s| s.median),
            fmt(st.as_ref(), |s| s.max),
            v.len()
        );
    }
    t += "\n| VM | priority | order | on the killed host | restarted in | median | max |\n|---|---|---:|---|---:|---:|---:|\n";
    for vm in vm_rows(runs) {
        let st = stat(&vm.times);
        let priority = if vm.priority.is_empty() {
            "unprotected"
        } else {
            &vm.priority
        };
        t += &format!(
            "| {} | {priority} | {} | {} | {}/{} runs | {} | {} |\n",
            vm.name,
            vm.order,
            if vm.on_killed {
                "yes"
            } else {
                "no (kept running)"
            },
            vm.times.len(),
            runs.len(),
            fmt(st.as_ref(), |s| s.median),
            fmt(st.as_ref(), |s| s.max),
        );
    }
    t
}

fn stat_json(v: &[f64]) -> serde_json::Value {
    match stat(v) {
        Some(st) => json!({"median_s": st.median, "max_s": st.max, "runs": st.n, "values_s": v}),
        None => json!({"median_s": null, "max_s": null, "runs": 0, "values_s": v}),
    }
}

/// The `--json` object.
pub(super) fn to_json(opts: &LabArgs, runs: &[Summary]) -> serde_json::Value {
    let keys = ["detected", "fenced", "shrink", "protected_running_again"];
    let mut figures = serde_json::Map::new();
    for ((key, (_, v)), xs) in keys.iter().zip(rows(runs)).zip(xenserver(opts.timeout_s)) {
        let mut o = stat_json(&v);
        o["xenserver"] = xs.into();
        figures.insert((*key).to_owned(), o);
    }
    let vms: Vec<serde_json::Value> = vm_rows(runs)
        .into_iter()
        .map(|vm| {
            let mut o = stat_json(&vm.times);
            o["name"] = vm.name.into();
            o["priority"] = vm.priority.into();
            o["order"] = vm.order.into();
            o["on_killed_host"] = vm.on_killed.into();
            o
        })
        .collect();
    json!({
        "runs": runs.len(),
        "hosts": opts.hosts,
        "vms_per_run": opts.vms,
        "driver": opts.driver.as_str(),
        "timeout_s": opts.timeout_s,
        "profile": profile(),
        "figures": figures,
        "vms": vms,
        "double_runs": runs.iter().map(|r| r.double_runs).sum::<usize>(),
    })
}

/// `xe lab bench`: `runs` labs, one after another; the first failed run
/// stops the bench (exit 5, or 130 when interrupted).
pub(super) fn run(
    opts: &LabArgs,
    runs: usize,
    setup: &Setup,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut done = Vec::with_capacity(runs);
    for i in 1..=runs {
        setup.progress.line(&format!("bench: run {i} of {runs}"));
        match run_once(opts, setup) {
            Ok((summary, _)) => done.push(summary),
            Err(failed) => {
                setup.progress.line(&format!(
                    "bench: run {i} failed; the {} runs before it:\n{}",
                    done.len(),
                    tables(opts, &done)
                ));
                return Err(failure(failed, &setup.cancel));
            }
        }
    }
    if opts.json {
        serde_json::to_writer_pretty(&mut *out, &to_json(opts, &done))
            .map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", tables(opts, &done))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_max() {
        assert_eq!(stat(&[]), None);
        assert_eq!(
            stat(&[3.0, 1.0, 2.0]),
            Some(Stat {
                median: 2.0,
                max: 3.0,
                n: 3
            })
        );
        assert_eq!(stat(&[4.0, 1.0, 2.0, 3.0]).map(|s| s.median), Some(2.5));
        assert_eq!(stat(&[f64::NAN, 1.0]).map(|s| s.n), Some(1));
    }

    #[test]
    fn xenserver_from_its_formula_at_t_10() {
        let x = xenserver(10);
        assert!(x[0].starts_with("10 s"), "{x:?}");
        assert!(x[1].starts_with("28 to 48 s"), "{x:?}");
        assert!(x[2].starts_with("28 s"), "{x:?}");
        assert!(x[3].starts_with("28 to 48 s"), "{x:?}");
        assert!(xenserver(30)[2].starts_with("48 s"));
    }
}
