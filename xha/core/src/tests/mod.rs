//! Node-level tests on a tiny deterministic cluster: perfect clocks, one
//! statefile, fixed latencies, faults switched on by the test. The full
//! fault-injecting simulator lives in `tests/` (package `ha_tests`); these
//! tests pin the core's own behaviour and timing.
//!
//! This file is the mini-cluster; the tests are in `pool.rs` (no faults,
//! master lock, status events, configuration) and `faults.rs` (one fault
//! each). The parts of `Node` have their own unit tests beside them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, PoolBlock, PoolState, Slot, SlotError};
use uuid::Uuid;

use super::ids::{HostIndex, RequestId, StatefileIndex};
use super::time::Instant;
use super::{Action, Config, ControlRequest, Input, IoFailure, Node, StatefileRead, Timeouts};

mod faults;
mod pool;

const T: Duration = Duration::from_secs(10);
const NET_DELAY: Duration = Duration::from_millis(1);
const IO_LATENCY: Duration = Duration::from_millis(3);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick(usize),
    Deliver {
        to: usize,
        from: usize,
        slot: Box<SlotOrd>,
    },
    Read {
        host: usize,
        request: RequestId,
        ok: bool,
    },
    Write {
        host: usize,
        request: RequestId,
        slot: Box<SlotOrd>,
        ok: bool,
    },
    Pool {
        host: usize,
        request: RequestId,
        block: Box<PoolOrd>,
        ok: bool,
    },
}

/// Wrappers giving the payloads a (meaningless) order for the event heap.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotOrd(Slot);
impl PartialOrd for SlotOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SlotOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.sequence.cmp(&other.0.sequence)
    }
}
#[derive(Clone, Debug, PartialEq, Eq)]
struct PoolOrd(PoolBlock);
impl PartialOrd for PoolOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PoolOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.update_seq.cmp(&other.0.update_seq)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Life {
    Up,
    Crashed,
    Fenced,
    WatchdogFired,
}

struct Host {
    node: Option<Node>,
    life: Life,
    died_at: Option<Instant>,
    net_ok: bool,
    disk_ok: bool,
    watchdog: Option<Instant>,
    published: Vec<(Instant, HostSet)>,
    master_epochs: Vec<u64>,
    incarnation: u64,
    io_latency: Duration,
    warnings: usize,
    /// `StatusChanged` actions performed.
    status_changes: usize,
    /// Frozen: events for it wait here; its watchdog keeps running.
    frozen: Option<Vec<Ev>>,
}

