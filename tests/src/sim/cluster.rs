//! The simulated pool: N hosts running the real `xha` core over the
//! simulated network, statefiles, clocks and watchdogs, driven by a
//! discrete-event loop.
//!
//! The cluster plays the part of each host's daemon: it maps the core's
//! actions to simulated effects (packets, I/O requests, watchdog kicks,
//! resets) and feeds completions back as inputs, at the host's own clock.
//! It keeps the ground truth (which hosts really run) and checks the
//! invariants after every step.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;
use xha::core::{
    Action, Config, ControlRequest, HostIndex, HostSet, Input, Instant, IoFailure, Node, PoolBlock,
    PoolState, RequestId, Slot, StatefileIndex, StatefileRead, Timeouts, Warning,
};

use super::checker::{Checker, HostTruth, Invariant, Life, Violation};
use super::fault::{Control, Fault};
use super::net::{LinkParams, Network};
use super::queue::EventQueue;
use super::storage::{Block, IoKind, IoOp, IoOutcome, IoPath, PathMode, StatefileImage};
use super::time::{HostClock, MILLISECOND, Nanos, SECOND, secs};
use super::trace::{Entry, Trace};

/// How a simulated pool is built.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub hosts: usize,
    /// The base timeout T every core duration derives from.
    pub base_timeout: Duration,
    pub statefiles: usize,
    pub seed: u64,
    /// Host clock rates are drawn in `-drift..=drift` parts per million.
    pub drift_ppm: i64,
    /// Hosts boot at random instants in `0..boot_spread`.
    pub boot_spread: Nanos,
    /// Fenced (or watchdog-reset) hosts boot again after a delay in this
    /// range; `None`: they stay down until restarted explicitly.
    pub reboot_after: Option<(Nanos, Nanos)>,
    pub fencing_armed: bool,
    pub master_candidates: bool,
    /// Keep every trace line (for replays), not only the recent ones.
    pub keep_full_trace: bool,
}

impl ClusterConfig {
    /// `hosts` hosts, T = 10 s, one statefile, 1% drift, hosts booting
    /// within one second, fenced hosts staying down.
    #[must_use]
    pub fn new(hosts: usize, seed: u64) -> ClusterConfig {
        ClusterConfig {
            hosts,
            base_timeout: Duration::from_secs(10),
            statefiles: 1,
            seed,
            drift_ppm: xha::core::timeouts::DRIFT_PPM as i64,
            boot_spread: SECOND,
            reboot_after: None,
            fencing_armed: true,
            master_candidates: true,
            keep_full_trace: false,
        }
    }
}

/// What happens next in the simulation.
#[derive(Debug)]
enum Event {
    /// A host powers on (first boot or reboot).
    Boot { host: usize },
    /// The host's core asked to be ticked now.
    Timer { host: usize, token: u64 },
    /// A heartbeat packet arrives.
    /// `sent` is the sender's packet number.
    Packet {
        from: usize,
        to: usize,
        sent: u64,
        slot: Rc<Slot>,
    },
    /// An I/O request completes on the path `host -> sf`.
    IoDone {
        host: usize,
        sf: usize,
        op: u64,
        epoch: u64,
    },
    /// The daemon's deadline for a read: if it is still in flight, the read
    /// is abandoned and reported as timed out.
    ReadDeadline { host: usize, sf: usize, op: u64 },
    /// An input produced by the daemon model itself (e.g. a request refused
    /// because the I/O queue is full), delivered to one incarnation.
    Deliver {
        host: usize,
        incarnation: u32,
        input: Box<Input>,
    },
    /// The watchdog expires unless kicked since.
    Watchdog { host: usize, seq: u64 },
    /// A scripted or random fault.
    Fault(Fault),
}

/// The hardware watchdog of one host.
#[derive(Clone, Copy, Debug)]
struct Watchdog {
    /// Identifies the latest expiry event; a kick or disarm supersedes it.
    seq: u64,
}

