//! Certificates that *every* failure set of size n has a placement, checked
//! without enumerating the sets. Each is a sufficient condition with a proof
//! (docs/planner.md, "Soundness"); when a check finds a concrete failure set
//! whose biggest VMs alone do not fit, that is a proof the other way.
//!
//! Two certificates:
//! - *Split*: the few biggest VMs ("large") are packed exactly; the rest
//!   ("small", each at most `t` bytes) go first fit. First fit can only fail
//!   on a small item when every bin has less than `t` left, so it succeeds
//!   when the small demand is at most the sum over bins of `max(0, room - t)`.
//!   Packing the large items first lowers that sum by at most their total
//!   (`max(0, x)` is 1-Lipschitz), so it suffices that, for every failure set
//!   F, `demand(F) <= sum over surviving bins j of max(0, cap_j - t)` and the
//!   large items of F fit. The first is a sum over hosts: the worst F is the n
//!   hosts with the largest `demand(h) + max(0, cap_h - t)`. The second is
//!   checked exactly for every subset S of the (few) hosts holding large items,
//!   completed by the hosts whose loss hurts most: the biggest bins.
//! - *Slots*: with every item at most `t` (the biggest), a bin of room `c`
//!   takes at least `floor(c / t)` items by first fit, so it suffices that
//!   `count(F) <= sum of floor(cap_j / t)` over survivors; worst F: the n hosts
//!   with the largest `count(h) + floor(cap_h / t)`. This is XenServer's
//!   approximation made exact in its worst case, so we never do worse than it.

use super::instance::Instance;
use super::pack::{self, Packing};

/// At most this many VMs are treated exactly by the split certificate.
pub(crate) const LARGE_ITEMS_MAX: usize = 12;
/// ... and they may sit on at most this many hosts (2^this subsets are tried).
pub(crate) const LARGE_HOSTS_MAX: usize = 8;
/// Node budget of each exact packing of large items.
const LARGE_NODES_MAX: u64 = 200_000;

/// Outcome of certifying one failure count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every failure set of this size has a placement.
    Certified,
    /// This failure set (live host indices) has no placement.
    Refuted(Vec<usize>),
    /// Neither proven.
    Unknown,
}

/// The division of protected VMs into large ones (packed exactly) and small
/// ones (first fit), fixed once per instance.
#[derive(Clone, Debug)]
pub(crate) struct Split {
    /// Size of the biggest small item; 0 when there are none.
    pub t: u64,
    /// Whether any small item exists.
    pub any_small: bool,
    /// Whether VM index `v` is large.
    pub is_large: Vec<bool>,
    /// Live host indices holding at least one large item.
    pub large_hosts: Vec<usize>,
    /// Large item sizes per live host (empty for others), biggest first.
    pub large_of: Vec<Vec<u64>>,
    /// Large items that need a place whatever fails, biggest first.
    pub needy_large: Vec<u64>,
}

impl Split {
    pub(crate) fn new(inst: &Instance, vm_count: usize) -> Split {
        // Every item with its host (None: needy), biggest first.
        let mut all: Vec<(u64, usize, Option<usize>)> = inst
            .needy
            .iter()
            .map(|i| (i.size, i.vm, None))
            .chain(
                inst.hosts
                    .iter()
                    .enumerate()
                    .flat_map(|(h, lh)| lh.items.iter().map(move |i| (i.size, i.vm, Some(h)))),
            )
            .collect();
        all.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut is_large = vec![false; vm_count];
        let mut large_of = vec![Vec::new(); inst.hosts.len()];
        let mut large_hosts: Vec<usize> = Vec::new();
        let mut needy_large = Vec::new();
        let mut taken = 0;
        for &(size, vm, host) in &all {
            if taken == LARGE_ITEMS_MAX {
                break;
            }
            if let Some(h) = host {
                if !large_hosts.contains(&h) {
                    if large_hosts.len() == LARGE_HOSTS_MAX {
                        break;
                    }
                    large_hosts.push(h);
                }
                large_of[h].push(size);
            } else {
                needy_large.push(size);
            }
            is_large[vm] = true;
            taken += 1;
        }
        let t = all.get(taken).map_or(0, |x| x.0);
        Split {
            t,
            any_small: taken < all.len(),
            is_large,
            large_hosts,
            large_of,
            needy_large,
        }
    }
}

