//! A lab pool of real agents: N `xapi-ha` agents on loopback (each its own
//! address 127.A.B.i, all on one TLS port, plain HTTP on 127.0.0.1), each
//! in a directory `host-<i>` of one lab directory, joined into one pool
//! with `pool.join`, sharing one `file` SR (`<lab dir>/sr`); `xhad` and
//! `xha-supervisor` are launched by the agents (the `process` launcher)
//! once HA is enabled. `xe lab` is built on it.
//!
//! ```text
//! let pool = AgentPool::start(PoolSpec::new(3, bin_dir))?;
//! pool.enable_ha(10)?;
//! let vm = pool.create_stamp_vm("vm-0", 0)?;
//! pool.kill_host(2, &[vm.uuid.clone()])?;   // a power cut
//! pool.stop()?;                            // or drop it; or keep() it
//! ```
//!
//! Cleanup (`stop`, `Drop`, or [`stop_dir`] for a kept pool) leaves no
//! process and no file behind: every `xhad` is disarmed, the agents are
//! killed, every daemon is asked to stop, and after a grace period every
//! process whose command line names the lab directory (agents, daemons,
//! supervisors, VM keepers, VMs: their disks are in the SR) is SIGKILLed;
//! then the directory is removed.
//!
//! Parts: this file (start, calls, stop), `vms` (the stamp workload VMs),
//! `guest` (where the QEMU test guest is).

pub mod guest;
mod vms;

pub use guest::{QemuGuest, find_guest};
pub use vms::LabVm;

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::{Value, json};

use crate::agent::{AgentProcess, PASSWORD_FILE, RunOptions};
use crate::agent_config::{PoolHostConfig, xhad_section};
use crate::sr_view::SrViews;
use crate::{LabError, SUPERVISOR, XHAD, power, rpc, setup};

/// The agent binary.
pub const AGENT: &str = "xapi-ha";
/// The VM keeper the agent's process driver runs (beside the agent).
pub const KEEPER: &str = "xha-vm-keeper";
/// The stamp workload the lab's VMs run.
pub const STAMP: &str = "xha-stamp";
/// The user the lab's agents know.
pub const USER: &str = "root";
/// Each host's memory as the agents see it.
pub const HOST_MEMORY: u64 = 16 << 30;

/// The path of the first binary an agent pool needs that is missing from
/// `dir`, if any.
#[must_use]
pub fn missing_pool_bin(dir: &Path) -> Option<PathBuf> {
    [XHAD, SUPERVISOR, AGENT, KEEPER, STAMP]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| !path.is_file())
}

/// What to start.
#[derive(Clone, Debug)]
pub struct PoolSpec {
    pub hosts: usize,
    /// Where the lab directory is made (default: the temporary directory).
    pub base_dir: PathBuf,
    /// Where `xapi-ha`, `xhad`, `xha-supervisor` and `xha-stamp` are.
    pub bin_dir: PathBuf,
    /// Raised by a signal handler: the waits stop with `Cancelled`.
    pub cancel: Option<Arc<AtomicBool>>,
    /// The VM drivers every agent offers (default `process`; add `qemu`
    /// for [`AgentPool::create_qemu_stamp_vm`]).
    pub drivers: Vec<&'static str>,
    /// Per-host views of the SR (root; [`crate::sr_view`]): the SR is
    /// `sr` (an existing empty directory) instead of `<dir>/sr`, and host
    /// `i`'s processes see `views[i]` there.
    pub sr_views: Option<SrViews>,
}

impl PoolSpec {
    #[must_use]
    pub fn new(hosts: usize, bin_dir: &Path) -> PoolSpec {
        PoolSpec {
            hosts,
            base_dir: std::env::temp_dir(),
            bin_dir: bin_dir.to_path_buf(),
            cancel: None,
            drivers: vec!["process"],
            sr_views: None,
        }
    }
}

/// One host of the pool.
pub struct PoolHost {
    /// `host-<i>` (i from 1): its configured name and directory.
    pub name: String,
    pub uuid: String,
    /// Its loopback address (API over TLS and heartbeat).
    pub address: String,
    pub dir: PathBuf,
    /// Its plain HTTP listener (127.0.0.1).
    pub http: SocketAddr,
    agent: Option<AgentProcess>,
}

/// A running pool. See the module documentation.
pub struct AgentPool {
    dir: PathBuf,
    pub hosts: Vec<PoolHost>,
    pub tls_port: u16,
    pub password: String,
    /// The SR's directory (`<dir>/sr`, or [`SrViews::sr`]).
    pub sr_dir: PathBuf,
    views: Option<SrViews>,
    /// A session on the master (host 0), the pool and SR references.
    pub session: String,
    pub pool_ref: String,
    pub sr_ref: String,
    stamp: PathBuf,
    bin_dir: PathBuf,
    cancel: Option<Arc<AtomicBool>>,
    finished: bool,
}