/// The simulator's view of one host.
pub struct SimHost {
    pub index: usize,
    pub life: Life,
    /// 0 before the first boot; bumped at every boot.
    pub incarnation: u32,
    node: Option<Node>,
    clock: HostClock,
    timer_token: u64,
    timer_at: Option<Nanos>,
    /// Inputs that arrived while frozen (the socket buffer and completed
    /// I/O), processed on thaw. Capped: heartbeats beyond it are dropped.
    inbox: VecDeque<Input>,
    watchdog: Option<Watchdog>,
    watchdog_seq: u64,
    paths: Vec<IoPath>,
    /// This incarnation has published a liveset containing itself.
    pub member: bool,
    /// The last liveset this incarnation published.
    pub published: Option<HostSet>,
    /// When the host last died (crash, fence, watchdog).
    pub died_at: Option<Nanos>,
    /// Warnings raised, in order (time, warning), capped.
    pub warnings: Vec<(Nanos, Warning)>,
    /// Replies to control requests, in order.
    pub replies: Vec<(Nanos, xha::core::ControlReply)>,
    /// The last master epoch this incarnation reported.
    last_epoch: u64,
    /// Heartbeat packets this host ever sent (never reset: the daemon
    /// persists its incarnation, so (incarnation, sequence) only grows).
    packets_sent: u64,
    /// Per sender, the number of the last heartbeat delivered to this
    /// incarnation: the daemon's replay filter drops older and duplicate
    /// packets (reset at boot).
    last_delivered: Vec<u64>,
    /// This incarnation was told `ProposeMaster(false)` (an operator
    /// choice the liveness phase undoes).
    pub declined_master: bool,
}

const INBOX_MAX: usize = 4096;
const WARNINGS_MAX: usize = 256;

/// One liveset publication, for measurements and scenario assertions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publication {
    pub at: Nanos,
    pub host: usize,
    pub incarnation: u32,
    pub liveset: HostSet,
}

/// One host death.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Death {
    pub at: Nanos,
    pub host: usize,
    pub life: Life,
}

/// The simulated pool.
pub struct Cluster {
    pub config: ClusterConfig,
    timeouts: Timeouts,
    generation: Uuid,
    uuids: Vec<Uuid>,
    now: Nanos,
    rng: ChaCha8Rng,
    queue: EventQueue<Event>,
    pub hosts: Vec<SimHost>,
    pub net: Network,
    pub statefiles: Vec<StatefileImage>,
    checker: Checker,
    pub trace: Trace,
    next_op: u64,
    /// Fences not allowed now (invariants 4 and 5), with the reason.
    forbid_fencing: Option<Invariant>,
    pub publications: Vec<Publication>,
    pub deaths: Vec<Death>,
    steps: u64,
}

impl Cluster {
    /// Builds the pool and schedules every host's first boot.
    #[must_use]
    pub fn new(config: ClusterConfig) -> Cluster {
        assert!(
            (1..=64).contains(&config.hosts),
            "1 to 64 hosts, not {}",
            config.hosts
        );
        assert!(config.statefiles >= 1);
        let timeouts = Timeouts::derive_any(config.base_timeout);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let generation = Uuid::from_u128(rng.r#gen::<u128>() | 1);
        let uuids: Vec<Uuid> = (0..config.hosts)
            .map(|i| Uuid::from_u128(((i as u128 + 1) << 64) | 0xa11ce))
            .collect();
        let pool = PoolBlock {
            state: PoolState::Init,
            master: None,
            master_epoch: 0,
            update_seq: 0,
        };
        let statefiles = (0..config.statefiles)
            .map(|_| StatefileImage::format(generation, config.hosts, &pool))
            .collect();
        let hosts = (0..config.hosts)
            .map(|i| SimHost {
                index: i,
                life: Life::Crashed,
                incarnation: 0,
                node: None,
                clock: HostClock::new(0, 0, 0),
                timer_token: 0,
                timer_at: None,
                inbox: VecDeque::new(),
                watchdog: None,
                watchdog_seq: 0,
                paths: vec![IoPath::default(); config.statefiles],
                member: false,
                published: None,
                died_at: None,
                warnings: Vec::new(),
                replies: Vec::new(),
                last_epoch: 0,
                declined_master: false,
                packets_sent: 0,
                last_delivered: vec![0; config.hosts],
            })
            .collect();
        let trace = if config.keep_full_trace {
            Trace::keeping_all()
        } else {
            Trace::default()
        };
        let mut c = Cluster {
            timeouts,
            generation,
            uuids,
            now: 0,
            queue: EventQueue::default(),
            hosts,
            net: Network::new(config.hosts, LinkParams::default()),
            statefiles,
            checker: Checker::new(config.hosts),
            trace,
            next_op: 0,
            forbid_fencing: None,
            publications: Vec::new(),
            deaths: Vec::new(),
            steps: 0,
            rng,
            config,
        };
        for h in 0..c.config.hosts {
            let at = if c.config.boot_spread == 0 {
                0
            } else {
                c.rng.gen_range(0..c.config.boot_spread)
            };
            c.queue.push(at, Event::Boot { host: h });
        }
        c
    }

    // ----- queries -------------------------------------------------------

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
        self.hosts[h].node.as_ref().map(Node::liveset)
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
        self.hosts[h].node.as_ref().map(Node::master_epoch)
    }

