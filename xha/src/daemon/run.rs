//! `xhad`: start-up checks and the main loop that feeds the core and carries
//! out its actions (`docs/daemon.md`, "Run time").
//!
//! Start-up, in order; each failure is one log line and a named exit code:
//! configuration (6/7), the instance lock in the state directory (15 when
//! another daemon holds it), fence record of this boot (17), statefiles
//! opened with O_DIRECT and checked (7 when two entries are one file,
//! 8/9/10; a minority may be missing, see `startup`), real-time priority
//! and `mlockall` (warnings), heartbeat incarnation (2), heartbeat socket
//! (2), control socket (15 when another daemon answers on it), watchdog
//! (4). A host not in the liveset within `boot-join-timeout` exits 12.
//!
//! The main loop owns the core ([`Node`]) and is the only place that calls
//! it. Inputs come from four places, each a channel: accepted heartbeats
//! (the receive task), statefile completions (the worker threads of
//! `statefile_io`), control requests (the control server) and timers (the
//! core's `poll_timeout`, read deadlines, warning expiry). After every
//! input the loop drains the core's actions and performs them in order,
//! then publishes the liveset report to watchers if it changed.
//!
//! One log line per decision: liveset and master changes, warnings, fence
//! decisions and watchdog trouble at `info` or above, each with its reason;
//! per-heartbeat and per-I/O events at `debug`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};

use super::config::{Config, FenceAction, PoolSecret, WatchdogConfig};
use super::control::{ErrorBody, ErrorCode, Request, WarningKind};
use super::control_server::{self, CommandReply, ControlCommand, ReportPublisher};
use super::exit::ExitCode;
use super::ratelimit::{self, RateLimit};
use super::report::{self, Measurements};
use super::statefile_io::{Completion, Kind, Op, Outcome, StatefileWorkers};
use super::watchdog::{self, KickOutcome, Watchdog, WatchdogError};
use super::wire::{self, DropCounters, Heartbeat};
use super::{fence, fence_record, incarnation, instance_lock, net, realtime, startup};
use crate::core::{
    Action, ControlError, ControlRequest, FenceReason, HostIndex, Input, Instant, IoFailure, Node,
    RequestId, Slot, StatefileIndex, StatefileRead,
};

/// How long `xhad` waits for the `xha-supervisor` socket at start-up (the
/// lab may start the supervisor just after the daemon).
pub const SUPERVISOR_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Extra statefile workers beyond the core's `max_outstanding_writes`: one
/// read and pool-block writes.
const EXTRA_WORKERS: usize = 4;

/// Accepted heartbeats queued for the main loop.
const HEARTBEAT_QUEUE: usize = 1024;

/// How long connection tasks get to write their last replies at exit.
const REPLY_FLUSH: Duration = Duration::from_millis(100);

const USAGE: &str = "usage: xhad --config PATH [--check] [--heartbeat-fd N]
  --config PATH       the configuration file (docs/daemon.md)
  --check             validate the configuration and the statefiles, then exit
  --heartbeat-fd N    use the UDP socket inherited on descriptor N, already
                      bound to this host's address, instead of binding it
  --help, --version";

/// Why the daemon stops with a non-zero status.
#[derive(Debug)]
pub struct Fatal {
    pub code: ExitCode,
    pub message: String,
}

impl Fatal {
    pub(super) fn new(code: ExitCode, message: impl Into<String>) -> Fatal {
        Fatal {
            code,
            message: message.into(),
        }
    }
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    Run {
        config: PathBuf,
        check: bool,
        heartbeat_fd: Option<i32>,
    },
    Help,
    Version,
}

/// Parse `xhad`'s arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut config = None;
    let mut check = false;
    let mut heartbeat_fd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => {
                let v = it.next().ok_or("--config: missing value (a path)")?;
                if v.is_empty() {
                    return Err("--config: the path is empty".into());
                }
                config = Some(PathBuf::from(v));
            }
            "--check" => check = true,
            "--heartbeat-fd" => {
                let v = it
                    .next()
                    .ok_or("--heartbeat-fd: missing value (a descriptor)")?;
                let fd: i32 =
                    v.parse().ok().filter(|&fd| fd > 2).ok_or_else(|| {
                        format!("--heartbeat-fd: {v:?} is not a descriptor above 2")
                    })?;
                heartbeat_fd = Some(fd);
            }
            "--help" | "-h" => return Ok(Cli::Help),
            "--version" | "-V" => return Ok(Cli::Version),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = config.ok_or("--config PATH is required")?;
    Ok(Cli::Run {
        config,
        check,
        heartbeat_fd,
    })
}

