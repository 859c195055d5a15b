//! hamulti: an HA pool of N real agents for the tests: each agent with
//! real `xhad` and `xha-supervisor` (process launcher, its files in
//! `<agent dir>/xhad`, its heartbeat on its own loopback address), joined
//! to host 1, one shared `file` SR in a temporary directory, and
//! `pool.enable_ha` done. [`HaPool`] hands back every handle a test needs
//! (hosts, the SR, the master's session and pool reference) and stops every
//! daemon when dropped, a failing test included.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xha_lab::agent::StopDaemons;

use super::{Host, Hosts, host_ref, join, session, start_hosts_with};
use crate::api_support::{call2, xha_bins};

/// The directory of `h`'s `xhad` files.
pub fn xhad_dir(h: &Host) -> PathBuf {
    h.agent.dir.path().join("xhad")
}

/// `n` agents configured for HA (`bad_xhad`: the hosts, by index from 1,
/// whose `xhad.path` names no program), joined to host 1.
pub fn ha_hosts(n: usize, bad_xhad: &[usize]) -> Hosts {
    let (xhad, supervisor) = xha_bins();
    let hb_port: u16 = rand::Rng::gen_range(&mut rand::thread_rng(), 20_000..60_000);
    let hosts = start_hosts_with(n, |dir: &Path, i, address| {
        let path = if bad_xhad.contains(&i) {
            dir.join("no-such-xhad")
        } else {
            xhad.clone()
        };
        xha_lab::agent_config::xhad_section(dir, &path, &supervisor, address, hb_port)
    });
    for h in &hosts.hosts[1..] {
        join(h, &hosts.hosts[0]);
    }
    hosts
}

/// An HA pool: every handle a test needs.
pub struct HaPool {
    /// Declared first: the daemons are stopped before the agents go.
    pub daemons: Vec<StopDaemons>,
    pub hosts: Hosts,
    /// A session on the master (host 1).
    pub s: String,
    pub pool: String,
    pub sr: String,
    pub sr_dir: PathBuf,
    _sr: tempfile::TempDir,
}

impl HaPool {
    /// `n` HA-ready agents in one pool with a shared `file` SR; HA not yet
    /// enabled.
    pub fn new(n: usize, bad_xhad: &[usize]) -> HaPool {
        let hosts = ha_hosts(n, bad_xhad);
        let master = &hosts.hosts[0];
        let s = session(master);
        let pool = call2(master.agent.http, "pool.get_all", json!([s]))[0]
            .as_str()
            .expect("pool")
            .to_owned();
        let sr_tmp = tempfile::tempdir().expect("SR dir");
        let sr_dir = sr_tmp.path().to_path_buf();
        let master_ref = host_ref(master, master);
        let sr = call2(
            master.agent.http,
            "SR.create",
            json!([s, master_ref, {"path": sr_dir.display().to_string()}, 0, "ha-sr", "", "file", "", true, {}]),
        )
        .as_str()
        .expect("SR ref")
        .to_owned();
        HaPool {
            daemons: Vec::new(),
            hosts,
            s,
            pool,
            sr,
            sr_dir,
            _sr: sr_tmp,
        }
    }

    /// The master (host 1).
    pub fn master(&self) -> &Host {
        &self.hosts.hosts[0]
    }

    /// `pool.enable_ha` with timeout `t` on the master; how long it took.
    pub fn enable(&mut self, t: u64) -> Duration {
        let started = Instant::now();
        call2(
            self.master().agent.http,
            "pool.enable_ha",
            json!([self.s, [self.sr], {"timeout": t.to_string()}]),
        );
        let took = started.elapsed();
        self.daemons = self
            .hosts
            .hosts
            .iter()
            .map(|h| StopDaemons::new(xhad_dir(h)))
            .collect();
        took
    }

    /// `n` agents in one pool with HA enabled at timeout `t`; the enable's
    /// duration.
    pub fn enabled(n: usize, t: u64) -> (HaPool, Duration) {
        let mut p = HaPool::new(n, &[]);
        let took = p.enable(t);
        (p, took)
    }

