//! Host maintenance on real agents with process VMs (issue 14,
//! "Maintenance under HA"; docs/operations.md "Maintenance"):
//! `host.disable` / `xe host-disable` keeps new VMs off a host,
//! `host.evacuate` moves its 4 process VMs by ascending `order` (timed),
//! `host.get_vms_which_prevent_evacuation` and the refusal without room
//! change nothing, `xe host-shutdown` needs a disabled host and ends the
//! host's agent with code 0 after stopping its VMs, `xe host-reboot`
//! brings the agent back under the same pid.
//!
//! The HA side (the failover-plan check, `--force`, the overcommitted pool
//! and its recovery, frozen VMs, a reboot under HA) is tested on a real
//! database in `api::host_maint` and on real agents with their `xhad`s in
//! `maintenance_under_ha.rs`.

mod api_support;
mod pool_support;

use std::process::{Command, Output};
use std::time::Instant;

use api_support::{PASSWORD, USER, call2, fail2};
use pool_support::{
    Host, Hosts, StopVmsOnDrop, host_ref, join, process_alive, session, start_hosts, vm_pid,
    wait_for, xe_binary,
};
use serde_json::{Value, json};

fn create_vm(master: &Host, s: &str, name: &str, memory: u64, order: i64) -> (String, String) {
    let r = call2(
        master.agent.http,
        "VM.create",
        json!([s, {
            "name_label": name,
            "memory_static_max": memory,
            "driver": "process",
            "driver_config": {"command": "exec sleep 600"},
            "order": order,
        }]),
    );
    let r = r.as_str().expect("ref").to_owned();
    let uuid = call2(master.agent.http, "VM.get_uuid", json!([s, r]));
    (r, uuid.as_str().expect("uuid").to_owned())
}

fn start_on(master: &Host, s: &str, vm: &str, host: &str) {
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, vm, host, false, false]),
    );
}

fn where_is(master: &Host, s: &str, vm: &str) -> (Value, Value) {
    let r = call2(master.agent.http, "VM.get_record", json!([s, vm]));
    (r["power_state"].clone(), r["resident_on"].clone())
}

fn live_pid(h: &Host, uuid: &str) -> Option<i32> {
    vm_pid(h, uuid).filter(|p| process_alive(*p))
}

