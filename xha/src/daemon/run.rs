//! `xhad`: the runtime and the main loop (`docs/daemon.md`, "Run time").
//!
//! Start-up checks come first ([`super::prepare`]): configuration (6/7), the
//! instance lock in the state directory (15 when another daemon holds it),
//! fence record of this boot (17), statefiles opened with O_DIRECT and
//! checked (7 when two entries are one file, 8/9/10; a minority may be
//! missing, see `startup`), real-time priority and `mlockall` (warnings),
//! heartbeat incarnation (2); then here: heartbeat socket (2), control
//! socket (15 when another daemon answers on it), watchdog (4). A host not
//! in the liveset within `boot-join-timeout` exits 12.
//!
//! The main loop owns the [`Driver`] (and through it the core) and is the
//! only place that calls it. The driver is `xha_driver`'s, the one the
//! simulator runs too: it turns the core's actions into requests to
//! [`DaemonHost`] (heartbeat sender, statefile workers, watchdog, logs and
//! replies) and completions, read deadlines, refused I/O and watchdog loss
//! into inputs. Inputs come from four places, each a channel: accepted
//! heartbeats (the receive task), statefile completions (the worker threads
//! of `statefile_io`), control requests (the control server) and timers
//! (the driver's next wake-up, warning expiry, statefile reopening). After
//! every input the loop publishes the liveset report to watchers if it
//! changed.
//!
//! One log line per decision: liveset and master changes, warnings, fence
//! decisions and watchdog trouble at `info` or above, each with its reason;
//! per-heartbeat and per-I/O events at `debug`.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use xha_driver::Driver;

use super::args::{Cli, USAGE, parse_args};
use super::config::WatchdogConfig;
use super::control::{ErrorBody, ErrorCode, Request, WarningKind};
use super::control_server::{self, ControlCommand};
use super::exit::ExitCode;
use super::host_io::{DaemonClock, DaemonHost, ReplySink};
use super::prepare::{self, Prepared, prepare};
use super::ratelimit::RateLimit;
use super::report::Measurements;
use super::statefile_io::{Finished, StatefileWorkers};
use super::wire::{self, DropCounters, Heartbeat};
use super::{net, replay, startup};
use crate::core::{ControlError, ControlRequest, HostIndex, Input, Instant, Node};

/// How long `xhad` waits for the `xha-supervisor` socket at start-up (the
/// lab may start the supervisor just after the daemon).
pub const SUPERVISOR_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Accepted heartbeats queued for the main loop.
const HEARTBEAT_QUEUE: usize = 1024;

/// How long connection tasks get to write their last replies at exit.
const REPLY_FLUSH: Duration = Duration::from_millis(100);

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

