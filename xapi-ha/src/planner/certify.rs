//! Certificates that *every* failure set of size n has a placement, checked
//! without enumerating the sets. Each is a sufficient condition with a proof
//! (docs/planner.md, "Soundness"); when a check finds a concrete failure set
//! whose biggest VMs alone do not fit, that is a proof the other way.
//!
//! Two certificates:
//! - *Split*: the few biggest VMs ("large") are packed exactly; the rest
//!   ("small") go first fit in decreasing size order. That can only fail on a
//!   small item of size s when every bin has less than s left, after only
//!   items of size >= s were placed; so it succeeds when, for every small size
//!   s, the small demand of items of size >= s is at most the sum over bins of
//!   `max(0, room - s)`. Packing the large items first lowers that sum by at
//!   most their total (`max(0, x)` is 1-Lipschitz), so it suffices that, for
//!   every failure set F and small size s,
//!   `large(F) + small(F, >= s) <= sum over surviving bins j of max(0, cap_j - s)`,
//!   and that the large items of F fit. The first is a sum over hosts: for
//!   each s the worst F is the n hosts with the largest
//!   `large(h) + small(h, >= s) + max(0, cap_h - s)`. The second is checked
//!   exactly for every subset S of the (few) hosts holding large items,
//!   completed by the hosts whose loss hurts most: the biggest bins. Sizes are
//!   grouped in bands 2% wide (demand from the band's smallest size, loss from
//!   its biggest), which only weakens the condition.
//! - *Slots*: with every item at most `t` (the biggest), a bin of room `c`
//!   takes at least `floor(c / t)` items by first fit, so it suffices that
//!   `count(F) <= sum of floor(cap_j / t)` over survivors; worst F: the n hosts
//!   with the largest `count(h) + floor(cap_h / t)`. This is XenServer's
//!   approximation made exact in its worst case, so we never do worse than it.

use super::instance::Instance;
use super::pack::Packing;
use super::search::Effort;

/// At most this many VMs are treated exactly by the split certificate.
pub(crate) const LARGE_ITEMS_MAX: usize = 12;
/// ... and they may sit on at most this many hosts (2^this subsets are tried).
pub(crate) const LARGE_HOSTS_MAX: usize = 8;
/// Node budget of each exact packing of large items.
pub(crate) const LARGE_NODES_MAX: u64 = 200_000;

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
    /// One band of small sizes per entry, biggest first.
    pub bands: Vec<Band>,
}

/// Small items whose sizes lie in `[low, high]`, and the demand each failure
/// brings for the threshold `low`.
#[derive(Clone, Debug)]
pub(crate) struct Band {
    /// The biggest size in the band: the room lost per bin.
    pub high: u64,
    /// Demand that needs a place whatever fails: needy large items and needy
    /// small items of size >= the band's smallest.
    pub needy: u128,
    /// Per live host: its large items plus its small items of size >= the
    /// band's smallest.
    pub demand: Vec<u128>,
}

/// Relative width of a size band, in 1/1024ths (2%).
const BAND_WIDTH_PER_1024: u64 = 20;

/// Group the small items into bands and total each host's demand per band.
fn bands(inst: &Instance, is_large: &[bool]) -> Vec<Band> {
    let mut sizes: Vec<u64> = inst
        .needy
        .iter()
        .chain(inst.hosts.iter().flat_map(|h| h.items.iter()))
        .filter(|i| !is_large[i.vm] && i.size > 0)
        .map(|i| i.size)
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    // (high, low) per band, biggest first.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for s in sizes {
        match ranges.last_mut() {
            Some((high, low))
                if u128::from(s) * 1024
                    >= u128::from(*high) * u128::from(1024 - BAND_WIDTH_PER_1024) =>
            {
                *low = s;
            }
            _ => ranges.push((s, s)),
        }
    }
    let large_sum = |items: &[super::instance::Item]| -> u128 {
        items
            .iter()
            .filter(|i| is_large[i.vm])
            .map(|i| u128::from(i.size))
            .sum()
    };
    let small_from = |items: &[super::instance::Item], low: u64| -> u128 {
        items
            .iter()
            .filter(|i| !is_large[i.vm] && i.size >= low)
            .map(|i| u128::from(i.size))
            .sum()
    };
    ranges
        .into_iter()
        .map(|(high, low)| Band {
            high,
            needy: large_sum(&inst.needy) + small_from(&inst.needy, low),
            demand: inst
                .hosts
                .iter()
                .map(|h| large_sum(&h.items) + small_from(&h.items, low))
                .collect(),
        })
        .collect()
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
        let bands = bands(inst, &is_large);
        Split {
            bands,
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
    split.bands.iter().all(|band| {
        let g: Vec<u128> = inst
            .hosts
            .iter()
            .map(|h| {
                u128::from(if h.enabled {
                    h.cap.saturating_sub(band.high)
                } else {
                    0
                })
            })
            .collect();
        let room: u128 = g.iter().sum();
        let keys = band.demand.iter().zip(&g).map(|(d, g)| d + g).collect();
        band.needy + top_sum(keys, n) <= room
    })
}

/// The split certificate's exact check of the large items for `n` failures.
fn split_large_verdict(inst: &Instance, split: &Split, n: usize, effort: &Effort) -> Verdict {
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
        match effort.exact(&sizes, &caps, LARGE_NODES_MAX) {
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
pub(crate) fn verdict(inst: &Instance, split: &Split, n: usize, effort: &Effort) -> Verdict {
    debug_assert!(n < inst.live());
    let large = split_large_verdict(inst, split, n, effort);
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
