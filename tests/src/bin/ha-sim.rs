//! `ha-sim`: run many random fault schedules of the real xha core in the
//! deterministic simulator and summarise.
//!
//! ```text
//! ha-sim --seeds N [--seed-start S] [--hosts H] [--max-hosts M] [--timeout T] [--safety-t K]
//!        [--json] [--verbose] [--jobs J]
//! ```
//! Progress goes to stderr; stdout gets exactly one summary line (or one
//! JSON object with `--json`). Exit status: 0 when no invariant was
//! violated, 1 when some was, 2 on bad arguments.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use ha_tests::sim::run::{RunOptions, RunOutcome, replay_command, run_seed};

#[derive(Parser, Debug)]
#[command(
    name = "ha-sim",
    about = "Run random fault schedules of the xha core in the deterministic simulator"
)]
struct Args {
    /// How many seeds to run (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    seed_start: u64,
    /// A fixed pool size (1 to 64); default: drawn per seed.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    hosts: Option<u64>,
    /// Upper bound on drawn pool sizes (1 to 64).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=64))]
    max_hosts: u64,
    /// Base timeout T in seconds (decimals allowed, whole milliseconds,
    /// 0.2 to 3600; the product refuses below 10).
    #[arg(long, default_value = "10", value_parser = parse_timeout)]
    timeout: Duration,
    /// Length of each schedule's safety phase, in units of T (6 to 1000).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(6..=1000))]
    safety_t: u64,
    /// Print one JSON object instead of the summary line.
    #[arg(long)]
    json: bool,
    /// Print the full trace of failing seeds (and of every seed when only one runs).
    #[arg(long)]
    verbose: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    // Below the product's minimum is allowed (fast experiments); above its
    // maximum is not.
    let max = xha::core::timeouts::MAX_BASE.as_secs_f64();
    if !secs.is_finite() || !(0.2..=max).contains(&secs) {
        return Err(format!("{s} s is outside 0.2 ..= {max} s"));
    }
    let ms = secs * 1000.0;
    if (ms - ms.round()).abs() > 1e-6 {
        return Err(format!("{s} s is not a whole number of milliseconds"));
    }
    Ok(Duration::from_millis(ms.round() as u64))
}

#[derive(Default)]
struct Totals {
    seeds: u64,
    violating_seeds: Vec<u64>,
    violations: u64,
    fences: u64,
    shrink: Vec<u64>,
    outage: Vec<u64>,
    steps: u64,
}

fn percentile(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i] as f64 / 1e9)
}

fn fmt_s(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |x| format!("{x:.3}"))
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let Some(last) = args.seed_start.checked_add(args.seeds - 1) else {
        eprintln!(
            "ha-sim: --seed-start {} + --seeds {} overflows u64",
            args.seed_start, args.seeds
        );
        return ExitCode::from(2);
    };
    let opts = RunOptions {
        hosts: args.hosts.map(|h| h as usize),
        max_hosts: args.max_hosts as usize,
        base_timeout: args.timeout,
        keep_full_trace: args.verbose,
        safety_t: args.safety_t,
    };
    let next = AtomicU64::new(args.seed_start);
    let totals = Mutex::new(Totals::default());
    let started = std::time::Instant::now();
    let last_progress = Mutex::new(std::time::Instant::now());
    let single = args.seeds == 1;

    let work = || {
        loop {
            let seed = next.fetch_add(1, Ordering::Relaxed);
            if seed > last || seed < args.seed_start {
                break;
            }
            let out = run_seed(seed, &opts);
            record(&totals, &out, &opts, args.verbose, single);
            let mut lp = last_progress.lock().unwrap_or_else(|p| p.into_inner());
            if lp.elapsed() >= Duration::from_secs(2) {
                *lp = std::time::Instant::now();
                let t = totals.lock().unwrap_or_else(|p| p.into_inner());
                eprintln!(
                    "progress: {}/{} seeds, {} violating, {} fences, {:.0} s",
                    t.seeds,
                    args.seeds,
                    t.violating_seeds.len(),
                    t.fences,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..args.jobs {
            s.spawn(work);
        }
    });

    let mut t = totals.into_inner().unwrap_or_else(|p| p.into_inner());
    t.shrink.sort_unstable();
    t.outage.sort_unstable();
    t.violating_seeds.sort_unstable();
    eprintln!(
        "done: {} seeds, {} simulator steps in {:.1} s",
        t.seeds,
        t.steps,
        started.elapsed().as_secs_f64()
    );
    let max = t.shrink.last().map(|&v| v as f64 / 1e9);
    let p50 = percentile(&t.shrink, 0.5);
    let p90 = percentile(&t.shrink, 0.9);
    if args.json {
        let obj = serde_json::json!({
            "seeds": t.seeds,
            "seed_start": args.seed_start,
            "violations": t.violating_seeds.len(),
            "violation_count": t.violations,
            "fences": t.fences,
            "max_fault_to_shrink_s": max,
            "p50_fault_to_shrink_s": p50,
            "p90_fault_to_shrink_s": p90,
            "fault_to_shrink_measured": t.shrink.len(),
            "outage_to_shrink_measured": t.outage.len(),
            "p50_outage_to_shrink_s": percentile(&t.outage, 0.5),
            "max_outage_to_shrink_s": t.outage.last().map(|&v| v as f64 / 1e9),
            "timeout_s": args.timeout.as_secs_f64(),
            "failing_seeds": t.violating_seeds,
        });
        println!("{obj}");
    } else {
        println!(
            "seeds: {}, violations: {}, fences: {}, max fault-to-shrink: {} s, p50: {} s",
            t.seeds,
            t.violating_seeds.len(),
            t.fences,
            fmt_s(max),
            fmt_s(p50)
        );
    }
    let _ = std::io::stdout().flush();
    if t.violating_seeds.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn record(
    totals: &Mutex<Totals>,
    out: &RunOutcome,
    opts: &RunOptions,
    verbose: bool,
    single: bool,
) {
    if let Some(report) = &out.report {
        eprintln!("VIOLATION in seed {}:\n{report}", out.seed);
    } else if verbose && single {
        eprintln!(
            "seed {}: {} hosts, {:?}, no violation, trace hash {:016x}; schedule: {:?}",
            out.seed, out.hosts, out.class, out.trace_hash, out.schedule
        );
    }
    let mut t = totals.lock().unwrap_or_else(|p| p.into_inner());
    t.seeds += 1;
    t.fences += out.fences as u64;
    t.steps += out.steps;
    if !out.violations.is_empty() {
        t.violating_seeds.push(out.seed);
        t.violations += out.violations.len() as u64;
        if !verbose {
            eprintln!("replay: {}", replay_command(out.seed, opts));
        }
    }
    if let Some(s) = out.fault_to_shrink {
        t.shrink.push(s);
    }
    if let Some(s) = out.outage_to_shrink {
        t.outage.push(s);
    }
}