async fn run(p: Prepared) -> Result<(), Fatal> {
    let clock = DaemonClock {
        origin: std::time::Instant::now(),
    };
    let config = p.config;
    // Released when the process exits, however it exits.
    let _lock = p.lock;
    let boot_join_timeout = config.boot_join_timeout;
    let local = config.local().address;
    // The handlers are in place before the control socket appears (the
    // socket is what callers wait for), so a SIGTERM sent after it is a
    // clean stop, never the default action.
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("signal handler: {e}")))?;
    let mut sigint = signal(SignalKind::interrupt())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("signal handler: {e}")))?;
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
    let watchdog = prepare::connect_watchdog(&config.watchdog).await?;
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

    let (io_tx, mut io_rx) = mpsc::unbounded_channel::<Finished>();
    let capacity = xha_driver::io_capacity(&config.timeouts);
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

    let mut d = Daemon {
        driver: Driver::new(node),
        host: DaemonHost {
            boot_id: p.boot_id,
            clock,
            watchdog,
            watchdog_error: None,
            workers,
            measurements,
            replies: VecDeque::new(),
            state_tx,
            publisher,
            last_key: None,
            changed: true,
            limits: RateLimit::new(config.timeouts.base),
            stopped: false,
            config,
        },
        evidence_tx,
        join_deadline: Some(clock.now() + boot_join_timeout),
        reopen,
        io_tx,
        worker_capacity: capacity,
    };

    let mut step = d.driver.drain(&mut d.host);
    let result = loop {
        if let Err(f) = step {
            break Err(f);
        }
        d.publish();
        if d.host.stopped {
            break Ok(());
        }
        if let Err(f) = d.check_boot_join() {
            break Err(f);
        }
        let wake = d.next_wake();
        step = tokio::select! {
            hb = hb_rx.recv() => match hb {
                Some(hb) => d.heartbeat(hb),
                None => Err(Fatal::new(ExitCode::SystemError, "the heartbeat receiver stopped")),
            },
            c = io_rx.recv() => match c {
                Some(c) => d.completion(c),
                None => Ok(()),
            },
            cmd = cmd_rx.recv() => match cmd {
                Some(cmd) => d.command(cmd),
                None => Err(Fatal::new(ExitCode::SystemError, "the control server stopped")),
            },
            changed = drops_rx.changed() => {
                if changed.is_ok() {
                    let counters: DropCounters = *drops_rx.borrow_and_update();
                    d.host.changed |= d.host.measurements.dropped() != counters;
                    d.host.measurements.set_dropped(counters);
                }
                Ok(())
            }
            r = reopen_rx.recv() => {
                if let Some(r) = r {
                    d.reopened(r);
                }
                Ok(())
            }
            changed = dropping_rx.changed() => {
                if changed.is_ok() {
                    let dropping = dropping_rx.borrow_and_update().clone();
                    d.host.measurements.set_replay_dropping(dropping);
                    d.host.changed = true;
                }
                Ok(())
            }
            () = sleep_until(clock, wake) => d.timers(),
            _ = sigterm.recv() => d.signal("SIGTERM"),
            _ = sigint.recv() => d.signal("SIGINT"),
        };
    };
    // Publish the last state (stopping) so watchers see it, then end the
    // tasks. The watchdog was disarmed by the core before `Stopped`. The
    // server stops accepting when the command channel closes; connection
    // tasks get a moment to write replies already decided (the answer to
    // `stop` itself).
    d.host.publish_now(d.driver.node());
    drop(cmd_rx);
    let _ = tokio::time::timeout(REPLY_FLUSH, server_task).await;
    tokio::time::sleep(REPLY_FLUSH).await;
    sender_task.abort();
    receiver_task.abort();
    // The socket is ours (bind replaced only a stale one): remove it so no
    // stale file is left behind.
    if let Err(e) = std::fs::remove_file(&d.host.config.control_socket) {
        tracing::debug!("removing the control socket: {e}");
    }
    if result.is_ok() {
        tracing::info!("xhad stopped cleanly");
    }
    result
}

async fn sleep_until(clock: DaemonClock, at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(clock.to_tokio(at)).await,
        None => std::future::pending().await,
    }
}

/// The state of the main loop: the driver (and its core) and what it runs
/// on, plus what only the loop uses.
struct Daemon {
    driver: Driver,
    host: DaemonHost,
    /// What this host read of each peer's slot, for the replay floors.
    evidence_tx: watch::Sender<Vec<Option<replay::SlotEvidence>>>,
    /// Until this host joins: when it gives up (exit 12).
    join_deadline: Option<Instant>,
    /// Retries the statefiles left out at start-up.
    reopen: startup::Reopener,
    /// For the workers of a statefile opened late.
    io_tx: mpsc::UnboundedSender<Finished>,
    worker_capacity: usize,
}

impl Daemon {
    fn now(&self) -> Instant {
        self.host.clock.now()
    }

    fn node(&self) -> &Node {
        self.driver.node()
    }

    fn publish(&mut self) {
        self.host.publish(self.driver.node());
    }

