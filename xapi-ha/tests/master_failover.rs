//! Master failover under HA (docs/master-failover.md) on a pool of three
//! real agents, each with its real `xhad` and `xha-supervisor` on
//! loopback, one shared `file` SR, T = 10. The master (host 1) dies as in
//! a power cut (`pool_support::ha::kill_host`: agent, daemon, supervisor,
//! VM keepers and process VMs SIGKILLed):
//! - a member takes the master lock and answers as master
//!   (`pool.get_master` names it) within the liveset-shrink time + 5 s
//!   (the bound is + 2 s: the measured figures are printed as
//!   `FIGURE` lines, the assertion leaves room for a loaded machine);
//! - the other member answers `HOST_IS_SLAVE [new master address]`;
//! - the protected process VM that ran on the old master runs again on a
//!   survivor; `POOL_MASTER_TRANSITION` is raised; live hosts stay enabled;
//! - a writer commits a stream of `pool.add_to_other_config` changes while
//!   the master is killed at a random moment: every acknowledged change is
//!   in the new master's database, and nothing else but the one change in
//!   flight (`XHA_MASTER_KILLS` rounds, default 2);
//! - the old master comes back (its `xhad` started again, as its unit
//!   would at boot, then its agent, with `pool.conf` `master` and its HA
//!   record): it starts as a member of the new master, never a second
//!   master.
//!
//! The tests take turns (one lock): each runs three agents and daemons,
//! and the takeover time is measured on an otherwise idle pool.

mod api_support;
mod pool_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_support::{PASSWORD, USER, call2, try_post};
use pool_support::ha::{HaPool, kill_host, xhad_dir};
use pool_support::{Host, LONG, StopVmsOnDrop, host_ref, pool_conf, process_alive, vm_pid};
use serde_json::{Value, json};
use xha_control::LivesetReport;

const T: u64 = 10;