/// The binary's `main`: returns the exit status.
#[must_use]
pub fn main_with_args(args: &[String]) -> i32 {
    super::logging::init();
    let (config, check, heartbeat_fd) = match parse_args(args) {
        Ok(Cli::Run {
            config,
            check,
            heartbeat_fd,
        }) => (config, check, heartbeat_fd),
        Ok(Cli::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Ok(Cli::Version) => {
            println!("xhad {}", env!("CARGO_PKG_VERSION"));
            return 0;
        }
        Err(e) => {
            eprintln!("xhad: {e}\n{USAGE}");
            return i32::from(ExitCode::InvalidParameter.code());
        }
    };
    match start(&config, check, heartbeat_fd) {
        Ok(()) => 0,
        Err(f) => {
            tracing::error!(
                "exiting with status {} ({}): {}",
                f.code.code(),
                f.code.name(),
                f.message
            );
            i32::from(f.code.code())
        }
    }
}

/// Everything checked before the runtime starts.
struct Prepared {
    config: Config,
    secret: PoolSecret,
    /// The statefiles; a minority may be missing.
    statefiles: startup::Opened,
    /// Held until the process exits.
    lock: instance_lock::InstanceLock,
    boot_id: String,
    incarnation: u64,
    standing: Vec<(WarningKind, String)>,
    heartbeat_fd: Option<i32>,
}

fn start(path: &Path, check: bool, heartbeat_fd: Option<i32>) -> Result<(), Fatal> {
    let prepared = prepare(path, check)?;
    let Some(mut prepared) = prepared else {
        return Ok(());
    };
    prepared.heartbeat_fd = heartbeat_fd;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(512 * 1024)
        .thread_name("xhad")
        .enable_all()
        .build()
        .map_err(|e| {
            Fatal::new(
                ExitCode::SystemError,
                format!("cannot start the runtime: {e}"),
            )
        })?;
    let result = runtime.block_on(run(prepared));
    // Worker threads may be stuck in the kernel on a hung statefile: do not
    // wait for them.
    runtime.shutdown_background();
    result
}

fn prepare(path: &Path, check: bool) -> Result<Option<Prepared>, Fatal> {
    let loaded = super::config::Config::load(path)
        .map_err(|e| Fatal::new(e.exit_code(), format!("{}: {e}", path.display())))?;
    let config = loaded.config;
    // Before anything changes: a second daemon on this state directory
    // must leave the incarnation and the fence record alone. `--check`
    // changes nothing and may run beside the daemon.
    let lock = if check {
        None
    } else {
        Some(instance_lock::acquire(&config.state_dir).map_err(|e| {
            let code = match e {
                instance_lock::LockError::Held { .. } => ExitCode::DaemonPresent,
                instance_lock::LockError::Io { .. } => ExitCode::SystemError,
            };
            Fatal::new(code, e.to_string())
        })?)
    };
    let mut standing = Vec::new();
    let boot_id = fence_record::boot_id().map_err(|e| {
        Fatal::new(
            ExitCode::SystemError,
            format!("cannot read the boot id: {e}"),
        )
    })?;
    match fence_record::check(&config.state_dir, &boot_id) {
        Ok(None) => {}
        Ok(Some(record)) => {
            return Err(Fatal::new(
                ExitCode::InvalidLocalHostState,
                format!(
                    "this host decided to fence earlier in this boot ({}); it must be reset before xhad may arm again ({})",
                    record.reason,
                    config.state_dir.join(fence_record::FILE_NAME).display()
                ),
            ));
        }
        Err(e) => {
            return Err(Fatal::new(
                ExitCode::InvalidLocalHostState,
                format!("cannot check the fence record: {e}"),
            ));
        }
    }
    let statefiles = startup::open_statefiles(&config)?;
    let files = &statefiles.files;
    for (i, f) in files.iter().enumerate() {
        if f.is_none() {
            let message = startup::left_out_warning(i, &config.statefiles[i]);
            standing.push((WarningKind::Other, message));
        }
    }
    let Some(lock) = lock else {
        println!(
            "{}: valid; host {} (index {}) of {} hosts, {} of {} statefile(s) open, T = {} s",
            path.display(),
            config.local_uuid,
            config.local_index,
            config.hosts.len(),
            files.iter().filter(|f| f.is_some()).count(),
            files.len(),
            config.timeouts.base.as_secs()
        );
        return Ok(None);
    };
    // On the main thread before any other thread starts: new threads
    // inherit the policy.
    let rt = realtime::request();
    for w in rt.warnings() {
        standing.push((WarningKind::NotRealtime, w));
    }
    let incarnation = incarnation::next(&config.state_dir, incarnation::wall_clock_us())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("heartbeat incarnation: {e}")))?;
    Ok(Some(Prepared {
        config,
        secret: loaded.secret,
        statefiles,
        lock,
        boot_id,
        incarnation,
        standing,
        heartbeat_fd: None,
    }))
}