    /// A call on the master's session.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let mut all = vec![Value::String(self.s.clone())];
        if let Value::Array(p) = params {
            all.extend(p);
        }
        call2(self.master().agent.http, method, Value::Array(all))
    }

    /// `host_metrics.live` of `h` in the master's database.
    pub fn live(&self, h: &Host) -> bool {
        let r = host_ref(self.master(), h);
        let m = self.call("host.get_metrics", json!([r]));
        self.call("host_metrics.get_live", json!([m])) == json!(true)
    }

    /// `h`'s xhad pid, if its pidfile names a live process.
    pub fn xhad_pid(h: &Host) -> Option<i32> {
        pid_in(&xhad_dir(h).join("xhad.pid")).filter(|p| super::process_alive(*p))
    }

    /// `h`'s xha-supervisor pid, if its pidfile names a live process.
    pub fn supervisor_pid(h: &Host) -> Option<i32> {
        pid_in(&xhad_dir(h).join("supervisor.pid")).filter(|p| super::process_alive(*p))
    }
}

/// The pid in a pidfile.
pub fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// Every process whose command line names `dir` (an agent's xhad
/// directory): the daemons and supervisors of that host.
pub fn processes_naming(dir: &Path) -> Vec<i32> {
    xha_lab::power::processes_naming(dir)
}

/// Every live process of host `h`: its agent, `xhad`, supervisor and VM
/// keepers and the process VMs its driver started (`host-<i>` as
/// `start_hosts_with` names them; `vms` their UUIDs). The lab's one copy:
/// `xha_lab::power::host_processes`.
pub fn host_processes(h: &Host, name: &str, vms: &[String]) -> Vec<i32> {
    xha_lab::power::host_processes(h.agent.dir.path(), name, vms)
}

/// Host `h` dies as in a power cut (`xha_lab::power::kill_host`, the copy
/// `xe lab` uses too). Returns the fault's instant and its wall-clock time
/// in ms (what the stamp records use).
pub fn kill_host(h: &Host, name: &str, vms: &[String]) -> (Instant, u64) {
    xha_lab::power::kill_host(h.agent.dir.path(), name, vms).unwrap_or_else(|e| panic!("{e}"))
}

/// ops: a process VM that sleeps (`exec sleep 600`, 64 MiB), started on
/// the host `on` (its reference in the master's database), then protected
/// (`restart`, order 1) once it runs there, as `ha_failover.rs` does (a
/// halted protected VM would be started wherever the plan says). Returns
/// its reference and UUID once HA counts it `started`.
pub fn protected_sleeper_on(p: &HaPool, on: &str, name: &str) -> (String, String) {
    let vm = p
        .call(
            "VM.create",
            json!([{
                "name_label": name,
                "memory_static_max": 64 << 20,
                "driver": "process",
                "driver_config": {"command": "exec sleep 600"},
                "order": 1,
            }]),
        )
        .as_str()
        .expect("VM ref")
        .to_owned();
    let uuid = p
        .call("VM.get_uuid", json!([vm]))
        .as_str()
        .expect("uuid")
        .to_owned();
    p.call("VM.start_on", json!([vm, on, false, false]));
    p.call("VM.set_ha_restart_priority", json!([vm, "restart"]));
    super::wait_for("the protected VM's ha_state started", || {
        (p.call("VM.get_ha_state", json!([vm])) == json!("started")).then_some(())
    });
    (vm, uuid)
}

/// Starts the `xhad` and supervisor of the host whose agent directory is
/// `agent_dir` again, from the configuration in `<agent_dir>/xhad` (what
/// its unit does at boot); the daemon's control socket.
pub fn start_xhad_again(agent_dir: &Path) -> PathBuf {
    let (xhad, supervisor) = xha_bins();
    let launcher = xapi_ha::config::XhadLauncher::Process {
        supervisor_path: supervisor,
    };
    let paths = xapi_ha::server::xhad_launcher::XhadPaths::new(&launcher, &agent_dir.join("xhad"));
    xapi_ha::server::xhad_launcher::start(&launcher, &xhad, &paths).expect("start xhad again");
    paths.control_socket
}