struct Cluster {
    now: Instant,
    seq: u64,
    events: BinaryHeap<Reverse<(Instant, u64, Ev)>>,
    hosts: Vec<Host>,
    uuids: Vec<Uuid>,
    generation: Uuid,
    slots: Vec<Result<Slot, SlotError>>,
    pool: PoolBlock,
    timeouts: Timeouts,
    armed: bool,
    /// Nodes ask for the lock by themselves (else only when told).
    candidates: bool,
    /// `Config::master_lease` of every node.
    lease: Option<Duration>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        Cluster::with(n, T, true)
    }

    fn with(n: usize, base: Duration, armed: bool) -> Cluster {
        Cluster::configured(n, base, armed, true, None)
    }

    /// Nodes that ask for the lock only when told, under `lease`: as the
    /// pool agent runs them.
    fn agent_driven(n: usize, lease: Duration) -> Cluster {
        Cluster::configured(n, T, true, false, Some(lease))
    }

    fn configured(
        n: usize,
        base: Duration,
        armed: bool,
        candidates: bool,
        lease: Option<Duration>,
    ) -> Cluster {
        let uuids: Vec<Uuid> = (0..n)
            .map(|i| Uuid::from_u128(0x1000 + i as u128))
            .collect();
        let mut c = Cluster {
            now: Instant(1_000_000_000),
            seq: 0,
            events: BinaryHeap::new(),
            hosts: Vec::new(),
            uuids,
            generation: Uuid::from_u128(0xabcd),
            slots: vec![Err(SlotError::NeverWritten); n],
            pool: PoolBlock {
                state: PoolState::Init,
                master: None,
                master_epoch: 0,
                update_seq: 0,
            },
            timeouts: Timeouts::derive_any(base),
            armed,
            candidates,
            lease,
        };
        for i in 0..n {
            c.hosts.push(Host {
                node: None,
                life: Life::Crashed,
                died_at: None,
                net_ok: true,
                disk_ok: true,
                watchdog: None,
                published: Vec::new(),
                master_epochs: Vec::new(),
                incarnation: 0,
                io_latency: IO_LATENCY,
                warnings: 0,
                status_changes: 0,
                frozen: None,
            });
            c.boot(i);
        }
        c
    }

    fn config(&self, local: usize) -> Config {
        Config {
            pool_generation: self.generation,
            hosts: self.uuids.clone(),
            local,
            timeouts: self.timeouts,
            statefiles: 1,
            seed: 7 + local as u64,
            fencing_armed: self.armed,
            master_candidate: self.candidates,
            master_lease: self.lease,
        }
    }

    fn boot(&mut self, h: usize) {
        let node = Node::new(self.config(h), self.now).unwrap();
        let host = &mut self.hosts[h];
        host.node = Some(node);
        host.life = Life::Up;
        host.watchdog = None;
        host.incarnation += 1;
        self.drain(h);
    }

    fn push(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.events.push(Reverse((at, self.seq, ev)));
    }

    fn kill(&mut self, h: usize, life: Life) {
        let host = &mut self.hosts[h];
        if host.life != Life::Up {
            return;
        }
        host.life = life;
        host.died_at = Some(self.now);
        host.node = None;
        host.watchdog = None;
        host.frozen = None;
    }

    fn up(&self, h: usize) -> bool {
        self.hosts[h].life == Life::Up
    }

    fn handle(&mut self, h: usize, input: Input) {
        if !self.up(h) {
            return;
        }
        let now = self.now;
        if let Some(node) = self.hosts[h].node.as_mut() {
            node.handle(now, input);
        }
        self.drain(h);
    }

    fn drain(&mut self, h: usize) {
        let now = self.now;
        loop {
            let Some(node) = self.hosts[h].node.as_mut() else {
                return;
            };
            let Some(action) = node.poll_action() else {
                break;
            };
            self.perform(h, action);
            if !self.up(h) {
                return;
            }
        }
        if let Some(at) = self.hosts[h].node.as_ref().and_then(|n| n.poll_timeout()) {
            // Right after `Node::new` the first timers are due at once.
            self.push(at.max(now), Ev::Tick(h));
        }
    }

    fn perform(&mut self, h: usize, action: Action) {
        let now = self.now;
        let disk_ok = self.hosts[h].disk_ok;
        let io = self.hosts[h].io_latency;
        match action {
            Action::SendHeartbeat { slot } => {
                for to in 0..self.hosts.len() {
                    if to != h && self.hosts[h].net_ok && self.hosts[to].net_ok {
                        let slot = Box::new(SlotOrd(slot.clone()));
                        self.push(now + NET_DELAY, Ev::Deliver { to, from: h, slot });
                    }
                }
            }
            Action::WriteSlot { request, slot, .. } => {
                let slot = Box::new(SlotOrd(slot));
                self.push(
                    now + io,
                    Ev::Write {
                        host: h,
                        request,
                        slot,
                        ok: disk_ok,
                    },
                );
            }
            Action::ReadStatefile { request, .. } => {
                self.push(
                    now + io,
                    Ev::Read {
                        host: h,
                        request,
                        ok: disk_ok,
                    },
                );
            }
            Action::WritePool { request, block, .. } => {
                let block = Box::new(PoolOrd(block));
                self.push(
                    now + io,
                    Ev::Pool {
                        host: h,
                        request,
                        block,
                        ok: disk_ok,
                    },
                );
            }
            Action::ArmWatchdog { until } | Action::KickWatchdog { until } => {
                assert!(until > now, "watchdog set into the past");
                self.hosts[h].watchdog = Some(until);
            }
            Action::DisarmWatchdog => self.hosts[h].watchdog = None,
            Action::Fence { .. } => self.kill(h, Life::Fenced),
            Action::LivesetChanged { liveset } => self.published(h, liveset),
            Action::MasterChanged { is_master, epoch } => {
                if is_master {
                    let host = &mut self.hosts[h];
                    if let Some(&last) = host.master_epochs.last() {
                        assert!(epoch > last);
                    }
                    host.master_epochs.push(epoch);
                }
            }
            Action::Warning(_) => self.hosts[h].warnings += 1,
            Action::StatusChanged => self.hosts[h].status_changes += 1,
            Action::Reply(_) | Action::Stopped => {}
        }
    }

    /// Invariant 1: a host removed from a published liveset is down by then.
    fn published(&mut self, h: usize, liveset: HostSet) {
        let previous = self.hosts[h].published.last().map(|&(_, l)| l);
        if let Some(prev) = previous {
            for gone in prev.difference(liveset).iter() {
                // Up again after a reboot is fine as long as that new
                // incarnation is not a member yet.
                let member = self.up(gone)
                    && self.hosts[gone]
                        .node
                        .as_ref()
                        .is_some_and(|n| n.is_member());
                assert!(
                    !member,
                    "host {h} removed {gone} at {} while it is a live member",
                    self.now
                );
                assert!(self.up(gone) || self.hosts[gone].died_at.is_some());
            }
        }
        self.hosts[h].published.push((self.now, liveset));
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((at, _, ev))) = self.events.pop() else {
            return false;
        };
        assert!(at >= self.now);
        // Watchdogs fire on their own, even if the host is frozen.
        for h in 0..self.hosts.len() {
            if self.up(h) && self.hosts[h].watchdog.is_some_and(|w| w <= at) {
                self.now = self.hosts[h].watchdog.unwrap_or(at).max(self.now);
                self.kill(h, Life::WatchdogFired);
            }
        }
        self.now = at;
        let target = match &ev {
            Ev::Tick(h) | Ev::Deliver { to: h, .. } => *h,
            Ev::Read { host, .. } | Ev::Write { host, .. } | Ev::Pool { host, .. } => *host,
        };
        if let Some(stash) = self.hosts[target].frozen.as_mut() {
            stash.push(ev);
            return true;
        }
        match ev {
            Ev::Tick(h) => {
                let due = self.hosts[h].node.as_ref().and_then(|n| n.poll_timeout());
                if due.is_some_and(|d| d <= at) {
                    self.handle(h, Input::Tick);
                }
            }
            Ev::Deliver { to, from, slot } => {
                if self.hosts[to].net_ok && self.hosts[from].net_ok {
                    self.handle(
                        to,
                        Input::Heartbeat {
                            from: HostIndex(from),
                            slot: slot.0,
                        },
                    );
                }
            }
            Ev::Read { host, request, ok } => {
                let result = if ok && self.hosts[host].disk_ok {
                    Ok(StatefileRead {
                        pool: Ok(self.pool.clone()),
                        slots: self.slots.clone(),
                    })
                } else {
                    Err(IoFailure::Error("injected".into()))
                };
                self.handle(
                    host,
                    Input::StatefileRead {
                        statefile: StatefileIndex(0),
                        request,
                        result,
                    },
                );
            }
            Ev::Write {
                host,
                request,
                slot,
                ok,
            } => {
                if !self.up(host) {
                    return true;
                }
                let result = if ok && self.hosts[host].disk_ok {
                    self.slots[host] = Ok(slot.0);
                    Ok(())
                } else {
                    Err(IoFailure::Error("injected".into()))
                };
                self.handle(
                    host,
                    Input::SlotWritten {
                        statefile: StatefileIndex(0),
                        request,
                        result,
                    },
                );
            }
            Ev::Pool {
                host,
                request,
                block,
                ok,
            } => {
                if !self.up(host) {
                    return true;
                }
                let result = if ok && self.hosts[host].disk_ok {
                    self.pool = block.0;
                    Ok(())
                } else {
                    Err(IoFailure::Error("injected".into()))
                };
                self.handle(
                    host,
                    Input::PoolWritten {
                        statefile: StatefileIndex(0),
                        request,
                        result,
                    },
                );
            }
        }
        true
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self
            .events
            .peek()
            .is_some_and(|Reverse((at, _, _))| *at <= end)
        {
            self.step();
        }
        self.now = end;
    }

    fn freeze(&mut self, h: usize) {
        self.hosts[h].frozen = Some(Vec::new());
    }

    /// Resume a frozen host: everything that waited is delivered now.
    fn thaw(&mut self, h: usize) {
        let now = self.now;
        for ev in self.hosts[h].frozen.take().unwrap_or_default() {
            self.push(now, ev);
        }
        self.push(now, Ev::Tick(h));
    }

    fn node(&self, h: usize) -> &Node {
        self.hosts[h].node.as_ref().expect("host is up")
    }

    fn liveset(&self, h: usize) -> HostSet {
        self.node(h).liveset()
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.hosts.len())
            .filter(|&h| self.up(h) && self.node(h).is_master())
            .collect()
    }

    /// When host `h` first published a liveset without `gone`, after `since`.
    fn shrink_time(&self, h: usize, gone: usize, since: Instant) -> Option<Duration> {
        self.hosts[h]
            .published
            .iter()
            .find(|&&(at, l)| at >= since && !l.contains(gone))
            .map(|&(at, _)| at.saturating_since(since))
    }

    fn fences(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| matches!(h.life, Life::Fenced | Life::WatchdogFired))
            .count()
    }
}

fn set(v: &[usize]) -> HostSet {
    v.iter().copied().collect()
}

fn formed(n: usize) -> Cluster {
    let mut c = Cluster::new(n);
    c.run_for(Duration::from_secs(5));
    for h in 0..n {
        assert_eq!(c.liveset(h), HostSet::first_n(n), "host {h} did not join");
    }
    assert_eq!(c.masters(), vec![0]);
    c
}