    fn next_wake(&self) -> Option<Instant> {
        [
            self.driver.next_wake(),
            self.host.measurements.next_expiry(),
            self.join_deadline,
            self.reopen.next_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn heartbeat(&mut self, hb: Heartbeat) -> Result<(), Fatal> {
        let now = self.now();
        self.host.measurements.heartbeat(now, hb.from);
        tracing::trace!(from = hb.from, sequence = hb.slot.sequence, "heartbeat");
        let input = Input::Heartbeat {
            from: HostIndex(hb.from),
            slot: hb.slot,
        };
        self.driver.handle(&mut self.host, input)
    }

    fn timers(&mut self) -> Result<(), Fatal> {
        let now = self.now();
        self.host.changed |= self.host.measurements.expire(now);
        self.reopen.tick(now);
        self.driver.timers(&mut self.host)
    }

    /// Start using the statefiles a retry round opened.
    fn reopened(&mut self, results: Vec<startup::Reopened>) {
        let now = self.now();
        for (i, f) in self.reopen.done(results, now) {
            let path = &self.host.config.statefiles[i];
            tracing::info!(
                statefile = i,
                path = %path.display(),
                "statefile opened after start-up; its I/O is used from now on"
            );
            self.host
                .measurements
                .remove_standing(&startup::left_out_warning(i, path));
            self.host.changed = true;
            if let Some(slot) = self.host.workers.get_mut(i) {
                *slot = Some(StatefileWorkers::new(
                    i,
                    f,
                    self.worker_capacity,
                    self.io_tx.clone(),
                ));
            }
        }
    }

    fn completion(&mut self, f: Finished) -> Result<(), Fatal> {
        let now = self.now();
        let c = f.completion;
        self.host.measurements.io_latency(f.latency);
        tracing::debug!(
            statefile = c.statefile.0,
            request = c.request.0,
            what = c.done.what(),
            latency_ms = f.latency.as_secs_f64() * 1e3,
            ok = c.done.error().is_none(),
            "statefile I/O done"
        );
        if self.driver.is_late(&c) {
            tracing::debug!(statefile = c.statefile.0, "late read completion ignored");
            return Ok(());
        }
        if let xha_driver::Done::Read(Ok(r)) = &c.done {
            self.host.changed |= self.host.measurements.slots(now, &r.slots);
            self.evidence_tx
                .send_replace(self.host.measurements.evidence());
        }
        if let Some(e) = c.done.error() {
            let what = c.done.what();
            if f.not_ours {
                // Warned once by the I/O layer when it found the header foreign.
                tracing::debug!(statefile = c.statefile.0, "statefile {what} failed: {e}");
            } else {
                let e = e.to_owned();
                self.host
                    .warn_limited(&format!("{what} failed/{}", c.statefile), || {
                        format!("statefile {}: {what} failed: {e}", c.statefile)
                    });
            }
        }
        self.driver.completion(&mut self.host, c)
    }

    fn command(&mut self, cmd: ControlCommand) -> Result<(), Fatal> {
        let ControlCommand { request, reply } = cmd;
        if request == Request::QueryLiveset {
            let r = self.host.report(self.driver.node());
            let _ = reply.send(Ok(Some(r)));
            return Ok(());
        }
        let Some(core) = request.to_core() else {
            let _ = reply.send(Err(ErrorBody {
                code: ErrorCode::BadRequest,
                message: format!("{} is not forwarded to the daemon", request.name()),
            }));
            return Ok(());
        };
        if self.node().is_fenced() {
            let _ = reply.send(Err(ErrorBody::from(&ControlError::Fenced)));
            return Ok(());
        }
        tracing::info!(request = request.name(), "control request");
        self.host.replies.push_back(ReplySink::Control(reply));
        self.driver.handle(&mut self.host, Input::Control(core))
    }

    fn signal(&mut self, name: &'static str) -> Result<(), Fatal> {
        if self.node().is_fenced() {
            return Ok(());
        }
        tracing::info!("{name}: stopping as if asked by `stop`");
        self.host.replies.push_back(ReplySink::Signal(name));
        self.driver
            .handle(&mut self.host, Input::Control(ControlRequest::Stop))
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
        if self.node().has_joined() {
            self.join_deadline = None;
            return Ok(());
        }
        if self.now() < deadline {
            return Ok(());
        }
        Err(Fatal::new(
            ExitCode::BootJoinTimeout,
            startup::boot_join_message(self.host.config.boot_join_timeout, &self.node().status()),
        ))
    }
}