    /// The node of a host, for assertions on its getters.
    #[must_use]
    pub fn node(&self, h: usize) -> Option<&Node> {
        self.hosts[h].node.as_ref()
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
    fn truth(&self) -> Vec<HostTruth> {
        self.hosts
            .iter()
            .map(|h| HostTruth {
                life: h.life,
                incarnation: h.incarnation,
                member: h.member,
            })
            .collect()
    }

    fn belief(&self, h: usize) -> Option<u64> {
        let host = &self.hosts[h];
        if host.life != Life::Running {
            return None;
        }
        let node = host.node.as_ref()?;
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

    // ----- driving -------------------------------------------------------

    /// Schedules a fault at real instant `at`.
    pub fn schedule(&mut self, at: Nanos, fault: Fault) {
        self.queue.push(at.max(self.now), Event::Fault(fault));
    }

    /// Applies a fault now.
    pub fn inject(&mut self, fault: Fault) {
        self.apply_fault(fault);
    }

    /// Feeds host `to`, now, a heartbeat claiming to come from `from`, as a
    /// forger holding the pool secret could make it (it passes every check
    /// of the daemon's receive path). For forgery scenarios.
    pub fn inject_heartbeat(&mut self, to: usize, from: usize, slot: Slot) {
        self.trace.record(
            self.now,
            Some(to),
            format!("forged heartbeat 'from' h{from}"),
        );
        self.deliver(
            to,
            Input::Heartbeat {
                from: HostIndex(from),
                slot,
            },
        );
    }

    /// Runs every event up to and including real instant `until`.
    pub fn run_until(&mut self, until: Nanos) {
        while let Some((at, event)) = self.queue.pop_until(until) {
            debug_assert!(at >= self.now, "event in the past");
            self.now = at;
            self.step(event);
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4);
        self.run_until(until);
    }

    /// Runs until `pred` holds (checked after every event) or `limit`
    /// passes; returns the instant it first held.
    pub fn run_until_pred(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Cluster) -> bool,
    ) -> Option<Nanos> {
        let until = self.now + u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX / 4);
        if pred(self) {
            return Some(self.now);
        }
        while let Some((at, event)) = self.queue.pop_until(until) {
            self.now = at;
            self.step(event);
            if pred(self) {
                return Some(self.now);
            }
        }
        self.now = self.now.max(until);
        None
    }

