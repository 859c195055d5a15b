//! The faults on a host of the agent pool and their heals: the power cut
//! (`AgentPool::kill_host`), freezes (SIGSTOP/SIGCONT), the agent's kill
//! and restart, and a boot (`xhad` and its supervisor first, as its unit
//! would, then the agent). A host whose `xhad` fenced is reset here as its
//! watchdog would reset it: a power cut of what is left of it.

use std::path::{Path, PathBuf};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use xapi_ha::config::XhadLauncher;
use xapi_ha::server::xhad_launcher::{self, XhadPaths};
use xha_lab::LabError;
use xha_lab::agent_pool::AgentPool;

/// What the runner knows of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostState {
    Up,
    /// Powered off (a cut, or a reset after a fence) until fault `id` heals
    /// (`None`: a fence outside any fault: boots at once).
    Down {
        id: Option<usize>,
    },
    /// These pids stopped by fault `id` (`whole`: the agent among them).
    Frozen {
        id: usize,
        pids: Vec<i32>,
        whole: bool,
        /// When it froze (wall clock, ms).
        since_ms: u64,
    },
    /// Its agent killed by fault `id`.
    AgentDown {
        id: usize,
    },
}

impl HostState {
    /// Whether its agent answers (as far as the runner knows).
    #[must_use]
    pub fn answers(&self) -> bool {
        matches!(self, HostState::Up | HostState::Frozen { whole: false, .. })
    }
}

pub(crate) fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Host `i`'s `xhad` directory.
#[must_use]
pub fn xhad_dir(pool: &AgentPool, i: usize) -> PathBuf {
    pool.hosts[i].dir.join("xhad")
}

/// Host `i`'s `xhad` pid if it runs.
#[must_use]
pub fn xhad_pid(pool: &AgentPool, i: usize) -> Option<i32> {
    pid_in(&xhad_dir(pool, i).join("xhad.pid")).filter(|p| xha_lab::power::process_alive(*p))
}

fn supervisor_pid(pool: &AgentPool, i: usize) -> Option<i32> {
    pid_in(&xhad_dir(pool, i).join("supervisor.pid"))
}

/// Whether the `xhad` of `xhad_dir` and its supervisor both run. The
/// supervisor exits when it fences (after its SIGKILL to the daemon's
/// group), so a daemon that cannot die at once (blocked in a held storage
/// request) is still seen as fenced.
#[must_use]
pub fn running_in(xhad_dir: &Path) -> bool {
    let alive =
        |file: &str| pid_in(&xhad_dir.join(file)).is_some_and(xha_lab::power::process_alive);
    alive("xhad.pid") && alive("supervisor.pid")
}

/// [`running_in`] for host `i`.
#[must_use]
pub fn xhad_running(pool: &AgentPool, i: usize) -> bool {
    running_in(&xhad_dir(pool, i))
}

/// SIGSTOP to host `i`'s `xhad` group, or to every process of the host
/// but its supervisor (the hardware watchdog keeps counting). The pids
/// stopped.
pub fn freeze(pool: &AgentPool, i: usize, whole_host: bool, vms: &[String]) -> Vec<i32> {
    let Some(xhad) = xhad_pid(pool, i) else {
        return Vec::new();
    };
    if !whole_host {
        let _ = killpg(Pid::from_raw(xhad), Signal::SIGSTOP);
        return vec![-xhad];
    }
    let supervisor = supervisor_pid(pool, i);
    let h = &pool.hosts[i];
    let pids: Vec<i32> = xha_lab::power::host_processes(&h.dir, &h.name, vms)
        .into_iter()
        .filter(|p| Some(*p) != supervisor)
        .collect();
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGSTOP);
    }
    pids
}

/// SIGCONT to what [`freeze`] stopped (a negative pid: a group).
pub fn thaw(pids: &[i32]) {
    for &p in pids {
        let _ = if p < 0 {
            killpg(Pid::from_raw(-p), Signal::SIGCONT)
        } else {
            kill(Pid::from_raw(p), Signal::SIGCONT)
        };
    }
}

/// Host `i` boots: a fence record of "this boot" is moved aside (the
/// reset is a new boot), its `xhad` and supervisor start from the
/// configuration the enable wrote, then its agent. `Some(error)`: the
/// agent's first start failed (it was started again once its `xhad` was
/// online).
pub fn boot(
    pool: &mut AgentPool,
    i: usize,
    xhad: &Path,
    supervisor: &Path,
) -> Result<Option<String>, LabError> {
    let dir = xhad_dir(pool, i);
    let launcher = XhadLauncher::Process {
        supervisor_path: supervisor.to_path_buf(),
    };
    let paths = XhadPaths::new(&launcher, &dir);
    if let Some(state) = &paths.state_dir {
        let record = state.join("fenced");
        if record.exists() {
            let _ = std::fs::rename(&record, state.join("fenced.earlier"));
        }
    }
    if xhad_pid(pool, i).is_none() {
        // Where its processes see its own view of the SR, if views are on.
        pool.in_host_view(i, || {
            xhad_launcher::start(&launcher, xhad, &paths).map(drop)
        })?
        .map_err(|e| {
            LabError::Spec(format!(
                "{}: start xhad again: {}: {}",
                pool.hosts[i].name, e.what, e.reason
            ))
        })?;
    }
    let Err(first) = pool.restart_agent(i) else {
        return Ok(None);
    };
    // An agent that starts before its xhad has rejoined, or while the
    // pool is still electing its next master, may not yet know the newer
    // master (exit 75, docs/api.md): started again every 2 s once its
    // xhad is online in the liveset, as its unit restarts it, for up to
    // 60 s; the first failure is reported.
    let me: uuid::Uuid = pool.hosts[i].uuid.parse().unwrap_or_default();
    let socket = paths.control_socket.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let online = || xha_lab::online_in_liveset(&socket, me);
    while std::time::Instant::now() < deadline && !online() {
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    loop {
        match pool.restart_agent(i) {
            Ok(()) => return Ok(Some(first.to_string())),
            Err(e) if std::time::Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(2)),
        }
    }
}
