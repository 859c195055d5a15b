//! Helpers of the master-failover tests (`master_failover.rs`): calls that
//! may fail, following a member's `xhad`, waiting for the new master.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xha_control::LivesetReport;

use crate::api_support::{PASSWORD, USER, call2, try_post};
use crate::pool_support::ha::xhad_dir;
use crate::pool_support::{self, Host, LONG};

/// A JSON-RPC call that may fail in any way: the result, or the error as
/// `[code, params...]` (`["unreachable", reason]` when nothing answers).
pub fn try_call(addr: SocketAddr, method: &str, params: Value) -> Result<Value, Vec<String>> {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let r = try_post(
        addr,
        "/jsonrpc",
        "application/json",
        body.to_string().as_bytes(),
    )
    .map_err(|e| vec!["unreachable".to_owned(), e.to_string()])?;
    let v: Value = serde_json::from_str(&r.body)
        .map_err(|e| vec!["unreadable".to_owned(), format!("{e}: {}", r.body)])?;
    if let Some(e) = v.get("error") {
        let mut out = vec![e["message"].as_str().unwrap_or("?").to_owned()];
        out.extend(
            e["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| d.as_str().unwrap_or("?").to_owned()),
        );
        return Err(out);
    }
    Ok(v["result"].clone())
}

/// Follows `h`'s `xhad` (its `watch` stream) until dropped.
pub struct Watch {
    stop: Arc<AtomicBool>,
    pub rx: Receiver<(Instant, LivesetReport)>,
    _watcher: xha_control::client::Watcher,
}

impl Watch {
    pub fn of(h: &Host) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let (watcher, rx) =
            xha_control::client::watch(&xhad_dir(h).join("control.sock"), Arc::clone(&stop))
                .expect("watch the member's xhad");
        Watch {
            stop,
            rx,
            _watcher: watcher,
        }
    }

    /// When this daemon first reported a liveset without `gone`, after
    /// `since` (waiting up to [`LONG`]).
    pub fn shrunk(&self, gone: &str, since: Instant) -> Instant {
        let gone = uuid::Uuid::parse_str(gone).expect("uuid");
        let deadline = Instant::now() + LONG;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, r) = self
                .rx
                .recv_timeout(left)
                .expect("the liveset never shrank");
            if at >= since && !r.liveset.contains(&gone) {
                return at;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until a survivor (any host of `hosts` but the first) answers a
/// normal login and names itself in `pool.get_master`: its index in
/// `hosts` and when it first did.
pub fn new_master(hosts: &[Host]) -> (usize, Instant) {
    let (i, at) = new_master_among(&hosts.iter().skip(1).collect::<Vec<_>>());
    (i + 1, at)
}

/// Waits until one of `hosts` answers a normal login and names itself in
/// `pool.get_master`: its index in `hosts` and when it first did.
pub fn new_master_among(hosts: &[&Host]) -> (usize, Instant) {
    let deadline = Instant::now() + LONG;
    loop {
        for (i, h) in hosts.iter().enumerate() {
            let Ok(Value::String(s)) = try_call(
                h.agent.http,
                "session.login_with_password",
                json!([USER, PASSWORD, "1.0", "test"]),
            ) else {
                continue;
            };
            let at = Instant::now();
            let Ok(Value::Array(pools)) = try_call(h.agent.http, "pool.get_all", json!([s])) else {
                continue;
            };
            let Some(pool) = pools.first() else { continue };
            let Ok(m) = try_call(h.agent.http, "pool.get_master", json!([s, pool])) else {
                continue;
            };
            let Ok(uuid) = try_call(h.agent.http, "host.get_uuid", json!([s, m])) else {
                continue;
            };
            if uuid == json!(h.uuid) {
                return (i, at);
            }
        }
        assert!(Instant::now() < deadline, "no survivor became the master");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A session on `h` (it must be the master now).
pub fn session(h: &Host) -> String {
    call2(
        h.agent.http,
        "session.login_with_password",
        json!([USER, PASSWORD, "1.0", "test"]),
    )
    .as_str()
    .expect("session")
    .to_owned()
}

pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Starts the `xhad` and supervisor of the host whose agent directory is
/// `agent_dir` again, from the configuration the enable wrote (what its
/// unit does at boot), and waits until the daemon is online in the liveset.
pub fn start_xhad_again(agent_dir: &std::path::Path, uuid: &str) {
    let socket = pool_support::ha::start_xhad_again(agent_dir);
    let me = uuid::Uuid::parse_str(uuid).expect("uuid");
    pool_support::wait_for("the old master's xhad online in the liveset", || {
        xha_lab::online_in_liveset(&socket, me).then_some(())
    });
}

pub fn ha_epoch(h: &Host) -> u64 {
    let text = std::fs::read_to_string(h.agent.dir.path().join("data/ha-state.toml"))
        .expect("ha-state.toml");
    xapi_ha::ha_link::state::HaState::parse(&text)
        .expect("HA record")
        .epoch
}
