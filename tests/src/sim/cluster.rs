//! The simulated pool: N hosts running the real `xha` core over the
//! simulated network, statefiles, clocks and watchdogs, driven by a
//! discrete-event loop.
//!
//! Each host runs the core under `xha_driver`'s [`Driver`], the same driver
//! `xhad` runs: the driver turns the core's actions into I/O requests and
//! completions, read deadlines, refused I/O and late completions into
//! inputs; the cluster is what the driver runs on ([`host_env`]: simulated
//! clock, network, statefile paths, watchdog). It keeps the ground truth
//! (which hosts really run) and checks the invariants after every step.
//!
//! Modules: [`host_env`] (the driver's traits over the simulation),
//! [`faults`] (applying a fault), [`queries`] (what tests may ask).

mod faults;
mod host_env;
mod queries;

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;
use xha::core::{
    Config, HostIndex, HostSet, Input, Instant, Node, PoolBlock, PoolState, Slot, Timeouts, Warning,
};
use xha_driver::{Completion, Driver};

use super::checker::{Checker, Invariant, Life};
use super::fault::Fault;
use super::net::{LinkParams, Network};
use super::queue::EventQueue;
use super::storage::{IoPath, StatefileImage};
use super::time::{HostClock, Nanos, SECOND};
use super::trace::Trace;
use host_env::SimEnv;

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
    /// The host's driver asked to be woken now (the core's timer or a
    /// read deadline).
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

/// What a host's driver is given to handle.
#[derive(Debug)]
enum Pending {
    Input(Input),
    Completion(Completion),
    /// Its timers are due (the core's timer, read deadlines).
    Timers,
}

/// How often the driver's I/O paths ran on one host (over all its
/// incarnations): the daemon paths the simulator must exercise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Reads reported as timed out at their deadline.
    pub abandoned: u64,
    /// Requests refused at once (the path at capacity).
    pub refused: u64,
    /// Read completions that came after their deadline (ignored).
    pub late: u64,
}

/// The simulator's view of one host.
pub struct SimHost {
    pub index: usize,
    pub life: Life,
    /// 0 before the first boot; bumped at every boot.
    pub incarnation: u32,
    driver: Option<Driver>,
    clock: HostClock,
    timer_token: u64,
    timer_at: Option<Nanos>,
    /// Inputs that arrived while frozen (the socket buffer and completed
    /// I/O), processed on thaw. Capped: heartbeats beyond it are dropped.
    inbox: VecDeque<Pending>,
    watchdog: Option<Watchdog>,
    watchdog_seq: u64,
    /// The watchdog backend is gone (`Fault::WatchdogLost`): kicks fail and
    /// it never fires; until the next boot.
    watchdog_lost: bool,
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
    pub io: IoStats,
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
        let capacity = xha_driver::io_capacity(&timeouts);
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
                driver: None,
                clock: HostClock::new(0, 0, 0),
                timer_token: 0,
                timer_at: None,
                inbox: VecDeque::new(),
                watchdog: None,
                watchdog_seq: 0,
                watchdog_lost: false,
                paths: vec![IoPath::new(capacity); config.statefiles],
                member: false,
                published: None,
                died_at: None,
                warnings: Vec::new(),
                replies: Vec::new(),
                last_epoch: 0,
                declined_master: false,
                io: IoStats::default(),
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
        let from = HostIndex(from);
        self.deliver(to, Pending::Input(Input::Heartbeat { from, slot }));
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
                    self.deliver(host, Pending::Timers);
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
                self.deliver(to, Pending::Input(input));
            }
            Event::IoDone {
                host,
                sf,
                op,
                epoch,
            } => self.io_done(host, sf, op, epoch),
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
            master_lease: None,
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
        host.driver = Some(Driver::new(node));
        host.clock = clock;
        host.timer_token += 1;
        host.timer_at = None;
        host.inbox.clear();
        host.watchdog = None;
        host.watchdog_lost = false;
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
        self.drive(h, |d, env| d.drain(env));
    }

    /// The host stops for good (until a reboot): crash, fence or watchdog.
    fn kill(&mut self, h: usize, life: Life) {
        assert!(life.is_dead());
        let host = &mut self.hosts[h];
        if host.life.is_dead() {
            return;
        }
        host.life = life;
        host.driver = None;
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

    /// Gives one input to a host's driver, as its daemon would; a frozen
    /// host keeps it for its thaw.
    fn deliver(&mut self, h: usize, pending: Pending) {
        match self.hosts[h].life {
            Life::Running => {}
            Life::Frozen => {
                let host = &mut self.hosts[h];
                let is_heartbeat = matches!(pending, Pending::Input(Input::Heartbeat { .. }));
                if !is_heartbeat || host.inbox.len() < INBOX_MAX {
                    host.inbox.push_back(pending);
                }
                return;
            }
            _ => return,
        }
        self.drive(h, |d, env| match pending {
            Pending::Input(input) => d.handle(env, input),
            Pending::Completion(c) => d.completion(env, c),
            Pending::Timers => d.timers(env),
        });
    }

    /// Runs `f` on host `h`'s driver over the simulation, then reschedules
    /// its timer and checks invariants. The driver is dropped if the host
    /// died meanwhile (fenced, stopped, its daemon exited).
    fn drive(&mut self, h: usize, f: impl FnOnce(&mut Driver, &mut SimEnv<'_>) -> Result<(), ()>) {
        let Some(mut driver) = self.hosts[h].driver.take() else {
            return;
        };
        let incarnation = self.hosts[h].incarnation;
        let alive = f(&mut driver, &mut SimEnv { c: self, h }).is_ok();
        let host = &mut self.hosts[h];
        if alive && host.incarnation == incarnation && host.life.is_up() {
            host.driver = Some(driver);
        }
        self.after_handle(h);
    }

    /// Reschedules the host's timer, checks its master epoch and belief.
    fn after_handle(&mut self, h: usize) {
        let host = &mut self.hosts[h];
        if let Some(driver) = host.driver.as_ref() {
            let next = driver
                .next_wake()
                .map(|t| host.clock.real_time(t.0).max(self.now));
            if next != host.timer_at {
                host.timer_token += 1;
                host.timer_at = next;
                if let Some(at) = next {
                    let token = host.timer_token;
                    self.queue.push(at, Event::Timer { host: h, token });
                }
            }
            let epoch = driver.node().master_epoch();
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

    pub(super) fn host_now(&self, h: usize) -> u64 {
        self.hosts[h].clock.host_time(self.now)
    }
}