async fn connect_watchdog(config: &WatchdogConfig) -> Result<Box<dyn Watchdog>, Fatal> {
    let started = std::time::Instant::now();
    loop {
        match watchdog::from_config(config) {
            Ok(w) => return Ok(w),
            Err(WatchdogError::Supervisor { op: "connect", .. })
                if started.elapsed() < SUPERVISOR_CONNECT_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(Fatal::new(ExitCode::WatchdogError, e.to_string())),
        }
    }
}

/// The daemon's monotonic clock in the core's time base.
#[derive(Clone, Copy, Debug)]
struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    fn now(self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
    fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_nanos(at.as_nanos()))
    }
}

/// Who waits for the core's next `Reply`.
enum ReplySink {
    Control(oneshot::Sender<CommandReply>),
    Signal(&'static str),
}

/// A read in flight and when it is reported as timed out.
#[derive(Clone, Copy, Debug)]
struct PendingRead {
    statefile: StatefileIndex,
    request: RequestId,
    deadline: Instant,
}

/// The state of the main loop.
struct Daemon {
    config: Config,
    boot_id: String,
    clock: Clock,
    node: Node,
    watchdog: Box<dyn Watchdog>,
    /// `None`: the statefile could not be opened at start-up.
    workers: Vec<Option<StatefileWorkers>>,
    measurements: Measurements,
    replies: VecDeque<ReplySink>,
    reads: Vec<PendingRead>,
    /// Inputs produced while performing actions (refused I/O), fed after
    /// the current drain.
    deferred: VecDeque<Input>,
    state_tx: watch::Sender<Option<Slot>>,
    /// What this host read of each peer's slot, for the replay floors.
    evidence_tx: watch::Sender<Vec<Option<super::replay::SlotEvidence>>>,
    publisher: ReportPublisher,
    last_key: Option<super::control::LivesetReport>,
    /// Repeated warnings: each condition logged at most once per T.
    limits: RateLimit,
    stopped: bool,
    /// Until this host joins: when it gives up (exit 12).
    join_deadline: Option<Instant>,
    /// Retries the statefiles left out at start-up.
    reopen: startup::Reopener,
    /// For the workers of a statefile opened late.
    io_tx: mpsc::UnboundedSender<Completion>,
    worker_capacity: usize,
}

async fn run(p: Prepared) -> Result<(), Fatal> {
    let clock = Clock {
        origin: std::time::Instant::now(),
    };
    let config = p.config;
    // Released when the process exits, however it exits.
    let _lock = p.lock;
    let boot_join_timeout = config.boot_join_timeout;
    let local = config.local().address;
    let socket = match p.heartbeat_fd {
        Some(fd) => net::inherit(fd, local)
            .map_err(|e| Fatal::new(ExitCode::InvalidParameter, format!("--heartbeat-fd: {e}")))?,
        None => net::bind(local).await.map_err(|e| {
            Fatal::new(
                ExitCode::SystemError,
                format!("cannot bind the heartbeat socket {local}: {e}"),
            )
        })?,
    };
    let listener = control_server::bind(&config.control_socket)
        .await
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::AddrInUse {
                ExitCode::DaemonPresent
            } else {
                ExitCode::SystemError
            };
            Fatal::new(
                code,
                format!("control socket {}: {e}", config.control_socket.display()),
            )
        })?;
    let watchdog = connect_watchdog(&config.watchdog).await?;
    let mut standing = p.standing;
    if matches!(config.watchdog, WatchdogConfig::None) {
        tracing::warn!(
            "watchdog backend \"none\": a hung host will NOT be reset (development only)"
        );
        standing.push((
            WarningKind::Watchdog,
            "watchdog backend \"none\": a hung host is not reset".into(),
        ));
    }
    let seed = p.incarnation ^ ((config.local_index as u64) << 56);
    let node = Node::new(config.core_config(seed), clock.now())
        .map_err(|e| Fatal::new(ExitCode::InvalidConfig, e.to_string()))?;

    let uuids: Vec<uuid::Uuid> = config.hosts.iter().map(|h| h.uuid).collect();
    let codec = wire::Codec::new(config.pool_generation, uuids, config.local_index, &p.secret);
    let (state_tx, state_rx) = watch::channel(None);
    let (stats_tx, _stats_rx) = watch::channel(net::SendStats::default());
    let peers = config
        .hosts
        .iter()
        .filter(|h| h.index != config.local_index)
        .map(|h| h.address)
        .collect();
    let sender_task = net::spawn_sender(
        socket.clone(),
        peers,
        wire::Sender::new(codec.clone(), p.incarnation),
        state_rx,
        stats_tx,
    );
    let (hb_tx, mut hb_rx) = mpsc::channel::<Heartbeat>(HEARTBEAT_QUEUE);
    let (drops_tx, mut drops_rx) = watch::channel(DropCounters::default());
    let (evidence_tx, evidence_rx) = watch::channel(Vec::new());
    let (dropping_tx, mut dropping_rx) = watch::channel(Vec::new());
    let receiver = wire::Receiver::with_timing(
        codec,
        config.timeouts.heartbeat_interval,
        config.timeouts.base,
    );
    let receive_ctx = net::ReceiveContext {
        now: Box::new(move || clock.now()),
        evidence: evidence_rx,
        dropping: dropping_tx,
        warn_every: config.timeouts.base,
    };
    let receiver_task = net::spawn_receiver(socket, receiver, hb_tx, drops_tx, receive_ctx);
    let (publisher, reports_rx, cmd_tx, mut cmd_rx) = control_server::channels();
    let access = control_server::Access {
        uids: config.control_uids.clone(),
        ..control_server::Access::default()
    };
    let server_task = tokio::spawn(control_server::serve_with(
        listener, reports_rx, cmd_tx, access,
    ));

    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<Completion>();
    let capacity = config.timeouts.max_outstanding_writes + EXTRA_WORKERS;
    let (reopen, mut reopen_rx) = startup::Reopener::new(&config, &p.statefiles, clock.now());
    let workers = p
        .statefiles
        .files
        .into_iter()
        .enumerate()
        .map(|(i, f)| f.map(|f| StatefileWorkers::new(i, f, capacity, io_tx.clone())))
        .collect();

    let addresses = config.hosts.iter().map(|h| h.address).collect();
    let mut measurements = Measurements::new(addresses, config.timeouts.base);
    for (kind, message) in standing {
        measurements.add_standing(kind, message);
    }
    tracing::info!(
        host = %config.local_uuid,
        index = config.local_index,
        hosts = config.hosts.len(),
        timeout_s = config.timeouts.base.as_secs(),
        address = %local,
        watchdog = watchdog.backend(),
        incarnation = p.incarnation,
        "xhad started; joining the liveset"
    );
    let config_base = config.timeouts.base;
    let mut d = Daemon {
        config,
        boot_id: p.boot_id,
        clock,
        node,
        watchdog,
        workers,
        measurements,
        replies: VecDeque::new(),
        reads: Vec::new(),
        deferred: VecDeque::new(),
        state_tx,
        evidence_tx,
        publisher,
        last_key: None,
        limits: RateLimit::new(config_base),
        stopped: false,
        join_deadline: Some(clock.now() + boot_join_timeout),
        reopen,
        io_tx,
        worker_capacity: capacity,
    };
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("signal handler: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("signal handler: {e}")))?;

    let result = loop {
        if let Err(f) = d.drain() {
            break Err(f);
        }
        if d.stopped {
            break Ok(());
        }
        if let Err(f) = d.check_boot_join() {
            break Err(f);
        }
        let wake = d.next_wake();
        tokio::select! {
            hb = hb_rx.recv() => match hb {
                Some(hb) => d.heartbeat(hb),
                None => break Err(Fatal::new(ExitCode::SystemError, "the heartbeat receiver stopped")),
            },
            c = io_rx.recv() => {
                if let Some(c) = c {
                    d.completion(c);
                }
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(cmd) => d.command(cmd),
                None => break Err(Fatal::new(ExitCode::SystemError, "the control server stopped")),
            },
            changed = drops_rx.changed() => {
                if changed.is_ok() {
                    let counters = *drops_rx.borrow_and_update();
                    d.measurements.set_dropped(counters);
                }
            }
            r = reopen_rx.recv() => {
                if let Some(r) = r {
                    d.reopened(r);
                }
            }
            changed = dropping_rx.changed() => {
                if changed.is_ok() {
                    let dropping = dropping_rx.borrow_and_update().clone();
                    d.measurements.set_replay_dropping(dropping);
                }
            }
            () = sleep_until(clock, wake) => d.timers(),
            _ = sigterm.recv() => d.signal("SIGTERM"),
            _ = sigint.recv() => d.signal("SIGINT"),
        }
    };
    // Publish the last state (stopping) so watchers see it, then end the
    // tasks. The watchdog was disarmed by the core before `Stopped`. The
    // server stops accepting when the command channel closes; connection
    // tasks get a moment to write replies already decided (the answer to
    // `stop` itself).
    d.publish();
    drop(cmd_rx);
    let _ = tokio::time::timeout(REPLY_FLUSH, server_task).await;
    tokio::time::sleep(REPLY_FLUSH).await;
    sender_task.abort();
    receiver_task.abort();
    // The socket is ours (bind replaced only a stale one): remove it so no
    // stale file is left behind.
    if let Err(e) = std::fs::remove_file(&d.config.control_socket) {
        tracing::debug!("removing the control socket: {e}");
    }
    if result.is_ok() {
        tracing::info!("xhad stopped cleanly");
    }
    result
}

