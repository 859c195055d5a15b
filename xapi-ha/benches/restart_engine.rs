//! Restart engine benchmark: how long the engine takes to decide, from the
//! liveset change that fences one host to the start actions of its first
//! order group, and to see a whole recovery through (every start answered
//! at once), on pools of 3 to 64 hosts whose VMs are all protected; beside
//! it the live plan's recomputation (`ha::live_plan::of_view`) on the same
//! pool. Prints a markdown table (copied into docs/restart-engine.md).
//!
//! `cargo bench -p xapi_ha --bench restart_engine`

use std::time::{Duration, Instant};

use uuid::Uuid;
use xapi_ha::ha::live_plan;
use xapi_ha::ha::{Action, Engine, HostView, Input, Liveness, PoolView, VmView};
use xapi_ha::model::RestartPriority;

const GIB: u64 = 1 << 30;
const REPS: usize = 7;

fn pool(hosts: usize, vms_per_host: usize) -> PoolView {
    let host = |i: usize| Uuid::from_u128(0x1000 + i as u128);
    PoolView {
        ha_enabled: true,
        reboot_on_internal_shutdown: true,
        failures_to_tolerate: 1,
        plan_exists_for: 1,
        hosts: (0..hosts)
            .map(|i| HostView {
                uuid: host(i),
                name: format!("h{i}"),
                memory_total: 256 * GIB,
                memory_overhead: 0,
                enabled: true,
                maintenance: false,
                liveness: Liveness::Live,
            })
            .collect(),
        vms: (0..hosts * vms_per_host)
            .map(|v| VmView {
                uuid: Uuid::from_u128(0x10_0000 + v as u128),
                name: format!("vm{v}"),
                memory: (1 + (v as u64 % 8)) * GIB,
                priority: RestartPriority::Restart,
                always_run: true,
                order: (v % 3) as i64,
                start_delay_s: 0,
                running: true,
                resident_on: Some(host(v % hosts)),
                affinity: None,
                failback: false,
                scheduled_on: None,
                ha_state: None,
            })
            .collect(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// (first decision, whole recovery, starts) for one pool.
fn run(view: &PoolView) -> (Duration, Duration, usize) {
    let mut engine = Engine::new(view.clone(), Duration::ZERO);
    while engine.poll_action().is_some() {}
    let live: Vec<Uuid> = view.hosts.iter().skip(1).map(|h| h.uuid).collect();
    let fenced = vec![view.hosts[0].uuid];
    let t0 = Instant::now();
    let mut now = Duration::from_secs(1);
    let mut pending = engine.step(now, Input::Liveset { live, fenced });
    let first = t0.elapsed();
    let mut starts = 0;
    loop {
        let answers: Vec<Input> = pending
            .iter()
            .filter_map(|a| match a {
                Action::StartVm { vm, host } => Some(Input::VmStarted {
                    vm: *vm,
                    host: *host,
                }),
                _ => None,
            })
            .collect();
        starts += answers.len();
        if answers.is_empty() {
            match engine.poll_timeout() {
                Some(t) => {
                    now = t;
                    pending = engine.step(now, Input::Tick);
                    continue;
                }
                None => break,
            }
        }
        pending = Vec::new();
        for a in answers {
            pending.extend(engine.step(now, a));
        }
    }
    (first, t0.elapsed(), starts)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    println!("| hosts | VMs | restarts | first decision ms | whole recovery ms | live plan ms |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for (hosts, per_host) in [(3, 8), (16, 8), (16, 32), (64, 16)] {
        let view = pool(hosts, per_host);
        let mut firsts = Vec::new();
        let mut wholes = Vec::new();
        let mut plans = Vec::new();
        let mut restarts = 0;
        for _ in 0..REPS {
            let (first, whole, n) = run(&view);
            firsts.push(first);
            wholes.push(whole);
            restarts = n;
            let t0 = Instant::now();
            std::hint::black_box(live_plan::of_view(&view));
            plans.push(t0.elapsed());
        }
        println!(
            "| {hosts} | {} | {restarts} | {} | {} | {} |",
            hosts * per_host,
            ms(median(firsts)),
            ms(median(wholes)),
            ms(median(plans))
        );
    }
}