    fn step(&mut self, event: Event) {
        self.steps += 1;
        match event {
            Event::Boot { host } => self.boot(host),
            Event::Timer { host, token } => {
                let hst = &self.hosts[host];
                if hst.timer_token == token && hst.life == Life::Running {
                    self.hosts[host].timer_at = None;
                    self.deliver(host, Input::Tick);
                }
            }
            Event::Packet {
                from,
                to,
                sent,
                slot,
            } => {
                // The daemon's replay filter: strictly increasing per sender.
                let receiver = &mut self.hosts[to];
                if sent <= receiver.last_delivered[from] || receiver.life.is_dead() {
                    return;
                }
                receiver.last_delivered[from] = sent;
                let input = Input::Heartbeat {
                    from: HostIndex(from),
                    slot: (*slot).clone(),
                };
                self.deliver(to, input);
            }
            Event::IoDone {
                host,
                sf,
                op,
                epoch,
            } => self.io_done(host, sf, op, epoch),
            Event::ReadDeadline { host, sf, op } => {
                if let Some(op) = self.hosts[host].paths[sf].cancel(op) {
                    self.trace.record(
                        self.now,
                        Some(host),
                        format!("read sf{sf} req{} timed out", op.request),
                    );
                    if op.incarnation == self.hosts[host].incarnation {
                        let input = Input::StatefileRead {
                            statefile: StatefileIndex(sf),
                            request: RequestId(op.request),
                            result: Err(IoFailure::Timeout),
                        };
                        self.deliver(host, input);
                    }
                }
            }
            Event::Deliver {
                host,
                incarnation,
                input,
            } => {
                if self.hosts[host].incarnation == incarnation {
                    self.deliver(host, *input);
                }
            }
            Event::Watchdog { host, seq } => {
                let h = &self.hosts[host];
                if h.life.is_up() && h.watchdog.is_some_and(|w| w.seq == seq) {
                    self.trace
                        .record(self.now, Some(host), "WATCHDOG fires: host reset");
                    self.kill(host, Life::WatchdogFired);
                }
            }
            Event::Fault(f) => self.apply_fault(f),
        }
    }

    // ----- host lifecycle ------------------------------------------------

    fn node_config(&mut self, h: usize) -> Config {
        Config {
            pool_generation: self.generation,
            hosts: self.uuids.clone(),
            local: h,
            timeouts: self.timeouts,
            statefiles: self.config.statefiles,
            seed: self.rng.r#gen(),
            fencing_armed: self.config.fencing_armed,
            master_candidate: self.config.master_candidates,
        }
    }

    fn boot(&mut self, h: usize) {
        if self.hosts[h].life.is_up() {
            return;
        }
        let drift = self.config.drift_ppm;
        let rate = if drift == 0 {
            0
        } else {
            self.rng.gen_range(-drift..=drift)
        };
        // Monotonic clocks start anywhere: from boot, plus an offset.
        let offset = self.rng.gen_range(0..1_000 * SECOND);
        let clock = HostClock::new(self.now, offset, rate);
        let config = self.node_config(h);
        let node = match Node::new(config, Instant(clock.host_time(self.now))) {
            Ok(n) => n,
            Err(e) => panic!("simulator built a bad core config for h{h}: {e}"),
        };
        let host = &mut self.hosts[h];
        host.incarnation += 1;
        host.life = Life::Running;
        host.node = Some(node);
        host.clock = clock;
        host.timer_token += 1;
        host.timer_at = None;
        host.inbox.clear();
        host.watchdog = None;
        host.member = false;
        host.published = None;
        host.last_epoch = 0;
        host.declined_master = false;
        host.last_delivered.fill(0);
        let inc = host.incarnation;
        self.checker.host_rebooted(h);
        self.trace.record(
            self.now,
            Some(h),
            format!("BOOT incarnation {inc}, clock rate {rate:+} ppm"),
        );
        self.after_handle(h);
    }

