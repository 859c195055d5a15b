//! The campaign's schedule: a pure function of a seed and the pool's shape
//! (no clock, no processes). Same seed and [`Params`], same [`Schedule`].
//!
//! A schedule is a list of [`Step`]s, each at a time in ms from the start of
//! the fault phase. Every fault comes with the step that heals it (a host
//! powered back on, an agent restarted, a frozen process group continued),
//! and the generator keeps at most [`Params::max_faulty`] faults open at once,
//! so a majority of the hosts is always up and HA can act. The last step is
//! the last heal: after it every fault has healed.

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// The pool's shape and the schedule's length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Hosts in the pool (3 to 7).
    pub hosts: usize,
    /// VMs: the first `protected` are protected (`restart`), then
    /// `best_effort` best-effort ones, the rest unprotected.
    pub vms: usize,
    pub protected: usize,
    pub best_effort: usize,
    /// HA's base timeout T in seconds.
    pub t_s: u64,
    /// Faults to inject.
    pub faults: usize,
}

impl Params {
    /// Faults open at once: a minority of the hosts.
    #[must_use]
    pub fn max_faulty(&self) -> usize {
        ((self.hosts - 1) / 2).max(1)
    }

    /// The VM kinds by index.
    #[must_use]
    pub fn kind(&self, vm: usize) -> VmKind {
        if vm < self.protected {
            VmKind::Protected
        } else if vm < self.protected + self.best_effort {
            VmKind::BestEffort
        } else {
            VmKind::Unprotected
        }
    }
}

/// What a VM is at the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmKind {
    Protected,
    BestEffort,
    Unprotected,
}

impl VmKind {
    /// Its `ha_restart_priority`.
    #[must_use]
    pub fn priority(self) -> &'static str {
        match self {
            VmKind::Protected => "restart",
            VmKind::BestEffort => "best-effort",
            VmKind::Unprotected => "",
        }
    }
}

/// Which process group a freeze stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frozen {
    /// The host's `xhad` only (its group: the daemon).
    Xhad,
    /// Every process of the host (agent, `xhad`, keepers, VMs) but its
    /// supervisor, which stands for the hardware watchdog.
    Host,
}

/// Where a fault hits: a host by index, or whichever host is the master
/// when the step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Host(usize),
    Master,
}

/// One step. Faults carry an id; their heal names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A power cut (`AgentPool::kill_host`): everything of the host.
    PowerCut {
        id: usize,
        target: Target,
    },
    /// SIGSTOP to a process group, SIGCONT at the matching `Thaw`.
    Freeze {
        id: usize,
        target: Target,
        what: Frozen,
    },
    /// SIGKILL to the agent only (its daemons and VMs run on).
    KillAgent {
        id: usize,
        target: Target,
    },
    /// The host of fault `id` boots again (`xhad` then the agent), or the
    /// killed agent is started again.
    Restart {
        id: usize,
    },
    /// SIGCONT to what fault `id` froze (a host that fenced meanwhile is
    /// reset instead: see the runner).
    Thaw {
        id: usize,
    },
    /// `VM.start` of an unprotected VM (a halted one: the API refuses
    /// otherwise, which the runner records).
    VmStart {
        vm: usize,
    },
    /// `VM.hard_shutdown` of an unprotected VM.
    VmStop {
        vm: usize,
    },
    /// `VM.set_ha_restart_priority` on a protected or best-effort VM.
    SetPriority {
        vm: usize,
        priority: &'static str,
    },
    /// `VM.set_name_label` (an acknowledged database change to find again).
    Rename {
        vm: usize,
        name: String,
    },
    /// `host.disable` / `host.enable`.
    HostDisable {
        host: usize,
    },
    HostEnable {
        host: usize,
    },
}

impl Action {
    /// Whether this step injects a fault.
    #[must_use]
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Action::PowerCut { .. } | Action::Freeze { .. } | Action::KillAgent { .. }
        )
    }
}

/// An action at `at_ms` from the start of the fault phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at_ms: u64,
    pub action: Action,
}

/// The steps of one seed, in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// When the last step runs (every fault healed by then).
    #[must_use]
    pub fn end_ms(&self) -> u64 {
        self.steps.last().map_or(0, |s| s.at_ms)
    }
}

