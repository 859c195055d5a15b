//! A pool of real `xapi-ha` agents on loopback for the pool tests: each
//! host on its own loopback address (127.A.B.i, one random /24 per pool)
//! and all on one TLS port, as a pool's hosts all serve the API on one
//! port (docs/pool.md). Uses `api_support` to start and drive each agent.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::{Value, json};

use crate::api_support::{Agent, PASSWORD, USER, call2, login};

/// Generous: real processes on a loaded 2-core machine.
pub const LONG: Duration = Duration::from_secs(60);

/// Polls `f` until it gives a value, or panics after [`LONG`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub use crate::api_support::vm_binaries;

pub mod ha; // hamulti: an HA pool of N agents

/// One host of a test pool.
pub struct Host {
    pub agent: Agent,
    pub address: String,
    pub uuid: String,
}

/// Hosts that are not yet (or no longer) in one pool.
pub struct Hosts {
    pub hosts: Vec<Host>,
    pub port: u16,
}

fn config(dir: &Path, uuid: &str, address: &str, port: u16, i: usize, drivers: &[&str]) -> String {
    let http = format!("{address}:0");
    xha_lab::agent_config::PoolHostConfig {
        dir,
        uuid,
        name: &format!("host-{i}"),
        address,
        tls_port: port,
        http_listen: &http,
        drivers,
        memory_bytes: 16u64 << 30,
    }
    .text()
}

/// Starts `n` agents, each the master of its own pool of one.
pub fn start_hosts(n: usize) -> Hosts {
    start_hosts_with(n, |_, _, _| String::new())
}

/// [`start_hosts`] with these VM drivers on every host.
pub fn start_hosts_with_drivers(n: usize, drivers: &[&str]) -> Hosts {
    start_hosts_configured(n, drivers, |_, _, _| String::new())
}

/// [`start_hosts`] with `extra(dir, i, address)` appended to host i's
/// configuration (i from 1). hamulti: the hosts' UUIDs ascend with i, so
/// host 1 sorts first (xhad's and the HA enable's host order).
pub fn start_hosts_with(n: usize, extra: impl Fn(&Path, usize, &str) -> String) -> Hosts {
    start_hosts_configured(n, &["process"], extra)
}

fn start_hosts_configured(
    n: usize,
    drivers: &[&str],
    extra: impl Fn(&Path, usize, &str) -> String,
) -> Hosts {
    vm_binaries();
    let mut rng = rand::thread_rng();
    let net = format!("127.{}.{}", rng.gen_range(1..=254), rng.gen_range(0..=254));
    let port: u16 = rng.gen_range(20_000..60_000);
    let mut uuids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    uuids.sort();
    let hosts = (1..=n)
        .map(|i| {
            let address = format!("{net}.{i}");
            let uuid = uuids[i - 1].clone();
            let agent = Agent::start_configured(|dir| {
                config(dir, &uuid, &address, port, i, drivers) + &extra(dir, i, &address)
            });
            Host {
                agent,
                address,
                uuid,
            }
        })
        .collect();
    Hosts { hosts, port }
}

/// A session on `h` (a master).
pub fn session(h: &Host) -> String {
    login(h.agent.http)
}

/// A host-local session (works on members too).
pub fn local_session(h: &Host) -> String {
    call2(
        h.agent.http,
        "session.slave_local_login_with_password",
        json!([USER, PASSWORD]),
    )
    .as_str()
    .expect("session")
    .to_owned()
}

/// `pool.join` of `joiner` to `master`'s pool, through the joiner's API.
pub fn join(joiner: &Host, master: &Host) {
    let s = session(joiner);
    call2(
        joiner.agent.http,
        "pool.join",
        json!([s, master.address, USER, PASSWORD]),
    );
}

/// A call on a host-local session of `h`.
pub fn local_call(h: &Host, method: &str, params: Value) -> Value {
    let s = local_session(h);
    let mut all = vec![Value::String(s)];
    if let Value::Array(p) = params {
        all.extend(p);
    }
    call2(h.agent.http, method, Value::Array(all))
}

/// [`local_call`] that gives `None` when the call fails (for polling a
/// member's copy that may lag).
pub fn try_local_call(h: &Host, method: &str, params: Value) -> Option<Value> {
    let s = local_session(h);
    let mut all = vec![Value::String(s)];
    if let Value::Array(p) = params {
        all.extend(p);
    }
    let (_, v) = crate::api_support::jsonrpc(
        h.agent.http,
        &json!({"jsonrpc": "2.0", "method": method, "params": all, "id": 1}),
    );
    v.get("result").cloned()
}

/// The reference of `h`'s host record in the database `on` serves.
pub fn host_ref(on: &Host, h: &Host) -> String {
    local_call(on, "host.get_by_uuid", json!([h.uuid]))
        .as_str()
        .expect("ref")
        .to_owned()
}

/// `h`'s `pool.conf`.
pub fn pool_conf(h: &Host) -> String {
    std::fs::read_to_string(h.agent.dir.path().join("data/pool.conf")).expect("pool.conf")
}

/// Stops (hard) every VM still running under the given agents' data
/// directories when dropped, so a failing test leaves no process behind
/// (the product's own process driver adopts and stops them). Declare it
/// after the hosts, so it drops first.
pub struct StopVmsOnDrop(pub Vec<PathBuf>);

impl StopVmsOnDrop {
    pub fn of(hosts: &Hosts) -> StopVmsOnDrop {
        StopVmsOnDrop(
            hosts
                .hosts
                .iter()
                .map(|h| h.agent.dir.path().join("data/vm-run"))
                .collect(),
        )
    }
}

impl Drop for StopVmsOnDrop {
    fn drop(&mut self) {
        use xapi_vm::VmDriver as _;
        for dir in &self.0 {
            let mut d = xapi_vm::process::ProcessDriver::new(xapi_vm::DriverContext {
                host: "test".into(),
                run_dir: dir.clone(),
                keeper: vm_binaries().join("xha-vm-keeper"),
            });
            for vm in d.adopt().unwrap_or_default() {
                eprintln!("stopping VM {} left running", vm.uuid);
                let _ = d.stop(vm.uuid, xapi_vm::StopMode::Hard);
            }
            let mut q = xapi_vm::qemu::QemuDriver::new(
                xapi_vm::DriverContext {
                    host: "test".into(),
                    run_dir: dir.clone(),
                    keeper: vm_binaries().join("xha-vm-keeper"),
                },
                xapi_vm::qemu::QemuConfig::default(),
            );
            for vm in q.adopt().unwrap_or_default() {
                eprintln!("stopping QEMU VM {} left running", vm.uuid);
                let _ = q.stop(vm.uuid, xapi_vm::StopMode::Hard);
            }
        }
    }
}

/// The pid of a process VM run by `h`'s agent, if its pid file is there.
pub fn vm_pid(h: &Host, vm_uuid: &str) -> Option<i32> {
    let p = h
        .agent
        .dir
        .path()
        .join(format!("data/vm-run/process/{vm_uuid}/vm.pid"));
    // `PID START_TICKS` (xapi_vm's run directory).
    std::fs::read_to_string(p)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Whether process `pid` exists (and is not a zombie).
pub fn process_alive(pid: i32) -> bool {
    xha_lab::power::process_alive(pid)
}

/// `xe` (the cli package's binary), built next to `xapi-ha`.
pub fn xe_binary() -> PathBuf {
    crate::api_support::workspace_bins().join("xe")
}
