//! Restart plans for a given failure set: protected VMs first (a complete
//! placement whenever one is found), then best-effort VMs where room is left.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::certify::Split;
use super::instance::{self, Instance, Item};
use super::search::{self, Decision, Effort, Placement};
use super::{PlanEntry, PlanError, PlanOutcome, RestartPlan};
use crate::model::{Pool, PowerState, RestartPriority};

/// Validated failure set: flags over the instance's live hosts.
pub(crate) fn failure_flags(
    pool: &Pool,
    inst: &Instance,
    failed_hosts: &[Uuid],
) -> Result<Vec<bool>, PlanError> {
    let index = instance::host_index(pool);
    let live: HashMap<Uuid, usize> = inst
        .hosts
        .iter()
        .enumerate()
        .map(|(l, h)| (h.uuid, l))
        .collect();
    let mut failed = vec![false; inst.live()];
    for u in failed_hosts {
        if !index.contains_key(u) {
            return Err(PlanError::UnknownHost(*u));
        }
        let Some(&l) = live.get(u) else {
            return Err(PlanError::HostNotLive(*u));
        };
        if failed[l] {
            return Err(PlanError::DuplicateHost(*u));
        }
        failed[l] = true;
    }
    Ok(failed)
}

/// Remaining room per live host for this failure set; `None` for hosts that
/// take no restarts (failed or disabled).
fn initial_room(inst: &Instance, failed: &[bool]) -> Vec<Option<u64>> {
    inst.hosts
        .iter()
        .zip(failed)
        .map(|(h, &f)| (h.enabled && !f).then_some(h.cap))
        .collect()
}

/// The live host index of a VM's affinity host, if it is one.
fn affinity_of(pool: &Pool, inst: &Instance, vm: usize) -> Option<usize> {
    let a = pool.vms[vm].affinity?;
    inst.hosts.iter().position(|h| h.uuid == a)
}

/// Greedy placement in the given order: the affinity host when it has room,
/// else the host with the most room (worst fit, XenServer's rule): restarts
/// spread over the survivors, so they start in parallel on several hosts
/// (best fit packed all eight protected VMs of the 16-host benchmark onto
/// one host, whose starts follow each other) and the next failure takes
/// fewer of them at once. Where spreading leaves no hole for a big VM the
/// exact search below (`complete_placement`) still finds a placement.
fn greedy(
    pool: &Pool,
    inst: &Instance,
    items: &[Item],
    room: &mut [Option<u64>],
) -> Vec<Option<usize>> {
    items
        .iter()
        .map(|item| {
            let fits = |h: usize, room: &[Option<u64>]| room[h].is_some_and(|r| r >= item.size);
            let dest = affinity_of(pool, inst, item.vm)
                .filter(|&h| fits(h, room))
                .or_else(|| {
                    (0..room.len())
                        .filter(|&h| fits(h, room))
                        .max_by_key(|&h| (room[h], std::cmp::Reverse(h)))
                });
            if let Some(h) = dest
                && let Some(r) = room[h].as_mut()
            {
                *r -= item.size;
            }
            dest
        })
        .collect()
}

/// Sort key of a restart: ascending `order`, then biggest first.
fn by_order_then_size(pool: &Pool, items: &mut [Item]) {
    items.sort_by(|a, b| {
        let (va, vb) = (&pool.vms[a.vm], &pool.vms[b.vm]);
        va.order
            .cmp(&vb.order)
            .then(b.size.cmp(&a.size))
            .then(a.vm.cmp(&b.vm))
    });
}

/// A placement of every protected VM to restart when the flagged hosts fail,
/// if one is found. When deciding the set itself fails but the pool tolerates
/// more failures than the set has (`known_max`, computed when `None`), a set
/// of that size containing it was proven placeable when the maximum was
/// computed: its placement, restricted to this set's VMs, is one for this set.
fn complete_placement(
    inst: &Instance,
    split: &Split,
    failed: &[bool],
    known_max: Option<i64>,
) -> Option<Placement> {
    let effort = || {
        Effort::unbounded(if search::is_small(inst) {
            u64::MAX
        } else {
            search::PLAN_NODES_MAX
        })
    };
    if let Decision::Feasible(p) = search::decide(inst, split, failed, &effort()) {
        return Some(p);
    }
    let size = failed.iter().filter(|&&f| f).count();
    let max = known_max.unwrap_or_else(|| search::analyse(inst, split).max);
    if max <= size as i64 || max >= inst.live() as i64 {
        return None;
    }
    let mut wider = failed.to_vec();
    let mut extra = max as usize - size;
    for f in wider.iter_mut() {
        if extra > 0 && !*f {
            *f = true;
            extra -= 1;
        }
    }
    let Decision::Feasible(p) = search::decide(inst, split, &wider, &effort()) else {
        return None;
    };
    let mine: HashSet<usize> = inst.items_for(failed).iter().map(|i| i.vm).collect();
    Some(
        p.into_iter()
            .filter(|(i, _)| mine.contains(&i.vm))
            .collect(),
    )
}

