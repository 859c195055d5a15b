//! Failback (docs/restart-engine.md, "Failback"; ours, off by default) on a
//! live pool of three real agents with their `xhad`s, T = 10: a protected
//! process VM with `affinity` host 2 and `other_config:ha-failback=true`,
//! and a protected one without the key, both on host 2. Host 2 dies as in
//! a power cut; both restart on survivors. Host 2 boots again (its `xhad`,
//! then its agent): once it has been live for the settle time, the first
//! VM moves back to it (stop-and-start, the process driver's
//! `VM.pool_migrate`), the second stays where it runs. At every check each
//! VM's process runs on exactly one host.

mod api_support;
mod pool_support;

use std::time::{Duration, Instant};

use pool_support::ha::{HaPool, kill_host, protected_sleeper_on, start_xhad_again};
use pool_support::{Host, StopVmsOnDrop, host_ref, vm_pid};
use serde_json::json;

const T: u64 = 10;
/// Long enough for anything on a loaded 2-core machine; the figure says
/// what it really takes.
const LONG: Duration = Duration::from_secs(120);

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The hosts whose VM host runs the VM's process now.
fn running_on(hosts: &[Host], uuid: &str) -> Vec<String> {
    hosts
        .iter()
        .filter(|h| vm_pid(h, uuid).is_some())
        .map(|h| h.uuid.clone())
        .collect()
}

#[test]
fn a_failback_vm_moves_back_to_its_affinity_host_once_it_is_back_and_the_other_stays() {
    let (mut p, _) = HaPool::enabled(3, T);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let master = p.master();
    let h2 = host_ref(master, &p.hosts.hosts[1]);
    let (back, back_uuid) = protected_sleeper_on(&p, &h2, "fails-back");
    let (stay, stay_uuid) = protected_sleeper_on(&p, &h2, "stays");
    p.call("VM.set_affinity", json!([back, h2]));
    p.call(
        "VM.add_to_other_config",
        json!([back, "ha-failback", "true"]),
    );
    p.call("VM.set_affinity", json!([stay, h2]));

    kill_host(
        &p.hosts.hosts[1],
        "host-2",
        &[back_uuid.clone(), stay_uuid.clone()],
    );
    let resident = |p: &HaPool, vm: &str| p.call("VM.get_resident_on", json!([vm]));
    for vm in [&back, &stay] {
        wait("the VM restarted on a survivor", || {
            let on = resident(&p, vm);
            p.call("VM.get_power_state", json!([vm])) == json!("Running") && on != json!(h2)
        });
    }
    let stay_on = resident(&p, &stay);

    // Host 2 boots again: its xhad (its unit), then its agent.
    let Host {
        agent,
        address,
        uuid,
    } = p.hosts.hosts.remove(1);
    let dir = agent.dir.path().to_path_buf();
    let agent = agent.kill9_and_restart_with(|| {
        start_xhad_again(&dir);
    });
    p.hosts.hosts.insert(
        1,
        Host {
            agent,
            address,
            uuid,
        },
    );
    wait("host 2 live again", || p.live(&p.hosts.hosts[1]));
    let live_again = Instant::now();
    if p.call("host.get_enabled", json!([h2])) != json!(true) {
        p.call("host.enable", json!([h2]));
    }
    wait("the failback VM back on host 2", || {
        resident(&p, &back) == json!(h2)
            && p.call("VM.get_power_state", json!([back])) == json!("Running")
    });
    println!(
        "FIGURE failback host_live_to_vm_back_ms={} (settle {} s)",
        live_again.elapsed().as_millis(),
        xapi_ha::ha::engine::failback::FAILBACK_SETTLE.as_secs()
    );
    wait("the failback VM's process on host 2 only", || {
        running_on(&p.hosts.hosts, &back_uuid) == vec![p.hosts.hosts[1].uuid.clone()]
    });
    assert_eq!(p.call("VM.get_ha_state", json!([back])), json!("started"));
    // The other VM stays where HA restarted it, one process.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(resident(&p, &stay), stay_on);
    assert_eq!(running_on(&p.hosts.hosts, &stay_uuid).len(), 1);
}
