//! Bin packing with bins of different sizes: greedy heuristics that prove a
//! placement exists when they succeed, and an exact branch-and-bound search
//! that also proves when none exists.
//!
//! Sizes are given biggest first; bins are free memory in bytes. A placement
//! is, for each item, the index of its bin.

use std::collections::HashSet;

/// Outcome of a packing search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Packing {
    /// Every item placed: the bin of each item.
    Placed(Vec<usize>),
    /// Proven: no placement exists.
    Impossible,
    /// The search ran out of its node budget before deciding.
    Undecided,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Quick necessary conditions. `Some(false)` proves there is no placement,
/// `Some(true)` means there is nothing to place, `None` is inconclusive.
///
/// Room is counted in whole multiples of the sizes' greatest common divisor:
/// VM sizes are usually whole MiB or GiB while free memory is not, and the
/// rest of each bin can never be used.
pub(crate) fn trivial(sizes: &[u64], caps: &[u64]) -> Option<bool> {
    if sizes.is_empty() {
        return Some(true);
    }
    if caps.is_empty() {
        return Some(false);
    }
    let g = sizes.iter().fold(0, |g, &s| gcd(g, s)).max(1);
    let demand: u128 = sizes.iter().map(|&s| u128::from(s)).sum();
    let room: u128 = caps.iter().map(|&c| u128::from(c - c % g)).sum();
    let biggest_bin = caps.iter().copied().max().unwrap_or(0);
    let biggest_item = sizes.iter().copied().max().unwrap_or(0);
    if demand > room || biggest_item > biggest_bin {
        return Some(false);
    }
    None
}

/// Greedy placement in the given item order: each item goes to the bin chosen
/// by `pick` among those with room (`rem` is updated). Returns `None` at the
/// first item that fits nowhere.
fn greedy(
    sizes: &[u64],
    rem: &mut [u64],
    mut pick: impl FnMut(&[u64], u64) -> Option<usize>,
) -> Option<Vec<usize>> {
    let mut out = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let b = pick(rem, s)?;
        rem[b] -= s;
        out.push(b);
    }
    Some(out)
}

/// The bin with the least room that still fits `s` (best fit).
pub(crate) fn pick_best(rem: &[u64], s: u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (b, &r) in rem.iter().enumerate() {
        if r >= s && best.is_none_or(|x| r < rem[x]) {
            best = Some(b);
        }
    }
    best
}

/// The bin with the most room, if it fits `s` (worst fit: XenServer's rule).
pub(crate) fn pick_worst(rem: &[u64], s: u64) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (b, &r) in rem.iter().enumerate() {
        if best.is_none_or(|x| r > rem[x]) {
            best = Some(b);
        }
    }
    best.filter(|&b| rem[b] >= s)
}

/// The first bin that fits `s`.
pub(crate) fn pick_first(rem: &[u64], s: u64) -> Option<usize> {
    rem.iter().position(|&r| r >= s)
}

/// Best fit decreasing.
pub(crate) fn best_fit(sizes: &[u64], caps: &[u64]) -> Option<Vec<usize>> {
    greedy(sizes, &mut caps.to_vec(), pick_best)
}

/// Worst fit decreasing (each VM into the host with most free memory).
pub(crate) fn worst_fit(sizes: &[u64], caps: &[u64]) -> Option<Vec<usize>> {
    greedy(sizes, &mut caps.to_vec(), pick_worst)
}

/// First fit of `sizes` into the remaining room `rem` (updated in place).
pub(crate) fn first_fit_into(sizes: &[u64], rem: &mut [u64]) -> Option<Vec<usize>> {
    greedy(sizes, rem, pick_first)
}

/// Exact search: places `sizes` (biggest first) into bins of room `caps`, or
/// proves it impossible, within `node_limit` search nodes.
///
/// Pruning, each of which keeps the search complete:
/// - bins with equal remaining room are interchangeable: try one of them;
/// - an item that fills a bin exactly goes there (any placement can swap the
///   items of that bin, which weigh at most as much, into the item's place);
/// - room in bins smaller than the smallest item is wasted: if the rest does
///   not cover the remaining demand, backtrack;
/// - states (next item, multiset of remaining room) already proven dead are
///   remembered.
#[cfg(test)]
pub(crate) fn exact(sizes: &[u64], caps: &[u64], node_limit: u64) -> Packing {
    let mut budget = node_limit;
    exact_within(sizes, caps, &mut budget)
}

/// [`exact`] drawing its nodes from `budget`, which is lowered by the nodes used.
pub(crate) fn exact_within(sizes: &[u64], caps: &[u64], budget: &mut u64) -> Packing {
    let node_limit = *budget;
    debug_assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "sizes biggest first"
    );
    match trivial(sizes, caps) {
        Some(true) => return Packing::Placed(vec![0; sizes.len()]),
        Some(false) => return Packing::Impossible,
        None => {}
    }
    if let Some(p) = best_fit(sizes, caps) {
        return Packing::Placed(p);
    }
    let mut suffix = vec![0u128; sizes.len() + 1];
    for i in (0..sizes.len()).rev() {
        suffix[i] = suffix[i + 1] + u128::from(sizes[i]);
    }
    let mut s = Search {
        sizes,
        suffix,
        smallest: sizes[sizes.len() - 1],
        rem: caps.to_vec(),
        assign: vec![0; sizes.len()],
        nodes_left: node_limit,
        dead: HashSet::new(),
    };
    let step = s.go(0);
    *budget = s.nodes_left;
    match step {
        Step::Found => Packing::Placed(s.assign),
        Step::Dead => Packing::Impossible,
        Step::OutOfNodes => Packing::Undecided,
    }
}

