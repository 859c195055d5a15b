//! The search for the maximum number of host failures to tolerate: a proven
//! lower bound from the certificates, then concrete failure sets (the likely
//! worst ones, then all of them while that is affordable) decided one by one.
//!
//! Tolerating n failures is monotone in n: if F (n + 1 hosts) has a placement,
//! every F minus one host has one too (fewer VMs to place, one more bin). So
//! the answer is the largest certified n, and it is exact as soon as one set
//! of n + 1 hosts is proven to have no placement.

use std::cell::Cell;

use super::certify::{self, Split, Verdict};
use super::instance::{Instance, Item};
use super::pack::{self, Packing};

/// Pools up to this many live hosts and protected VMs are solved exactly.
pub(crate) const EXACT_HOSTS_MAX: usize = 8;
pub(crate) const EXACT_ITEMS_MAX: usize = 24;
/// Node budget of one exact packing of a whole failure set, beyond exact mode.
const NODES_MAX: u64 = 2_000;
/// Node budget of all exact searches of one analysis, beyond exact mode: a
/// pool full of hard sets costs milliseconds, not minutes.
const TOTAL_NODES_MAX: u64 = 300_000;
/// Node budget of one exact search of a whole set in a restart plan.
pub(crate) const PLAN_NODES_MAX: u64 = 200_000;
/// Only sets with at most this many VMs get the whole-set exact search.
const EXACT_SET_ITEMS_MAX: usize = 256;
/// Relaxation: the biggest this many VMs of a set, packed exactly, can prove
/// that the whole set has no placement.
const RELAXED_ITEMS_MAX: usize = 16;
/// Budget (sets x VMs per set x hosts) for enumerating every failure set of
/// one size, beyond exact mode. Keeps large pools within milliseconds. Where
/// XenServer enumerates (ordered sets, more of them), we always do too.
const ENUMERATION_WORK_MAX: u128 = 4_000_000;

/// A placement for a failure set: each item with its bin (live host index).
pub(crate) type Placement = Vec<(Item, usize)>;

/// Outcome of deciding one failure set.
#[derive(Clone, Debug)]
pub(crate) enum Decision {
    Feasible(Placement),
    Infeasible,
    Unknown,
}

/// How hard to try: exact-search nodes per set and in all.
#[derive(Debug)]
pub(crate) struct Effort {
    /// Node budget of one exact search; `u64::MAX` makes it a decision procedure.
    pub nodes: u64,
    /// Nodes left for all searches.
    pub total: Cell<u64>,
}

impl Effort {
    /// For an analysis of `inst`: unlimited in the exact range, bounded beyond.
    pub(crate) fn for_instance(inst: &Instance) -> Effort {
        if is_small(inst) {
            Effort::unbounded(u64::MAX)
        } else {
            Effort {
                nodes: NODES_MAX,
                total: Cell::new(TOTAL_NODES_MAX),
            }
        }
    }

    /// For one set (a restart plan): the per-search budget, no total.
    pub(crate) fn unbounded(nodes: u64) -> Effort {
        Effort {
            nodes,
            total: Cell::new(u64::MAX),
        }
    }

    /// Run an exact search with up to `nodes` nodes from the total.
    pub(crate) fn exact(&self, sizes: &[u64], caps: &[u64], nodes: u64) -> Packing {
        let total = self.total.get();
        let mut budget = nodes.min(total);
        let r = pack::exact_within(sizes, caps, &mut budget);
        let used = nodes.min(total) - budget;
        self.total.set(total - used);
        r
    }
}

/// Whether the pool is in the range where the answer must be exact.
pub(crate) fn is_small(inst: &Instance) -> bool {
    inst.live() <= EXACT_HOSTS_MAX && inst.item_count() <= EXACT_ITEMS_MAX
}

fn placement(items: &[Item], bins: &[usize], p: &[usize]) -> Placement {
    items.iter().zip(p).map(|(i, &b)| (*i, bins[b])).collect()
}

