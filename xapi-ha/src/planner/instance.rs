//! The placement problem extracted from a pool: which live hosts can fail, how
//! much memory each surviving host offers, and which protected VMs must then be
//! placed. Everything the search needs, in plain integers, built once.

use std::collections::HashMap;

use uuid::Uuid;

use crate::model::{Pool, PowerState, RestartPriority, Vm};

/// One VM that must be placed, by its index in `Pool::vms` and its footprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Item {
    pub vm: usize,
    pub size: u64,
}

/// A live host: a possible failure, and (when enabled) a possible destination.
#[derive(Clone, Debug)]
pub(crate) struct LiveHost {
    /// Index in `Pool::hosts`.
    pub host: usize,
    pub uuid: Uuid,
    /// Free memory offered to restarts; 0 when the host is disabled or its
    /// residents already exceed its memory.
    pub cap: u64,
    /// Whether restarts may be placed here at all (enabled). A disabled host
    /// with `cap` 0 still accepts zero-sized VMs otherwise, so this is explicit.
    pub enabled: bool,
    /// Agile protected running VMs resident here, biggest first: they need a
    /// place when this host fails.
    pub items: Vec<Item>,
    /// Sum of `items` sizes.
    pub demand: u128,
}

/// The planning problem: live hosts and the protected VMs to place.
#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub hosts: Vec<LiveHost>,
    /// Agile protected VMs that should run but are not resident on a live host:
    /// they need a place whatever fails. Biggest first.
    pub needy: Vec<Item>,
    /// Protected running VMs that are not agile: never planned, reported.
    pub excluded: Vec<Uuid>,
}

/// Whether the VM is one the plan must restart: protected and meant to run.
pub(crate) fn is_protected_running(vm: &Vm) -> bool {
    vm.priority == RestartPriority::Restart && vm.power_state == PowerState::Running
}

/// Map from host UUID to its index in `pool.hosts`; the first entry wins if a
/// UUID repeats (the pool-file parser rejects duplicates).
pub(crate) fn host_index(pool: &Pool) -> HashMap<Uuid, usize> {
    let mut map = HashMap::with_capacity(pool.hosts.len());
    for (i, h) in pool.hosts.iter().enumerate() {
        map.entry(h.uuid).or_insert(i);
    }
    map
}

/// The index in `pool.hosts` of the live host a running VM occupies, if any.
pub(crate) fn resident_live_host(
    pool: &Pool,
    hosts: &HashMap<Uuid, usize>,
    vm: &Vm,
) -> Option<usize> {
    if vm.power_state != PowerState::Running {
        return None;
    }
    let h = *hosts.get(&vm.resident_on?)?;
    pool.hosts[h].live.then_some(h)
}

/// Free memory of every host in `pool.hosts` order (total - overhead - sum of
/// the footprints of running VMs resident on it), clamped at 0, in bytes.
pub(crate) fn free_memory(pool: &Pool, hosts: &HashMap<Uuid, usize>) -> Vec<u64> {
    let mut used = vec![0u128; pool.hosts.len()];
    for vm in &pool.vms {
        if vm.power_state != PowerState::Running {
            continue;
        }
        if let Some(&h) = vm.resident_on.as_ref().and_then(|u| hosts.get(u)) {
            used[h] += u128::from(vm.footprint());
        }
    }
    pool.hosts
        .iter()
        .zip(used)
        .map(|(h, used)| {
            let base = u128::from(h.memory_total).saturating_sub(u128::from(h.memory_overhead));
            // The result is at most memory_total, so it fits in u64.
            u64::try_from(base.saturating_sub(used)).unwrap_or(u64::MAX)
        })
        .collect()
}

fn sort_items(items: &mut [Item]) {
    // Biggest first; ties by VM index so that every run is deterministic.
    items.sort_by(|a, b| b.size.cmp(&a.size).then(a.vm.cmp(&b.vm)));
}

impl Instance {
    pub(crate) fn new(pool: &Pool) -> Instance {
        let index = host_index(pool);
        let free = free_memory(pool, &index);
        let mut live_of_host = vec![None; pool.hosts.len()];
        let mut hosts = Vec::new();
        for (i, h) in pool.hosts.iter().enumerate() {
            if h.live && index.get(&h.uuid) == Some(&i) {
                live_of_host[i] = Some(hosts.len());
                hosts.push(LiveHost {
                    host: i,
                    uuid: h.uuid,
                    cap: if h.enabled { free[i] } else { 0 },
                    enabled: h.enabled,
                    items: Vec::new(),
                    demand: 0,
                });
            }
        }
        let mut needy = Vec::new();
        let mut excluded = Vec::new();
        for (v, vm) in pool.vms.iter().enumerate() {
            if !is_protected_running(vm) {
                continue;
            }
            if !vm.agile {
                excluded.push(vm.uuid);
                continue;
            }
            let item = Item {
                vm: v,
                size: vm.footprint(),
            };
            match resident_live_host(pool, &index, vm).and_then(|h| live_of_host[h]) {
                Some(l) => hosts[l].items.push(item),
                None => needy.push(item),
            }
        }
        for h in &mut hosts {
            sort_items(&mut h.items);
            h.demand = h.items.iter().map(|i| u128::from(i.size)).sum();
        }
        sort_items(&mut needy);
        Instance {
            hosts,
            needy,
            excluded,
        }
    }

    /// Number of live hosts.
    pub(crate) fn live(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no failure set ever has anything to place.
    pub(crate) fn nothing_to_place(&self) -> bool {
        self.needy.is_empty() && self.hosts.iter().all(|h| h.items.is_empty())
    }

    /// Total number of VMs that some failure set may have to place.
    pub(crate) fn item_count(&self) -> usize {
        self.needy.len() + self.hosts.iter().map(|h| h.items.len()).sum::<usize>()
    }

    /// The items to place when the hosts flagged in `failed` fail, biggest first.
    pub(crate) fn items_for(&self, failed: &[bool]) -> Vec<Item> {
        let mut items = self.needy.clone();
        for (h, f) in self.hosts.iter().zip(failed) {
            if *f {
                items.extend_from_slice(&h.items);
            }
        }
        sort_items(&mut items);
        items
    }

    /// The surviving destinations when the hosts flagged in `failed` fail:
    /// indices into `hosts` of enabled hosts outside the set.
    pub(crate) fn bins_for(&self, failed: &[bool]) -> Vec<usize> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(i, h)| h.enabled && !failed[*i])
            .map(|(i, _)| i)
            .collect()
    }
}