/// A port free on every one of `addresses` (TCP or UDP), chosen by the
/// kernel on the first.
fn common_port(addresses: &[String], udp: bool) -> Result<u16, LabError> {
    let bind = |a: &str, port: u16| -> std::io::Result<u16> {
        if udp {
            Ok(UdpSocket::bind((a, port))?.local_addr()?.port())
        } else {
            Ok(TcpListener::bind((a, port))?.local_addr()?.port())
        }
    };
    let mut last = None;
    for _ in 0..32 {
        match bind(&addresses[0], 0) {
            Ok(port) if addresses[1..].iter().all(|a| bind(a, port).is_ok()) => return Ok(port),
            Ok(_) => {}
            Err(e) => last = Some(e),
        }
    }
    Err(LabError::Io {
        step: "find a free port on every host address",
        path: PathBuf::from(&addresses[0]),
        source: last.unwrap_or_else(|| std::io::Error::other("every port tried was taken")),
    })
}

fn random_password() -> String {
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

impl AgentPool {
    /// Start every agent, join them to host 0, log in on the master and
    /// create the shared SR. On error everything made so far is removed.
    pub fn start(spec: &PoolSpec) -> Result<AgentPool, LabError> {
        if spec.hosts < 2 || spec.hosts > crate::MAX_HOSTS {
            return Err(LabError::Spec(format!(
                "{} hosts: from 2 to {}",
                spec.hosts,
                crate::MAX_HOSTS
            )));
        }
        let dir = setup::make_dir(&spec.base_dir)?;
        let views = spec.sr_views.clone();
        if views.as_ref().is_some_and(|v| v.views.len() != spec.hosts) {
            return Err(LabError::Spec(format!(
                "{} hosts need {0} SR views",
                spec.hosts
            )));
        }
        let sr_dir = views
            .as_ref()
            .map_or_else(|| dir.join("sr"), |v| v.sr.clone());
        let mut pool = AgentPool {
            dir,
            hosts: Vec::new(),
            tls_port: 0,
            password: random_password(),
            sr_dir,
            views,
            session: String::new(),
            pool_ref: String::new(),
            sr_ref: String::new(),
            stamp: spec.bin_dir.join(STAMP),
            bin_dir: spec.bin_dir.clone(),
            cancel: spec.cancel.clone(),
            finished: false,
        };
        // From here on, an error drops `pool`, which removes what was made.
        pool.start_agents(spec)?;
        pool.form()?;
        Ok(pool)
    }

    fn start_agents(&mut self, spec: &PoolSpec) -> Result<(), LabError> {
        let mut rng = rand::thread_rng();
        let net = format!("127.{}.{}", rng.gen_range(1..=254), rng.gen_range(0..=254));
        let addresses: Vec<String> = (1..=spec.hosts).map(|i| format!("{net}.{i}")).collect();
        self.tls_port = common_port(&addresses, false)?;
        let hb_port = common_port(&addresses, true)?;
        // Sorted UUIDs: host 0 sorts first (xhad's host order, and the
        // enable's).
        let mut uuids: Vec<String> = (0..spec.hosts)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        uuids.sort();
        let options = RunOptions {
            own_process_group: true,
            log_to_file: true,
        };
        for (i, (address, uuid)) in addresses.into_iter().zip(uuids).enumerate() {
            self.check_cancel("start the agents")?;
            let name = format!("host-{}", i + 1);
            let dir = self.dir.join(&name);
            std::fs::create_dir(&dir).map_err(|source| LabError::Io {
                step: "make a host directory",
                path: dir.clone(),
                source,
            })?;
            let text = PoolHostConfig {
                dir: &dir,
                uuid: &uuid,
                name: &name,
                address: &address,
                tls_port: self.tls_port,
                http_listen: "127.0.0.1:0",
                drivers: &spec.drivers,
                memory_bytes: HOST_MEMORY,
            }
            .text()
                + &xhad_section(
                    &dir,
                    &spec.bin_dir.join(XHAD),
                    &spec.bin_dir.join(SUPERVISOR),
                    &address,
                    hb_port,
                );
            let agent = self
                .in_host_view(i, || {
                    AgentProcess::start_with(
                        &spec.bin_dir.join(AGENT),
                        &dir,
                        &text,
                        USER,
                        &self.password,
                        &options,
                    )
                })?
                .map_err(|source| LabError::Agent { host: i, source })?;
            let http = agent.listeners.http.ok_or_else(|| {
                LabError::Spec(format!("host {i}: the agent logged no HTTP listener"))
            })?;
            tracing::info!(host = i, %address, %http, "agent started");
            self.hosts.push(PoolHost {
                name,
                uuid,
                address,
                dir,
                http,
                agent: Some(agent),
            });
        }
        Ok(())
    }

    fn login(&self, i: usize) -> Result<String, LabError> {
        let s = rpc::call(
            self.hosts[i].http,
            "session.login_with_password",
            json!([USER, self.password, "1.0", "xe-lab"]),
        )?;
        Ok(s.as_str().unwrap_or_default().to_owned())
    }

    /// Join every host to host 0, log in there, create the SR.
    fn form(&mut self) -> Result<(), LabError> {
        for i in 1..self.hosts.len() {
            self.check_cancel("form the pool")?;
            let s = self.login(i)?;
            rpc::call(
                self.hosts[i].http,
                "pool.join",
                json!([s, self.hosts[0].address, USER, self.password]),
            )?;
        }
        self.session = self.login(0)?;
        self.pool_ref = self.call("pool.get_all", json!([]))?[0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if self.views.is_none() {
            std::fs::create_dir(&self.sr_dir).map_err(|source| LabError::Io {
                step: "make the SR directory",
                path: self.sr_dir.clone(),
                source,
            })?;
        }
        let master = self.host_ref(0)?;
        self.sr_ref = self
            .call(
                "SR.create",
                json!([master, {"path": self.sr_dir.display().to_string()}, 0, "lab-sr", "", "file", "", true, {}]),
            )?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Ok(())
    }

    /// A call on the master's session.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, LabError> {
        let mut all = vec![Value::String(self.session.clone())];
        if let Value::Array(p) = params {
            all.extend(p);
        }
        Ok(rpc::call(self.hosts[0].http, method, Value::Array(all))?)
    }

    /// The reference of host `i` in the master's database.
    pub fn host_ref(&self, i: usize) -> Result<String, LabError> {
        Ok(self
            .call("host.get_by_uuid", json!([self.hosts[i].uuid]))?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// `pool.enable_ha` on the SR with base timeout `t` seconds.
    pub fn enable_ha(&self, t: u64) -> Result<(), LabError> {
        self.call(
            "pool.enable_ha",
            json!([[self.sr_ref], {"timeout": t.to_string()}]),
        )?;
        Ok(())
    }

    /// Whether host `i` is live in the master's database
    /// (`host_metrics.live`).
    pub fn live(&self, i: usize) -> Result<bool, LabError> {
        let r = self.host_ref(i)?;
        let m = self.call("host.get_metrics", json!([r]))?;
        Ok(self.call("host_metrics.get_live", json!([m]))? == json!(true))
    }

    /// Host `i`'s `xhad` control socket (once HA is enabled).
    #[must_use]
    pub fn control_socket(&self, i: usize) -> PathBuf {
        self.hosts[i].dir.join("xhad/control.sock")
    }

    /// Host `i` dies as in a power cut ([`power::kill_host`]): its agent,
    /// daemons, keepers and the process VMs `vms` (UUIDs) it runs.
    pub fn kill_host(&mut self, i: usize, vms: &[String]) -> Result<(Instant, u64), LabError> {
        let fault = power::kill_host(&self.hosts[i].dir, &self.hosts[i].name, vms)?;
        if let Some(mut a) = self.hosts[i].agent.take() {
            a.kill(); // reaps it (already dead)
        }
        Ok(fault)
    }

    /// SIGKILL to host `i`'s agent only (its `xhad`, supervisor, keepers
    /// and VMs run on); nothing if it is not running.
    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut a) = self.hosts[i].agent.take() {
            a.kill();
        }
    }

    /// Host `i`'s agent process id, while this pool runs it.
    #[must_use]
    pub fn agent_pid(&self, i: usize) -> Option<u32> {
        self.hosts[i].agent.as_ref().map(AgentProcess::pid)
    }

    /// Runs host `i`'s agent again on its directory (after
    /// [`AgentPool::kill_host`] or [`AgentPool::kill_agent`]; a host that
    /// boots starts its `xhad` first: the caller's part). Its HTTP
    /// listener may move: [`PoolHost::http`] is updated.
    pub fn restart_agent(&mut self, i: usize) -> Result<(), LabError> {
        self.kill_agent(i);
        let options = RunOptions {
            own_process_group: true,
            log_to_file: true,
        };
        let (binary, dir) = (self.bin_dir.join(AGENT), self.hosts[i].dir.clone());
        let agent = self
            .in_host_view(i, || AgentProcess::run_with(&binary, &dir, &options))?
            .map_err(|source| LabError::Agent { host: i, source })?;
        if let Some(http) = agent.listeners.http {
            self.hosts[i].http = http;
        }
        self.hosts[i].agent = Some(agent);
        Ok(())
    }

    /// Runs `f`, which starts processes of host `i`, where they see host
    /// `i`'s view of the SR ([`crate::sr_view::in_view`]); without views,
    /// simply runs it.
    pub fn in_host_view<R: Send>(
        &self,
        i: usize,
        f: impl FnOnce() -> R + Send,
    ) -> Result<R, LabError> {
        match &self.views {
            Some(v) => crate::sr_view::in_view(&v.sr, &v.views[i], f),
            None => Ok(f()),
        }
    }

    /// The lab directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Host `i`'s password file (for `xe -pwf`).
    #[must_use]
    pub fn password_file(&self, i: usize) -> PathBuf {
        self.hosts[i].dir.join(PASSWORD_FILE)
    }

    /// `Err(Cancelled)` once the cancel flag is raised.
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

    /// Leave the pool running (`xe lab --keep`): the agents outlive this
    /// process; [`stop_dir`] on [`AgentPool::dir`] stops it later.
    pub fn keep(mut self) -> PathBuf {
        self.finished = true;
        for h in &mut self.hosts {
            if let Some(a) = h.agent.take() {
                a.detach();
            }
        }
        self.dir.clone()
    }

    /// Stop everything and remove the directory (see the module
    /// documentation); `Err(Unclean)` if something survived.
    pub fn stop(mut self) -> Result<(), LabError> {
        self.finished = true;
        let agents = self
            .hosts
            .iter_mut()
            .filter_map(|h| h.agent.take())
            .collect();
        teardown(&self.dir, agents)
    }
}

impl Drop for AgentPool {
    fn drop(&mut self) {
        if !self.finished {
            self.finished = true;
            let agents = self
                .hosts
                .iter_mut()
                .filter_map(|h| h.agent.take())
                .collect();
            let _ = teardown(&self.dir, agents);
        }
    }
}

/// How long the daemons get to stop after `stop` before the SIGKILL.
const GRACE: Duration = Duration::from_secs(3);

fn host_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("host-"))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Stop a pool left running by `xe lab --keep` (or what is left of any
/// lab pool in `dir`): see the module documentation. `dir` must be a lab
/// pool's directory (it holds `host-1/xapi-ha.toml`).
pub fn stop_dir(dir: &Path) -> Result<(), LabError> {
    if !dir.join("host-1").join(crate::agent::CONFIG_FILE).is_file() {
        return Err(LabError::Spec(format!(
            "{} is not the directory of an `xe lab --keep` pool (no host-1/{})",
            dir.display(),
            crate::agent::CONFIG_FILE
        )));
    }
    teardown(dir, Vec::new())
}

fn teardown(dir: &Path, mut agents: Vec<AgentProcess>) -> Result<(), LabError> {
    use xha_control::{Request, client};
    let timeout = Duration::from_secs(1);
    let sockets: Vec<PathBuf> = host_dirs(dir)
        .iter()
        .map(|h| h.join("xhad/control.sock"))
        .filter(|s| s.exists())
        .collect();
    // No host may fence itself while its agent goes.
    for s in &sockets {
        let _ = client::request(s, Request::DisarmFencing, timeout);
    }
    // The agents next (they would start their daemons again): ours are
    // children; a kept pool's are found by their configuration's path.
    for a in &mut agents {
        a.kill();
    }
    let config = crate::agent::CONFIG_FILE;
    for h in host_dirs(dir) {
        let marker = h.join(config).to_string_lossy().into_owned();
        for pid in power::processes_naming(&h) {
            let agent = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker));
            if agent {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    for s in &sockets {
        let _ = client::request(s, Request::Stop, timeout);
    }
    let deadline = Instant::now() + GRACE;
    while !power::processes_naming(dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = power::kill_all_naming(dir);
    drop(agents);
    let removed = std::fs::remove_dir_all(dir);
    match (left.is_empty(), removed) {
        (true, Ok(())) => Ok(()),
        (false, _) => Err(LabError::Unclean(format!(
            "processes naming {} survive SIGKILL: {left:?}",
            dir.display()
        ))),
        (true, Err(e)) => Err(LabError::Unclean(format!("remove {}: {e}", dir.display()))),
    }
}