/// A fault's target: the master one time in four, else a host other than
/// those in `busy`; `None` when every host is busy.
fn pick_target(rng: &mut ChaCha8Rng, p: &Params, busy: &[usize]) -> Option<Target> {
    if rng.gen_ratio(1, 4) {
        return Some(Target::Master);
    }
    let free: Vec<usize> = (0..p.hosts).filter(|h| !busy.contains(h)).collect();
    (!free.is_empty()).then(|| Target::Host(free[rng.gen_range(0..free.len())]))
}

/// Operations between faults: one to three, a second or two apart.
fn operations(
    rng: &mut ChaCha8Rng,
    p: &Params,
    from_ms: u64,
    out: &mut Vec<Step>,
    disabled: &mut Option<usize>,
) {
    let mut at = from_ms;
    for _ in 0..rng.gen_range(1..=3) {
        at += rng.gen_range(300..1500);
        let vm = rng.gen_range(0..p.vms);
        let action = match rng.gen_range(0..5) {
            0 | 1 if p.kind(vm) == VmKind::Unprotected => {
                if rng.gen_bool(0.5) {
                    Action::VmStop { vm }
                } else {
                    Action::VmStart { vm }
                }
            }
            0 | 1 => Action::SetPriority {
                vm,
                priority: if rng.gen_bool(0.5) {
                    "restart"
                } else {
                    "best-effort"
                },
            },
            2 => Action::Rename {
                vm,
                name: format!("vm-{vm}-r{}", rng.gen_range(0..1_000_000)),
            },
            _ => match disabled.take() {
                Some(host) => Action::HostEnable { host },
                None => {
                    let host = rng.gen_range(0..p.hosts);
                    *disabled = Some(host);
                    Action::HostDisable { host }
                }
            },
        };
        out.push(Step { at_ms: at, action });
    }
}