/// Sum of the `n` largest values.
fn top_sum(mut v: Vec<u128>, n: usize) -> u128 {
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.iter().take(n).sum()
}

/// Whether some failure set of `n` hosts can leave no enabled host at all.
fn can_leave_no_bins(inst: &Instance, n: usize) -> bool {
    inst.hosts.iter().filter(|h| h.enabled).count() <= n
}

/// The split certificate's sum condition for `n` failures.
fn split_sums_hold(inst: &Instance, split: &Split, n: usize) -> bool {
    if !split.any_small {
        return true;
    }
    if can_leave_no_bins(inst, n) {
        return false;
    }
    let g: Vec<u128> = inst
        .hosts
        .iter()
        .map(|h| {
            u128::from(if h.enabled {
                h.cap.saturating_sub(split.t)
            } else {
                0
            })
        })
        .collect();
    let room: u128 = g.iter().sum();
    let keys = inst
        .hosts
        .iter()
        .zip(&g)
        .map(|(h, g)| h.demand + g)
        .collect();
    inst.needy_demand + top_sum(keys, n) <= room
}

/// The split certificate's exact check of the large items for `n` failures.
fn split_large_verdict(inst: &Instance, split: &Split, n: usize) -> Verdict {
    let lh = &split.large_hosts;
    // Other hosts, biggest bins first: the worst completions of a subset.
    let mut others: Vec<usize> = (0..inst.hosts.len()).filter(|h| !lh.contains(h)).collect();
    others.sort_by_key(|&h| {
        let host = &inst.hosts[h];
        (std::cmp::Reverse((host.enabled, host.cap)), h)
    });
    let mut result = Verdict::Certified;
    for mask in 0u32..(1u32 << lh.len()) {
        let s = mask.count_ones() as usize;
        if s > n || n - s > others.len() {
            continue;
        }
        let mut failed = vec![false; inst.hosts.len()];
        let mut sizes = split.needy_large.clone();
        for (i, &h) in lh.iter().enumerate() {
            if mask & (1 << i) != 0 {
                failed[h] = true;
                sizes.extend_from_slice(&split.large_of[h]);
            }
        }
        if sizes.is_empty() {
            continue;
        }
        for &h in &others[..n - s] {
            failed[h] = true;
        }
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        let caps: Vec<u64> = inst
            .bins_for(&failed)
            .iter()
            .map(|&b| inst.hosts[b].cap)
            .collect();
        match pack::exact(&sizes, &caps, LARGE_NODES_MAX) {
            Packing::Placed(_) => {}
            Packing::Impossible => {
                return Verdict::Refuted((0..failed.len()).filter(|&h| failed[h]).collect());
            }
            Packing::Undecided => result = Verdict::Unknown,
        }
    }
    result
}

/// The slots certificate for `n` failures.
fn slots_hold(inst: &Instance, n: usize) -> bool {
    let t = inst
        .needy
        .iter()
        .chain(inst.hosts.iter().flat_map(|h| h.items.iter()))
        .map(|i| i.size)
        .max();
    let Some(t) = t else { return true };
    if can_leave_no_bins(inst, n) {
        return false;
    }
    if t == 0 {
        return true;
    }
    let slots: Vec<u128> = inst
        .hosts
        .iter()
        .map(|h| u128::from(if h.enabled { h.cap / t } else { 0 }))
        .collect();
    let room: u128 = slots.iter().sum();
    let keys = inst
        .hosts
        .iter()
        .zip(&slots)
        .map(|(h, s)| h.items.len() as u128 + s)
        .collect();
    inst.needy.len() as u128 + top_sum(keys, n) <= room
}

/// Certify (or refute) that every set of `n` live hosts failing leaves a
/// placement. Requires `n < live hosts` (the caller handles "all fail").
pub(crate) fn verdict(inst: &Instance, split: &Split, n: usize) -> Verdict {
    debug_assert!(n < inst.live());
    let large = split_large_verdict(inst, split, n);
    if let Verdict::Refuted(_) = large {
        return large;
    }
    if large == Verdict::Certified && split_sums_hold(inst, split, n) {
        return Verdict::Certified;
    }
    if slots_hold(inst, n) {
        return Verdict::Certified;
    }
    Verdict::Unknown
}
