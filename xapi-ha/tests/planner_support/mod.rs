//! Test support for the planner: random pools, a brute-force oracle written
//! straight from the semantics in docs/planner.md (independent of the
//! planner's code), and a restart-plan checker.

#![allow(dead_code)] // each test binary uses a different part

#[path = "gen.rs"]
pub mod generator;

use std::collections::{HashMap, HashSet};

use uuid::Uuid;
use xapi_ha::model::{Pool, PowerState, RestartPriority, Vm};
use xapi_ha::planner::{PlanOutcome, RestartPlan};

/// The first host with each UUID, by UUID.
fn hosts_by_uuid(pool: &Pool) -> HashMap<Uuid, usize> {
    let mut m = HashMap::new();
    for (i, h) in pool.hosts.iter().enumerate() {
        m.entry(h.uuid).or_insert(i);
    }
    m
}

/// Free memory of each host: total - overhead - running residents, may be < 0.
pub fn free(pool: &Pool) -> Vec<i128> {
    let by = hosts_by_uuid(pool);
    let mut f: Vec<i128> = pool
        .hosts
        .iter()
        .map(|h| i128::from(h.memory_total) - i128::from(h.memory_overhead))
        .collect();
    for vm in &pool.vms {
        if vm.power_state == PowerState::Running
            && let Some(h) = vm.resident_on.and_then(|u| by.get(&u))
        {
            f[*h] -= i128::from(vm.footprint());
        }
    }
    f
}

/// Indices of live hosts (first of each UUID).
pub fn live_hosts(pool: &Pool) -> Vec<usize> {
    let by = hosts_by_uuid(pool);
    (0..pool.hosts.len())
        .filter(|&i| pool.hosts[i].live && by[&pool.hosts[i].uuid] == i)
        .collect()
}

/// Whether the VM's resident host is a live host.
fn on_live_host(pool: &Pool, vm: &Vm) -> Option<usize> {
    let by = hosts_by_uuid(pool);
    let h = *by.get(&vm.resident_on?)?;
    pool.hosts[h].live.then_some(h)
}

/// Protected VMs that must be placed when the hosts in `failed` fail.
pub fn must_place(pool: &Pool, failed: &[usize]) -> Vec<usize> {
    (0..pool.vms.len())
        .filter(|&v| {
            let vm = &pool.vms[v];
            vm.priority == RestartPriority::Restart
                && vm.power_state == PowerState::Running
                && vm.agile
                && match on_live_host(pool, vm) {
                    None => true,
                    Some(h) => failed.contains(&h),
                }
        })
        .collect()
}

/// Exhaustive assignment: can `sizes` go into `room`? Plain backtracking;
/// the only pruning is "what is left must not exceed the room left", trying
/// one of several hosts with identical room, and remembering (next VM, room
/// left per host, sorted) states already found dead.
pub fn fits(sizes: &[i128], room: &mut [i128]) -> bool {
    fn go(
        sizes: &[i128],
        i: usize,
        room: &mut [i128],
        left: i128,
        dead: &mut HashSet<(usize, Vec<i128>)>,
    ) -> bool {
        if i == sizes.len() {
            return true;
        }
        let total: i128 = room.iter().filter(|&&r| r > 0).sum();
        if left > total {
            return false;
        }
        let mut key = room.to_vec();
        key.sort_unstable();
        let key = (i, key);
        if dead.contains(&key) {
            return false;
        }
        let mut tried = HashSet::new();
        for b in 0..room.len() {
            if room[b] >= sizes[i] && tried.insert(room[b]) {
                room[b] -= sizes[i];
                let ok = go(sizes, i + 1, room, left - sizes[i], dead);
                room[b] += sizes[i];
                if ok {
                    return true;
                }
            }
        }
        dead.insert(key);
        false
    }
    let mut s = sizes.to_vec();
    s.sort_unstable_by(|a, b| b.cmp(a));
    let left = s.iter().sum();
    go(&s, 0, room, left, &mut HashSet::new())
}

/// Whether the failure of these hosts leaves a placement (by brute force).
pub fn feasible(pool: &Pool, failed: &[usize]) -> bool {
    let f = free(pool);
    let items: Vec<i128> = must_place(pool, failed)
        .iter()
        .map(|&v| i128::from(pool.vms[v].footprint()))
        .collect();
    let mut room: Vec<i128> = live_hosts(pool)
        .into_iter()
        .filter(|h| pool.hosts[*h].enabled && !failed.contains(h))
        .map(|h| f[h].max(0))
        .collect();
    if items.is_empty() {
        return true;
    }
    fits(&items, &mut room)
}