    /// The host stops for good (until a reboot): crash, fence or watchdog.
    fn kill(&mut self, h: usize, life: Life) {
        assert!(life.is_dead());
        let host = &mut self.hosts[h];
        if host.life.is_dead() {
            return;
        }
        host.life = life;
        host.node = None;
        host.died_at = Some(self.now);
        host.timer_token += 1;
        host.timer_at = None;
        host.inbox.clear();
        host.watchdog = None;
        self.deaths.push(Death {
            at: self.now,
            host: h,
            life,
        });
        self.checker.master_belief(self.now, h, None);
        if matches!(life, Life::Fenced | Life::WatchdogFired) {
            if let Some(inv) = self.forbid_fencing {
                self.checker
                    .forbidden_fence(inv, self.now, h, &format!("{life:?}"));
            }
            if let Some((lo, hi)) = self.config.reboot_after {
                let d = if hi > lo {
                    self.rng.gen_range(lo..=hi)
                } else {
                    lo
                };
                self.queue.push(self.now + d, Event::Boot { host: h });
            }
        }
    }

    /// Feeds one input to a host, as its daemon would.
    fn deliver(&mut self, h: usize, input: Input) {
        match self.hosts[h].life {
            Life::Running => {}
            Life::Frozen => {
                let host = &mut self.hosts[h];
                let is_heartbeat = matches!(input, Input::Heartbeat { .. });
                if !is_heartbeat || host.inbox.len() < INBOX_MAX {
                    host.inbox.push_back(input);
                }
                return;
            }
            _ => return,
        }
        let host = &mut self.hosts[h];
        let now = Instant(host.clock.host_time(self.now));
        let Some(node) = host.node.as_mut() else {
            return;
        };
        node.handle(now, input);
        self.after_handle(h);
    }

    /// Drains the host's actions, reschedules its timer, checks invariants.
    fn after_handle(&mut self, h: usize) {
        while let Some(action) = self.hosts[h].node.as_mut().and_then(Node::poll_action) {
            self.perform(h, action);
        }
        let host = &mut self.hosts[h];
        if let Some(node) = host.node.as_ref() {
            let next = node
                .poll_timeout()
                .map(|t| host.clock.real_time(t.0).max(self.now));
            if next != host.timer_at {
                host.timer_token += 1;
                host.timer_at = next;
                if let Some(at) = next {
                    let token = host.timer_token;
                    self.queue.push(at, Event::Timer { host: h, token });
                }
            }
            let epoch = node.master_epoch();
            if epoch < host.last_epoch {
                let msg = format!(
                    "h{h}'s master epoch went back from {} to {epoch}",
                    host.last_epoch
                );
                self.checker
                    .fail_liveness(Invariant::SingleMaster, self.now, msg);
            }
            host.last_epoch = epoch;
        }
        let belief = self.belief(h);
        self.checker.master_belief(self.now, h, belief);
    }

    fn host_now(&self, h: usize) -> u64 {
        self.hosts[h].clock.host_time(self.now)
    }