async fn sleep_until(clock: Clock, at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock.to_tokio(at)).await,
        None => std::future::pending().await,
    }
}

fn fence_text(reason: FenceReason, hosts: &[super::config::Host]) -> String {
    match reason {
        FenceReason::LeaseExpired => {
            "the lease ran out: no statefile write (nor, with the statefile lost, a network round) renewed it in time".into()
        }
        FenceReason::FenceRequested { by } => format!(
            "host {} (index {by}) is in the surviving partition and this host is not",
            hosts.get(by.0).map_or_else(|| "?".into(), |h| h.uuid.to_string())
        ),
    }
}

impl Daemon {
    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn handle(&mut self, input: Input) {
        let now = self.now();
        self.node.handle(now, input);
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.node.poll_timeout(),
            self.reads.iter().map(|r| r.deadline).min(),
            self.measurements.next_expiry(),
            self.join_deadline,
            self.reopen.next_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn heartbeat(&mut self, hb: Heartbeat) {
        let now = self.now();
        self.measurements.heartbeat(now, hb.from);
        tracing::trace!(from = hb.from, sequence = hb.slot.sequence, "heartbeat");
        self.node.handle(
            now,
            Input::Heartbeat {
                from: HostIndex(hb.from),
                slot: hb.slot,
            },
        );
    }

    fn timers(&mut self) {
        let now = self.now();
        let (due, pending): (Vec<PendingRead>, Vec<PendingRead>) =
            self.reads.iter().partition(|r| r.deadline <= now);
        self.reads = pending;
        for r in due {
            let deadline_ms = self.config.timeouts.io_deadline.as_millis();
            self.warn_limited(&format!("read deadline/{}", r.statefile), || {
                format!(
                    "statefile {}: read missed its deadline of {deadline_ms} ms",
                    r.statefile
                )
            });
            self.node.handle(
                now,
                Input::StatefileRead {
                    statefile: r.statefile,
                    request: r.request,
                    result: Err(IoFailure::Timeout),
                },
            );
        }
        self.measurements.expire(now);
        self.reopen.tick(now);
        self.node.handle(now, Input::Tick);
    }

    /// Start using the statefiles a retry round opened.
    fn reopened(&mut self, results: Vec<startup::Reopened>) {
        let now = self.now();
        for (i, f) in self.reopen.done(results, now) {
            let path = &self.config.statefiles[i];
            tracing::info!(
                statefile = i,
                path = %path.display(),
                "statefile opened after start-up; its I/O is used from now on"
            );
            self.measurements
                .remove_standing(&startup::left_out_warning(i, path));
            if let Some(slot) = self.workers.get_mut(i) {
                *slot = Some(StatefileWorkers::new(
                    i,
                    f,
                    self.worker_capacity,
                    self.io_tx.clone(),
                ));
            }
        }
    }

    fn completion(&mut self, c: Completion) {
        let now = self.now();
        self.measurements.io_latency(c.latency);
        tracing::debug!(
            statefile = c.statefile,
            request = c.request,
            kind = ?c.kind,
            latency_ms = c.latency.as_secs_f64() * 1e3,
            ok = c.result.is_ok(),
            "statefile I/O done"
        );
        let failure = |e: String| IoFailure::Error(e);
        let (statefile, request) = (StatefileIndex(c.statefile), RequestId(c.request));
        let input = match c.kind {
            Kind::ReadAll => {
                let Some(pos) = self
                    .reads
                    .iter()
                    .position(|r| r.statefile == statefile && r.request == request)
                else {
                    // Already reported as timed out.
                    tracing::debug!(statefile = c.statefile, "late read completion ignored");
                    return;
                };
                self.reads.swap_remove(pos);
                let n = self.config.hosts.len();
                Input::StatefileRead {
                    statefile,
                    request,
                    result: match c.result {
                        Ok(Outcome::Read(mut r)) => {
                            r.slots.truncate(n);
                            self.measurements.slots(now, &r.slots);
                            self.evidence_tx.send_replace(self.measurements.evidence());
                            Ok(StatefileRead {
                                pool: r.pool,
                                slots: r.slots,
                            })
                        }
                        Ok(Outcome::Written) => {
                            Err(failure("internal: a read returned no data".into()))
                        }
                        Err(e) => Err(failure(e)),
                    },
                }
            }
            Kind::WriteSlot => Input::SlotWritten {
                statefile,
                request,
                result: c.result.map(|_| ()).map_err(failure),
            },
            Kind::WritePool => Input::PoolWritten {
                statefile,
                request,
                result: c.result.map(|_| ()).map_err(failure),
            },
        };
        let failed = match &input {
            Input::SlotWritten { result: Err(e), .. }
            | Input::PoolWritten { result: Err(e), .. } => Some(("write", e)),
            Input::StatefileRead { result: Err(e), .. } => Some(("read", e)),
            _ => None,
        };
        if let Some((what, e)) = failed {
            if c.not_ours {
                // Warned once by the I/O layer when it found the header foreign.
                tracing::debug!(statefile = c.statefile, "statefile {what} failed: {e:?}");
            } else {
                let e = format!("{e:?}");
                self.warn_limited(&format!("{what} failed/{}", c.statefile), || {
                    format!("statefile {}: {what} failed: {e}", c.statefile)
                });
            }
        }
        self.node.handle(now, input);
    }

    fn command(&mut self, cmd: ControlCommand) {
        let ControlCommand { request, reply } = cmd;
        if request == Request::QueryLiveset {
            let r = self.report();
            let _ = reply.send(Ok(Some(r)));
            return;
        }
        let Some(core) = request.to_core() else {
            let _ = reply.send(Err(ErrorBody {
                code: ErrorCode::BadRequest,
                message: format!("{} is not forwarded to the daemon", request.name()),
            }));
            return;
        };
        if self.node.is_fenced() {
            let _ = reply.send(Err(ErrorBody::from(&ControlError::Fenced)));
            return;
        }
        tracing::info!(request = request.name(), "control request");
        self.replies.push_back(ReplySink::Control(reply));
        self.handle(Input::Control(core));
    }

    fn signal(&mut self, name: &'static str) {
        if self.node.is_fenced() {
            return;
        }
        tracing::info!("{name}: stopping as if asked by `stop`");
        self.replies.push_back(ReplySink::Signal(name));
        self.handle(Input::Control(ControlRequest::Stop));
    }

    /// Drain the core's actions and perform them, feeding back refused I/O,
    /// until the core has nothing more to say.
    fn drain(&mut self) -> Result<(), Fatal> {
        loop {
            while let Some(action) = self.node.poll_action() {
                self.perform(action)?;
            }
            let Some(input) = self.deferred.pop_front() else {
                break;
            };
            self.handle(input);
        }
        self.publish();
        Ok(())
    }

    fn perform(&mut self, action: Action) -> Result<(), Fatal> {
        match action {
            Action::SendHeartbeat { slot } => {
                self.state_tx.send_replace(Some(slot));
            }
            Action::WriteSlot {
                statefile,
                request,
                slot,
                ..
            } => {
                if let Err(e) = self.submit(statefile, request, Op::WriteSlot(slot)) {
                    self.deferred.push_back(Input::SlotWritten {
                        statefile,
                        request,
                        result: Err(IoFailure::Error(e)),
                    });
                }
            }
            Action::ReadStatefile {
                statefile,
                request,
                deadline,
            } => match self.submit(statefile, request, Op::ReadAll) {
                Ok(()) => self.reads.push(PendingRead {
                    statefile,
                    request,
                    deadline,
                }),
                Err(e) => self.deferred.push_back(Input::StatefileRead {
                    statefile,
                    request,
                    result: Err(IoFailure::Error(e)),
                }),
            },
            Action::WritePool {
                statefile,
                request,
                block,
                ..
            } => {
                tracing::info!(
                    statefile = statefile.0,
                    master = ?block.master,
                    epoch = block.master_epoch,
                    state = ?block.state,
                    "writing the pool block"
                );
                if let Err(e) = self.submit(statefile, request, Op::WritePool(block)) {
                    self.deferred.push_back(Input::PoolWritten {
                        statefile,
                        request,
                        result: Err(IoFailure::Error(e)),
                    });
                }
            }
            Action::ArmWatchdog { until } => {
                let now = self.now();
                let report = watchdog::arm_until(self.watchdog.as_mut(), now, until)
                    .map_err(|e| Fatal::new(ExitCode::WatchdogError, format!("arming: {e}")))?;
                for w in &report.warnings {
                    tracing::warn!("watchdog: {w}");
                    self.measurements
                        .add_standing(WarningKind::Watchdog, w.clone());
                }
                tracing::info!(
                    backend = self.watchdog.backend(),
                    timeout_ms = until.saturating_since(now).as_millis(),
                    "watchdog armed: this host is now fenced if it stops renewing its lease"
                );
            }
            Action::KickWatchdog { until } => {
                let now = self.now();
                let outcome = match watchdog::kick_until(self.watchdog.as_mut(), now, until) {
                    Ok(o) => o,
                    // Losing the watchdog while armed is a fence: nothing
                    // would stop this host once the daemon is gone.
                    Err(e) => return Err(self.watchdog_lost(&e)),
                };
                match outcome {
                    KickOutcome::Kicked => {}
                    KickOutcome::TooLate { late_by } => {
                        self.warn_limited("kick late", || {
                            format!(
                                "watchdog kick dropped: executed {} ms after its deadline (CPU starvation?)",
                                late_by.as_millis()
                            )
                        });
                    }
                    KickOutcome::TooShort { left } => self.warn_limited("kick short", || {
                        format!(
                            "watchdog kick dropped: only {} ms left, below what the backend counts",
                            left.as_millis()
                        )
                    }),
                }
            }
            Action::DisarmWatchdog => match self.watchdog.disarm() {
                Ok(()) => tracing::info!("watchdog disarmed: this host no longer fences"),
                Err(e) => tracing::error!("watchdog disarm failed: {e}"),
            },
            Action::Fence { reason } => return Err(self.fence(reason)),
            Action::LivesetChanged { liveset } => {
                let uuids: Vec<String> = liveset
                    .iter()
                    .map(|i| format!("{i}:{}", short(&self.config.hosts[i].uuid)))
                    .collect();
                let st = self.node.status();
                tracing::info!(
                    "liveset changed to [{}] ({} hosts): {}",
                    uuids.join(" "),
                    uuids.len(),
                    st.text
                );
            }
            Action::MasterChanged { is_master, epoch } => {
                if is_master {
                    tracing::info!(epoch, "this host now holds the master lock");
                } else {
                    tracing::info!(epoch, "this host gave up the master lock");
                }
            }
            Action::Reply(r) => self.reply(r),
            Action::Warning(w) => {
                let now = self.now();
                let hosts: Vec<uuid::Uuid> = self.config.hosts.iter().map(|h| h.uuid).collect();
                let report = super::control::WarningReport::from_core(&w, &hosts);
                let key = format!(
                    "warning/{:?}/{:?}/{:?}",
                    report.kind, report.host, report.statefile
                );
                let kind = report.kind;
                self.warn_limited(&key, || format!("{}: {}", kind_name(kind), report.message));
                self.measurements.warning(now, &w, &hosts);
            }
            Action::Stopped => self.stopped = true,
            // The report is published after every input (see `publish`).
            Action::StatusChanged => {}
        }
        Ok(())
    }

    /// Exit 12 if this host has not decided to join by its boot-join
    /// deadline. Only before joining: the watchdog is armed when the core
    /// decides to join, and exiting then would reset the host. A host that
    /// asked to join but was not admitted has no watchdog armed, and peers
    /// that counted it in remove it when its slot stops changing.
    fn check_boot_join(&mut self) -> Result<(), Fatal> {
        let Some(deadline) = self.join_deadline else {
            return Ok(());
        };
        if self.node.has_joined() {
            self.join_deadline = None;
            return Ok(());
        }
        if self.now() < deadline {
            return Ok(());
        }
        Err(Fatal::new(
            ExitCode::BootJoinTimeout,
            startup::boot_join_message(self.config.boot_join_timeout, &self.node.status()),
        ))
    }

    fn submit(
        &mut self,
        statefile: StatefileIndex,
        request: RequestId,
        op: Op,
    ) -> Result<(), String> {
        let Some(w) = self.workers.get_mut(statefile.0) else {
            return Err(format!("internal: no statefile {statefile}"));
        };
        // Not logged: this fails on every interval, and start-up said why.
        let Some(w) = w else {
            return Err(format!(
                "statefile {statefile} could not be opened at start-up"
            ));
        };
        let refused = w.submit(request.0, op).map_err(|e| e.to_string());
        if let Err(e) = &refused {
            self.warn_limited(&format!("refused/{statefile}"), || e.clone());
        }
        refused
    }

    /// Log `message` as a warning unless the same condition (`key`) was
    /// logged less than T ago; the next line that is logged says how many
    /// were not.
    fn warn_limited(&mut self, key: &str, message: impl FnOnce() -> String) {
        let now = self.now();
        match self.limits.check(key, now) {
            Some(n) => tracing::warn!(
                "{}{}",
                message(),
                ratelimit::suffix(n, self.config.timeouts.base)
            ),
            None => tracing::debug!(key, "repeated warning not logged"),
        }
    }

    fn reply(&mut self, r: Result<(), ControlError>) {
        match self.replies.pop_front() {
            Some(ReplySink::Control(tx)) => {
                if let Err(e) = &r {
                    tracing::info!("control request refused: {e}");
                }
                let _ = tx.send(r.map(|()| None).map_err(|e| ErrorBody::from(&e)));
            }
            Some(ReplySink::Signal(name)) => match r {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    "{name} refused: {e}; fencing stays armed (use set-excluded or disarm-fencing, then stop)"
                ),
            },
            None => tracing::error!("internal: a reply from the core with nobody waiting"),
        }
    }

