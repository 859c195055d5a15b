//! The agent commits before it answers: a client creates VMs as fast as it
//! can while the agent is killed with SIGKILL at (seeded) random moments;
//! after each restart every VM whose creation was acknowledged is there,
//! with the name it was given, and no VM exists that was never asked for.
//! (The store itself is tested harder, 60 kills of a committing child, in
//! db_durability.rs; this checks the agent answers only after the commit.)

mod api_support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_support::{Agent, jsonrpc, login, try_post};
use rand::{Rng as _, SeedableRng as _};
use serde_json::json;

const KILLS: usize = 12;

/// Creates VMs named `w-<n>` until `stop`; records each acknowledged name.
fn writer(
    a: SocketAddr,
    s: String,
    first: u64,
    acked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut n = first;
    while !stop.load(Ordering::SeqCst) {
        let name = format!("w-{n}");
        n += 1;
        let req = json!({"jsonrpc": "2.0", "method": "VM.create", "params": [s, {"name_label": name}], "id": 1});
        // A killed agent answers nothing: the exchange fails and the
        // writer stops (that creation was not acknowledged).
        let Ok(r) = try_post(
            a,
            "/jsonrpc",
            "application/json",
            req.to_string().as_bytes(),
        ) else {
            return;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&r.body) else {
            return;
        };
        if v.get("result").is_some() {
            acked.lock().unwrap().push(name);
        }
    }
}

#[test]
fn acknowledged_creations_survive_sigkill() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut agent = Agent::start();
    let mut acked_all: BTreeSet<String> = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..KILLS {
        let s = login(agent.http);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let w = {
            let (a, acked, stop) = (agent.http, Arc::clone(&acked), Arc::clone(&stop));
            let s = s.clone();
            std::thread::spawn(move || writer(a, s, next, acked, stop))
        };
        std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
        agent = agent.kill9_and_restart();
        stop.store(true, Ordering::SeqCst);
        let _ = w.join();
        next += 1_000_000;
        acked_all.extend(acked.lock().unwrap().iter().cloned());

        let s = login(agent.http);
        let (_, v) = jsonrpc(
            agent.http,
            &json!({"jsonrpc": "2.0", "method": "VM.get_all_records", "params": [s], "id": 1}),
        );
        let names: BTreeSet<String> = v["result"]
            .as_object()
            .expect("records")
            .values()
            .map(|r| r["name_label"].as_str().unwrap().to_owned())
            .collect();
        let lost: Vec<_> = acked_all.difference(&names).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged but lost: {lost:?}"
        );
        assert!(
            names.iter().all(|n| n.starts_with("w-")),
            "round {round}: a VM nobody asked for"
        );
        // At most the one in flight at each kill exists unacknowledged.
        assert!(
            names.len() <= acked_all.len() + round + 1,
            "round {round}: unasked VMs"
        );
        println!(
            "round {round}: {} acknowledged in total, {} present",
            acked_all.len(),
            names.len()
        );
    }
    assert!(acked_all.len() > KILLS, "the writer hardly wrote anything");
}
