//! An agent with HA (real `xhad` and `xha-supervisor`, process launcher)
//! for the tests that enable HA on a pool of one: the binaries, the
//! agent's configuration, a shared `file` SR, the enable, and process
//! checks.

#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use xha_lab::agent::StopDaemons;

use crate::api_support::{Agent, call2, config_text, login};

/// The directory of the agent under test's binaries (target/debug).
fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xapi-ha"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

pub use crate::api_support::xha_bins;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port()
}

/// An agent (a pool of one) whose `xhad` runs with the process launcher,
/// its xhad files in `<dir>/xhad`.
pub fn ha_agent() -> Agent {
    let xhad = XhadSection::new();
    Agent::start_configured(move |dir| config_text(dir, "") + &xhad.text(dir))
}

/// The `[xhad]` section of an agent's configuration: the process launcher,
/// the built `xhad` and `xha-supervisor`, files in `<dir>/xhad`, heartbeats
/// on a free loopback port.
pub struct XhadSection {
    xhad: PathBuf,
    supervisor: PathBuf,
    port: u16,
}

impl XhadSection {
    pub fn new() -> XhadSection {
        let (xhad, supervisor) = xha_bins();
        XhadSection::with(&xhad, &supervisor)
    }

    /// With these programs (a test may name a broken `xhad`).
    pub fn with(xhad: &Path, supervisor: &Path) -> XhadSection {
        XhadSection {
            xhad: xhad.to_path_buf(),
            supervisor: supervisor.to_path_buf(),
            port: free_udp_port(),
        }
    }

    pub fn text(&self, dir: &Path) -> String {
        format!(
            "[xhad]\npath = \"{}\"\nconfig_dir = \"{}/xhad\"\nlauncher = \"process\"\nsupervisor_path = \"{}\"\nheartbeat_address = \"127.0.0.1:{}\"\n",
            self.xhad.display(),
            dir.display(),
            self.supervisor.display(),
            self.port
        )
    }
}

/// The pool of one of an agent: a session, the pool and its master.
pub struct Pool {
    pub s: String,
    pub pool: String,
    pub host: String,
}

pub fn pool(a: &Agent) -> Pool {
    let s = login(a.http);
    let pool = call2(a.http, "pool.get_all", json!([s]))[0]
        .as_str()
        .expect("pool")
        .to_owned();
    let host = call2(a.http, "pool.get_master", json!([s, pool]))
        .as_str()
        .expect("host")
        .to_owned();
    Pool { s, pool, host }
}

/// Creates a shared `file` SR and enables HA on it with T = 10 s; the
/// guard that stops the daemons when the test ends.
pub fn enable_ha(a: &Agent, p: &Pool) -> StopDaemons {
    let dir = a.dir.path().join("sr1");
    std::fs::create_dir(&dir).expect("SR dir");
    let sr = call2(
        a.http,
        "SR.create",
        json!([p.s, p.host, {"path": dir.display().to_string()}, 0, "sr1", "", "file", "", true, {}]),
    );
    call2(
        a.http,
        "pool.enable_ha",
        json!([p.s, [sr], {"timeout": "10"}]),
    );
    StopDaemons::new(a.dir.path().join("xhad"))
}

pub fn pid_in(file: &Path) -> Option<i32> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}