/// Decide whether the failure of the hosts flagged in `failed` leaves a
/// placement. `Feasible` and `Infeasible` are proofs; `Unknown` is not.
pub(crate) fn decide(inst: &Instance, split: &Split, failed: &[bool], effort: &Effort) -> Decision {
    let items = inst.items_for(failed);
    let bins = inst.bins_for(failed);
    let caps: Vec<u64> = bins.iter().map(|&b| inst.hosts[b].cap).collect();
    let sizes: Vec<u64> = items.iter().map(|i| i.size).collect();
    match pack::trivial(&sizes, &caps) {
        Some(true) => return Decision::Feasible(Vec::new()),
        Some(false) => return Decision::Infeasible,
        None => {}
    }
    if let Some(p) = pack::best_fit(&sizes, &caps).or_else(|| pack::worst_fit(&sizes, &caps)) {
        return Decision::Feasible(placement(&items, &bins, &p));
    }
    if let Some(p) = large_then_first_fit(split, &items, &caps, effort) {
        return Decision::Feasible(placement(&items, &bins, &p));
    }
    if items.len() <= EXACT_SET_ITEMS_MAX || effort.nodes == u64::MAX {
        match effort.exact(&sizes, &caps, effort.nodes) {
            Packing::Placed(p) => return Decision::Feasible(placement(&items, &bins, &p)),
            Packing::Impossible => return Decision::Infeasible,
            Packing::Undecided => {}
        }
    }
    // The biggest VMs alone not fitting proves the whole set does not fit.
    let k = sizes.len().min(RELAXED_ITEMS_MAX);
    if k < sizes.len() && effort.exact(&sizes[..k], &caps, effort.nodes) == Packing::Impossible {
        return Decision::Infeasible;
    }
    Decision::Unknown
}

/// The constructive side of the split certificate for one set: large items
/// packed exactly, then the small ones first fit into what is left.
fn large_then_first_fit(
    split: &Split,
    items: &[Item],
    caps: &[u64],
    effort: &Effort,
) -> Option<Vec<usize>> {
    let (large, small): (Vec<usize>, Vec<usize>) =
        (0..items.len()).partition(|&i| split.is_large[items[i].vm]);
    let large_sizes: Vec<u64> = large.iter().map(|&i| items[i].size).collect();
    // At least the budget the certificate used on the same VMs, so that a
    // certified set is also placed here.
    let nodes = effort.nodes.max(certify::LARGE_NODES_MAX);
    let Packing::Placed(lp) = effort.exact(&large_sizes, caps, nodes) else {
        return None;
    };
    let mut rem = caps.to_vec();
    for (&i, &b) in large.iter().zip(&lp) {
        rem[b] -= items[i].size;
    }
    let small_sizes: Vec<u64> = small.iter().map(|&i| items[i].size).collect();
    let sp = pack::first_fit_into(&small_sizes, &mut rem)?;
    let mut out = vec![0; items.len()];
    for (&i, &b) in large.iter().zip(&lp).chain(small.iter().zip(&sp)) {
        out[i] = b;
    }
    Some(out)
}

/// The answer of the search, in live host indices.
#[derive(Clone, Debug)]
pub(crate) struct Analysis {
    /// Largest n proven tolerated; -1 when not even 0.
    pub max: i64,
    /// Whether `max` is proven to be the true maximum.
    pub exact: bool,
    /// A set of `max + 1` hosts: proven to have no placement when `exact`,
    /// else the set the search could not place. Empty when `max` = live hosts.
    pub limiting: Vec<usize>,
}

/// Flags for a set of live host indices.
fn flags(inst: &Instance, set: &[usize]) -> Vec<bool> {
    let mut f = vec![false; inst.live()];
    for &h in set {
        f[h] = true;
    }
    f
}

/// The `n` hosts with the largest `key`, ties by index.
fn top_by(inst: &Instance, n: usize, key: impl Fn(usize) -> u128) -> Vec<usize> {
    let mut order: Vec<usize> = (0..inst.live()).collect();
    order.sort_by(|&a, &b| key(b).cmp(&key(a)).then(a.cmp(&b)));
    order.truncate(n);
    order.sort_unstable();
    order
}

/// Failure sets of size `n` likely to be the worst: what they take away and
/// what they hold, in several mixes.
fn candidates(inst: &Instance, split: &Split, n: usize) -> Vec<Vec<usize>> {
    let cap = |h: usize| {
        let x = &inst.hosts[h];
        if x.enabled { u128::from(x.cap) } else { 0 }
    };
    let demand = |h: usize| inst.hosts[h].demand;
    let small_room = |h: usize| cap(h).saturating_sub(u128::from(split.t));
    let biggest = |h: usize| u128::from(inst.hosts[h].items.first().map_or(0, |i| i.size));
    // The first maximises demand minus surviving room: the set that fails
    // the sum test if any does, and the one named when nothing is proven.
    let all = [
        top_by(inst, n, |h| demand(h) + cap(h)),
        top_by(inst, n, |h| demand(h) + small_room(h)),
        top_by(inst, n, cap),
        top_by(inst, n, demand),
        top_by(inst, n, |h| (biggest(h) << 64) + cap(h)),
    ];
    let mut sets: Vec<Vec<usize>> = Vec::with_capacity(all.len());
    for s in all {
        if !sets.contains(&s) {
            sets.push(s);
        }
    }
    sets
}

