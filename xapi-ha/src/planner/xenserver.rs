//! XenServer's planner, rebuilt from its description, as a baseline for
//! comparison only: never used for answers.
//!
//! xapi finds the maximum by bisection over n (assuming monotonicity). For one
//! n it either
//! - (a) tries every *ordered* set of n failing hosts, when
//!   `C(hosts, n) * n! < 3500` and there are at most 32 hosts: the failed
//!   hosts' VMs, host by host in failure order and biggest first within a
//!   host, each go to the surviving host with the most free memory; n passes
//!   when every ordering places everything; or
//! - (b) approximates: every VM is as big as the biggest protected VM, the n
//!   hosts with the most free memory fail, and so do the n hosts with the most
//!   protected VMs; n passes when the survivors' slots (free memory divided by
//!   the biggest VM) cover the VMs of those n hosts.
//!
//! Same semantics as ours for what must be placed (agile protected running
//! VMs; those without a live host always) and where (live enabled hosts).

use super::instance::Instance;
use super::pack;
use crate::model::Pool;

/// Limits of the exhaustive heuristic, as in xapi.
const EXHAUSTIVE_ORDERINGS_MAX: u128 = 3500;
const EXHAUSTIVE_HOSTS_MAX: usize = 32;

/// Which heuristic decided one n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heuristic {
    Exhaustive,
    Approximate,
}

/// Number of ordered choices of `k` of `n` (n! / (n-k)!), saturating.
fn orderings(n: usize, k: usize) -> u128 {
    (0..k).fold(1u128, |acc, i| acc.saturating_mul((n - i) as u128))
}

/// The heuristic xapi would use for `n` failures among `live` hosts.
#[must_use]
pub fn heuristic_for(live: usize, n: usize) -> Heuristic {
    if live <= EXHAUSTIVE_HOSTS_MAX && orderings(live, n) < EXHAUSTIVE_ORDERINGS_MAX {
        Heuristic::Exhaustive
    } else {
        Heuristic::Approximate
    }
}

/// One ordering: place host by host, biggest first, into the biggest free host.
fn ordering_places(inst: &Instance, order: &[usize]) -> bool {
    let mut failed = vec![false; inst.live()];
    for &h in order {
        failed[h] = true;
    }
    let mut room: Vec<u64> = inst
        .bins_for(&failed)
        .iter()
        .map(|&b| inst.hosts[b].cap)
        .collect();
    let groups = std::iter::once(&inst.needy).chain(order.iter().map(|&h| &inst.hosts[h].items));
    for items in groups {
        for item in items {
            let Some(b) = pack::pick_worst(&room, item.size) else {
                return false;
            };
            room[b] -= item.size;
        }
    }
    true
}

/// (a): every ordered set of `n` failing hosts places everything.
fn exhaustive(inst: &Instance, n: usize) -> bool {
    fn rec(inst: &Instance, n: usize, order: &mut Vec<usize>, used: &mut [bool]) -> bool {
        if order.len() == n {
            return ordering_places(inst, order);
        }
        for h in 0..inst.live() {
            if used[h] {
                continue;
            }
            used[h] = true;
            order.push(h);
            let ok = rec(inst, n, order, used);
            order.pop();
            used[h] = false;
            if !ok {
                return false;
            }
        }
        true
    }
    rec(inst, n, &mut Vec::new(), &mut vec![false; inst.live()])
}

/// (b): the pessimistic approximation.
fn approximate(inst: &Instance, n: usize) -> bool {
    let biggest = inst
        .needy
        .iter()
        .chain(inst.hosts.iter().flat_map(|h| h.items.iter()))
        .map(|i| i.size)
        .max();
    let Some(biggest) = biggest else {
        return true;
    };
    let mut counts: Vec<usize> = inst.hosts.iter().map(|h| h.items.len()).collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let to_place = inst.needy.len() + counts.iter().take(n).sum::<usize>();
    // The n hosts with the most free memory fail (disabled hosts offer none).
    let mut free: Vec<u64> = inst
        .hosts
        .iter()
        .map(|h| if h.enabled { h.cap } else { 0 })
        .collect();
    free.sort_unstable_by(|a, b| b.cmp(a));
    let survivors = &free[n.min(free.len())..];
    let enabled_survivors = inst.hosts.iter().filter(|h| h.enabled).count() > n;
    if biggest == 0 {
        return to_place == 0 || enabled_survivors;
    }
    let slots: u128 = survivors.iter().map(|&f| u128::from(f / biggest)).sum();
    slots >= to_place as u128
}

/// Whether xapi's planner finds a plan for `n` failures.
#[must_use]
pub fn plan_exists(pool: &Pool, n: usize) -> bool {
    plan_exists_for(&Instance::new(pool), n)
}

fn plan_exists_for(inst: &Instance, n: usize) -> bool {
    if n >= inst.live() {
        return inst.nothing_to_place();
    }
    match heuristic_for(inst.live(), n) {
        Heuristic::Exhaustive => exhaustive(inst, n),
        Heuristic::Approximate => approximate(inst, n),
    }
}

/// XenServer's answer: bisection for the largest n in 0..=live hosts with a
/// plan; -1 when there is none for 0.
#[must_use]
pub fn max_host_failures(pool: &Pool) -> i64 {
    let inst = Instance::new(pool);
    if !plan_exists_for(&inst, 0) {
        return -1;
    }
    // Invariant: a plan for lo; none known for hi + 1.
    let (mut lo, mut hi) = (0usize, inst.live());
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if plan_exists_for(&inst, mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo as i64
}