    /// Performs one action of host `h`'s core.
    fn perform(&mut self, h: usize, action: Action) {
        match action {
            Action::SendHeartbeat { slot } => {
                self.trace.record(
                    self.now,
                    Some(h),
                    Entry::Heartbeat {
                        seq: slot.sequence,
                        live: slot.liveset.0,
                        proposed: slot.proposed.0,
                        phase: slot.phase as u8,
                        round: slot.fault_round,
                    },
                );
                let slot = Rc::new(slot);
                self.hosts[h].packets_sent += 1;
                let sent = self.hosts[h].packets_sent;
                for p in 0..self.hosts.len() {
                    if p == h {
                        continue;
                    }
                    let d = self.net.transmit(&mut self.rng, h, p);
                    for delay in d.iter() {
                        self.queue.push(
                            self.now + delay,
                            Event::Packet {
                                from: h,
                                to: p,
                                sent,
                                slot: Rc::clone(&slot),
                            },
                        );
                    }
                }
            }
            Action::WriteSlot {
                statefile: StatefileIndex(statefile),
                request: RequestId(request),
                slot,
                deadline: _,
            } => {
                self.trace.record(
                    self.now,
                    Some(h),
                    Entry::Write {
                        sf: statefile,
                        request,
                        seq: slot.sequence,
                        live: slot.liveset.0,
                        phase: slot.phase as u8,
                    },
                );
                let bytes = slot.to_bytes(self.generation);
                self.submit(
                    h,
                    statefile,
                    request,
                    IoKind::Write {
                        block: Block::Slot(h),
                        bytes,
                    },
                    None,
                );
            }
            Action::WritePool {
                statefile: StatefileIndex(statefile),
                request: RequestId(request),
                block,
                deadline: _,
            } => {
                self.trace.record(
                    self.now,
                    Some(h),
                    format!(
                        "write pool sf{statefile} req{request} {:?} master {:?} epoch {}",
                        block.state, block.master, block.master_epoch
                    ),
                );
                let bytes = block.to_bytes(self.generation);
                self.submit(
                    h,
                    statefile,
                    request,
                    IoKind::Write {
                        block: Block::Pool,
                        bytes,
                    },
                    None,
                );
            }
            Action::ReadStatefile {
                statefile: StatefileIndex(statefile),
                request: RequestId(request),
                deadline,
            } => {
                self.trace.record(
                    self.now,
                    Some(h),
                    Entry::Read {
                        sf: statefile,
                        request,
                    },
                );
                let real_deadline = self.hosts[h].clock.real_time(deadline.0);
                self.submit(h, statefile, request, IoKind::Read, Some(real_deadline));
            }
            Action::ArmWatchdog { until } => {
                self.trace
                    .record(self.now, Some(h), format!("watchdog armed until {until}"));
                self.set_watchdog(h, until);
            }
            Action::KickWatchdog { until } => {
                // The daemon drops a kick it executes after `until`.
                if self.host_now(h) <= until.0 && self.hosts[h].watchdog.is_some() {
                    self.set_watchdog(h, until);
                } else {
                    self.trace
                        .record(self.now, Some(h), "kick dropped (late or unarmed)");
                }
            }
            Action::DisarmWatchdog => {
                self.trace.record(self.now, Some(h), "watchdog disarmed");
                self.hosts[h].watchdog = None;
            }
            Action::Fence { reason } => {
                self.trace
                    .record(self.now, Some(h), format!("FENCE {reason:?}"));
                self.kill(h, Life::Fenced);
            }
            Action::LivesetChanged { liveset } => {
                self.trace
                    .record(self.now, Some(h), format!("LIVESET {liveset}"));
                let truth = self.truth();
                self.checker.liveset_published(self.now, h, liveset, &truth);
                let host = &mut self.hosts[h];
                host.published = Some(liveset);
                if liveset.contains(h) {
                    host.member = true;
                }
                self.publications.push(Publication {
                    at: self.now,
                    host: h,
                    incarnation: host.incarnation,
                    liveset,
                });
            }
            Action::MasterChanged { is_master, epoch } => {
                self.trace.record(
                    self.now,
                    Some(h),
                    format!(
                        "MASTER {} epoch {epoch}",
                        if is_master { "gained" } else { "lost" }
                    ),
                );
            }
            Action::Reply(r) => {
                self.trace.record(self.now, Some(h), format!("reply {r:?}"));
                self.hosts[h].replies.push((self.now, r));
            }
            Action::Warning(w) => {
                self.trace
                    .record(self.now, Some(h), format!("warning {w:?}"));
                let host = &mut self.hosts[h];
                if host.warnings.len() < WARNINGS_MAX {
                    host.warnings.push((self.now, w));
                }
            }
            Action::Stopped => {
                // A clean shutdown: the host powers off after its daemon stopped.
                self.trace
                    .record(self.now, Some(h), "stopped: host shuts down");
                self.kill(h, Life::ShutDown);
            }
            // The simulator reads the status when it needs it.
            Action::StatusChanged => {}
        }
    }

    /// The watchdog now fires when the host clock reaches `until`.
    fn set_watchdog(&mut self, h: usize, until: Instant) {
        let host = &mut self.hosts[h];
        host.watchdog_seq += 1;
        let seq = host.watchdog_seq;
        host.watchdog = Some(Watchdog { seq });
        let at = host.clock.real_time(until.0).max(self.now);
        self.queue.push(at, Event::Watchdog { host: h, seq });
    }