    /// Carry out a fence decision. Returns only if the fence action failed;
    /// then kicks have stopped and the watchdog resets the host.
    fn fence(&mut self, reason: FenceReason) -> Fatal {
        let text = fence_text(reason, &self.config.hosts);
        self.fence_with(&text, true)
    }

    /// A kick failed while armed (the supervisor died, the device refused a
    /// write): the host can no longer count on being reset if this daemon
    /// dies or hangs, and the peers will soon count it as fenced. Fence now
    /// with the configured action, never through the lost watchdog.
    fn watchdog_lost(&mut self, e: &WatchdogError) -> Fatal {
        let text = format!(
            "the watchdog ({}) failed while armed: {e}",
            self.watchdog.backend()
        );
        self.fence_with(&text, false)
    }

    /// Log, record and carry out a fence; `via_watchdog`: with `kill-host`,
    /// ask a watchdog that can kill the host (the supervisor) first.
    fn fence_with(&mut self, text: &str, via_watchdog: bool) -> Fatal {
        tracing::error!("FENCING this host: {text}");
        self.publish();
        if let Err(e) = fence_record::write(&self.config.state_dir, &self.boot_id, text) {
            tracing::error!("cannot write the fence record: {e}");
        }
        if via_watchdog && self.config.fence_action == FenceAction::KillHost {
            match self.watchdog.fence_now() {
                Some(Ok(())) => {
                    // The supervisor kills this process group, this process
                    // included; do not act any further meanwhile.
                    std::thread::sleep(Duration::from_secs(5));
                    tracing::error!("the supervisor did not kill this host; killing it directly");
                }
                Some(Err(e)) => tracing::error!("supervisor fence failed: {e}; killing directly"),
                None => {}
            }
        }
        let e = fence::execute(self.config.fence_action);
        Fatal::new(
            ExitCode::SystemError,
            format!("fence action failed: {e}; the watchdog will reset the host"),
        )
    }

