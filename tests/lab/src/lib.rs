//! The local lab pool: N real `xhad` daemons on one machine, each with its
//! own `xha-supervisor`, sharing one statefile file and talking over UDP on
//! 127.0.0.1. `xe lab` is built on it, and so are the end-to-end tests.
//! The reference is `docs/lab.md`.
//!
//! ```text
//! let lab = Lab::start(LabSpec::new(3, 10, bin_dir))?;
//! lab.wait_all_online(Duration::from_secs(80))?;
//! let master = lab.wait_master(&lab.all(), Duration::from_secs(30))?;
//! lab.kill_host(victim, Signal::SIGKILL)?;
//! ...
//! lab.stop()?;            // or drop it: the same cleanup, errors ignored
//! ```
//!
//! Lab host `i` is the host with core index `i`: host UUIDs are fixed (UUID
//! v5 of `xe-lab host N`) and numbered in sorted order, as the daemons
//! number them. Every host's `xhad` leads its own process group (its "host":
//! SIGKILL or SIGSTOP to the group is a host crash or freeze); its
//! supervisor runs in a group of its own and kills the host's group when the
//! daemon stops kicking.
//!
//! Cleanup (`stop` or `Drop`) leaves no process and no file behind: it
//! disarms fencing and stops every running daemon, waits up to
//! [`STOP_GRACE`], then sends SIGKILL to every remaining process group,
//! reaps every child and removes the directory.

mod bins;

mod error;
mod process;
pub mod setup;
mod workload;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use uuid::Uuid;

pub use error::LabError;
pub use process::describe as describe_status;

pub use bins::{BIN_DIR_ENV, bin_dir, missing_bin};
use process::{Launch, Proc, log_tail};
use xha_control::client::{self, ClientError};
use xha_control::{LivesetReport, Request, Response, Status};

/// Most hosts in a lab (the statefile's limit).
pub const MAX_HOSTS: usize = sr_heartbeat::statefile::MAX_HOSTS_LIMIT;
/// How long `stop` waits for daemons and supervisors to exit cleanly before
/// it kills what is left.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a host's log quoted in an error.
pub const LOG_TAIL_LINES: usize = 15;
/// How often the waits poll.
const POLL: Duration = Duration::from_millis(100);

/// The name of the daemon binary.
pub const XHAD: &str = "xhad";
/// The name of the supervisor binary.
pub const SUPERVISOR: &str = "xha-supervisor";

/// Per-host knobs for tests; the default is the plain lab host.
#[derive(Clone, Debug, Default)]
pub struct HostOptions {
    /// Use this statefile path instead of the lab's own (e.g. a FUSE mount
    /// of the same backing file). The lab does not format it.
    pub statefile: Option<PathBuf>,
    /// Heartbeat address instead of a free port on 127.0.0.1 (e.g. an
    /// address inside a network namespace). Every host must use the same
    /// address family.
    pub address: Option<SocketAddr>,
    /// Command prefix for the daemon, e.g. `["ip", "netns", "exec", "ns1"]`;
    /// the prefix must exec the daemon in place (the pid is the host's
    /// process group).
    pub wrapper: Vec<OsString>,
    /// Extra environment for the daemon (e.g. `RUST_LOG`).
    pub env: Vec<(OsString, OsString)>,
}

/// What lab to build.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// 1 ..= 64 hosts.
    pub hosts: usize,
    /// The base timeout T in whole seconds (10 ..= 3600, as `xhad` accepts).
    pub timeout_s: u64,
    /// Where the lab directory is made (`xe-lab-XXXXXX` inside it).
    pub base_dir: PathBuf,
    pub xhad: PathBuf,
    pub supervisor: PathBuf,
    /// Knobs for host `i` at index `i`; may be shorter than `hosts`.
    pub host_options: Vec<HostOptions>,
    /// Keep the directory after the lab stops (for debugging).
    pub keep_dir: bool,
    /// Children die with SIGKILL when the thread that started the lab ends
    /// (so even a killed `xe lab` leaves nothing behind). Start and use the
    /// lab on one thread when this is on.
    pub die_with_parent: bool,
    /// Raised from outside (Ctrl-C): every wait returns
    /// [`LabError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// `--connect-timeout-ms` of the supervisors.
    pub supervisor_connect_timeout: Duration,
    /// The pool generation (default: a new random one). Tests that format
    /// their own statefile for [`HostOptions::statefile`] set it.
    pub generation: Option<Uuid>,
}

