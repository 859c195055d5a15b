//! metrics: what the `/metrics` and status page tests share: a raw GET,
//! finding an external program (the tests skip without it), an agent with
//! the process VM driver and, where asked, `xhad` for HA on a pool of one.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use crate::api_support::{
    Agent, PASSWORD, Response, USER, call2, config_text, read_response, vm_binaries,
};
use crate::ha_support::{Pool, XhadSection};

/// `GET path` on a fresh connection, with basic auth if `auth`.
pub fn get(addr: SocketAddr, path: &str, auth: Option<(&str, &str)>) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let auth = auth.map_or_else(String::new, |(u, p)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    });
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    read_response(&mut s)
}

/// The login of the test agents.
pub fn credentials() -> (&'static str, &'static str) {
    (USER, PASSWORD)
}

/// `name` on `PATH`, if there.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Waits up to `limit` for `f` to give a value.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// An agent with the process VM driver; with `xhad` configured (process
/// launcher, heartbeat on a free loopback port) if `ha`.
pub fn agent(ha: bool) -> Agent {
    vm_binaries();
    let xhad = ha.then(XhadSection::new);
    Agent::start_configured(move |dir| {
        let t = config_text(dir, "").replace("drivers = [\"qemu\"]", "drivers = [\"process\"]");
        match &xhad {
            Some(x) => t + &x.text(dir),
            None => t,
        }
    })
}

/// A protected process VM that sleeps; its reference.
pub fn sleeping_vm(a: &Agent, p: &Pool, name: &str) -> String {
    call2(
        a.http,
        "VM.create",
        json!([p.s, {
            "name_label": name,
            "memory_static_max": 268_435_456,
            "driver": "process",
            "driver_config": {"command": "exec sleep 300"},
            "ha_restart_priority": "restart",
            "order": 1,
        }]),
    )
    .as_str()
    .expect("VM ref")
    .to_owned()
}

/// Hard-stops the VM when dropped (a failing test leaves no process).
pub struct StopVm<'a> {
    pub agent: &'a Agent,
    pub session: String,
    pub vm: String,
}

impl Drop for StopVm<'_> {
    fn drop(&mut self) {
        let _ = crate::api_support::jsonrpc(
            self.agent.http,
            &json!({"jsonrpc": "2.0", "method": "VM.hard_shutdown", "params": [self.session, self.vm], "id": 1}),
        );
    }
}

/// Where tests keep files for people to look at: `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("target/test-artifacts");
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}
