//! A small vocabulary that makes scenario tests read like their spec:
//! `cluster.host(1).storage().fail(); cluster.run_for(t); assert!(...)`.

use std::time::Duration;

use xha::core::{HostSet, Warning};

use super::checker::Life;
use super::cluster::{Cluster, ClusterConfig};
use super::fault::{Control, Fault};
use super::storage::PathMode;
use super::time::{Nanos, secs};

/// A handle on one host of the cluster.
pub struct HostCtl<'a> {
    cluster: &'a mut Cluster,
    host: usize,
}

/// A handle on one host's statefile paths (all statefiles at once).
pub struct StorageCtl<'a> {
    cluster: &'a mut Cluster,
    host: usize,
}

/// A handle on the network.
pub struct NetCtl<'a> {
    cluster: &'a mut Cluster,
}

impl<'a> HostCtl<'a> {
    /// The host's paths to the statefiles.
    pub fn storage(self) -> StorageCtl<'a> {
        StorageCtl {
            cluster: self.cluster,
            host: self.host,
        }
    }
    pub fn crash(self) {
        self.cluster.inject(Fault::Crash(self.host));
    }
    /// The watchdog backend fails (the supervisor dies): the next kick
    /// fails, and it never fires.
    pub fn lose_watchdog(self) {
        self.cluster.inject(Fault::WatchdogLost(self.host));
    }
    pub fn freeze(self) {
        self.cluster.inject(Fault::Freeze(self.host));
    }
    pub fn thaw(self) {
        self.cluster.inject(Fault::Thaw(self.host));
    }
    /// Boot a dead host again (a fresh core).
    pub fn restart(self) {
        self.cluster.inject(Fault::Restart(self.host));
    }
    /// Cut every network link of the host, both ways.
    pub fn isolate(self) {
        self.cluster.inject(Fault::Isolate(self.host));
    }
    fn control(self, request: Control) {
        let host = self.host;
        self.cluster.inject(Fault::Control { host, request });
    }
    pub fn propose_master(self, yes: bool) {
        self.control(Control::ProposeMaster(yes));
    }
    pub fn disarm_fencing(self) {
        self.control(Control::DisarmFencing);
    }
    pub fn set_excluded(self) {
        self.control(Control::SetExcluded);
    }
    /// Stop the daemon (refused for an armed member that is not excluded).
    pub fn stop(self) {
        self.control(Control::Stop);
    }
}

impl StorageCtl<'_> {
    fn mode(self, mode: PathMode) {
        for sf in 0..self.cluster.config.statefiles {
            let host = self.host;
            self.cluster.inject(Fault::Storage { host, sf, mode });
        }
    }
    /// Every I/O fails with an error.
    pub fn fail(self) {
        self.mode(PathMode::Failing);
    }
    /// Every I/O hangs (never completes) until healed.
    pub fn hang(self) {
        self.mode(PathMode::Hung);
    }
    pub fn heal(self) {
        self.mode(PathMode::Healthy);
    }
    /// Every I/O takes between `min` and `max`.
    pub fn latency(self, min: Duration, max: Duration) {
        for sf in 0..self.cluster.config.statefiles {
            let host = self.host;
            self.cluster.inject(Fault::StorageLatency {
                host,
                sf,
                min: nanos(min),
                max: nanos(max),
            });
        }
    }
}

impl NetCtl<'_> {
    /// Split into these groups; hosts in no group are isolated.
    pub fn partition(self, groups: &[&[usize]]) {
        let groups = groups
            .iter()
            .map(|g| g.iter().copied().collect::<HostSet>())
            .collect();
        self.cluster.inject(Fault::Partition(groups));
    }
    /// Packets from `from` to `to` are lost; the other direction works.
    pub fn cut_one_way(self, from: usize, to: usize) {
        self.cluster.inject(Fault::OneWay {
            from,
            to,
            up: false,
        });
    }
    pub fn heal(self) {
        self.cluster.inject(Fault::HealNetwork);
    }
    /// Loss on every link, in percent.
    pub fn loss_percent(self, pct: u32) {
        self.cluster.inject(Fault::NetQuality {
            loss_ppm: pct * 10_000,
            dup_ppm: 0,
            delay_min: 100_000,
            delay_max: 2_000_000,
        });
    }
}

/// Duration to simulator nanoseconds.
#[must_use]
pub fn nanos(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

impl Cluster {
    /// A cluster of `hosts` from `seed` with T = 10 s.
    #[must_use]
    pub fn with_hosts(hosts: usize, seed: u64) -> Cluster {
        Cluster::new(ClusterConfig::new(hosts, seed))
    }

    pub fn host(&mut self, host: usize) -> HostCtl<'_> {
        HostCtl {
            cluster: self,
            host,
        }
    }

    pub fn storage(&mut self, host: usize) -> StorageCtl<'_> {
        StorageCtl {
            cluster: self,
            host,
        }
    }

    pub fn network(&mut self) -> NetCtl<'_> {
        NetCtl { cluster: self }
    }

    /// The base timeout T.
    #[must_use]
    pub fn t(&self) -> Duration {
        self.timeouts().base
    }

    /// Runs until every host holds the liveset of all hosts and a master
    /// exists; panics with the trace if that takes more than 6T.
    pub fn form(&mut self) -> Nanos {
        let n = self.hosts.len();
        let all = HostSet::first_n(n);
        let limit = self.t() * 6;
        let at = self.run_until_pred(limit, |c| {
            (0..n).all(|h| c.liveset(h) == Some(all)) && c.master().is_some()
        });
        match at {
            Some(at) => at,
            None => panic!(
                "pool of {n} did not form within 6T\n{}",
                self.report("(scenario)")
            ),
        }
    }

    /// Panics with the report if any invariant was violated.
    pub fn assert_safe(&self) {
        assert!(
            self.violations().is_empty(),
            "invariant violated:\n{}",
            self.report("(scenario test)")
        );
    }

    /// Hosts currently up.
    #[must_use]
    pub fn survivors(&self) -> HostSet {
        self.up_hosts()
    }

    /// The instant, after `since`, at which every host of `hosts` had
    /// published a liveset equal to `expected`.
    #[must_use]
    pub fn published_by(&self, hosts: HostSet, expected: HostSet, since: Nanos) -> Option<Nanos> {
        let mut worst = since;
        for h in hosts.iter() {
            let p = self
                .publications
                .iter()
                .find(|p| p.host == h && p.at >= since && p.liveset == expected)?;
            worst = worst.max(p.at);
        }
        Some(worst)
    }

    /// Hosts fenced (decided or by watchdog) at or after `since`.
    #[must_use]
    pub fn fenced_after(&self, since: Nanos) -> HostSet {
        self.deaths
            .iter()
            .filter(|d| d.at >= since && matches!(d.life, Life::Fenced | Life::WatchdogFired))
            .map(|d| d.host)
            .collect()
    }

    /// Warnings of one host raised at or after `since`.
    #[must_use]
    pub fn warnings_after(&self, h: usize, since: Nanos) -> Vec<Warning> {
        self.hosts[h]
            .warnings
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, w)| w.clone())
            .collect()
    }
}

/// Seconds between two instants, for messages and measurements.
#[must_use]
pub fn elapsed_s(from: Nanos, to: Nanos) -> f64 {
    secs(to.saturating_sub(from))
}