/// Every subset of `items` of size `k`.
pub fn subsets(items: &[usize], k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if items.len() < k {
        return Vec::new();
    }
    let mut out = subsets(&items[1..], k - 1);
    for s in &mut out {
        s.insert(0, items[0]);
    }
    out.extend(subsets(&items[1..], k));
    out
}

/// The true maximum number of host failures to tolerate, by brute force.
pub fn oracle_max(pool: &Pool) -> i64 {
    let live = live_hosts(pool);
    for n in 0..=live.len() {
        if !subsets(&live, n).iter().all(|f| feasible(pool, f)) {
            return n as i64 - 1;
        }
    }
    live.len() as i64
}

/// Host indices of the given UUIDs.
pub fn indices(pool: &Pool, uuids: &[Uuid]) -> Vec<usize> {
    let by = hosts_by_uuid(pool);
    uuids.iter().map(|u| by[u]).collect()
}

/// Check a restart plan for `failed` against the semantics; returns the
/// number of protected VMs without a destination.
pub fn check_plan(pool: &Pool, failed: &[usize], plan: &RestartPlan) -> usize {
    let by = hosts_by_uuid(pool);
    let vm_by: HashMap<Uuid, usize> = pool
        .vms
        .iter()
        .enumerate()
        .map(|(i, v)| (v.uuid, i))
        .collect();
    // Exactly the running VMs that lost their host have entries.
    let expected: HashSet<usize> = (0..pool.vms.len())
        .filter(|&v| {
            let vm = &pool.vms[v];
            vm.power_state == PowerState::Running
                && on_live_host(pool, vm).is_none_or(|h| failed.contains(&h))
        })
        .collect();
    let got: Vec<usize> = plan.entries.iter().map(|e| vm_by[&e.vm]).collect();
    let got_set: HashSet<usize> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "a VM appears twice in the plan");
    assert_eq!(
        got_set, expected,
        "plan entries are not the VMs that lost their host"
    );
    // Memory: destinations are surviving enabled live hosts with room.
    let mut room = free(pool);
    let mut unplaced_protected = Vec::new();
    let class = |p: RestartPriority| match p {
        RestartPriority::Restart => 0,
        RestartPriority::BestEffort => 1,
        RestartPriority::Unprotected => 2,
    };
    let mut last = (0, i64::MIN);
    for e in &plan.entries {
        let vm = &pool.vms[vm_by[&e.vm]];
        assert_eq!(e.priority, vm.priority);
        assert_eq!(e.order, vm.order);
        // Protected first, then best-effort, then the rest; ascending order within.
        let key = (class(e.priority), e.order);
        assert!(
            key >= last,
            "plan out of priority/order: {key:?} after {last:?}"
        );
        last = key;
        match e.outcome {
            PlanOutcome::Destination(h) => {
                assert!(vm.agile, "non-agile VM planned");
                assert_ne!(
                    vm.priority,
                    RestartPriority::Unprotected,
                    "unprotected VM planned"
                );
                let h = by[&h];
                let host = &pool.hosts[h];
                assert!(
                    host.live && host.enabled && !failed.contains(&h),
                    "bad destination"
                );
                room[h] -= i128::from(vm.footprint());
                assert!(room[h] >= 0, "host {} overfull", host.name);
            }
            PlanOutcome::NoRoom => {
                assert!(vm.agile && vm.priority != RestartPriority::Unprotected);
                if vm.priority == RestartPriority::Restart {
                    unplaced_protected.push(vm_by[&e.vm]);
                }
            }
            PlanOutcome::NotAgile => assert!(!vm.agile),
            PlanOutcome::Unprotected => assert_eq!(vm.priority, RestartPriority::Unprotected),
        }
    }
    // Best-effort VMs never took room a protected VM could have used.
    let mut before_best_effort = room.clone();
    for e in &plan.entries {
        if let (RestartPriority::BestEffort, PlanOutcome::Destination(h)) = (e.priority, e.outcome)
        {
            before_best_effort[by[&h]] += i128::from(pool.vms[vm_by[&e.vm]].footprint());
        }
    }
    for &v in &unplaced_protected {
        let size = i128::from(pool.vms[v].footprint());
        for h in live_hosts(pool) {
            if pool.hosts[h].enabled && !failed.contains(&h) {
                assert!(
                    before_best_effort[h] < size,
                    "protected {} left out while host {} had room before best-effort VMs",
                    pool.vms[v].name,
                    pool.hosts[h].name
                );
            }
        }
    }
    unplaced_protected.len()
}
