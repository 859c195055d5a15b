//! The runner's network and storage faults and their heals: nftables
//! drops between hosts' addresses (`crate::nft`), and one host's view of
//! the SR switched to a fault (`run::storage`). A host that fences during
//! such a fault stays down until it heals, then boots.

use std::collections::BTreeMap;

use xha_lab::LabError;

use super::super::hosts::HostState;
use super::super::schedule::{StorageFault, Target};
use super::{Runner, spec_err};
use crate::faultfs::Mode;

impl Runner {
    /// The open network or storage fault host `i` is in (a host that
    /// fences in one stays down until it heals).
    pub(super) fn open_fault_of(&self, i: usize) -> Option<usize> {
        let net = self
            .nets
            .iter()
            .find(|(_, (hosts, _))| hosts.contains(&i))
            .map(|(id, _)| *id);
        net.or_else(|| {
            self.disks
                .iter()
                .find(|(_, (h, _))| *h == i)
                .map(|(id, _)| *id)
        })
    }

    /// Since when host `i`'s I/O has stopped (its storage fails or hangs),
    /// wall ms.
    pub(super) fn storage_stopped(&self, i: usize) -> Option<u64> {
        self.disks
            .values()
            .find(|(h, _)| *h == i)
            .and_then(|(_, since)| *since)
    }

    /// Network fault `id`: every packet of each (from, to) link dropped
    /// (heartbeats and the agents' host-to-host traffic: a switch's cut),
    /// when every host in `hosts` is up (else skipped, as a fault on a
    /// host that is not up). A host of `hosts` that fences meanwhile stays
    /// down until the fault is mended.
    pub(super) fn cut_links(
        &mut self,
        id: usize,
        hosts: &[usize],
        links: &[(usize, usize)],
    ) -> Result<(), LabError> {
        if self.nft.is_none() {
            return Ok(());
        }
        if let Some(&h) = hosts.iter().find(|&&h| self.states[h] != HostState::Up) {
            self.notes.push(format!(
                "fault {id} skipped: {} is not up",
                self.pool.hosts[h].name
            ));
            return Ok(());
        }
        let mut rules = Vec::new();
        if let Some(table) = &self.nft {
            for &(a, b) in links {
                let rule = table
                    .drop_between(self.addresses[a], self.addresses[b])
                    .map_err(|e| spec_err("cut the network", e))?;
                rules.push(rule);
            }
        }
        let names: Vec<&str> = hosts
            .iter()
            .map(|&h| self.pool.hosts[h].name.as_str())
            .collect();
        self.notes
            .push(format!("  fault {id} hits {}", names.join(", ")));
        self.nets.insert(id, (hosts.to_vec(), rules));
        self.network_cuts += 1;
        Ok(())
    }

    /// Network fault `id` mended: its drops removed, its hosts that fenced
    /// meanwhile booted.
    pub(super) fn mend(&mut self, id: usize) -> Result<(), LabError> {
        let Some((hosts, rules)) = self.nets.remove(&id) else {
            return Ok(());
        };
        if let Some(table) = &self.nft {
            for r in rules {
                table
                    .remove(r)
                    .map_err(|e| spec_err("mend the network", e))?;
            }
        }
        self.boot_after(id, &hosts)
    }

    /// Storage fault `id` on `target` (skipped when it is not up, or
    /// without views).
    pub(super) fn storage_fault(
        &mut self,
        id: usize,
        target: Target,
        fault: StorageFault,
    ) -> Result<(), LabError> {
        let Some(views) = self.views.clone() else {
            return Ok(());
        };
        let Some(h) = self.target(id, target) else {
            return Ok(());
        };
        let mode = match fault {
            StorageFault::Error => Mode::Error,
            StorageFault::Hang => Mode::Hang,
            StorageFault::Slow { ms } => Mode::Delay(std::time::Duration::from_millis(ms)),
        };
        views.set(h, mode)?;
        let stops = matches!(fault, StorageFault::Error | StorageFault::Hang);
        self.disks
            .insert(id, (h, stops.then(xha_lab::power::wall_ms)));
        self.storage_faults += 1;
        Ok(())
    }

    /// Storage fault `id` healed: the host's view works again (held
    /// requests answered now), the host booted if it fenced meanwhile.
    pub(super) fn heal_storage_fault(&mut self, id: usize) -> Result<(), LabError> {
        let Some((h, _)) = self.disks.remove(&id) else {
            return Ok(());
        };
        if let Some(views) = &self.views {
            views.set(h, Mode::Ok)?;
        }
        self.boot_after(id, &[h])
    }

    /// Every view healed (the run's end or failure: the pool's teardown
    /// must not meet a held request).
    pub(super) fn heal_storage(&mut self) {
        if let Some(views) = &self.views {
            views.heal_all();
        }
        self.disks = BTreeMap::new();
    }

    /// Host `i` powered off (a cut, or the watchdog's reset), its view's
    /// in-flight I/O failed first when it has a storage fault.
    pub(super) fn kill_host(&mut self, i: usize) -> Result<(std::time::Instant, u64), LabError> {
        let (pool, uuids) = (&mut self.pool, &self.uuids);
        super::storage::reset(self.views.as_deref(), i, || pool.kill_host(i, uuids))
    }

    /// The hosts of fault `id` that went down during it boot.
    fn boot_after(&mut self, id: usize, hosts: &[usize]) -> Result<(), LabError> {
        for &h in hosts {
            if self.states[h] == (HostState::Down { id: Some(id) }) {
                self.boot(h)?;
            }
        }
        Ok(())
    }
}
