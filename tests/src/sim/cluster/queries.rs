//! What can be asked of the simulated pool: ground truth, each host's core,
//! deaths and fences.

use uuid::Uuid;
use xha::core::{HostSet, Node, Timeouts};
use xha_driver::Driver;

use super::super::checker::{HostTruth, Invariant, Life, Violation};
use super::super::storage::PathMode;
use super::super::time::Nanos;
use super::{Cluster, Death};

impl Cluster {
    /// Real simulator time now.
    #[must_use]
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// The derived timeouts every core uses.
    #[must_use]
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        self.checker.violations()
    }

    #[must_use]
    pub fn life(&self, h: usize) -> Life {
        self.hosts[h].life
    }

    /// The host runs or is frozen (not crashed, fenced or reset).
    #[must_use]
    pub fn is_up(&self, h: usize) -> bool {
        self.hosts[h].life.is_up()
    }

    /// Hosts that are up now.
    #[must_use]
    pub fn up_hosts(&self) -> HostSet {
        (0..self.hosts.len()).filter(|&h| self.is_up(h)).collect()
    }

    /// The liveset the host's core holds now (`None` if it is down).
    #[must_use]
    pub fn liveset(&self, h: usize) -> Option<HostSet> {
        self.node(h).map(Node::liveset)
    }

    /// The running, unfenced host that believes it is master, if exactly
    /// one does.
    #[must_use]
    pub fn master(&self) -> Option<usize> {
        let m: Vec<usize> = (0..self.hosts.len())
            .filter(|&h| self.belief(h).is_some())
            .collect();
        (m.len() == 1).then(|| m[0])
    }

    /// The master epoch the host's core knows.
    #[must_use]
    pub fn master_epoch(&self, h: usize) -> Option<u64> {
        self.node(h).map(Node::master_epoch)
    }

    /// The node of a host, for assertions on its getters.
    #[must_use]
    pub fn node(&self, h: usize) -> Option<&Node> {
        self.hosts[h].driver.as_ref().map(Driver::node)
    }

    #[must_use]
    pub fn uuid(&self, h: usize) -> Uuid {
        self.uuids[h]
    }

    /// Number of fences (decided or by watchdog) so far.
    #[must_use]
    pub fn fence_count(&self) -> usize {
        self.deaths
            .iter()
            .filter(|d| matches!(d.life, Life::Fenced | Life::WatchdogFired))
            .count()
    }

    /// Whether `h` fenced (or was reset by its watchdog) at or after `since`.
    #[must_use]
    pub fn fenced_since(&self, h: usize, since: Nanos) -> Option<Death> {
        self.deaths
            .iter()
            .find(|d| {
                d.host == h && d.at >= since && matches!(d.life, Life::Fenced | Life::WatchdogFired)
            })
            .copied()
    }

    /// Ground truth for the checker.
    pub(super) fn truth(&self) -> Vec<HostTruth> {
        self.hosts
            .iter()
            .map(|h| HostTruth {
                life: h.life,
                incarnation: h.incarnation,
                member: h.member,
            })
            .collect()
    }

    pub(super) fn belief(&self, h: usize) -> Option<u64> {
        let host = &self.hosts[h];
        if host.life != Life::Running {
            return None;
        }
        let node = host.driver.as_ref()?.node();
        (node.is_master() && !node.is_fenced()).then(|| node.master_epoch())
    }

    /// Whether the host's paths reach a majority of the statefiles with
    /// latency below the I/O deadline (what the survival rules call
    /// statefile access), judged from the simulator's settings.
    #[must_use]
    pub fn has_statefile_majority(&self, h: usize) -> bool {
        let deadline = u64::try_from(self.timeouts.io_deadline.as_nanos()).unwrap_or(u64::MAX);
        let ok = self.hosts[h]
            .paths
            .iter()
            .filter(|p| p.mode == PathMode::Healthy && p.latency_max < deadline * 99 / 100)
            .count();
        2 * ok > self.config.statefiles
    }

    /// Records a violation found by the run outside the step checks.
    pub fn fail_liveness(&mut self, invariant: Invariant, at: Nanos, message: String) {
        self.checker.fail_liveness(invariant, at, message);
    }

    /// Forbid any fence from now on (invariant 4 or 5), or allow it again.
    pub fn forbid_fencing(&mut self, why: Option<Invariant>) {
        self.forbid_fencing = why;
    }

    /// Total events processed.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.steps
    }
}