/// Cap on remembered dead states, to bound memory.
const DEAD_STATES_MAX: usize = 1 << 18;

enum Step {
    Found,
    Dead,
    OutOfNodes,
}

struct Search<'a> {
    sizes: &'a [u64],
    suffix: Vec<u128>,
    smallest: u64,
    rem: Vec<u64>,
    assign: Vec<usize>,
    nodes_left: u64,
    dead: HashSet<(usize, Vec<u64>)>,
}

impl Search<'_> {
    fn key(&self, i: usize) -> (usize, Vec<u64>) {
        let mut r: Vec<u64> = self
            .rem
            .iter()
            .copied()
            .filter(|&r| r >= self.smallest)
            .collect();
        r.sort_unstable();
        (i, r)
    }

    fn go(&mut self, i: usize) -> Step {
        if i == self.sizes.len() {
            return Step::Found;
        }
        if self.nodes_left == 0 {
            return Step::OutOfNodes;
        }
        self.nodes_left -= 1;
        let usable: u128 = self
            .rem
            .iter()
            .filter(|&&r| r >= self.smallest)
            .map(|&r| u128::from(r))
            .sum();
        if usable < self.suffix[i] {
            return Step::Dead;
        }
        let key = self.key(i);
        if self.dead.contains(&key) {
            return Step::Dead;
        }
        let s = self.sizes[i];
        let mut cands: Vec<usize> = (0..self.rem.len()).filter(|&b| self.rem[b] >= s).collect();
        if let Some(&b) = cands.iter().find(|&&b| self.rem[b] == s) {
            cands = vec![b];
        }
        cands.sort_by_key(|&b| (self.rem[b], b));
        cands.dedup_by_key(|b| self.rem[*b]);
        let mut out_of_nodes = false;
        for b in cands {
            self.rem[b] -= s;
            self.assign[i] = b;
            let r = self.go(i + 1);
            self.rem[b] += s;
            match r {
                Step::Found => return Step::Found,
                Step::Dead => {}
                Step::OutOfNodes => {
                    out_of_nodes = true;
                    break;
                }
            }
        }
        if out_of_nodes {
            return Step::OutOfNodes;
        }
        if self.dead.len() < DEAD_STATES_MAX {
            self.dead.insert(key);
        }
        Step::Dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sizes: &[u64], caps: &[u64], p: &[usize]) {
        let mut rem = caps.to_vec();
        for (s, &b) in sizes.iter().zip(p) {
            assert!(rem[b] >= *s);
            rem[b] -= s;
        }
    }

    #[test]
    fn equal_room_and_demand_is_not_enough() {
        // Three VMs of 4 into two hosts of 6: room 12 = demand 12, no placement.
        assert_eq!(exact(&[4, 4, 4], &[6, 6], 1000), Packing::Impossible);
        // Hosts 12 and 8, VMs 6,5,5,4: 8 holds one VM, 12 cannot hold the other three.
        assert_eq!(exact(&[6, 5, 5, 4], &[12, 8], 1000), Packing::Impossible);
    }

    #[test]
    fn exact_finds_what_best_fit_misses() {
        // Best fit: 6->9, 5->11, 5->11 (1 left), 4 fits nowhere. Exact: 6+5 | 5+4.
        let (sizes, caps) = ([6, 5, 5, 4], [11, 9]);
        assert!(best_fit(&sizes, &caps).is_none());
        match exact(&sizes, &caps, 1000) {
            Packing::Placed(p) => check(&sizes, &caps, &p),
            other => panic!("expected a placement, got {other:?}"),
        }
    }

    #[test]
    fn room_counts_in_multiples_of_the_common_divisor() {
        // Two hosts of 7 hold one VM of 4 each: demand 12 <= room 14, yet
        // only 8 is usable.
        assert_eq!(trivial(&[4, 4, 4], &[7, 7]), Some(false));
        assert_eq!(exact(&[4, 4, 4], &[7, 7], 1000), Packing::Impossible);
        // With a VM of 2 the divisor is 2: usable room 12 >= demand 10.
        assert_eq!(trivial(&[4, 4, 2], &[7, 7]), None);
    }

    #[test]
    fn node_budget_is_respected() {
        // Eight VMs of 6 need eight hosts of 10 (room 50 = demand 50): with a
        // budget of one node the search cannot decide.
        let sizes = [6, 6, 6, 6, 6, 6, 6, 6, 2];
        let caps = [10, 10, 10, 10, 10];
        assert_eq!(exact(&sizes, &caps, 1), Packing::Undecided);
        assert_eq!(exact(&sizes, &caps, u64::MAX), Packing::Impossible);
    }
}
