//! Forwarding, eject and master handover in a pool of real agents: a VM
//! started on a member with the process driver runs there (its process
//! exists on that host) while the master records it Running there; a VM
//! that stops by itself on a member is reported; eject is refused while a
//! VM runs on the host, then works and the host forgets the pool;
//! designate-new-master moves the role with every change and `xe` follows
//! the redirect to the new master.

mod api_support;
mod pool_support;

use std::process::Command;

use api_support::{PASSWORD, USER, call2, fail2};
use pool_support::{
    Host, StopVmsOnDrop, host_ref, join, local_call, pool_conf, process_alive, session,
    start_hosts, try_local_call, vm_pid, wait_for, xe_binary,
};
use serde_json::{Value, json};

fn create_vm(master: &Host, s: &str, name: &str) -> (String, String) {
    let r = call2(
        master.agent.http,
        "VM.create",
        json!([s, {
            "name_label": name,
            "memory_static_max": 64 << 20,
            "driver": "process",
            "driver_config": {"command": "exec sleep 600"},
        }]),
    );
    let r = r.as_str().expect("ref").to_owned();
    let uuid = call2(master.agent.http, "VM.get_uuid", json!([s, r]));
    (r, uuid.as_str().expect("uuid").to_owned())
}

fn record(h: &Host, s: &str, vm: &str) -> Value {
    call2(h.agent.http, "VM.get_record", json!([s, vm]))
}

