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
    /// Whether network faults ([`Action::Partition`], [`Action::OneWay`])
    /// may be drawn. Off, the generator draws exactly what it drew before
    /// they existed: the same seed gives the old schedule.
    pub network: bool,
    /// Whether per-host storage faults ([`Action::Storage`]) may be drawn;
    /// off, as for `network`, the same seed gives the schedule of before.
    pub storage: bool,
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
    /// Every packet between the `minority` hosts and the others is dropped
    /// both ways: heartbeats and the agents' host-to-host traffic (a
    /// switch's partition; the statefile stays).
    Partition {
        id: usize,
        minority: Vec<usize>,
    },
    /// Every packet from host `from` to host `to` is dropped (`to`'s to
    /// `from` still flow: heartbeats one way; the agents' TCP between them
    /// stalls both ways).
    OneWay {
        id: usize,
        from: usize,
        to: usize,
    },
    /// The network fault `id`'s drops are removed (a host that fenced
    /// meanwhile boots).
    Mend {
        id: usize,
    },
    /// The host's view of the shared SR fails, hangs or slows down (its
    /// `faultfs` mount; the other hosts' views work).
    Storage {
        id: usize,
        target: Target,
        fault: StorageFault,
    },
    /// The storage fault `id` heals (a host that fenced meanwhile boots).
    StorageHeal {
        id: usize,
    },
}

/// What a storage fault does to every read, write and fsync of one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// Fails with EIO.
    Error,
    /// Held unanswered until the heal.
    Hang,
    /// Answered this many ms late.
    Slow { ms: u64 },
}

impl Action {
    /// Whether this step injects a fault.
    #[must_use]
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Action::PowerCut { .. }
                | Action::Freeze { .. }
                | Action::KillAgent { .. }
                | Action::Partition { .. }
                | Action::OneWay { .. }
                | Action::Storage { .. }
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

/// A network fault among the hosts not in `busy`, hitting at most `room`
/// faulty hosts: a one-way link between two of them (weighs one) or a
/// partition of a minority of one to `room` of them. With the hosts it
/// touches and its weight; `None` when too few hosts are free.
fn network_fault(
    rng: &mut ChaCha8Rng,
    p: &Params,
    id: usize,
    busy: &[usize],
    room: usize,
) -> Option<(Action, Vec<usize>, usize)> {
    let mut free: Vec<usize> = (0..p.hosts).filter(|h| !busy.contains(h)).collect();
    if free.is_empty() || room == 0 {
        return None;
    }
    if rng.gen_bool(0.5) && free.len() >= 2 {
        let from = free.remove(rng.gen_range(0..free.len()));
        let to = free[rng.gen_range(0..free.len())];
        return Some((Action::OneWay { id, from, to }, vec![from, to], 1));
    }
    let k = rng.gen_range(1..=room.min(free.len()));
    let mut minority: Vec<usize> = (0..k)
        .map(|_| free.remove(rng.gen_range(0..free.len())))
        .collect();
    minority.sort_unstable();
    Some((
        Action::Partition {
            id,
            minority: minority.clone(),
        },
        minority,
        k,
    ))
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
    // Open faults: (id, hosts it hits as far as known, weight, heal time).
    // A fault weighs one faulty host, a partition as many as its minority.
    let mut open: Vec<(usize, Vec<usize>, usize, u64)> = Vec::new();
    let weight =
        |open: &[(usize, Vec<usize>, usize, u64)]| -> usize { open.iter().map(|o| o.2).sum() };
    let mut disabled = None;
    let mut at = 1000;
    for id in 0..p.faults {
        operations(&mut rng, p, at, &mut steps, &mut disabled);
        at = steps.last().map_or(at, |s| s.at_ms) + rng.gen_range(500..2000);
        // Wait for a heal when a minority is already faulty.
        open.retain(|o| o.3 > at);
        if weight(&open) >= p.max_faulty() {
            at = open.iter().map(|o| o.3).min().unwrap_or(at) + 1000;
            open.retain(|o| o.3 > at);
        }
        let busy: Vec<usize> = open.iter().flat_map(|o| o.1.iter().copied()).collect();
        // Off, no draw here: the generator draws what it drew before.
        if p.network && rng.gen_ratio(3, 10) {
            let room = p.max_faulty() - weight(&open);
            let Some((fault, hosts, w)) = network_fault(&mut rng, p, id, &busy, room) else {
                continue;
            };
            // Below T (nothing may happen) to 2 T + 5 s (a side fences).
            let lasts = rng.gen_range(1000..2 * t_ms + 5000);
            steps.push(Step {
                at_ms: at,
                action: fault,
            });
            steps.push(Step {
                at_ms: at + lasts,
                action: Action::Mend { id },
            });
            open.push((id, hosts, w, at + lasts));
            steps.sort_by_key(|s| s.at_ms);
            continue;
        }
        // Off, no draw here either.
        if p.storage && rng.gen_ratio(3, 10) {
            let Some(target) = pick_target(&mut rng, p, &busy) else {
                continue;
            };
            let target = match target {
                Target::Master if !open.is_empty() => {
                    let free: Vec<usize> = (0..p.hosts).filter(|h| !busy.contains(h)).collect();
                    Target::Host(free[rng.gen_range(0..free.len())])
                }
                t => t,
            };
            let fault = match rng.gen_range(0..3) {
                0 => StorageFault::Error,
                1 => StorageFault::Hang,
                // From a slow array to one slower than the statefile's
                // I/O deadline.
                _ => StorageFault::Slow {
                    ms: rng.gen_range(20..t_ms / 2),
                },
            };
            // Below T (nothing may happen) to 2 T + 5 s (the host fences).
            let lasts = rng.gen_range(1000..2 * t_ms + 5000);
            steps.push(Step {
                at_ms: at,
                action: Action::Storage { id, target, fault },
            });
            steps.push(Step {
                at_ms: at + lasts,
                action: Action::StorageHeal { id },
            });
            let host = match target {
                Target::Host(h) => vec![h],
                Target::Master => Vec::new(),
            };
            open.push((id, host, 1, at + lasts));
            steps.sort_by_key(|s| s.at_ms);
            continue;
        }
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
        open.push((id, host.into_iter().collect(), 1, at + lasts));
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
mod tests;
