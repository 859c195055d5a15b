//! Planner benchmark: on the same seeded random pools, in one run, our
//! `max_host_failures` beside XenServer's heuristics (`planner::xenserver`):
//! time and answer. Prints a markdown table (copied into docs/planner.md).
//!
//! `cargo bench -p xapi_ha --bench planner`

#[path = "../tests/planner_support/gen.rs"]
mod generator;

use std::time::{Duration, Instant};

use generator::Shape;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use xapi_ha::model::Pool;
use xapi_ha::planner::{self, xenserver};

/// Pools per family and timed repetitions per pool (the median is kept).
const POOLS: u64 = 5;
const REPS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(f: impl Fn() -> T) -> (T, Duration) {
    let mut times = Vec::with_capacity(REPS);
    let mut out = None;
    for _ in 0..REPS {
        let t0 = Instant::now();
        let r = std::hint::black_box(f());
        times.push(t0.elapsed());
        out = Some(r);
    }
    (out.expect("REPS > 0"), median(times))
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

struct Row {
    ours: Vec<i64>,
    exact: usize,
    xs: Vec<i64>,
    ours_time: Vec<Duration>,
    xs_time: Vec<Duration>,
}

fn run(name: &str, hosts: usize, vms: usize, make: &dyn Fn(&mut ChaCha8Rng) -> Pool) {
    let mut row = Row {
        ours: Vec::new(),
        exact: 0,
        xs: Vec::new(),
        ours_time: Vec::new(),
        xs_time: Vec::new(),
    };
    for seed in 0..POOLS {
        let mut rng = ChaCha8Rng::seed_from_u64(seed * 7919 + hosts as u64 * 31 + vms as u64);
        let pool = make(&mut rng);
        let (ours, t_ours) = time(|| planner::max_host_failures(&pool));
        let (xs, t_xs) = time(|| xenserver::max_host_failures(&pool));
        row.ours.push(ours.max_host_failures);
        row.exact += usize::from(ours.exact);
        row.xs.push(xs);
        row.ours_time.push(t_ours);
        row.xs_time.push(t_xs);
    }
    let list = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
    let better = row.ours.iter().zip(&row.xs).filter(|(o, x)| o > x).count();
    let worse = row.ours.iter().zip(&row.xs).filter(|(o, x)| o < x).count();
    let max_ours = row.ours_time.iter().max().copied().unwrap_or_default();
    let (mo, mx) = (median(row.ours_time.clone()), median(row.xs_time.clone()));
    println!(
        "| {name} | {hosts} | {vms} | {} | {}/{POOLS} | {} | {} | {} | {} | {:.2} | {better}/{worse} |",
        list(&row.ours),
        row.exact,
        ms(mo),
        ms(max_ours),
        list(&row.xs),
        ms(mx),
        mo.as_secs_f64() / mx.as_secs_f64().max(1e-9),
    );
}

/// Random pools loaded to about 55% of their memory: hosts of 128-512 GiB,
/// VM sizes skewed small with the mean that gives that load.
fn random(hosts: usize, vms: usize) -> impl Fn(&mut ChaCha8Rng) -> Pool {
    loaded(hosts, vms, 0.55)
}

/// Random pools loaded to about `load` of their memory.
fn loaded(hosts: usize, vms: usize, load: f64) -> impl Fn(&mut ChaCha8Rng) -> Pool {
    let mean_gib = (320.0 * load * hosts as f64 / vms as f64).max(1.5);
    // The generator squares a uniform draw: mean = low + span / 3.
    let top = 1 + (3.0 * (mean_gib - 1.0)).round() as u64;
    move |rng| {
        generator::pool(
            rng,
            Shape {
                hosts,
                vms,
                host_gib: (128, 512),
                vm_gib: (1, top),
                odd: false,
            },
        )
    }
}

fn main() {
    println!(
        "{POOLS} seeded pools per row; times are the median of {REPS} runs per pool, in ms, one core."
    );
    println!();
    println!(
        "| family | hosts | VMs | our answers | exact | our median ms | our max ms | XenServer answers | XenServer median ms | time ratio ours/XS | ours >/< XS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    // The exact range: 8 live hosts, 24 protected VMs, tight memory.
    run("exact range", 8, 40, &|rng: &mut ChaCha8Rng| {
        let mut p = generator::pool(
            rng,
            Shape {
                hosts: 8,
                vms: 40,
                host_gib: (24, 64),
                vm_gib: (1, 16),
                odd: true,
            },
        );
        cap_protected(&mut p, 24);
        p
    });
    exact_range_worst();
    for (h, v) in [
        (8, 64),
        (16, 500),
        (32, 1000),
        (32, 2048),
        (64, 2048),
        (64, 4096),
    ] {
        run("random", h, v, &random(h, v));
    }
    for (h, v) in [(16, 500), (32, 2048), (64, 4096)] {
        run("random, 90% load", h, v, &loaded(h, v, 0.9));
    }
    for (h, v) in [(16, 500), (64, 4096)] {
        let plain = random(h, v);
        run("random, MiB sizes", h, v, &move |rng: &mut ChaCha8Rng| {
            let mut p = plain(rng);
            generator::jitter_mib(rng, &mut p);
            p
        });
    }
    for (h, v) in [(16, 500), (32, 2048), (64, 4096)] {
        run("one big among small", h, v, &|rng: &mut ChaCha8Rng| {
            generator::one_big_among_small(rng, h, v)
        });
    }
}

/// The exact range stressed: 8 live hosts, 24 protected VMs, in several
/// shapes from few big VMs per host to many similar ones (the hardest
/// packings), memory as tight as the generator makes it. Reports the slowest
/// pool: the bound to meet is 1 s.
fn exact_range_worst() {
    const HARD_POOLS: u64 = 200;
    // (host GiB range, VM GiB range)
    let shapes = [
        ((60, 100), (12, 16)),
        ((60, 100), (12, 28)),
        ((16, 40), (1, 10)),
        ((20, 24), (5, 7)),
        ((30, 34), (7, 11)),
        ((40, 64), (9, 23)),
    ];
    let mut slowest = Duration::ZERO;
    let (mut exact, mut total) = (0, 0);
    for (i, &(host_gib, vm_gib)) in shapes.iter().enumerate() {
        for seed in 0..HARD_POOLS {
            let mut rng = ChaCha8Rng::seed_from_u64(0xfeed + seed + 1000 * i as u64);
            let p = generator::protected_pool(&mut rng, 8, 24, host_gib, vm_gib);
            let t0 = Instant::now();
            let m = planner::max_host_failures(&p);
            slowest = slowest.max(t0.elapsed());
            exact += usize::from(m.exact);
            total += 1;
        }
    }
    println!(
        "| exact range, 6 shapes (slowest of {total}) | 8 | 24 | - | {exact}/{total} | - | {} | - | - | - | - |",
        ms(slowest)
    );
}

/// Keep at most `max` protected VMs (the rest become best-effort).
fn cap_protected(p: &mut Pool, max: usize) {
    let mut seen = 0;
    for vm in &mut p.vms {
        if vm.priority == xapi_ha::model::RestartPriority::Restart {
            seen += 1;
            if seen > max {
                vm.priority = xapi_ha::model::RestartPriority::BestEffort;
            }
        }
    }
}