    fn submit(
        &mut self,
        h: usize,
        sf: usize,
        request: u64,
        kind: IoKind,
        read_deadline: Option<Nanos>,
    ) {
        self.next_op += 1;
        let id = self.next_op;
        let op = IoOp {
            id,
            request,
            incarnation: self.hosts[h].incarnation,
            kind,
            issued: self.now,
        };
        match self.hosts[h].paths[sf].submit(op, self.now, &mut self.rng) {
            Ok(done) => {
                if let Some((at, op, epoch)) = done {
                    self.queue.push(
                        at,
                        Event::IoDone {
                            host: h,
                            sf,
                            op,
                            epoch,
                        },
                    );
                }
                if let Some(d) = read_deadline {
                    self.queue.push(
                        d.max(self.now),
                        Event::ReadDeadline {
                            host: h,
                            sf,
                            op: id,
                        },
                    );
                }
            }
            Err(op) => {
                // The daemon's I/O queue is full: it fails the request at once.
                let full = || IoFailure::Error("I/O queue full".into());
                let input = match op.kind {
                    IoKind::Read => Input::StatefileRead {
                        statefile: StatefileIndex(sf),
                        request: RequestId(request),
                        result: Err(full()),
                    },
                    IoKind::Write {
                        block: Block::Pool, ..
                    } => Input::PoolWritten {
                        statefile: StatefileIndex(sf),
                        request: RequestId(request),
                        result: Err(full()),
                    },
                    IoKind::Write { .. } => Input::SlotWritten {
                        statefile: StatefileIndex(sf),
                        request: RequestId(request),
                        result: Err(full()),
                    },
                };
                let incarnation = self.hosts[h].incarnation;
                self.queue.push(
                    self.now,
                    Event::Deliver {
                        host: h,
                        incarnation,
                        input: Box::new(input),
                    },
                );
            }
        }
    }

    fn io_done(&mut self, h: usize, sf: usize, op: u64, epoch: u64) {
        let Some((op, outcome)) = self.hosts[h].paths[sf].complete(op, epoch, &mut self.rng) else {
            return;
        };
        let result = match outcome {
            IoOutcome::Done => Ok(()),
            IoOutcome::Failed => Err(IoFailure::Error("EIO".into())),
            IoOutcome::Torn { .. } => Err(IoFailure::Error("EIO (torn write)".into())),
        };
        let input = match &op.kind {
            IoKind::Read => Input::StatefileRead {
                statefile: StatefileIndex(sf),
                request: RequestId(op.request),
                result: match result {
                    Ok(()) => {
                        let snap = self.statefiles[sf].read();
                        Ok(StatefileRead {
                            pool: snap.pool,
                            slots: snap.slots,
                        })
                    }
                    Err(e) => Err(e),
                },
            },
            IoKind::Write { block, bytes } => {
                let landed = match outcome {
                    IoOutcome::Done => bytes.len(),
                    IoOutcome::Failed => 0,
                    IoOutcome::Torn { landed } => landed,
                };
                if landed > 0 {
                    self.statefiles[sf].land(*block, bytes, landed);
                }
                if landed != bytes.len() || op.incarnation != self.hosts[h].incarnation {
                    self.trace.record(
                        self.now,
                        Some(h),
                        format!(
                            "write sf{sf} req{} (incarnation {}) landed {landed} bytes",
                            op.request, op.incarnation
                        ),
                    );
                }
                match block {
                    Block::Pool => Input::PoolWritten {
                        statefile: StatefileIndex(sf),
                        request: RequestId(op.request),
                        result,
                    },
                    Block::Slot(_) => Input::SlotWritten {
                        statefile: StatefileIndex(sf),
                        request: RequestId(op.request),
                        result,
                    },
                }
            }
        };
        if op.incarnation == self.hosts[h].incarnation && self.hosts[h].life.is_up() {
            let ok = outcome == IoOutcome::Done;
            let request = op.request;
            self.trace
                .record(self.now, Some(h), Entry::Completed { sf, request, ok });
            self.deliver(h, input);
        }
    }