#[test]
fn forwarding_to_a_member_and_eject() {
    let pool = start_hosts(2);
    let _vms = StopVmsOnDrop::of(&pool);
    let [master, member] = &pool.hosts[..] else {
        unreachable!()
    };
    join(member, master);
    let s = session(master);
    let m = host_ref(master, member);
    let (vm, uuid) = create_vm(master, &s, "far");

    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, vm, m, false, false]),
    );
    let r = record(master, &s, &vm);
    assert_eq!(r["power_state"], "Running");
    assert_eq!(r["resident_on"], m.as_str());
    let pid = wait_for("the VM's process on the member", || vm_pid(member, &uuid));
    assert!(process_alive(pid), "process {pid} of the VM");
    assert!(vm_pid(master, &uuid).is_none(), "not on the master");
    // The member's copy says so too.
    wait_for("the member's copy", || {
        (try_local_call(member, "VM.get_power_state", json!([vm]))? == "Running").then_some(())
    });

    // Eject refused while the VM runs there, and for the master.
    assert_eq!(
        fail2(master.agent.http, "pool.eject", json!([s, m])),
        ["OPERATION_NOT_ALLOWED", "VM resident on host"]
    );
    let me = host_ref(master, master);
    assert_eq!(
        fail2(master.agent.http, "pool.eject", json!([s, me])),
        ["OPERATION_NOT_ALLOWED", "Cannot eject the pool master"]
    );

    // A forwarded shutdown stops the process there.
    call2(master.agent.http, "VM.hard_shutdown", json!([s, vm]));
    assert_eq!(record(master, &s, &vm)["power_state"], "Halted");
    wait_for("the VM process gone", || {
        (!process_alive(pid)).then_some(())
    });

    // A VM on the member that stops by itself is reported to the master.
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, vm, m, false, false]),
    );
    let pid = wait_for("the VM's process again", || {
        vm_pid(member, &uuid).filter(|p| *p != pid && process_alive(*p))
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the VM");
    wait_for("the master records it Halted", || {
        let r = record(master, &s, &vm);
        (r["power_state"] == "Halted" && r["resident_on"] == "OpaqueRef:NULL").then_some(())
    });

    // VM.start places on the master first (it has room).
    call2(master.agent.http, "VM.start", json!([s, vm, false, false]));
    assert_eq!(record(master, &s, &vm)["resident_on"], me.as_str());
    call2(master.agent.http, "VM.hard_shutdown", json!([s, vm]));

    // Now the eject works: the host forgets the pool.
    call2(master.agent.http, "pool.eject", json!([s, m]));
    assert_eq!(
        call2(master.agent.http, "host.get_all", json!([s]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(pool_conf(member).trim(), "master");
    let s2 = session(member);
    let hosts = call2(member.agent.http, "host.get_all_records", json!([s2]));
    let hosts = hosts.as_object().expect("records");
    assert_eq!(hosts.len(), 1);
    assert!(hosts.values().all(|h| h["uuid"] == member.uuid.as_str()));
    assert_eq!(
        call2(member.agent.http, "VM.get_all", json!([s2])),
        json!([]),
        "a fresh database"
    );
    let secret = |h: &Host| std::fs::read_to_string(h.agent.dir.path().join("data/pool-secret"));
    assert_ne!(secret(member).unwrap(), secret(master).unwrap());
    // And it can join again.
    join(member, master);
    assert_eq!(
        call2(master.agent.http, "host.get_all", json!([s]))
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

fn xe(h: &Host, port: u16, known_hosts: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(xe_binary())
        .args([
            "-s",
            &h.address,
            "-p",
            &port.to_string(),
            "-u",
            USER,
            "-pw",
            PASSWORD,
        ])
        .arg("--trust-new")
        .args(args)
        .env("XE_KNOWN_HOSTS", known_hosts)
        .output()
        .expect("run xe")
}

#[test]
fn designate_new_master_moves_the_role_and_xe_follows() {
    let pool = start_hosts(3);
    let [old, new, other] = &pool.hosts[..] else {
        unreachable!()
    };
    join(new, old);
    join(other, old);
    let known = tempfile::NamedTempFile::new().expect("known hosts");
    let s = session(old);
    call2(
        old.agent.http,
        "VM.create",
        json!([s, {"name_label": "before", "memory_static_max": 1 << 20}]),
    );
    let out = xe(
        old,
        pool.port,
        known.path(),
        &[
            "pool-designate-new-master",
            &format!("host-uuid={}", new.uuid),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pool_conf(new).trim(), "master");
    assert_eq!(pool_conf(old).trim(), format!("slave:{}", new.address));
    wait_for("the other member follows", || {
        (pool_conf(other).trim() == format!("slave:{}", new.address)).then_some(())
    });
    // The old master redirects; the new one has every change.
    assert_eq!(
        fail2(old.agent.http, "VM.get_all", json!([s])),
        ["HOST_IS_SLAVE", new.address.as_str()]
    );
    let s = session(new);
    let names = |h: &Host| -> Vec<String> {
        let all = local_call(h, "VM.get_all_records", json!([]));
        let mut n: Vec<String> = all
            .as_object()
            .expect("records")
            .values()
            .map(|r| r["name_label"].as_str().unwrap_or("").to_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(new), ["before"]);
    let pool_ref = call2(new.agent.http, "pool.get_all", json!([s]))[0].clone();
    assert_eq!(
        call2(new.agent.http, "pool.get_master", json!([s, pool_ref])),
        json!(host_ref(new, new))
    );
    // Changes on the new master reach both members, the old master included.
    call2(
        new.agent.http,
        "VM.create",
        json!([s, {"name_label": "after", "memory_static_max": 1 << 20}]),
    );
    for h in [old, other] {
        wait_for("the copy", || {
            (names(h) == ["after", "before"]).then_some(())
        });
    }
    // xe pointed at the old master follows HOST_IS_SLAVE to the new one.
    let out = xe(
        old,
        pool.port,
        known.path(),
        &["vm-list", "params=name-label", "--minimal"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(',')
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, ["after", "before"]);
    // And back, through xe on the new master.
    let out = xe(
        new,
        pool.port,
        known.path(),
        &[
            "pool-designate-new-master",
            &format!("host-uuid={}", old.uuid),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pool_conf(old).trim(), "master");
    let s = session(old);
    assert_eq!(
        call2(old.agent.http, "host.get_all", json!([s]))
            .as_array()
            .map(Vec::len),
        Some(3)
    );
}

#[test]
fn a_member_reports_a_stop_when_the_master_is_back() {
    let mut pool = start_hosts(2);
    let _vms = StopVmsOnDrop::of(&pool);
    let member = pool.hosts.pop().expect("member");
    let master = pool.hosts.pop().expect("master");
    join(&member, &master);
    let s = session(&master);
    let m = host_ref(&master, &member);
    let (vm, uuid) = create_vm(&master, &s, "orphan");
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, vm, m, false, false]),
    );
    let pid = wait_for("the VM's process", || vm_pid(&member, &uuid));

    // The master is down when the VM dies; the member keeps the report.
    let Host {
        agent,
        address,
        uuid: host_uuid,
    } = master;
    let (dir, code, _) = agent.terminate();
    assert_eq!(code, Some(0));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the VM");
    wait_for("the VM gone", || (!process_alive(pid)).then_some(()));
    let master = Host {
        agent: api_support::Agent::restart(dir),
        address,
        uuid: host_uuid,
    };
    let s = session(&master);
    wait_for("the master records the reported stop", || {
        (record(&master, &s, &vm)["power_state"] == "Halted").then_some(())
    });
    assert_eq!(record(&master, &s, &vm)["resident_on"], "OpaqueRef:NULL");
}