/// The schedule of `seed` for `p` (see the module documentation).
#[must_use]
pub fn generate(seed: u64, p: &Params) -> Schedule {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let t_ms = p.t_s * 1000;
    let mut steps = Vec::new();
    // Open faults: (id, host if known, heal time).
    let mut open: Vec<(usize, Option<usize>, u64)> = Vec::new();
    let mut disabled = None;
    let mut at = 1000;
    for id in 0..p.faults {
        operations(&mut rng, p, at, &mut steps, &mut disabled);
        at = steps.last().map_or(at, |s| s.at_ms) + rng.gen_range(500..2000);
        // Wait for a heal when a minority is already faulty.
        open.retain(|&(_, _, heal)| heal > at);
        if open.len() >= p.max_faulty() {
            at = open.iter().map(|&(_, _, heal)| heal).min().unwrap_or(at) + 1000;
            open.retain(|&(_, _, heal)| heal > at);
        }
        let busy: Vec<usize> = open.iter().filter_map(|&(_, h, _)| h).collect();
        // The master may be one of the busy hosts' successors: never aim
        // at the master while another fault is open.
        let target = match pick_target(&mut rng, p, &busy) {
            Some(Target::Master) if !open.is_empty() => {
                let free: Vec<usize> = (0..p.hosts).filter(|h| !busy.contains(h)).collect();
                Target::Host(free[rng.gen_range(0..free.len())])
            }
            Some(t) => t,
            None => continue,
        };
        let host = match target {
            Target::Host(h) => Some(h),
            Target::Master => None,
        };
        let (fault, heal, lasts) = match rng.gen_range(0..10) {
            // A power cut long enough for the failover (T + 4 s and the
            // restart) to show, sometimes much longer.
            0..=3 => (
                Action::PowerCut { id, target },
                Action::Restart { id },
                t_ms + rng.gen_range(6000..6000 + t_ms),
            ),
            4..=6 => (
                Action::Freeze {
                    id,
                    target,
                    what: if rng.gen_bool(0.5) {
                        Frozen::Xhad
                    } else {
                        Frozen::Host
                    },
                },
                Action::Thaw { id },
                // Below T (nothing may happen) to 2 T (the host fences).
                rng.gen_range(500..2 * t_ms),
            ),
            _ => (
                Action::KillAgent { id, target },
                Action::Restart { id },
                rng.gen_range(500..3 * t_ms / 2),
            ),
        };
        steps.push(Step {
            at_ms: at,
            action: fault,
        });
        steps.push(Step {
            at_ms: at + lasts,
            action: heal,
        });
        open.push((id, host, at + lasts));
        steps.sort_by_key(|s| s.at_ms);
    }
    if let Some(host) = disabled {
        let at = steps.iter().map(|s| s.at_ms).max().unwrap_or(0) + 500;
        steps.push(Step {
            at_ms: at,
            action: Action::HostEnable { host },
        });
    }
    steps.sort_by_key(|s| s.at_ms);
    // Operations were generated while earlier heals were pending: a heal
    // may sort after them, fine; but the last step must be a heal or an
    // operation, never a fault (every fault heals later by construction).
    Schedule { seed, steps }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(hosts: usize) -> Params {
        Params {
            hosts,
            vms: 5,
            protected: 2,
            best_effort: 1,
            t_s: 10,
            faults: 6,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_others_differ() {
        let p = params(3);
        assert_eq!(generate(7, &p), generate(7, &p));
        let distinct: std::collections::BTreeSet<String> = (0..20)
            .map(|s| format!("{:?}", generate(s, &p).steps))
            .collect();
        assert!(distinct.len() > 15, "{}", distinct.len());
    }

    #[test]
    fn every_fault_heals_and_a_majority_stays_up() {
        for hosts in 3..=7 {
            let p = params(hosts);
            for seed in 0..300 {
                let s = generate(seed, &p);
                assert!(s.steps.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
                let mut open = 0usize;
                let mut max_open = 0;
                let mut ids = std::collections::BTreeSet::new();
                for step in &s.steps {
                    match &step.action {
                        Action::PowerCut { id, .. }
                        | Action::Freeze { id, .. }
                        | Action::KillAgent { id, .. } => {
                            assert!(ids.insert(*id));
                            open += 1;
                        }
                        Action::Restart { id } | Action::Thaw { id } => {
                            assert!(ids.contains(id), "heal before its fault: {seed}");
                            open -= 1;
                        }
                        _ => {}
                    }
                    max_open = max_open.max(open);
                }
                assert_eq!(open, 0, "seed {seed}: a fault never heals");
                assert!(max_open <= p.max_faulty(), "seed {seed}: {max_open} open");
                assert!(!s.steps.last().is_some_and(|l| l.action.is_fault()));
            }
        }
    }

    #[test]
    fn a_host_is_hit_by_one_fault_at_a_time_and_the_master_only_alone() {
        let p = params(5);
        for seed in 0..300 {
            let s = generate(seed, &p);
            let mut open: Vec<(usize, Target)> = Vec::new();
            for step in &s.steps {
                match &step.action {
                    Action::PowerCut { id, target }
                    | Action::Freeze { id, target, .. }
                    | Action::KillAgent { id, target } => {
                        if *target == Target::Master {
                            assert!(open.is_empty(), "seed {seed}");
                        }
                        assert!(!open.iter().any(|(_, t)| t == target), "seed {seed}");
                        open.push((*id, *target));
                    }
                    Action::Restart { id } | Action::Thaw { id } => {
                        open.retain(|(i, _)| i != id);
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn operations_touch_only_their_kind_of_vm_and_every_disabled_host_is_enabled() {
        let p = params(4);
        let mut kinds = std::collections::HashSet::new();
        for seed in 0..200 {
            let s = generate(seed, &p);
            let mut disabled = None;
            for step in &s.steps {
                kinds.insert(std::mem::discriminant(&step.action));
                match &step.action {
                    Action::VmStart { vm } | Action::VmStop { vm } => {
                        assert_eq!(p.kind(*vm), VmKind::Unprotected);
                    }
                    Action::SetPriority { vm, .. } => {
                        assert_ne!(p.kind(*vm), VmKind::Unprotected);
                    }
                    Action::HostDisable { host } => {
                        assert!(disabled.is_none());
                        disabled = Some(*host);
                    }
                    Action::HostEnable { host } => {
                        assert_eq!(disabled.take(), Some(*host));
                    }
                    _ => {}
                }
            }
            assert!(disabled.is_none(), "seed {seed}: a host stays disabled");
        }
        // Every kind of step shows up somewhere.
        assert_eq!(kinds.len(), 11, "{kinds:?}");
    }
}