/// Number of ways to choose `k` of `n`, saturating.
fn choose(n: usize, k: usize) -> u128 {
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        c = c.saturating_mul((n - i) as u128) / (i as u128 + 1);
    }
    c
}

/// Visit every `k`-subset of `0..n` in lexicographic order until `f` says stop.
fn for_each_subset(n: usize, k: usize, mut f: impl FnMut(&[usize]) -> bool) {
    let mut idx: Vec<usize> = (0..k).collect();
    loop {
        if !f(&idx) {
            return;
        }
        // Advance to the next combination.
        let mut i = k;
        loop {
            if i == 0 {
                return;
            }
            i -= 1;
            if idx[i] != i + n - k {
                break;
            }
            if i == 0 {
                return;
            }
        }
        idx[i] += 1;
        for j in i + 1..k {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// What deciding the sets of one size showed.
enum SizeOutcome {
    AllFeasible,
    Refuted(Vec<usize>),
    Stuck(Vec<usize>),
}

fn try_all_sets(inst: &Instance, split: &Split, n: usize, effort: &Effort) -> SizeOutcome {
    let mut outcome = SizeOutcome::AllFeasible;
    for_each_subset(inst.live(), n, |set| {
        match decide(inst, split, &flags(inst, set), effort) {
            Decision::Feasible(_) => return true,
            Decision::Infeasible => outcome = SizeOutcome::Refuted(set.to_vec()),
            Decision::Unknown => outcome = SizeOutcome::Stuck(set.to_vec()),
        }
        false
    });
    outcome
}

/// The maximum number of host failures to tolerate for `inst`.
pub(crate) fn analyse(inst: &Instance, split: &Split) -> Analysis {
    let live = inst.live();
    if inst.nothing_to_place() {
        return Analysis {
            max: live as i64,
            exact: true,
            limiting: Vec::new(),
        };
    }
    let effort = Effort::for_instance(inst);
    let exhaustive = is_small(inst);
    // Proven lower bound. Each certificate is monotone in n (its worst case
    // only gets worse), so bisect for the smallest n not certified; keep the
    // verdict there, which may be a refutation.
    let (mut lo, mut hi) = (0, live);
    let mut at_hi = Verdict::Unknown;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match certify::verdict(inst, split, mid, &effort) {
            Verdict::Certified => lo = mid + 1,
            other => {
                hi = mid;
                at_hi = other;
            }
        }
    }
    let mut n = lo;
    let mut refuted = match at_hi {
        Verdict::Refuted(set) if hi < live => Some(set),
        _ => None,
    };
    // n is the smallest failure count not yet proven tolerated.
    loop {
        let done = |n: usize, exact: bool, limiting: Vec<usize>| Analysis {
            max: n as i64 - 1,
            exact,
            limiting,
        };
        if n == live {
            // Everything fails: the VMs to place have nowhere to go.
            return done(n, true, (0..live).collect());
        }
        if let Some(set) = refuted.take() {
            return done(n, true, set);
        }
        let cands = candidates(inst, split, n);
        let mut stuck = None;
        for set in &cands {
            match decide(inst, split, &flags(inst, set), &effort) {
                Decision::Feasible(_) => {}
                Decision::Infeasible => return done(n, true, set.clone()),
                Decision::Unknown => stuck = stuck.or_else(|| Some(set.clone())),
            }
        }
        // Deciding one set costs about (its VMs) x (surviving hosts).
        let sets = choose(live, n);
        let vms_per_set = (inst.needy.len() + 1 + n * inst.item_count() / live) as u128;
        let per_set = vms_per_set * live as u128;
        let xenserver_enumerates =
            super::xenserver::heuristic_for(live, n) == super::xenserver::Heuristic::Exhaustive;
        if !exhaustive
            && !xenserver_enumerates
            && sets.saturating_mul(per_set) > ENUMERATION_WORK_MAX
        {
            return done(n, false, stuck.unwrap_or_else(|| cands[0].clone()));
        }
        match try_all_sets(inst, split, n, &effort) {
            SizeOutcome::AllFeasible => n += 1,
            SizeOutcome::Refuted(set) => return done(n, true, set),
            SizeOutcome::Stuck(set) => return done(n, false, set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_all_visited_once() {
        for n in 0..7 {
            for k in 0..=n {
                let mut seen = Vec::new();
                for_each_subset(n, k, |s| {
                    seen.push(s.to_vec());
                    true
                });
                assert_eq!(seen.len() as u128, choose(n, k), "n={n} k={k}");
                let mut dedup = seen.clone();
                dedup.sort();
                dedup.dedup();
                assert_eq!(dedup.len(), seen.len());
                assert!(seen.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
            }
        }
    }
}
