//! Seeded random pools for the planner's tests and benchmark.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;
use xapi_ha::model::{Host, Pool, PowerState, RestartPriority, Vm};

pub const GIB: u64 = 1 << 30;

/// The shape of a random pool.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub hosts: usize,
    pub vms: usize,
    /// Host memory in GiB, inclusive range.
    pub host_gib: (u64, u64),
    /// VM memory in GiB, inclusive range (skewed towards small).
    pub vm_gib: (u64, u64),
    /// Whether to draw the odd cases: dead or disabled hosts, halted,
    /// homeless, non-agile VMs, affinity.
    pub odd: bool,
}

fn uuid(rng: &mut ChaCha8Rng) -> Uuid {
    Uuid::from_u128(rng.r#gen::<u128>())
}

/// A random pool: VMs are put on live hosts with room where possible, so the
/// pool is mostly a plausible running pool; `odd` adds the unusual states.
pub fn pool(rng: &mut ChaCha8Rng, s: Shape) -> Pool {
    let mut hosts: Vec<Host> = (0..s.hosts)
        .map(|i| Host {
            uuid: uuid(rng),
            name: format!("h{i}"),
            memory_total: rng.gen_range(s.host_gib.0..=s.host_gib.1) * GIB,
            memory_overhead: if s.odd {
                rng.gen_range(0..=1) * GIB
            } else {
                GIB / 2
            },
            enabled: !s.odd || rng.gen_bool(0.9),
            live: !s.odd || rng.gen_bool(0.9),
        })
        .collect();
    if !hosts.iter().any(|h| h.live) {
        hosts[0].live = true;
    }
    let mut free: Vec<i128> = hosts
        .iter()
        .map(|h| i128::from(h.memory_total) - i128::from(h.memory_overhead))
        .collect();
    let mut vms = Vec::with_capacity(s.vms);
    for i in 0..s.vms {
        // Skewed: the square of a uniform draw favours small VMs.
        let span = s.vm_gib.1 - s.vm_gib.0;
        let x: f64 = rng.r#gen();
        let memory = (s.vm_gib.0 + (x * x * span as f64).round() as u64) * GIB;
        let memory_overhead = if s.odd && rng.gen_bool(0.2) {
            GIB / 4
        } else {
            0
        };
        let priority = match rng.gen_range(0..10) {
            0..=5 => RestartPriority::Restart,
            6..=7 => RestartPriority::BestEffort,
            _ => RestartPriority::Unprotected,
        };
        let need = i128::from(memory + memory_overhead);
        let mut order: Vec<usize> = (0..hosts.len()).collect();
        order.shuffle(rng);
        let home = order
            .into_iter()
            .find(|&h| hosts[h].live && free[h] >= need)
            .or_else(|| (s.odd && rng.gen_bool(0.3)).then(|| rng.gen_range(0..hosts.len())));
        let halted = s.odd && rng.gen_bool(0.1);
        let (power_state, resident_on) = match home {
            Some(h) if !halted => {
                free[h] -= need;
                (PowerState::Running, Some(hosts[h].uuid))
            }
            // Homeless but should run: needs a place even with no failure.
            None if s.odd && rng.gen_bool(0.3) => (PowerState::Running, None),
            _ => (PowerState::Halted, None),
        };
        vms.push(Vm {
            uuid: uuid(rng),
            name: format!("vm{i}"),
            memory,
            memory_overhead,
            priority,
            order: rng.gen_range(0..3),
            power_state,
            resident_on,
            agile: !s.odd || rng.gen_bool(0.9),
            affinity: (s.odd && rng.gen_bool(0.2))
                .then(|| hosts[rng.gen_range(0..hosts.len())].uuid),
        });
    }
    Pool {
        ha_host_failures_to_tolerate: rng.gen_range(0..=2),
        hosts,
        vms,
    }
}

/// Many small VMs and, on one host, one big VM: XenServer's approximation
/// counts every VM as big and gives up far too early.
pub fn one_big_among_small(rng: &mut ChaCha8Rng, hosts: usize, vms: usize) -> Pool {
    let mut p = pool(
        rng,
        Shape {
            hosts,
            vms: vms - 1,
            host_gib: (256, 256),
            vm_gib: (1, 4),
            odd: false,
        },
    );
    for vm in &mut p.vms {
        vm.priority = RestartPriority::Restart;
    }
    // The big VM goes on the host with the most free memory.
    let used = |h: &Host, p: &Pool| -> u64 {
        p.vms
            .iter()
            .filter(|v| v.resident_on == Some(h.uuid))
            .map(Vm::footprint)
            .sum()
    };
    let host = p.hosts.iter().min_by_key(|h| used(h, &p)).map(|h| h.uuid);
    p.vms.push(Vm {
        uuid: uuid(rng),
        name: "big".to_string(),
        memory: 64 * GIB,
        memory_overhead: 0,
        priority: RestartPriority::Restart,
        order: 0,
        power_state: PowerState::Running,
        resident_on: host,
        agile: true,
        affinity: None,
    });
    p
}

/// Make VM sizes MiB-granular: add 0-1023 MiB to each VM (real pools size VMs
/// in MiB, so the common divisor of sizes says little).
pub fn jitter_mib(rng: &mut ChaCha8Rng, pool: &mut Pool) {
    for vm in &mut pool.vms {
        vm.memory += rng.gen_range(0..1024) << 20;
    }
}

/// A pool of `hosts` hosts and `vms` VMs whose every VM is protected
/// (`restart`): the shape the exact-range tests and benchmarks stress.
#[allow(dead_code)] // not every user of this module needs it
pub fn protected_pool(
    rng: &mut ChaCha8Rng,
    hosts: usize,
    vms: usize,
    host_gib: (u64, u64),
    vm_gib: (u64, u64),
) -> Pool {
    let mut p = pool(
        rng,
        Shape {
            hosts,
            vms,
            host_gib,
            vm_gib,
            odd: false,
        },
    );
    for vm in &mut p.vms {
        vm.priority = xapi_ha::model::RestartPriority::Restart;
    }
    p
}
