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

//!
//! Parts: `spec` (what to start), this file (the running lab, its start and
//! its hosts' files), `control` (requests to a host's daemon), `waits`
//! (signals to hosts, their exits, polling for a condition), `shutdown`
//! (stop and `Drop`); `workspace_build` (the tests' one build of the
//! workspace's programs); `setup`, `process`, `bins`, `workload` and `error`
//! serve them. `agent` starts one pool agent (`xapi-ha`) for the tests and
//! `agent_config` writes its configuration; `agent_pool` is a pool of real
//! agents (what `xe lab` runs), `rpc` its JSON-RPC client and `power` the
//! power cut of one of its hosts.
pub mod agent;
pub mod agent_config;
pub mod agent_pool;
mod bins;
mod control;
mod error;
pub mod power;
mod process;
pub mod rpc;
pub mod setup;
mod shutdown;
mod spec;
pub mod sr_view;
mod waits;
mod workload;
pub mod workspace_build;

pub use control::online_in_liveset;
pub use spec::{HostOptions, LabSpec};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use uuid::Uuid;

pub use error::LabError;
pub use process::describe as describe_status;

pub use bins::{BIN_DIR_ENV, bin_dir, missing_bin};
use process::{Launch, Proc};

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
}
