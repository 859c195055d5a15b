//! The safety invariants, checked against the simulator's ground truth.
//!
//! The checker sees what hosts publish (liveset changes, master beliefs) and
//! what really happened to each host (running, frozen, crashed, fenced), and
//! records a [`Violation`] the moment an invariant breaks.

use std::collections::BTreeMap;
use std::fmt;

use sr_heartbeat::statefile::HostSet;

use super::time::{Nanos, secs};

/// What really happened to a host (ground truth).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Life {
    /// Processing events.
    Running,
    /// Paused (SIGSTOP, VM pause, hypervisor stall): processes nothing, but
    /// its watchdog keeps counting.
    Frozen,
    /// Powered off or crashed; nothing runs any more.
    Crashed,
    /// Reset by its own decision (`Fence` action).
    Fenced,
    /// Reset by its watchdog (missed kick).
    WatchdogFired,
    /// Shut down cleanly: excluded, then its daemon stopped (`Stopped`).
    ShutDown,
}

impl Life {
    /// Whether the host can still run VMs: the property survivors must not
    /// contradict when they drop it from the liveset.
    #[must_use]
    pub fn is_up(self) -> bool {
        matches!(self, Life::Running | Life::Frozen)
    }

    #[must_use]
    pub fn is_dead(self) -> bool {
        !self.is_up()
    }
}

/// Which invariant (numbered as in the issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// 1: a host removed from a published liveset is fenced or crashed by then.
    RemovedIsDead = 1,
    /// 2: at most one running, unfenced master; epochs only grow.
    SingleMaster = 2,
    /// 3: livesets shrink or grow, never swap members; survivors converge.
    LivesetEvolution = 3,
    /// 4: no fault, no fence.
    NoFaultNoFence = 4,
    /// 5: all lost the statefile, network whole: no fence.
    StatefileLostNoFence = 5,
    /// 6: a fully connected partition with the statefile survives.
    SomeoneSurvives = 6,
    /// 7: while every host keeps its statefiles, whatever the network does,
    /// not every member fences (and a whole-network outage leaves exactly
    /// the master's singleton).
    NotAllFenced = 7,
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub at: Nanos,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} ({:?}) violated at {:.6} s: {}",
            self.invariant as u8,
            self.invariant,
            secs(self.at),
            self.message
        )
    }
}

/// Per-host ground truth the checker needs.
#[derive(Clone, Copy, Debug)]
pub struct HostTruth {
    pub life: Life,
    /// Bumped on every boot.
    pub incarnation: u32,
    /// This incarnation has been in some published liveset (its own or a
    /// peer's): from then on, others may only drop it once it is dead.
    pub member: bool,
}

/// Invariant state carried across the run.
#[derive(Debug, Default)]
pub struct Checker {
    /// Last liveset each host (incarnation) published.
    published: Vec<Option<HostSet>>,
    /// epoch -> host that was master in it.
    masters: BTreeMap<u64, usize>,
    /// Highest master epoch any host has believed in.
    max_epoch: u64,
    /// Who believed to be master after the previous step.
    believed: Vec<Option<u64>>,
    violations: Vec<Violation>,
}

impl Checker {
    #[must_use]
    pub fn new(hosts: usize) -> Checker {
        Checker {
            published: vec![None; hosts],
            believed: vec![None; hosts],
            ..Checker::default()
        }
    }

    fn fail(&mut self, invariant: Invariant, at: Nanos, message: String) {
        self.violations.push(Violation {
            invariant,
            at,
            message,
        });
    }

    #[must_use]
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// A host rebooted: its previous publications belong to a dead
    /// incarnation, so the next one is compared with nothing.
    pub fn host_rebooted(&mut self, host: usize) {
        self.published[host] = None;
        self.believed[host] = None;
    }

    /// `host` published `liveset` at `at`. Checks invariants 1 and 3.
    pub fn liveset_published(
        &mut self,
        at: Nanos,
        host: usize,
        liveset: HostSet,
        truth: &[HostTruth],
    ) {
        if let Some(prev) = self.published[host] {
            let removed = prev.difference(liveset);
            let added = liveset.difference(prev);
            if !removed.is_empty() && !added.is_empty() {
                self.fail(
                    Invariant::LivesetEvolution,
                    at,
                    format!("h{host} went from {prev} to {liveset}: both removed and added hosts"),
                );
            }
            for r in removed.iter() {
                let t = truth[r];
                if r != host && t.life.is_up() && t.member {
                    self.fail(
                        Invariant::RemovedIsDead,
                        at,
                        format!(
                            "h{host} removed h{r} (liveset {prev} -> {liveset}) while h{r} is {:?} (incarnation {})",
                            t.life, t.incarnation
                        ),
                    );
                }
            }
        }
        self.published[host] = Some(liveset);
    }