/// Destinations (live host index) of the protected VMs to restart when the
/// flagged hosts fail: a complete placement when one is found, else by
/// ascending `order` as far as room goes. `room` is left with what remains.
pub(crate) fn place_protected(
    pool: &Pool,
    inst: &Instance,
    split: &Split,
    failed: &[bool],
    known_max: Option<i64>,
    room: &mut Vec<Option<u64>>,
) -> Vec<(Item, Option<usize>)> {
    let mut items = inst.items_for(failed);
    by_order_then_size(pool, &mut items);
    let start = room.clone();
    let dest = greedy(pool, inst, &items, room);
    if dest.iter().all(Option::is_some) {
        return items.into_iter().zip(dest).collect();
    }
    if let Some(p) = complete_placement(inst, split, failed, known_max) {
        *room = start;
        let mut out: Vec<(Item, Option<usize>)> = Vec::with_capacity(p.len());
        for (item, h) in p {
            if let Some(r) = room[h].as_mut() {
                *r -= item.size;
            }
            out.push((item, Some(h)));
        }
        // Move VMs to their affinity host where it still has room.
        for (item, h) in &mut out {
            if let (Some(a), Some(cur)) = (affinity_of(pool, inst, item.vm), *h)
                && a != cur
                && room[a].is_some_and(|r| r >= item.size)
            {
                if let Some(r) = room[a].as_mut() {
                    *r -= item.size;
                }
                if let Some(r) = room[cur].as_mut() {
                    *r += item.size;
                }
                *h = Some(a);
            }
        }
        out.sort_by(|a, b| {
            let (va, vb) = (&pool.vms[a.0.vm], &pool.vms[b.0.vm]);
            va.order.cmp(&vb.order).then(b.0.size.cmp(&a.0.size))
        });
        return out;
    }
    items.into_iter().zip(dest).collect()
}

/// The full restart plan for a validated failure set.
pub(crate) fn build(pool: &Pool, inst: &Instance, split: &Split, failed: &[bool]) -> RestartPlan {
    let index = instance::host_index(pool);
    let live_of: HashMap<usize, usize> = inst
        .hosts
        .iter()
        .enumerate()
        .map(|(l, h)| (h.host, l))
        .collect();
    let mut room = initial_room(inst, failed);
    let mut entries = Vec::new();
    let entry = |vm: usize, outcome: PlanOutcome| {
        let v = &pool.vms[vm];
        PlanEntry {
            vm: v.uuid,
            name: v.name.clone(),
            priority: v.priority,
            order: v.order,
            outcome,
        }
    };
    for (item, dest) in place_protected(pool, inst, split, failed, None, &mut room) {
        let outcome = dest.map_or(PlanOutcome::NoRoom, |h| {
            PlanOutcome::Destination(inst.hosts[h].uuid)
        });
        entries.push(entry(item.vm, outcome));
    }
    // Every other running VM that lost its host.
    let mut best_effort = Vec::new();
    for (v, vm) in pool.vms.iter().enumerate() {
        if vm.power_state != PowerState::Running {
            continue;
        }
        let home = instance::resident_live_host(pool, &index, vm).and_then(|h| live_of.get(&h));
        if home.is_some_and(|&l| !failed[l]) {
            continue;
        }
        match (vm.priority, vm.agile) {
            (RestartPriority::Restart, true) => {} // placed above
            (RestartPriority::Unprotected, _) => entries.push(entry(v, PlanOutcome::Unprotected)),
            (_, false) => entries.push(entry(v, PlanOutcome::NotAgile)),
            (RestartPriority::BestEffort, true) => best_effort.push(Item {
                vm: v,
                size: vm.footprint(),
            }),
        }
    }
    by_order_then_size(pool, &mut best_effort);
    let dest = greedy(pool, inst, &best_effort, &mut room);
    for (item, d) in best_effort.iter().zip(dest) {
        let outcome = d.map_or(PlanOutcome::NoRoom, |h| {
            PlanOutcome::Destination(inst.hosts[h].uuid)
        });
        entries.push(entry(item.vm, outcome));
    }
    // Protected, then best-effort, then the rest; each by order. Stable, so
    // placement order is kept within an order group.
    let class = |p: RestartPriority| match p {
        RestartPriority::Restart => 0,
        RestartPriority::BestEffort => 1,
        RestartPriority::Unprotected => 2,
    };
    entries.sort_by_key(|e| (class(e.priority), e.order));
    RestartPlan { entries }
}