/// `xe` against `on` (through the master it redirects to).
fn xe(pool: &Hosts, on: &Host, known: &tempfile::NamedTempFile, args: &[&str]) -> Output {
    Command::new(xe_binary())
        .args(["-s", &on.address, "-p", &pool.port.to_string()])
        .args(["-u", USER, "-pw", PASSWORD, "--trust-new"])
        .args(args)
        .env("XE_KNOWN_HOSTS", known.path())
        .output()
        .expect("run xe")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "xe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// xe's API-error exit (6) and its message.
fn api_error(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_disabled_host_is_evacuated_of_four_process_vms_in_order() {
    let pool = start_hosts(3);
    let _vms = StopVmsOnDrop::of(&pool);
    let [master, a, b] = &pool.hosts[..] else {
        unreachable!()
    };
    join(a, master);
    join(b, master);
    let s = session(master);
    let (m_ref, a_ref, b_ref) = (
        host_ref(master, master),
        host_ref(master, a),
        host_ref(master, b),
    );
    // Orders given out of sequence; -1 sorts last.
    let orders = [2, 0, -1, 1];
    let vms: Vec<(String, String)> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| create_vm(master, &s, &format!("vm{i}"), 256 << 20, *o))
        .collect();
    for (vm, uuid) in &vms {
        start_on(master, &s, vm, &a_ref);
        wait_for("the VM's process on host a", || live_pid(a, uuid));
    }
    let known = tempfile::NamedTempFile::new().expect("known hosts");

    // Disabled: no new VM there.
    assert_eq!(
        ok(&xe(
            &pool,
            master,
            &known,
            &["host-disable", &format!("uuid={}", a.uuid)]
        )),
        ""
    );
    assert_eq!(
        call2(master.agent.http, "host.get_enabled", json!([s, a_ref])),
        json!(false)
    );
    let (extra, _) = create_vm(master, &s, "extra", 64 << 20, 0);
    let e = fail2(
        master.agent.http,
        "VM.start_on",
        json!([s, extra, a_ref, false, false]),
    );
    assert_eq!(e, ["HOST_DISABLED", a_ref.as_str()]);
    assert_eq!(
        call2(
            master.agent.http,
            "host.get_vms_which_prevent_evacuation",
            json!([s, a_ref])
        ),
        json!({})
    );

    let started = Instant::now();
    call2(master.agent.http, "host.evacuate", json!([s, a_ref]));
    let took = started.elapsed();
    eprintln!(
        "FIGURE host.evacuate of 4 process VMs: {} ms",
        took.as_millis()
    );

    // Every VM runs on master or b, its process there, none left on a.
    let mut new_pids = Vec::new();
    for ((vm, uuid), order) in vms.iter().zip(orders) {
        let (state, on) = where_is(master, &s, vm);
        assert_eq!(state, json!("Running"));
        let on = on.as_str().expect("ref").to_owned();
        let target = if on == m_ref {
            master
        } else {
            assert_eq!(on, b_ref, "{vm} moved to a host of the pool");
            b
        };
        let pid = live_pid(target, uuid).expect("its process runs on the host named");
        assert!(live_pid(a, uuid).is_none(), "{vm} left host a");
        new_pids.push((pid, order));
    }
    // The kernel hands out pids in increasing order: the starts happened
    // by ascending order, the negative one last.
    new_pids.sort();
    let by_start: Vec<i64> = new_pids.iter().map(|(_, o)| *o).collect();
    assert_eq!(by_start, [0, 1, 2, -1]);

    // Enabled again: it takes VMs.
    assert_eq!(
        ok(&xe(
            &pool,
            master,
            &known,
            &["host-enable", &format!("uuid={}", a.uuid)]
        )),
        ""
    );
    start_on(master, &s, &extra, &a_ref);
    assert_eq!(where_is(master, &s, &extra).1, json!(a_ref.as_str()));
}

#[test]
fn no_room_refuses_the_evacuation_and_shutdown_needs_a_disabled_host() {
    let pool = start_hosts(2);
    let _vms = StopVmsOnDrop::of(&pool);
    let [master, member] = &pool.hosts[..] else {
        unreachable!()
    };
    join(member, master);
    let s = session(master);
    let (m_ref, x_ref) = (host_ref(master, master), host_ref(master, member));
    // 16 GiB hosts: a 10 GiB VM on each, so neither fits on the other.
    let (big, big_uuid) = create_vm(master, &s, "big", 10 << 30, 0);
    let (other, other_uuid) = create_vm(master, &s, "other", 10 << 30, 0);
    start_on(master, &s, &big, &x_ref);
    start_on(master, &s, &other, &m_ref);
    let pid = wait_for("big on the member", || live_pid(member, &big_uuid));
    wait_for("other on the master", || live_pid(master, &other_uuid));

    assert_eq!(
        call2(
            master.agent.http,
            "host.get_vms_which_prevent_evacuation",
            json!([s, x_ref])
        ),
        json!({ big.as_str(): ["HOST_NOT_ENOUGH_FREE_MEMORY", big.as_str()] })
    );
    let known = tempfile::NamedTempFile::new().expect("known hosts");
    let printed = ok(&xe(
        &pool,
        master,
        &known,
        &[
            "host-get-vms-which-prevent-evacuation",
            &format!("uuid={}", member.uuid),
        ],
    ));
    assert_eq!(
        printed,
        format!(
            "uuid ( RO)          : {big_uuid}\n    name-label ( RW): big\n        reason ( RO): HOST_NOT_ENOUGH_FREE_MEMORY,{big}\n"
        )
    );
    let e = fail2(master.agent.http, "host.evacuate", json!([s, x_ref]));
    assert_eq!(e, ["HOST_NOT_ENOUGH_FREE_MEMORY", big.as_str()]);
    let said = api_error(&xe(
        &pool,
        master,
        &known,
        &["host-evacuate", &format!("uuid={}", member.uuid)],
    ));
    assert!(
        said.contains("Not enough server memory is available to perform this operation."),
        "{said}"
    );
    // Nothing moved.
    assert_eq!(
        where_is(master, &s, &big),
        (json!("Running"), json!(x_ref.as_str()))
    );
    assert!(process_alive(pid));

    // Shutdown needs a disabled host.
    let said = api_error(&xe(
        &pool,
        master,
        &known,
        &["host-shutdown", &format!("uuid={}", member.uuid)],
    ));
    assert!(said.contains("the host is not disabled"), "{said}");
    assert!(process_alive(pid));
    ok(&xe(
        &pool,
        master,
        &known,
        &["host-disable", &format!("uuid={}", member.uuid)],
    ));
    ok(&xe(
        &pool,
        master,
        &known,
        &["host-shutdown", &format!("uuid={}", member.uuid)],
    ));
    // Its VM was shut down first, then its agent ended with code 0.
    assert_eq!(
        where_is(master, &s, &big),
        (json!("Halted"), json!("OpaqueRef:NULL"))
    );
    assert!(!process_alive(pid));
    let mut member_agent = pool.hosts.into_iter().nth(1).expect("member").agent;
    let code = wait_for("the member's agent to exit", || member_agent.exit_code());
    assert_eq!(code, Some(0));
}

#[test]
fn a_reboot_stops_the_vms_and_restarts_the_agent_in_place() {
    let mut pool = start_hosts(1);
    let _vms = StopVmsOnDrop::of(&pool);
    let s = session(&pool.hosts[0]);
    let me = host_ref(&pool.hosts[0], &pool.hosts[0]);
    let (vm, uuid) = create_vm(&pool.hosts[0], &s, "v", 64 << 20, 0);
    start_on(&pool.hosts[0], &s, &vm, &me);
    let pid = wait_for("the VM's process", || live_pid(&pool.hosts[0], &uuid));
    let e = fail2(pool.hosts[0].agent.http, "host.reboot", json!([s, me]));
    assert_eq!(e, ["HOST_NOT_DISABLED"]);
    call2(pool.hosts[0].agent.http, "host.disable", json!([s, me]));
    let agent_pid = pool.hosts[0].agent.pid();
    call2(pool.hosts[0].agent.http, "host.reboot", json!([s, me]));
    let host = &mut pool.hosts[0];
    host.agent.wait_ready_again();
    assert_eq!(
        host.agent.pid(),
        agent_pid,
        "the same process, executed again"
    );
    assert!(host.agent.exit_code().is_none());
    assert!(!process_alive(pid), "the VM was stopped before the reboot");
    let host = &pool.hosts[0];
    let s = session(host);
    assert_eq!(
        where_is(host, &s, &vm),
        (json!("Halted"), json!("OpaqueRef:NULL"))
    );
    assert_eq!(
        call2(host.agent.http, "host.get_enabled", json!([s, me])),
        json!(false),
        "still disabled after the reboot, as in xapi"
    );
    call2(host.agent.http, "host.enable", json!([s, me]));
    start_on(host, &s, &vm, &me);
    wait_for("the VM running again", || live_pid(host, &uuid));
}