    /// After a step that touched `host`: whether it is a running, unfenced
    /// host that believes it is master, and in which epoch. Checks
    /// invariant 2 (one master at a time, each new mastership in a new,
    /// higher epoch).
    pub fn master_belief(&mut self, at: Nanos, host: usize, belief: Option<u64>) {
        if self.believed[host] == belief {
            return;
        }
        self.believed[host] = belief;
        let Some(e) = belief else { return };
        let others: Vec<String> = self
            .believed
            .iter()
            .enumerate()
            .filter(|&(h, b)| h != host && b.is_some())
            .map(|(h, b)| format!("h{h}@epoch{}", b.unwrap_or_default()))
            .collect();
        if !others.is_empty() {
            self.fail(
                Invariant::SingleMaster,
                at,
                format!(
                    "h{host} became master in epoch {e} while {} also are",
                    others.join(", ")
                ),
            );
        }
        match self.masters.get(&e) {
            Some(&other) if other != host => self.fail(
                Invariant::SingleMaster,
                at,
                format!("h{host} is master in epoch {e}, which h{other} already held"),
            ),
            Some(_) => {}
            None if e < self.max_epoch => self.fail(
                Invariant::SingleMaster,
                at,
                format!(
                    "h{host} became master in epoch {e} after epoch {} existed",
                    self.max_epoch
                ),
            ),
            None => {}
        }
        self.masters.insert(e, host);
        self.max_epoch = self.max_epoch.max(e);
    }

    /// The highest master epoch seen so far.
    #[must_use]
    pub fn max_epoch(&self) -> u64 {
        self.max_epoch
    }

    /// Invariant 4 or 5: a host fenced where nobody may.
    pub fn forbidden_fence(&mut self, invariant: Invariant, at: Nanos, host: usize, why: &str) {
        self.fail(invariant, at, format!("h{host} fenced ({why})"));
    }

    /// Invariant 3 (liveness part) and 6, checked by the run at the end.
    pub fn fail_liveness(&mut self, invariant: Invariant, at: Nanos, message: String) {
        self.fail(invariant, at, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(lives: &[Life]) -> Vec<HostTruth> {
        lives
            .iter()
            .map(|&life| HostTruth {
                life,
                incarnation: 0,
                member: true,
            })
            .collect()
    }

    #[test]
    fn removing_a_live_host_is_caught() {
        let mut c = Checker::new(3);
        let t = truth(&[Life::Running, Life::Running, Life::Crashed]);
        c.liveset_published(0, 0, HostSet(0b111), &t);
        c.liveset_published(1, 0, HostSet(0b011), &t);
        assert!(c.violations().is_empty());
        c.liveset_published(2, 0, HostSet(0b001), &t);
        assert_eq!(c.violations()[0].invariant, Invariant::RemovedIsDead);
    }

    #[test]
    fn swapping_members_is_caught() {
        let mut c = Checker::new(3);
        let t = truth(&[Life::Running, Life::Crashed, Life::Crashed]);
        c.liveset_published(0, 0, HostSet(0b011), &t);
        c.liveset_published(1, 0, HostSet(0b101), &t);
        assert_eq!(c.violations()[0].invariant, Invariant::LivesetEvolution);
    }

    #[test]
    fn two_masters_and_stale_epochs_are_caught() {
        let mut c = Checker::new(3);
        c.master_belief(0, 0, Some(1));
        c.master_belief(1, 0, None);
        c.master_belief(1, 1, Some(2));
        assert!(c.violations().is_empty());
        // h2 claims the epoch h1 holds, while h1 still believes it.
        c.master_belief(2, 2, Some(2));
        assert_eq!(c.violations().len(), 2);
        let mut d = Checker::new(2);
        d.master_belief(0, 1, Some(5));
        d.master_belief(1, 1, None);
        d.master_belief(1, 0, Some(4));
        assert_eq!(d.violations()[0].invariant, Invariant::SingleMaster);
    }
}
