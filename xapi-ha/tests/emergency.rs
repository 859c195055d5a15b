//! The emergency runbook on real agents (docs/operations.md, "Emergency
//! runbook"), driven with the real `xe`:
//!
//! - a 2-host pool whose master agent is stopped: the member goes into
//!   emergency mode (`host-is-in-emergency-mode` true; logins and normal
//!   calls get `HOST_STILL_BOOTING`); `pool-emergency-transition-to-master`
//!   makes it the master in place (it answers `vm-list`); the old master,
//!   back as a master of its own, is brought in with `pool-recover-slaves`
//!   and follows the new master's database; `pool-emergency-reset-master`
//!   then points the new master back at the old one;
//! - HA enabled on one host: `host-emergency-ha-disable` is refused without
//!   `--force`; `pool-emergency-*` get `HA_IS_ENABLED` while armed;
//!   `soft=true` stops `xhad` but keeps the host armed, so the restarted
//!   agent is in emergency mode (`HA_HEARTBEAT_DAEMON_STARTUP_FAILED`);
//!   `--force` then clears the armed flag, and the host answers again
//!   with HA off and its database kept.
//!
//! The helpers ([`Xe`], [`stop_master`], [`wait_emergency`]) are meant for
//! the runbook tests with HA on several hosts.

mod api_support;
mod ha_support;
mod pool_support;

use std::process::{Command, Output};

use api_support::{Agent, PASSWORD, USER, call2, fail2};
use pool_support::{
    Host, join, local_call, local_session, pool_conf, session, start_hosts, try_local_call,
    wait_for, xe_binary,
};
use serde_json::json;

/// `xe` against one host over TLS, remembering certificates in a file of
/// the test's own.
struct Xe {
    known: tempfile::NamedTempFile,
}

impl Xe {
    fn new() -> Xe {
        Xe {
            known: tempfile::NamedTempFile::new().expect("known hosts"),
        }
    }