    fn report(&self) -> super::control::LivesetReport {
        let status = report::status_of(&self.node, self.stopped);
        self.measurements
            .report(&self.node, self.now(), status, self.watchdog.backend())
    }

    fn publish(&mut self) {
        let r = self.report();
        let key = report::watch_key(&r);
        if self.last_key.as_ref() != Some(&key) {
            self.publisher.publish(r);
            self.last_key = Some(key);
        }
    }
}

/// The kebab-case name of a warning kind, as in the liveset report.
fn kind_name(kind: WarningKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn short(u: &uuid::Uuid) -> String {
    u.to_string().chars().take(8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn command_line() {
        assert_eq!(
            parse_args(&args(&["--config", "/etc/x.toml"])),
            Ok(Cli::Run {
                config: PathBuf::from("/etc/x.toml"),
                check: false,
                heartbeat_fd: None,
            })
        );
        assert_eq!(
            parse_args(&args(&["--check", "--config", "x"])),
            Ok(Cli::Run {
                config: PathBuf::from("x"),
                check: true,
                heartbeat_fd: None,
            })
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(Cli::Help));
        assert_eq!(
            parse_args(&args(&["--config", "x", "--heartbeat-fd", "3"])),
            Ok(Cli::Run {
                config: PathBuf::from("x"),
                check: false,
                heartbeat_fd: Some(3),
            })
        );
        for bad in ["2", "-1", "x", ""] {
            assert!(
                parse_args(&args(&["--config", "x", "--heartbeat-fd", bad]))
                    .unwrap_err()
                    .contains("--heartbeat-fd")
            );
        }
        assert!(
            parse_args(&args(&[]))
                .unwrap_err()
                .contains("--config PATH is required")
        );
        assert!(
            parse_args(&args(&["--config"]))
                .unwrap_err()
                .contains("missing value")
        );
        assert!(
            parse_args(&args(&["--config", ""]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            parse_args(&args(&["--frobnicate"]))
                .unwrap_err()
                .contains("--frobnicate")
        );
    }
}
