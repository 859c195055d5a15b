//! Maintenance with HA on (issue 14, "Maintenance under HA";
//! docs/operations.md "Maintenance"), on a 2-host pool of real agents with
//! their `xhad`s, T = 10, target 1 failure, one protected process VM on
//! each host:
//! - `host.disable` and `host.evacuate` of host 2 are refused
//!   (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN`: one host left tolerates no
//!   failure; XenServer refuses here) and change nothing;
//! - the forced disable goes through: the pool is overcommitted and
//!   `HA_POOL_OVERCOMMITTED` raised; XenCenter's maintenance mode freezes
//!   the VM left there (`ha_state` `freeze`);
//! - the forced evacuation moves it to host 1 (`started` again);
//! - `host.reboot` tells host 2's `xhad` to stand aside first: host 2 is
//!   never fenced, no `HA_HOST_FAILED`, the VMs keep running on host 1
//!   while host 2 is away for longer than T;
//! - host 2 back (its agent in place, its `xhad` started again, as at
//!   boot) and `host.enable`d: the plan recovers (`ha_overcommitted`
//!   false, plan for 1 failure again).

mod api_support;
mod pool_support;

use std::time::{Duration, Instant};

use api_support::fail2;
use pool_support::ha::{HaPool, protected_sleeper_on, start_xhad_again};
use pool_support::{StopVmsOnDrop, host_ref, vm_pid, wait_for};
use serde_json::{Value, json};

const T: u64 = 10;

fn messages(p: &HaPool, name: &str) -> usize {
    p.call("message.get_all_records", json!([]))
        .as_object()
        .expect("messages")
        .values()
        .filter(|m| m["name"] == json!(name))
        .count()
}

fn pool_field(p: &HaPool, f: &str) -> Value {
    p.call(&format!("pool.get_{f}"), json!([p.pool]))
}

/// `pool.ha_plan_exists_for` (a number, or xapi's int-as-string).
fn plan_for(p: &HaPool) -> Option<i64> {
    let v = pool_field(p, "ha_plan_exists_for");
    v.as_i64().or_else(|| v.as_str()?.parse().ok())
}

#[test]
fn a_two_host_pool_goes_into_maintenance_by_force_and_comes_back() {
    let (mut p, _) = HaPool::enabled(2, T);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let (h1, h2) = (
        host_ref(p.master(), p.master()),
        host_ref(p.master(), &p.hosts.hosts[1]),
    );
    p.call("pool.set_ha_host_failures_to_tolerate", json!([p.pool, 1]));
    let (a, a_uuid) = protected_sleeper_on(&p, &h1, "a");
    let (b, b_uuid) = protected_sleeper_on(&p, &h2, "b");
    assert_eq!(plan_for(&p), Some(1));
    assert_eq!(pool_field(&p, "ha_overcommitted"), json!(false));

    // Refused without force, nothing changed.
    let http = p.master().agent.http;
    for m in ["host.disable", "host.evacuate"] {
        let e = fail2(http, m, json!([p.s, h2]));
        assert_eq!(e, ["HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN"], "{m}");
    }
    assert_eq!(p.call("host.get_enabled", json!([h2])), json!(true));

    // Forced: overcommitted, said once; maintenance mode freezes b.
    p.call("host.disable_forced", json!([h2]));
    wait_for("the pool overcommitted", || {
        (pool_field(&p, "ha_overcommitted") == json!(true)).then_some(())
    });
    assert_eq!(messages(&p, "HA_POOL_OVERCOMMITTED"), 1);
    p.call(
        "host.add_to_other_config",
        json!([h2, "MAINTENANCE_MODE", "true"]),
    );
    wait_for("b frozen", || {
        (p.call("VM.get_ha_state", json!([b])) == json!("freeze")).then_some(())
    });
    p.call("host.evacuate_forced", json!([h2]));
    assert_eq!(p.call("VM.get_resident_on", json!([b])), json!(h1));
    wait_for("b started on host 1", || {
        (p.call("VM.get_ha_state", json!([b])) == json!("started")).then_some(())
    });
    assert!(vm_pid(p.master(), &b_uuid).is_some());
    assert!(vm_pid(&p.hosts.hosts[1], &b_uuid).is_none());

    // Host 2 reboots, away for longer than T: never fenced, no failure.
    let away = Instant::now();
    p.call("host.reboot", json!([h2]));
    let member = &mut p.hosts.hosts[1];
    member.agent.wait_ready_again();
    std::thread::sleep(Duration::from_secs(T + 5).saturating_sub(away.elapsed()));
    assert_eq!(messages(&p, "HA_HOST_FAILED"), 0, "host 2 was failed");
    assert!(p.live(p.master()), "host 1 left the liveset");
    for (vm, uuid) in [(&a, &a_uuid), (&b, &b_uuid)] {
        assert_eq!(p.call("VM.get_resident_on", json!([vm])), json!(h1));
        assert!(vm_pid(p.master(), uuid).is_some(), "{uuid} stopped");
    }

    // Back: its xhad started again (its unit at boot), then enabled.
    start_xhad_again(p.hosts.hosts[1].agent.dir.path());
    wait_for("host 2 live again", || {
        p.live(&p.hosts.hosts[1]).then_some(())
    });
    p.call("host.enable", json!([h2]));
    wait_for("the plan recovered", || {
        (pool_field(&p, "ha_overcommitted") == json!(false) && plan_for(&p) == Some(1))
            .then_some(())
    });
    assert_eq!(messages(&p, "HA_HOST_FAILED"), 0);
    assert_eq!(messages(&p, "HA_POOL_OVERCOMMITTED"), 1, "raised once");
    println!(
        "FIGURE maintenance host_away_and_back_ms={}",
        away.elapsed().as_millis()
    );
}