impl LabSpec {
    /// `hosts` hosts with base timeout `timeout_s`, binaries `xhad` and
    /// `xha-supervisor` from `bin_dir`, directory in the system temp dir.
    #[must_use]
    pub fn new(hosts: usize, timeout_s: u64, bin_dir: &Path) -> LabSpec {
        LabSpec {
            hosts,
            timeout_s,
            base_dir: std::env::temp_dir(),
            xhad: bin_dir.join(XHAD),
            supervisor: bin_dir.join(SUPERVISOR),
            host_options: Vec::new(),
            keep_dir: false,
            die_with_parent: true,
            cancel: None,
            supervisor_connect_timeout: Duration::from_secs(60),
            generation: None,
        }
    }

    /// The knobs of host `i` (created on first use).
    pub fn host(&mut self, i: usize) -> &mut HostOptions {
        if self.host_options.len() <= i {
            self.host_options.resize(i + 1, HostOptions::default());
        }
        &mut self.host_options[i]
    }

    fn check(&self) -> Result<(), LabError> {
        if self.hosts == 0 || self.hosts > MAX_HOSTS {
            return Err(LabError::Spec(format!(
                "{} hosts: a lab has 1 to {MAX_HOSTS}",
                self.hosts
            )));
        }
        // `Timeouts::derive` is the one place the range of T is checked.
        if xha_core::Timeouts::derive(std::time::Duration::from_secs(self.timeout_s)).is_err() {
            return Err(LabError::Spec(format!(
                "timeout {} s: xhad accepts {} to {} s",
                self.timeout_s,
                xha_core::timeouts::MIN_BASE.as_secs(),
                xha_core::timeouts::MAX_BASE.as_secs(),
            )));
        }
        if self.host_options.len() > self.hosts {
            return Err(LabError::Spec(format!(
                "options for {} hosts in a lab of {}",
                self.host_options.len(),
                self.hosts
            )));
        }
        for (what, path) in [(XHAD, &self.xhad), (SUPERVISOR, &self.supervisor)] {
            if !path.is_file() {
                return Err(LabError::Spec(format!(
                    "{what} not found at {}; build it with `cargo build --release` (or `cargo build`)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

/// Where one host's files are.
#[derive(Clone, Debug)]
pub struct HostInfo {
    pub uuid: Uuid,
    pub address: SocketAddr,
    /// `host-N/` in the lab directory (N = index + 1).
    pub dir: PathBuf,
    pub config: PathBuf,
    pub control_socket: PathBuf,
    pub supervisor_socket: PathBuf,
    pub statefile: PathBuf,
    pub daemon_log: PathBuf,
    pub supervisor_log: PathBuf,
}

struct Host {
    info: HostInfo,
    options: HostOptions,
    /// Keeps the heartbeat port taken until the daemon is started.
    port_holder: Option<std::net::UdpSocket>,
    daemon: Option<Proc>,
    supervisor: Option<Proc>,
}

/// A running lab. See the module documentation.
pub struct Lab {
    dir: PathBuf,
    keep_dir: bool,
    generation: Uuid,
    timeout_s: u64,
    statefile: PathBuf,
    hosts: Vec<Host>,
    xhad: PathBuf,
    supervisor: PathBuf,
    die_with_parent: bool,
    supervisor_connect_timeout: Duration,
    cancel: Option<Arc<AtomicBool>>,
    stop_watchers: Arc<AtomicBool>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    started: Instant,
    finished: bool,
}

impl Lab {
    /// Build the lab's files and start every host's daemon and supervisor.
    /// Returns once all processes are started (not once they are online:
    /// see [`Lab::wait_all_online`]). On error everything made so far is
    /// removed again.
    pub fn start(spec: LabSpec) -> Result<Lab, LabError> {
        let started = Instant::now();
        spec.check()?;
        let dir = setup::make_dir(&spec.base_dir)?;
        let mut lab = Lab {
            statefile: dir.join("statefile"),
            dir,
            keep_dir: spec.keep_dir,
            generation: spec.generation.unwrap_or_else(Uuid::new_v4),
            timeout_s: spec.timeout_s,
            hosts: Vec::new(),
            xhad: spec.xhad.clone(),
            supervisor: spec.supervisor.clone(),
            die_with_parent: spec.die_with_parent,
            supervisor_connect_timeout: spec.supervisor_connect_timeout,
            cancel: spec.cancel.clone(),
            stop_watchers: Arc::new(AtomicBool::new(false)),
            watchers: Mutex::new(Vec::new()),
            started,
            finished: false,
        };
        // From here on, an error drops `lab`, which removes what was made.
        lab.write_files(&spec)?;
        for i in 0..lab.hosts.len() {
            lab.check_cancel("start")?;
            lab.spawn_host(i)?;
        }
        tracing::info!(dir = %lab.dir.display(), hosts = lab.hosts.len(), "lab started");
        Ok(lab)
    }

    fn write_files(&mut self, spec: &LabSpec) -> Result<(), LabError> {
        let n = spec.hosts;
        setup::write_secret(&self.dir.join("pool-secret"))?;
        setup::format_statefile(&self.statefile, self.generation, n)?;
        let uuids = setup::host_uuids(n);
        let mut holders: Vec<Option<std::net::UdpSocket>> = Vec::with_capacity(n);
        let mut addresses = Vec::with_capacity(n);
        for i in 0..n {
            match spec.host_options.get(i).and_then(|o| o.address) {
                Some(a) => {
                    addresses.push(a);
                    holders.push(None);
                }
                None => {
                    let (a, socket) = setup::free_loopback_ports(1)?.remove(0);
                    addresses.push(a);
                    holders.push(Some(socket));
                }
            }
        }
        let pool: Vec<(Uuid, SocketAddr)> = uuids.iter().copied().zip(addresses).collect();
        for (i, &(uuid, address)) in pool.iter().enumerate() {
            let options = spec.host_options.get(i).cloned().unwrap_or_default();
            let dir = self.dir.join(format!("host-{}", i + 1));
            let mkdir = |p: &Path| {
                std::fs::create_dir(p).map_err(|source| LabError::Io {
                    step: "make a host directory",
                    path: p.to_path_buf(),
                    source,
                })
            };
            mkdir(&dir)?;
            mkdir(&dir.join("state"))?;
            let statefile = options
                .statefile
                .clone()
                .unwrap_or_else(|| self.statefile.clone());
            let info = HostInfo {
                uuid,
                address,
                config: dir.join("xhad.toml"),
                control_socket: dir.join("control.sock"),
                supervisor_socket: dir.join("supervisor.sock"),
                daemon_log: dir.join("xhad.log"),
                supervisor_log: dir.join("supervisor.log"),
                statefile: statefile.clone(),
                dir,
            };
            setup::check_socket_path("control-socket", &info.control_socket)?;
            setup::check_socket_path("watchdog.socket", &info.supervisor_socket)?;
            let own_statefile = PathBuf::from("../statefile");
            let text = setup::config_text(&setup::HostConfig {
                generation: self.generation,
                local: uuid,
                timeout_s: self.timeout_s,
                secret_file: Path::new("../pool-secret"),
                statefile: options.statefile.as_deref().unwrap_or(&own_statefile),
                control_socket: Path::new("control.sock"),
                supervisor_socket: Path::new("supervisor.sock"),
                state_dir: Path::new("state"),
                hosts: &pool,
            })?;
            setup::write_private(&info.config, text.as_bytes(), "write a host configuration")?;
            self.hosts.push(Host {
                info,
                options,
                port_holder: holders[i].take(),
                daemon: None,
                supervisor: None,
            });
        }
        Ok(())
    }

    /// Start host `i`'s daemon (leader of a new process group), then its
    /// supervisor watching that group (the daemon retries connecting to the
    /// supervisor socket for a while, so this order works).
    fn spawn_host(&mut self, i: usize) -> Result<(), LabError> {
        let host = &mut self.hosts[i];
        // The daemon inherits the bound heartbeat socket, so no other program
        // can take the port between the lab's choice and the daemon's start.
        // A restarted host binds its address again first.
        let holder = match host.port_holder.take() {
            Some(h) => Some(h),
            None if host.options.address.is_none() => Some(
                std::net::UdpSocket::bind(host.info.address).map_err(|source| LabError::Io {
                    step: "bind the heartbeat address again",
                    path: PathBuf::from(host.info.address.to_string()),
                    source,
                })?,
            ),
            None => None,
        };
        let mut args: Vec<std::ffi::OsString> =
            vec!["--config".into(), host.info.config.clone().into_os_string()];
        if holder.is_some() {
            args.push("--heartbeat-fd".into());
            args.push(process::PASSED_FD.to_string().into());
        }
        let daemon = Proc::spawn(&Launch {
            wrapper: &host.options.wrapper,
            program: &self.xhad,
            args,
            env: &host.options.env,
            log: &host.info.daemon_log,
            die_with_parent: self.die_with_parent,
            pass_fd: holder.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
        });
        // The child has its own copy now (or failed to start).
        drop(holder);
        let daemon = daemon.map_err(|source| LabError::Spawn {
            host: i,
            program: XHAD,
            path: self.xhad.clone(),
            source,
        })?;
        let pgid = daemon.pid();
        host.daemon = Some(daemon);
        let supervisor = Proc::spawn(&Launch {
            wrapper: &[],
            program: &self.supervisor,
            args: vec![
                "run".into(),
                "--socket".into(),
                host.info.supervisor_socket.clone().into_os_string(),
                "--pgid".into(),
                pgid.to_string().into(),
                "--connect-timeout-ms".into(),
                self.supervisor_connect_timeout
                    .as_millis()
                    .to_string()
                    .into(),
            ],
            env: &[],
            log: &host.info.supervisor_log,
            die_with_parent: self.die_with_parent,
            pass_fd: None,
        })
        .map_err(|source| LabError::Spawn {
            host: i,
            program: SUPERVISOR,
            path: self.supervisor.clone(),
            source,
        })?;
        host.supervisor = Some(supervisor);
        tracing::info!(host = i, pgid, "host started");
        Ok(())
    }

    /// Start host `i` again after its daemon and supervisor have exited
    /// (e.g. after it was fenced). Its logs are appended to.
    pub fn restart_host(&mut self, i: usize) -> Result<(), LabError> {
        let uuid = self.host(i)?.info.uuid;
        let host = &self.hosts[i];
        let running = |p: &Option<Proc>| p.as_ref().is_some_and(|p| p.status().is_none());
        if running(&host.daemon) || running(&host.supervisor) {
            return Err(LabError::Spec(format!(
                "restart host {i} ({uuid}): its daemon or supervisor is still running"
            )));
        }
        self.spawn_host(i)
    }

    fn host(&self, i: usize) -> Result<&Host, LabError> {
        self.hosts.get(i).ok_or(LabError::NoSuchHost {
            host: i,
            hosts: self.hosts.len(),
        })
    }

    // ----- identity and files -----

    /// Number of hosts.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether the lab has no hosts (never, once started).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every host number, `0..len()`.
    #[must_use]
    pub fn all(&self) -> Vec<usize> {
        (0..self.hosts.len()).collect()
    }

    /// Host `i`'s files and identity.
    ///
    /// # Panics
    /// If `i` is not a host of the lab.
    #[must_use]
    pub fn info(&self, i: usize) -> &HostInfo {
        &self.hosts[i].info
    }

    /// Host `i`'s UUID.
    ///
    /// # Panics
    /// If `i` is not a host of the lab.
    #[must_use]
    pub fn uuid(&self, i: usize) -> Uuid {
        self.hosts[i].info.uuid
    }

    /// The host number of a UUID.
    #[must_use]
    pub fn host_of(&self, uuid: Uuid) -> Option<usize> {
        self.hosts.iter().position(|h| h.info.uuid == uuid)
    }

    /// The lab directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The lab's own statefile (formatted by the lab).
    #[must_use]
    pub fn statefile(&self) -> &Path {
        &self.statefile
    }

    #[must_use]
    pub fn pool_generation(&self) -> Uuid {
        self.generation
    }

    #[must_use]
    pub fn timeout_s(&self) -> u64 {
        self.timeout_s
    }

    /// Whether the directory is kept after the lab stops.
    #[must_use]
    pub fn keeps_dir(&self) -> bool {
        self.keep_dir
    }

    /// When `start` was called.
    #[must_use]
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// Host `i`'s process group (its daemon's pid), while it runs.
    #[must_use]
    pub fn pgid(&self, i: usize) -> Option<i32> {
        let d = self.hosts.get(i)?.daemon.as_ref()?;
        d.status().is_none().then(|| d.pid())
    }

    /// Host `i`'s daemon log (empty if unreadable).
    #[must_use]
    pub fn log(&self, i: usize) -> String {
        self.hosts
            .get(i)
            .map(|h| {
                String::from_utf8_lossy(&std::fs::read(&h.info.daemon_log).unwrap_or_default())
                    .into_owned()
            })
            .unwrap_or_default()
    }

    /// Host `i`'s supervisor log (empty if unreadable).
    #[must_use]
    pub fn supervisor_log(&self, i: usize) -> String {
        self.hosts
            .get(i)
            .map(|h| {
                String::from_utf8_lossy(&std::fs::read(&h.info.supervisor_log).unwrap_or_default())
                    .into_owned()
            })
            .unwrap_or_default()
    }

    // ----- control -----

    fn control_error(&self, i: usize, request: &'static str, e: ClientError) -> LabError {
        let uuid = self.hosts[i].info.uuid;
        match e {
            ClientError::Transport(reason) => LabError::Control {
                host: i,
                uuid,
                request,
                reason,
            },
            ClientError::Refused { code, message } => LabError::Refused {
                host: i,
                uuid,
                request,
                code,
                message,
            },
        }
    }

    fn request_with(
        &self,
        i: usize,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, LabError> {
        let host = self.host(i)?;
        client::request(&host.info.control_socket, req, timeout)
            .map_err(|e| self.control_error(i, req.name(), e))
    }

    /// Send one control request to host `i` (not `watch`: see
    /// [`Lab::watch`]). A refusal is [`LabError::Refused`].
    pub fn request(&self, i: usize, req: Request) -> Result<Response, LabError> {
        self.request_with(i, req, client::REQUEST_TIMEOUT)
    }

    /// Host `i`'s liveset report.
    pub fn query(&self, i: usize) -> Result<LivesetReport, LabError> {
        self.request(i, Request::QueryLiveset)?
            .result
            .ok_or_else(|| LabError::Control {
                host: i,
                uuid: self.hosts[i].info.uuid,
                request: "query-liveset",
                reason: "the answer has no report".into(),
            })
    }

    /// Watch host `i`: every report it publishes, stamped on arrival, from
    /// a background thread, until the daemon closes the stream or the lab
    /// stops. The first report is the current one.
    pub fn watch(&self, i: usize) -> Result<Receiver<(Instant, LivesetReport)>, LabError> {
        let host = self.host(i)?;
        let (watcher, rx) =
            client::watch(&host.info.control_socket, Arc::clone(&self.stop_watchers))
                .map_err(|e| self.control_error(i, "watch", e))?;
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher.thread);
        Ok(rx)
    }

    // ----- processes -----

    /// Send `signal` to host `i`'s whole process group: SIGKILL is a host
    /// crash, SIGSTOP a freeze, SIGCONT a thaw.
    pub fn kill_host(&self, i: usize, signal: Signal) -> Result<(), LabError> {
        let host = self.host(i)?;
        let gone = LabError::HostGone {
            host: i,
            uuid: host.info.uuid,
        };
        let Some(daemon) = host.daemon.as_ref() else {
            return Err(gone);
        };
        match daemon.signal_group(signal) {
            Ok(true) => {
                tracing::info!(host = i, signal = signal.as_str(), "signalled host");
                Ok(())
            }
            Ok(false) => Err(gone),
            Err(errno) => Err(LabError::Signal {
                host: i,
                signal: signal.as_str(),
                errno,
            }),
        }
    }

    /// Host `i`'s daemon exit status, waiting up to `timeout` (zero: just
    /// look). `None`: still running.
    #[must_use]
    pub fn daemon_exit(&self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.hosts.get(i)?.daemon.as_ref()?.wait_timeout(timeout)
    }

    /// Host `i`'s supervisor exit status, waiting up to `timeout` (zero:
    /// just look). Status 3 means it fenced the host, 0 a clean stop.
    #[must_use]
    pub fn supervisor_exit(&self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.hosts
            .get(i)?
            .supervisor
            .as_ref()?
            .wait_timeout(timeout)
    }

    /// An error if the daemon or supervisor of any of `hosts` has exited.
    pub fn ensure_running(&self, step: &str, hosts: &[usize]) -> Result<(), LabError> {
        for &i in hosts {
            let host = self.host(i)?;
            let uuid = host.info.uuid;
            if let Some(status) = host.daemon.as_ref().and_then(Proc::status) {
                return Err(LabError::DaemonExited {
                    step: step.to_owned(),
                    host: i,
                    uuid,
                    status: process::describe(status),
                    log_tail: log_tail(&host.info.daemon_log, LOG_TAIL_LINES),
                });
            }
            if let Some(status) = host.supervisor.as_ref().and_then(Proc::status) {
                return Err(LabError::SupervisorExited {
                    step: step.to_owned(),
                    host: i,
                    uuid,
                    status: process::describe(status),
                    log_tail: log_tail(&host.info.supervisor_log, LOG_TAIL_LINES),
                });
            }
        }
        Ok(())
    }

    /// `Err(Cancelled)` once the cancel flag is up.
    pub fn check_cancel(&self, step: &str) -> Result<(), LabError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(LabError::Cancelled {
                step: step.to_owned(),
            });
        }
        Ok(())
    }

    // ----- waits -----

    /// Poll `probe` until it returns `Some`, the deadline passes (then the
    /// error carries `detail()`), a host of `hosts` exits or the cancel
    /// flag rises.
    pub fn poll_until<T>(
        &self,
        step: &str,
        hosts: &[usize],
        timeout: Duration,
        mut probe: impl FnMut(&Lab) -> Option<T>,
        mut detail: impl FnMut(&Lab) -> String,
    ) -> Result<T, LabError> {
        let start = Instant::now();
        loop {
            self.check_cancel(step)?;
            self.ensure_running(step, hosts)?;
            if let Some(t) = probe(self) {
                return Ok(t);
            }
            if start.elapsed() >= timeout {
                return Err(LabError::Timeout {
                    step: step.to_owned(),
                    waited: timeout,
                    detail: detail(self),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until every one of `hosts` reports `online` with exactly
    /// `hosts` in its liveset. Returns their reports, in the order given.
    pub fn wait_online(
        &self,
        hosts: &[usize],
        timeout: Duration,
    ) -> Result<Vec<LivesetReport>, LabError> {
        let want: Vec<Uuid> = {
            let mut v: Vec<Uuid> = hosts.iter().map(|&i| self.hosts[i].info.uuid).collect();
            v.sort();
            v
        };
        let last: Mutex<Vec<String>> = Mutex::new(vec![String::new(); hosts.len()]);
        let probe = |lab: &Lab| {
            let mut reports = Vec::with_capacity(hosts.len());
            let mut done = true;
            let mut notes = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, &i) in hosts.iter().enumerate() {
                match lab.query(i) {
                    Ok(r) => {
                        let mut live = r.liveset.clone();
                        live.sort();
                        notes[k] = format!(
                            "host {i}: {:?}, liveset of {} host(s)",
                            r.status,
                            r.liveset.len()
                        );
                        done &= r.status == Status::Online && live == want;
                        reports.push(r);
                    }
                    Err(e) => {
                        notes[k] = format!("host {i}: {e}");
                        done = false;
                    }
                }
            }
            done.then_some(reports)
        };
        let detail = |_: &Lab| {
            last.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .join("; ")
        };
        self.poll_until(
            "wait for the hosts to be online",
            hosts,
            timeout,
            probe,
            detail,
        )
    }

    /// [`Lab::wait_online`] for every host.
    pub fn wait_all_online(&self, timeout: Duration) -> Result<Vec<LivesetReport>, LabError> {
        self.wait_online(&self.all(), timeout)
    }

    /// The master that every one of `hosts` reports, if they agree on one
    /// that is in each of their livesets.
    #[must_use]
    pub fn master_among(&self, hosts: &[usize]) -> Option<usize> {
        let mut agreed: Option<Uuid> = None;
        for &i in hosts {
            let r = self.query(i).ok()?;
            let m = r.master?;
            if !r.liveset.contains(&m) || agreed.is_some_and(|a| a != m) {
                return None;
            }
            agreed = Some(m);
        }
        self.host_of(agreed?)
    }

    /// [`Lab::master_among`] every host whose daemon runs.
    #[must_use]
    pub fn master(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| self.pgid(i).is_some())
            .collect();
        self.master_among(&running)
    }

    /// Wait until `hosts` agree on a master.
    pub fn wait_master(&self, hosts: &[usize], timeout: Duration) -> Result<usize, LabError> {
        self.poll_until(
            "wait for a master",
            hosts,
            timeout,
            |lab| lab.master_among(hosts),
            |lab| {
                hosts
                    .iter()
                    .map(|&i| match lab.query(i) {
                        Ok(r) => format!("host {i} knows master {:?}", r.master),
                        Err(e) => format!("host {i}: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        )
    }

    // ----- stopping -----

    /// Stop the lab: see the module documentation. `Err(Unclean)` names
    /// what did not stop cleanly (it was killed; nothing is left either way).
    pub fn stop(mut self) -> Result<(), LabError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LabError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.stop_watchers.store(true, Ordering::Relaxed);
        let mut unclean = Vec::new();
        // Hosts to stop gracefully: daemon running and not frozen.
        let live: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| {
                let running = self.pgid(i).is_some();
                if running && is_stopped(self.hosts[i].daemon.as_ref().map_or(0, Proc::pid)) {
                    unclean.push(format!("host {i}: frozen (SIGSTOP), killed"));
                    return false;
                }
                running
            })
            .collect();
        let timeout = Duration::from_secs(1);
        for req in [Request::DisarmFencing, Request::Stop] {
            for &i in &live {
                match self.request_with(i, req, timeout) {
                    Ok(_) => {}
                    // A daemon may exit before its answer to `stop` is
                    // written; its exit status below says whether it
                    // stopped cleanly.
                    Err(LabError::Control { .. }) if req == Request::Stop => {}
                    Err(e) => unclean.push(e.to_string()),
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for &i in &live {
            let host = &self.hosts[i];
            for (what, proc) in [(XHAD, &host.daemon), (SUPERVISOR, &host.supervisor)] {
                let Some(p) = proc else { continue };
                let left = deadline.saturating_duration_since(Instant::now());
                match p.wait_timeout(left) {
                    Some(s) if s.success() => {}
                    Some(s) => unclean.push(format!(
                        "host {i}: {what} {} after stop",
                        process::describe(s)
                    )),
                    None => unclean.push(format!(
                        "host {i}: {what} still running {STOP_GRACE:?} after stop, killed"
                    )),
                }
            }
        }
        for host in &mut self.hosts {
            for p in [host.daemon.as_mut(), host.supervisor.as_mut()]
                .into_iter()
                .flatten()
            {
                p.kill_and_reap();
            }
        }
        let watchers = std::mem::take(
            &mut *self
                .watchers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for w in watchers {
            let _ = w.join();
        }
        if !self.keep_dir
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            unclean.push(format!("remove {}: {e}", self.dir.display()));
        }
        if unclean.is_empty() {
            tracing::info!("lab stopped cleanly");
            Ok(())
        } else {
            Err(LabError::Unclean(unclean.join("; ")))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("lab: {e}");
        }
    }
}

/// Whether process `pid` is stopped (state `T` in `/proc/PID/stat`).
fn is_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may contain spaces.
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_some_and(|s| s == "T" || s == "t")
}