    // ----- faults --------------------------------------------------------

    fn apply_fault(&mut self, fault: Fault) {
        self.trace
            .record(self.now, None, format!("FAULT {fault:?}"));
        match fault {
            Fault::Crash(h) => self.kill(h, Life::Crashed),
            Fault::Freeze(h) => {
                if self.hosts[h].life == Life::Running {
                    self.hosts[h].life = Life::Frozen;
                    self.checker.master_belief(self.now, h, None);
                }
            }
            Fault::Thaw(h) => {
                if self.hosts[h].life == Life::Frozen {
                    self.hosts[h].life = Life::Running;
                    let inbox = std::mem::take(&mut self.hosts[h].inbox);
                    // Timers first: a daemon waking up sees its clock jumped.
                    self.deliver(h, Input::Tick);
                    for input in inbox {
                        self.deliver(h, input);
                    }
                }
            }
            Fault::Restart(h) => {
                if self.hosts[h].life.is_dead() {
                    self.boot(h);
                }
            }
            Fault::Isolate(h) => self.net.isolate(h),
            Fault::Partition(groups) => self.net.partition(&groups),
            Fault::OneWay { from, to, up } => self.net.set_one_way(from, to, up),
            Fault::HealNetwork => self.net.heal(),
            Fault::NetQuality {
                loss_ppm,
                dup_ppm,
                delay_min,
                delay_max,
            } => self
                .net
                .set_all_quality(loss_ppm, dup_ppm, (delay_min, delay_max)),
            Fault::Storage { host, sf, mode } => self.set_path_mode(host, sf, mode),
            Fault::StorageLatency { host, sf, min, max } => {
                let p = &mut self.hosts[host].paths[sf];
                p.latency_min = min;
                p.latency_max = max.max(min);
            }
            Fault::TornWrites { ppm } => {
                for host in &mut self.hosts {
                    for p in &mut host.paths {
                        p.torn_ppm = ppm;
                    }
                }
            }
            Fault::HealStorage => {
                for h in 0..self.hosts.len() {
                    for sf in 0..self.config.statefiles {
                        let p = &mut self.hosts[h].paths[sf];
                        p.latency_min = MILLISECOND / 2;
                        p.latency_max = 5 * MILLISECOND;
                        p.torn_ppm = 0;
                        self.set_path_mode(h, sf, PathMode::Healthy);
                    }
                }
            }
            Fault::Control { host, request } => {
                let req = match request {
                    Control::ProposeMaster(b) => {
                        if self.hosts[host].life.is_up() {
                            self.hosts[host].declined_master = !b;
                        }
                        ControlRequest::ProposeMaster(b)
                    }
                    Control::DisarmFencing => ControlRequest::DisarmFencing,
                    Control::SetExcluded => ControlRequest::SetExcluded,
                    Control::ClearExcluded => ControlRequest::ClearExcluded,
                    Control::Stop => ControlRequest::Stop,
                };
                self.deliver(host, Input::Control(req));
            }
        }
    }

    fn set_path_mode(&mut self, h: usize, sf: usize, mode: PathMode) {
        let resumed = self.hosts[h].paths[sf].set_mode(mode, self.now, &mut self.rng);
        for (at, op, epoch) in resumed {
            self.queue.push(
                at,
                Event::IoDone {
                    host: h,
                    sf,
                    op,
                    epoch,
                },
            );
        }
    }

    /// A readable failure report: the violations, the recent trace, and
    /// how to replay.
    #[must_use]
    pub fn report(&self, replay: &str) -> String {
        let mut s = String::new();
        for v in self.violations() {
            s.push_str(&format!("{v}\n"));
        }
        s.push_str(&format!(
            "--- last events before {:.6} s (seed {}):\n",
            secs(self.now),
            self.config.seed
        ));
        s.push_str(&self.trace.render_tail());
        s.push_str(&format!("replay: {replay}\n"));
        s
    }
}