    fn run(&self, address: &str, port: u16, args: &[&str]) -> Output {
        let out = Command::new(xe_binary())
            .args([
                "-s",
                address,
                "-p",
                &port.to_string(),
                "-u",
                USER,
                "-pw",
                PASSWORD,
            ])
            .arg("--trust-new")
            .args(args)
            .env("XE_KNOWN_HOSTS", self.known.path())
            .output()
            .expect("run xe");
        eprintln!(
            "xe {args:?} on {address}: {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and requires success; the standard output.
    fn ok(&self, address: &str, port: u16, args: &[&str]) -> String {
        let out = self.run(address, port, args);
        assert!(out.status.success(), "xe {args:?} failed: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs and requires failure; the standard error.
    fn fails(&self, address: &str, port: u16, args: &[&str]) -> String {
        let out = self.run(address, port, args);
        assert!(!out.status.success(), "xe {args:?} succeeded: {out:?}");
        String::from_utf8(out.stderr).expect("utf-8")
    }
}

/// Stops `h`'s agent (SIGTERM); its data directory, for a restart.
fn stop_master(h: Host) -> (tempfile::TempDir, String, String) {
    let Host {
        agent,
        address,
        uuid,
    } = h;
    let (dir, _, _) = agent.terminate();
    (dir, address, uuid)
}

/// Waits until `h` says it is (or is not) in emergency mode.
fn wait_emergency(h: &Host, want: bool) {
    wait_for("the emergency mode to change", || {
        (local_call(h, "host.is_in_emergency_mode", json!([])) == json!(want)).then_some(())
    });
}

fn login_error(h: &Host) -> Vec<String> {
    fail2(
        h.agent.http,
        "session.login_with_password",
        json!([USER, PASSWORD, "1.0", "test"]),
    )
}

fn create_vm(h: &Host, name: &str) -> String {
    let s = session(h);
    let r = call2(
        h.agent.http,
        "VM.create",
        json!([s, {"name_label": name, "memory_static_max": 1 << 20}]),
    );
    call2(h.agent.http, "VM.get_uuid", json!([s, r]))
        .as_str()
        .expect("uuid")
        .to_owned()
}

/// Waits until `h`'s copy of the database holds the VM called `name`.
fn wait_copy_has(h: &Host, name: &str) {
    wait_for(&format!("{name} in the copy of {}", h.address), || {
        let v = try_local_call(h, "VM.get_by_name_label", json!([name]))?;
        (v.as_array().map(Vec::len) == Some(1)).then_some(())
    });
}

#[test]
fn a_member_cut_off_from_its_master_takes_over_and_recovers_it() {
    let pool = start_hosts(2);
    let port = pool.port;
    let mut hosts = pool.hosts;
    let b = hosts.pop().expect("host 2");
    let a = hosts.pop().expect("host 1");
    join(&b, &a);
    let xe = Xe::new();
    assert_eq!(
        xe.ok(&b.address, port, &["host-is-in-emergency-mode"]),
        "false\n"
    );
    create_vm(&a, "before");
    wait_copy_has(&b, "before");

    // The master's agent stops: the member is cut off.
    let (a_dir, a_address, a_uuid) = stop_master(a);
    let started = std::time::Instant::now();
    wait_emergency(&b, true);
    eprintln!("emergency mode after {:?}", started.elapsed());
    assert_eq!(
        xe.ok(&b.address, port, &["host-is-in-emergency-mode"]),
        "true\n"
    );
    assert_eq!(login_error(&b), ["HOST_STILL_BOOTING"]);
    let ls = local_session(&b);
    assert_eq!(
        fail2(b.agent.http, "VM.get_all", json!([ls])),
        ["HOST_STILL_BOOTING"]
    );
    let err = xe.fails(&b.address, port, &["vm-list"]);
    assert!(err.contains("The host is still booting."), "{err}");

    // The member becomes the master, in place.
    let out = xe.ok(&b.address, port, &["pool-emergency-transition-to-master"]);
    assert_eq!(out, "Host agent transitioned to master.\n");
    assert_eq!(pool_conf(&b), "master\n");
    assert_eq!(
        local_call(&b, "host.is_in_emergency_mode", json!([])),
        json!(false)
    );
    let listed = xe.ok(
        &b.address,
        port,
        &["vm-list", "name-label=before", "--minimal"],
    );
    assert_eq!(listed.trim().len(), 36, "{listed}");
    let out = xe.ok(&b.address, port, &["pool-emergency-transition-to-master"]);
    assert_eq!(
        out,
        "Host agent is already master. Use '--force' to execute the operation anyway.\n"
    );
    let s = session(&b);
    let p = call2(b.agent.http, "pool.get_all", json!([s]))[0].clone();
    let me = call2(b.agent.http, "host.get_by_uuid", json!([s, b.uuid]));
    assert_eq!(call2(b.agent.http, "pool.get_master", json!([s, p])), me);

    // The old master comes back, still a master of its own.
    let a = Host {
        agent: Agent::restart(a_dir),
        address: a_address,
        uuid: a_uuid,
    };
    assert_eq!(pool_conf(&a), "master\n");
    let out = xe.ok(&b.address, port, &["pool-recover-slaves"]);
    assert_eq!(out, format!("{}\n", a.uuid));
    assert_eq!(pool_conf(&a), format!("slave:{}\n", b.address));
    assert_eq!(login_error(&a), ["HOST_IS_SLAVE", b.address.as_str()]);
    create_vm(&b, "after");
    wait_copy_has(&a, "after");

    // And back: the old master takes over again, the other host is reset
    // to follow it.
    let out = xe.ok(&a.address, port, &["pool-emergency-transition-to-master"]);
    assert_eq!(out, "Host agent transitioned to master.\n");
    let arg = format!("master-address={}", a.address);
    let out = xe.ok(&b.address, port, &["pool-emergency-reset-master", &arg]);
    assert_eq!(
        out,
        format!("Host agent is now a slave of {}.\n", a.address)
    );
    assert_eq!(pool_conf(&b), format!("slave:{}\n", a.address));
    assert_eq!(login_error(&b), ["HOST_IS_SLAVE", a.address.as_str()]);
    create_vm(&a, "back");
    wait_copy_has(&b, "back");
    wait_copy_has(&b, "after");
    assert_eq!(
        local_call(&b, "host.is_in_emergency_mode", json!([])),
        json!(false)
    );

    // Bad input changes nothing.
    let err = xe.fails(&b.address, port, &["pool-emergency-reset-master"]);
    assert!(err.contains("master-address="), "{err}");
    let ls = local_session(&b);
    assert_eq!(
        fail2(
            b.agent.http,
            "pool.emergency_reset_master",
            json!([ls, "no such host.invalid"])
        ),
        ["INVALID_VALUE", "master_address", "no such host.invalid"]
    );
    assert_eq!(pool_conf(&b), format!("slave:{}\n", a.address));
}

#[test]
fn emergency_ha_disable_on_an_armed_host() {
    let a = ha_support::ha_agent();
    let p = ha_support::pool(&a);
    call2(a.http, "pool.set_name_label", json!([p.s, p.pool, "kept"]));
    let daemons = ha_support::enable_ha(&a, &p);
    let xhad_dir = a.dir.path().join("xhad");
    let xhad = ha_support::pid_in(&xhad_dir.join("xhad.pid")).expect("xhad pid");
    let supervisor = ha_support::pid_in(&xhad_dir.join("supervisor.pid")).expect("pid");
    let state = a.dir.path().join("data/ha-state.toml");
    let address = a.https.ip().to_string();
    let port = a.https.port();
    let xe = Xe::new();

    // While armed: the role changes are refused, the disable needs --force.
    let err = xe.fails(
        &address,
        port,
        &["pool-emergency-transition-to-master", "--force"],
    );
    assert!(err.contains("HA is enabled"), "{err}");
    let err = xe.fails(
        &address,
        port,
        &["pool-emergency-reset-master", "master-address=127.0.0.1"],
    );
    assert!(err.contains("HA is enabled"), "{err}");
    let refused = xe.run(&address, port, &["host-emergency-ha-disable"]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("This operation is dangerous and may cause data loss. This operation must be forced (use --force)."),
        "{err}"
    );
    assert!(ha_support::alive(xhad) && state.exists());

    // soft: xhad stops, the host stays armed.
    xe.ok(
        &address,
        port,
        &["host-emergency-ha-disable", "--force", "soft=true"],
    );
    ha_support::wait_gone(xhad);
    ha_support::wait_gone(supervisor);
    assert!(state.exists());
    let err = xe.fails(
        &address,
        port,
        &["pool-emergency-transition-to-master", "--force"],
    );
    assert!(err.contains("HA is enabled"), "{err}");

    // Restarted armed without its daemon: emergency mode.
    let a = a.kill9_and_restart();
    let address = a.https.ip().to_string();
    let port = a.https.port();
    assert_eq!(
        xe.ok(&address, port, &["host-is-in-emergency-mode"]),
        "true\n"
    );
    assert_eq!(
        fail2(
            a.http,
            "session.login_with_password",
            json!([USER, PASSWORD])
        ),
        ["HA_HEARTBEAT_DAEMON_STARTUP_FAILED"]
    );
    let err = xe.fails(&address, port, &["vm-list"]);
    assert!(err.contains("the HA daemon failed to start"), "{err}");

    // --force clears the armed flag: HA off, the database kept.
    xe.ok(&address, port, &["host-emergency-ha-disable", "--force"]);
    assert!(!state.exists());
    assert_eq!(
        xe.ok(&address, port, &["host-is-in-emergency-mode"]),
        "false\n"
    );
    let s = api_support::login(a.http);
    assert_eq!(
        call2(a.http, "pool.get_ha_enabled", json!([s, p.pool])),
        json!(false)
    );
    assert_eq!(
        call2(a.http, "pool.get_name_label", json!([s, p.pool])),
        json!("kept")
    );
    let err = xe.fails(&address, port, &["host-emergency-ha-disable", "--force"]);
    assert!(err.contains("HA_NOT_ENABLED"), "{err}");
    xe.ok(
        &address,
        port,
        &["host-emergency-ha-disable", "--force", "soft=true"],
    );

    // After a restart too, it stays off and answers.
    let a = a.kill9_and_restart();
    let s = api_support::login(a.http);
    assert_eq!(
        call2(a.http, "pool.get_ha_enabled", json!([s, p.pool])),
        json!(false)
    );
    assert_eq!(
        call2(a.http, "pool.get_name_label", json!([s, p.pool])),
        json!("kept")
    );
    drop(daemons);
}
