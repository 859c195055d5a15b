//! A pool of three real agents on loopback: two hosts join the first
//! (`pool.join` over TLS with the pool secret handed over), the master sees
//! three hosts with their memory, every member's local copy follows the
//! master's changes (also after it was down), a wrong password changes
//! nothing, and the host-to-host calls refuse anything but the pool secret.

mod api_support;
mod pool_support;

use api_support::{call2, fail2, jsonrpc};
use pool_support::{Host, host_ref, join, local_call, pool_conf, session, start_hosts, wait_for};
use serde_json::json;

/// The `uuid`s of the hosts `h`'s database holds, sorted.
fn host_uuids(h: &Host) -> Vec<String> {
    let all = local_call(h, "host.get_all_records", json!([]));
    let mut u: Vec<String> = all
        .as_object()
        .expect("records")
        .values()
        .map(|r| r["uuid"].as_str().expect("uuid").to_owned())
        .collect();
    u.sort();
    u
}

fn vm_names(h: &Host) -> Vec<String> {
    let all = local_call(h, "VM.get_all_records", json!([]));
    let mut n: Vec<String> = all
        .as_object()
        .expect("records")
        .values()
        .map(|r| r["name_label"].as_str().expect("name").to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn three_agents_form_a_pool_and_members_keep_copies() {
    let pool = start_hosts(3);
    let [master, m1, m2] = &pool.hosts[..] else {
        unreachable!()
    };
    // A wrong password: refused by the master, nothing changed anywhere.
    let s1 = session(m1);
    let before = local_call(master, "host.get_all", json!([]));
    assert_eq!(
        fail2(
            m1.agent.http,
            "pool.join",
            json!([s1, master.address, "root", "wrong"])
        ),
        [
            "SESSION_AUTHENTICATION_FAILED",
            "root",
            "Authentication failure"
        ]
    );
    assert_eq!(local_call(master, "host.get_all", json!([])), before);
    assert_eq!(pool_conf(m1).trim(), "master");
    assert_eq!(host_uuids(m1), std::slice::from_ref(&m1.uuid));

    join(m1, master);
    join(m2, master);
    for m in [m1, m2] {
        assert_eq!(pool_conf(m).trim(), format!("slave:{}", master.address));
        // A normal login on a member is redirected.
        assert_eq!(
            fail2(
                m.agent.http,
                "session.login_with_password",
                json!([api_support::USER, api_support::PASSWORD])
            ),
            ["HOST_IS_SLAVE", master.address.as_str()]
        );
    }
    let s = session(master);
    let hosts = call2(master.agent.http, "host.get_all_records", json!([s]));
    let hosts = hosts.as_object().expect("records");
    assert_eq!(hosts.len(), 3);
    for h in [master, m1, m2] {
        let (_, rec) = hosts
            .iter()
            .find(|(_, r)| r["uuid"] == h.uuid.as_str())
            .unwrap_or_else(|| panic!("host {} missing", h.uuid));
        assert_eq!(rec["address"], h.address.as_str());
        let metrics = call2(
            master.agent.http,
            "host_metrics.get_memory_total",
            json!([s, rec["metrics"]]),
        );
        assert_eq!(metrics, json!(16i64 << 30), "{h:?}", h = h.uuid);
    }

    // A change on the master reaches every member's copy, at the same
    // generation (the same batches applied to the same database).
    let sent = std::time::Instant::now();
    call2(
        master.agent.http,
        "VM.create",
        json!([s, {"name_label": "replicated", "memory_static_max": 1 << 20}]),
    );
    let want = vm_names(master);
    assert_eq!(want, ["replicated"]);
    let generation = call2(master.agent.http, "event.get_current_id", json!([s]));
    for m in [m1, m2] {
        wait_for("the member's copy", || (vm_names(m) == want).then_some(()));
        println!(
            "measured: the change was in {}'s copy {:?} after the master's reply was sent",
            m.address,
            sent.elapsed()
        );
        assert_eq!(local_call(m, "event.get_current_id", json!([])), generation);
        assert_eq!(host_uuids(m), host_uuids(master));
        // The copy is durable: the member's own redo log.
        assert!(m.agent.dir.path().join("data/pool-db").exists());
    }
    // Changes on a member are refused (its copy is the master's).
    let l = pool_support::local_session(m1);
    assert_eq!(
        fail2(
            m1.agent.http,
            "VM.create",
            json!([l, {"name_label": "local", "memory_static_max": 1 << 20}])
        ),
        ["HOST_IS_SLAVE", master.address.as_str()]
    );
    // The member's host-to-host calls want the pool secret.
    assert_eq!(
        fail2(
            m1.agent.http,
            "pool.peer_sync",
            json!([l, master.address, "snapshot", []])
        )[0],
        "PERMISSION_DENIED"
    );
    let (_, v) = jsonrpc(
        m1.agent.http,
        &json!({"jsonrpc": "2.0", "method": "session.login_with_password",
                "params": ["__pool__", "not the secret"], "id": 1}),
    );
    assert_eq!(
        v["error"]["message"], "SESSION_AUTHENTICATION_FAILED",
        "{v}"
    );
    let secret = std::fs::read_to_string(m1.agent.dir.path().join("data/pool-secret")).unwrap();
    let master_secret =
        std::fs::read_to_string(master.agent.dir.path().join("data/pool-secret")).unwrap();
    assert_eq!(secret, master_secret, "the member got the pool secret");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(m1.agent.dir.path().join("data/pool-secret"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_member_that_was_down_gets_a_snapshot_and_joins_are_checked() {
    let mut pool = start_hosts(3);
    let outsider = pool.hosts.pop().expect("host 3");
    let member = pool.hosts.pop().expect("host 2");
    let master = pool.hosts.pop().expect("host 1");
    join(&member, &master);
    let s = session(&master);
    let create = |name: &str| {
        call2(
            master.agent.http,
            "VM.create",
            json!([s, {"name_label": name, "memory_static_max": 1 << 20}]),
        );
    };
    create("one");
    wait_for("the copy", || (vm_names(&member) == ["one"]).then_some(()));

    // Down while the master changes; back, it catches up.
    let Host {
        agent,
        address,
        uuid,
    } = member;
    let (dir, code, _) = agent.terminate();
    assert_eq!(code, Some(0));
    create("two");
    create("three");
    let member = Host {
        agent: api_support::Agent::restart(dir),
        address,
        uuid,
    };
    assert_eq!(
        pool_conf(&member).trim(),
        format!("slave:{}", master.address)
    );
    wait_for("the copy after the restart", || {
        (vm_names(&member) == ["one", "three", "two"]).then_some(())
    });

    // A member cannot join another pool; a host in a pool of several
    // cannot join; nobody joins itself.
    let so = session(&outsider);
    assert_eq!(
        fail2(
            outsider.agent.http,
            "pool.join",
            json!([
                so,
                outsider.address,
                api_support::USER,
                api_support::PASSWORD
            ])
        ),
        [
            "OPERATION_NOT_ALLOWED",
            "Host cannot become slave of itself"
        ]
    );
    assert_eq!(
        fail2(
            master.agent.http,
            "pool.join",
            json!([
                s,
                outsider.address,
                api_support::USER,
                api_support::PASSWORD
            ])
        ),
        ["JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS"]
    );
    // Joining a member's address: the member redirects.
    assert_eq!(
        fail2(
            outsider.agent.http,
            "pool.join",
            json!([so, member.address, api_support::USER, api_support::PASSWORD])
        ),
        ["HOST_IS_SLAVE", master.address.as_str()]
    );
    // Nothing listens there.
    assert_eq!(
        fail2(
            outsider.agent.http,
            "pool.join",
            json!([so, "127.0.0.0", api_support::USER, api_support::PASSWORD])
        ),
        ["JOINING_HOST_CONNECTION_FAILED"]
    );
    assert_eq!(host_uuids(&outsider), std::slice::from_ref(&outsider.uuid));
    assert_eq!(pool_conf(&outsider).trim(), "master");
    let _ = host_ref(&master, &master);
}

/// blocksr (issue 11): a joining host's own halted VMs are kept: the master
/// adds them (same uuid, same settings) when it admits the host, and every
/// copy has them; the master's own VMs stay.
#[test]
fn a_joiners_halted_vms_are_kept() {
    let pool = start_hosts(2);
    let [master, joiner] = &pool.hosts[..] else {
        unreachable!()
    };
    let sm = session(master);
    call2(
        master.agent.http,
        "VM.create",
        json!([sm, {"name_label": "masters", "memory_static_max": 1 << 20}]),
    );
    let sj = session(joiner);
    let vm = call2(
        joiner.agent.http,
        "VM.create",
        json!([sj, {
            "name_label": "joiners",
            "memory_static_max": 2 << 20,
            "ha_restart_priority": "restart",
            "order": 7,
            "driver": "process",
            "driver_config": {"command": "sleep 1"},
        }]),
    );
    let uuid = call2(joiner.agent.http, "VM.get_uuid", json!([sj, vm]));
    join(joiner, master);
    assert_eq!(vm_names(master), ["joiners", "masters"]);
    let r = local_call(master, "VM.get_by_uuid", json!([uuid]));
    let rec = local_call(master, "VM.get_record", json!([r]));
    assert_eq!(rec["name_label"], "joiners");
    assert_eq!(rec["power_state"], "Halted");
    assert_eq!(rec["ha_restart_priority"], "restart");
    assert_eq!(rec["order"], json!(7));
    assert_eq!(rec["memory_static_max"], json!(2 << 20));
    assert_eq!(rec["driver_config"]["command"], "sleep 1");
    wait_for("the joiner's copy", || {
        (vm_names(joiner) == ["joiners", "masters"]).then_some(())
    });
}