/// One test at a time (see the module documentation).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A JSON-RPC call that may fail in any way: the result, or the error as
/// `[code, params...]` (`["unreachable", reason]` when nothing answers).
fn try_call(addr: SocketAddr, method: &str, params: Value) -> Result<Value, Vec<String>> {
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
struct Watch {
    stop: Arc<AtomicBool>,
    rx: Receiver<(Instant, LivesetReport)>,
    _watcher: xha_control::client::Watcher,
}

impl Watch {
    fn of(h: &Host) -> Watch {
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
    fn shrunk(&self, gone: &str, since: Instant) -> Instant {
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

/// Waits until a survivor answers a normal login and names itself in
/// `pool.get_master`: its index in `hosts` and when it first did.
fn new_master(hosts: &[Host]) -> (usize, Instant) {
    let deadline = Instant::now() + LONG;
    loop {
        for (i, h) in hosts.iter().enumerate().skip(1) {
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
fn session(h: &Host) -> String {
    call2(
        h.agent.http,
        "session.login_with_password",
        json!([USER, PASSWORD, "1.0", "test"]),
    )
    .as_str()
    .expect("session")
    .to_owned()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Kills the master; the takeover's figures: (liveset shrink, new master
/// answering), both from the fault, and the new master's index.
fn kill_master_and_measure(p: &HaPool, vms: &[String]) -> (Duration, Duration, usize) {
    let watches: Vec<Watch> = p.hosts.hosts[1..].iter().map(Watch::of).collect();
    let (fault, _) = kill_host(p.master(), "host-1", vms);
    let (i, answered) = new_master(&p.hosts.hosts);
    let shrunk = watches
        .iter()
        .map(|w| w.shrunk(&p.master().uuid, fault))
        .min()
        .expect("two survivors");
    let shrink = shrunk - fault;
    let answer = answered - fault;
    println!(
        "FIGURE master_failover liveset_shrink_ms={} new_master_answers_ms={} margin_ms={}",
        shrink.as_millis(),
        answer.as_millis(),
        answer.as_millis() as i128 - shrink.as_millis() as i128
    );
    assert!(
        answer <= shrink + Duration::from_secs(5),
        "the new master answered {answer:?} after the fault; the liveset shrank after {shrink:?}"
    );
    (shrink, answer, i)
}

#[test]
fn master_dies_a_member_takes_over_and_restarts_its_vm() {
    let _turn = serial();
    let (p, _) = HaPool::enabled(3, T);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let master_ref = host_ref(p.master(), p.master());
    let vm = p
        .call(
            "VM.create",
            json!([{
                "name_label": "protected",
                "memory_static_max": 64 << 20,
                "driver": "process",
                "driver_config": {"command": "exec sleep 600"},
            }]),
        )
        .as_str()
        .expect("VM ref")
        .to_owned();
    let vm_uuid = p
        .call("VM.get_uuid", json!([vm]))
        .as_str()
        .expect("uuid")
        .to_owned();
    p.call("VM.start_on", json!([vm, master_ref, false, false]));
    p.call("VM.set_ha_restart_priority", json!([vm, "restart"]));
    let old_pid = vm_pid(p.master(), &vm_uuid).expect("the VM runs on the master");
    assert!(process_alive(old_pid));

    let (_, _, i) = kill_master_and_measure(&p, std::slice::from_ref(&vm_uuid));
    let nm = &p.hosts.hosts[i];
    let other = &p.hosts.hosts[if i == 1 { 2 } else { 1 }];
    let s = session(nm);
    let call = |method: &str, params: Value| {
        let mut all = vec![json!(s)];
        all.extend(params.as_array().cloned().unwrap_or_default());
        call2(nm.agent.http, method, Value::Array(all))
    };

    // The other member follows the new master.
    let deadline = Instant::now() + LONG;
    loop {
        let got = try_call(
            other.agent.http,
            "session.login_with_password",
            json!([USER, PASSWORD, "1.0", "test"]),
        );
        if got == Err(vec!["HOST_IS_SLAVE".to_owned(), nm.address.clone()]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the other member answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pool_conf(nm).trim(), "master");
    assert_eq!(pool_conf(other).trim(), format!("slave:{}", nm.address));

    // The protected VM of the old master runs again on a survivor.
    let survivors = [host_ref(nm, nm), host_ref(nm, other)];
    let deadline = Instant::now() + LONG;
    let on = loop {
        let r = call("VM.get_record", json!([vm]));
        if r["power_state"] == json!("Running")
            && survivors.iter().any(|h| r["resident_on"] == json!(h))
        {
            break r["resident_on"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the protected VM was not restarted: {r}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let host = if on == json!(survivors[0]) { nm } else { other };
    let pid = pool_support::wait_for("the VM's process", || vm_pid(host, &vm_uuid));
    assert!(process_alive(pid) && pid != old_pid);

    // POOL_MASTER_TRANSITION about the new master; live hosts enabled.
    let messages = call("message.get_all_records", json!([]));
    let transitions = messages
        .as_object()
        .expect("messages")
        .values()
        .filter(|m| m["name"] == json!("POOL_MASTER_TRANSITION"))
        .map(|m| m["obj_uuid"].clone())
        .collect::<Vec<_>>();
    assert_eq!(transitions, vec![json!(nm.uuid)]);
    for h in &survivors {
        assert_eq!(call("host.get_enabled", json!([h])), json!(true));
    }
    let pool = call("pool.get_all", json!([]))[0].clone();
    assert_eq!(call("pool.get_master", json!([pool])), json!(survivors[0]));
    // Unprotected before the clean-up stops it (HA would start it again).
    call("VM.set_ha_restart_priority", json!([vm, ""]));
}

#[test]
fn no_acknowledged_change_is_lost_when_the_master_dies_mid_stream() {
    let _turn = serial();
    let rounds: usize = std::env::var("XHA_MASTER_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut shrinks = Vec::new();
    let mut answers = Vec::new();
    for round in 0..rounds {
        let (p, _) = HaPool::enabled(3, T);
        let addr = p.master().agent.http;
        let (s, pool) = (p.s.clone(), p.pool.clone());
        let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
        let in_flight = Arc::new(Mutex::new(None::<usize>));
        let writer = {
            let (acked, in_flight) = (Arc::clone(&acked), Arc::clone(&in_flight));
            std::thread::spawn(move || {
                let mut i = 0usize;
                loop {
                    *in_flight.lock().expect("lock") = Some(i);
                    let r = try_call(
                        addr,
                        "pool.add_to_other_config",
                        json!([s, pool, format!("k{i}"), format!("v{i}")]),
                    );
                    if let Err(e) = r {
                        return e;
                    }
                    acked.lock().expect("lock").push(i);
                    i += 1;
                }
            })
        };
        let delay = rand::Rng::gen_range(&mut rand::thread_rng(), 200..3000);
        std::thread::sleep(Duration::from_millis(delay));
        let (shrink, answer, i) = kill_master_and_measure(&p, &[]);
        let ended = writer.join().expect("writer");
        shrinks.push(shrink);
        answers.push(answer);

        let nm = &p.hosts.hosts[i];
        let s = session(nm);
        let pool = call2(nm.agent.http, "pool.get_all", json!([s]))[0].clone();
        let config = call2(nm.agent.http, "pool.get_other_config", json!([s, pool]));
        let present: BTreeSet<usize> = config
            .as_object()
            .expect("map")
            .iter()
            .filter_map(|(k, v)| {
                let i: usize = k.strip_prefix('k')?.parse().ok()?;
                assert_eq!(v, &json!(format!("v{i}")), "value of {k}");
                Some(i)
            })
            .collect();
        let acked: BTreeSet<usize> = acked.lock().expect("lock").iter().copied().collect();
        let in_flight = *in_flight.lock().expect("lock");
        let lost: Vec<_> = acked.difference(&present).collect();
        let extra: Vec<_> = present
            .difference(&acked)
            .filter(|i| Some(**i) != in_flight)
            .collect();
        println!(
            "FIGURE master_failover_stream round={round} killed_after_ms={delay} acknowledged={} present={} in_flight_present={} writer_ended={ended:?}",
            acked.len(),
            present.len(),
            in_flight.is_some_and(|i| present.contains(&i)),
        );
        assert!(
            !acked.is_empty(),
            "the writer committed nothing before the kill"
        );
        assert!(lost.is_empty(), "acknowledged changes lost: {lost:?}");
        assert!(extra.is_empty(), "changes never sent: {extra:?}");
    }
    println!(
        "FIGURE master_failover_medians rounds={rounds} liveset_shrink_ms={} new_master_answers_ms={}",
        median(&mut shrinks).as_millis(),
        median(&mut answers).as_millis()
    );
}

/// Starts the `xhad` and supervisor of the host whose agent directory is
/// `agent_dir` again, from the configuration the enable wrote (what its
/// unit does at boot), and waits until the daemon is online in the liveset.
fn start_xhad_again(agent_dir: &std::path::Path, uuid: &str) {
    let socket = pool_support::ha::start_xhad_again(agent_dir);
    let me = uuid::Uuid::parse_str(uuid).expect("uuid");
    pool_support::wait_for("the old master's xhad online in the liveset", || {
        xha_control::client::request(
            &socket,
            xha_control::Request::QueryLiveset,
            xha_control::client::REQUEST_TIMEOUT,
        )
        .ok()
        .and_then(|r| r.result)
        .filter(|r| r.status == xha_control::Status::Online && r.liveset.contains(&me))
    });
}

fn ha_epoch(h: &Host) -> u64 {
    let text = std::fs::read_to_string(h.agent.dir.path().join("data/ha-state.toml"))
        .expect("ha-state.toml");
    xapi_ha::ha_link::state::HaState::parse(&text)
        .expect("HA record")
        .epoch
}

#[test]
fn an_old_master_that_comes_back_becomes_a_member_of_the_new_one() {
    let _turn = serial();
    let (mut p, _) = HaPool::enabled(3, T);
    let old_epoch = ha_epoch(p.master());
    let (_, _, i) = kill_master_and_measure(&p, &[]);
    let Host {
        agent,
        address,
        uuid,
    } = p.hosts.hosts.remove(0);
    let nm = &p.hosts.hosts[i - 1];
    assert!(ha_epoch(nm) > old_epoch, "the new master's epoch");
    let dir = agent.dir.path().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(dir.join("data/pool.conf"))
            .expect("pool.conf")
            .trim(),
        "master"
    );
    // The host boots: its xhad first (its unit), then its agent.
    let agent = agent.kill9_and_restart_with(|| start_xhad_again(&dir, &uuid));
    let old = Host {
        agent,
        address,
        uuid,
    };
    let login = try_call(
        old.agent.http,
        "session.login_with_password",
        json!([USER, PASSWORD, "1.0", "test"]),
    );
    assert_eq!(
        login,
        Err(vec!["HOST_IS_SLAVE".to_owned(), nm.address.clone()]),
        "the old master must answer as a member"
    );
    assert_eq!(pool_conf(&old).trim(), format!("slave:{}", nm.address));
    // It never wrote the metadata volume: its HA record keeps its epoch.
    assert_eq!(ha_epoch(&old), old_epoch);

    // The new master stays the master, records the old one live again,
    // and still commits.
    let s = session(nm);
    let pool = call2(nm.agent.http, "pool.get_all", json!([s]))[0].clone();
    let me = host_ref(nm, nm);
    assert_eq!(
        call2(nm.agent.http, "pool.get_master", json!([s, pool])),
        json!(me)
    );
    let old_ref = host_ref(nm, &old);
    pool_support::wait_for("the old master live again", || {
        let m = call2(nm.agent.http, "host.get_metrics", json!([s, old_ref]));
        (call2(nm.agent.http, "host_metrics.get_live", json!([s, m])) == json!(true)).then_some(())
    });
    call2(
        nm.agent.http,
        "pool.add_to_other_config",
        json!([s, pool, "after-return", "yes"]),
    );
    // Its copy follows the new master (the push reaches it).
    pool_support::wait_for("the old master's copy updated", || {
        pool_support::try_local_call(&old, "pool.get_other_config", json!([pool]))
            .filter(|c| c["after-return"] == json!("yes"))
    });
}
