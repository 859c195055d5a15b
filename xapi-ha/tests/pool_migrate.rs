//! `VM.pool_migrate` between two real agents (issue 12): a process VM moves
//! master -> member through the API and back with `xe vm-migrate`; its
//! process runs on exactly the host the record names after each move.
//! Refusals (same host, halted VM, no room on the target) change nothing:
//! the record and the running process stay as they were. A target that
//! cannot start it (its agent killed) leaves the VM running on the source.

mod api_support;
mod pool_support;

use std::process::Command;

use api_support::{PASSWORD, USER, call2, fail2};
use pool_support::{
    Host, StopVmsOnDrop, host_ref, join, process_alive, session, start_hosts, vm_pid, wait_for,
    xe_binary,
};
use serde_json::{Value, json};

fn create_vm(master: &Host, s: &str, name: &str, memory: u64) -> (String, String) {
    let r = call2(
        master.agent.http,
        "VM.create",
        json!([s, {
            "name_label": name,
            "memory_static_max": memory,
            "driver": "process",
            "driver_config": {"command": "exec sleep 600"},
        }]),
    );
    let r = r.as_str().expect("ref").to_owned();
    let uuid = call2(master.agent.http, "VM.get_uuid", json!([s, r]));
    (r, uuid.as_str().expect("uuid").to_owned())
}

fn where_is(master: &Host, s: &str, vm: &str) -> (Value, Value) {
    let r = call2(master.agent.http, "VM.get_record", json!([s, vm]));
    (r["power_state"].clone(), r["resident_on"].clone())
}

/// The VM's live process on `h` (its pid file names a live process).
fn live_pid(h: &Host, uuid: &str) -> Option<i32> {
    vm_pid(h, uuid).filter(|p| process_alive(*p))
}

#[test]
fn a_process_vm_migrates_there_and_back_and_refusals_change_nothing() {
    let pool = start_hosts(2);
    let _vms = StopVmsOnDrop::of(&pool);
    let [master, member] = &pool.hosts[..] else {
        unreachable!()
    };
    join(member, master);
    let s = session(master);
    let me = host_ref(master, master);
    let m = host_ref(master, member);
    let (vm, uuid) = create_vm(master, &s, "mover", 64 << 20);
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, vm, me, false, false]),
    );
    let pid0 = wait_for("the VM's process on the master", || live_pid(master, &uuid));

    // Master -> member through the API.
    call2(
        master.agent.http,
        "VM.pool_migrate",
        json!([s, vm, m, {"live": "true"}]),
    );
    assert_eq!(
        where_is(master, &s, &vm),
        (json!("Running"), json!(m.as_str()))
    );
    let pid1 = wait_for("the VM's process on the member", || live_pid(member, &uuid));
    assert!(!process_alive(pid0), "the source's process {pid0} is gone");
    assert!(live_pid(master, &uuid).is_none(), "not on the master");

    // Refused: to the host it runs on; nothing changes.
    let e = fail2(master.agent.http, "VM.pool_migrate", json!([s, vm, m, {}]));
    assert_eq!(e[0], "OPERATION_NOT_ALLOWED", "{e:?}");
    assert!(e[1].contains("already runs on host"), "{e:?}");
    assert_eq!(
        where_is(master, &s, &vm),
        (json!("Running"), json!(m.as_str()))
    );
    assert!(process_alive(pid1));

    // Member -> master with `xe vm-migrate`, cleanly.
    let known = tempfile::NamedTempFile::new().expect("known hosts");
    let out = Command::new(xe_binary())
        .args(["-s", &master.address, "-p", &pool.port.to_string()])
        .args(["-u", USER, "-pw", PASSWORD, "--trust-new"])
        .args([
            "vm-migrate",
            &format!("uuid={uuid}"),
            &format!("host={}", master.uuid),
        ])
        .env("XE_KNOWN_HOSTS", known.path())
        .output()
        .expect("run xe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        where_is(master, &s, &vm),
        (json!("Running"), json!(me.as_str()))
    );
    let pid2 = wait_for("the VM's process on the master again", || {
        live_pid(master, &uuid)
    });
    wait_for("the member's process gone", || {
        (!process_alive(pid1)).then_some(())
    });
    assert!(live_pid(member, &uuid).is_none(), "not on the member");

    // Refused: no room on the member (16 GiB, a 10 GiB VM runs there).
    let (big, big_uuid) = create_vm(master, &s, "big", 10 << 30);
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, big, m, false, false]),
    );
    wait_for("the big VM on the member", || live_pid(member, &big_uuid));
    let (large, large_uuid) = create_vm(master, &s, "large", 10 << 30);
    call2(
        master.agent.http,
        "VM.start_on",
        json!([s, large, me, false, false]),
    );
    let large_pid = wait_for("the large VM on the master", || {
        live_pid(master, &large_uuid)
    });
    let e = fail2(
        master.agent.http,
        "VM.pool_migrate",
        json!([s, large, m, {}]),
    );
    assert_eq!(e[0], "HOST_NOT_ENOUGH_FREE_MEMORY", "{e:?}");
    assert_eq!(
        where_is(master, &s, &large),
        (json!("Running"), json!(me.as_str()))
    );
    assert!(process_alive(large_pid));
    assert!(live_pid(member, &large_uuid).is_none());

    // The target's start fails (its agent is gone): the VM is started on
    // the source again and the call fails with the target's error.
    call2(master.agent.http, "VM.hard_shutdown", json!([s, big]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(member.agent.pid()).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the member's agent");
    let e = fail2(
        master.agent.http,
        "VM.pool_migrate",
        json!([s, large, m, {}]),
    );
    assert_eq!(e, ["CANNOT_CONTACT_HOST", m.as_str()]);
    assert_eq!(
        where_is(master, &s, &large),
        (json!("Running"), json!(me.as_str()))
    );
    assert!(!process_alive(large_pid), "it was stopped on the source");
    wait_for("the large VM running on the master again", || {
        live_pid(master, &large_uuid)
    });

    // Refused: a halted VM.
    call2(master.agent.http, "VM.hard_shutdown", json!([s, vm]));
    wait_for("the VM's process gone", || {
        (!process_alive(pid2)).then_some(())
    });
    let e = fail2(master.agent.http, "VM.pool_migrate", json!([s, vm, m, {}]));
    assert_eq!(e[..2], ["VM_BAD_POWER_STATE", vm.as_str()], "{e:?}");
    assert_eq!(
        where_is(master, &s, &vm),
        (json!("Halted"), json!("OpaqueRef:NULL"))
    );
    assert!(live_pid(member, &uuid).is_none());
    assert!(live_pid(master, &uuid).is_none());
}
