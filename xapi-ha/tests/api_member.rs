//! A member (role file `slave:<master>`) answers a normal login, and a call
//! on a pool session, with `HOST_IS_SLAVE [master address]`, as the real
//! clients expect (they then reconnect to the master); an emergency
//! `slave_local_login_with_password` session works on it. Checked with
//! JSON-RPC and with the official XenAPI package.

mod api_support;

use std::process::Command;

use api_support::{Agent, PASSWORD, USER, call2, fail2, python_with_xenapi};
use serde_json::json;

/// The member's master: its own address (emerg: a member probes its
/// master's API and is in emergency mode when that goes unanswered, so the
/// master named must answer; this agent answers its own probe, and no
/// packet leaves loopback).
const MASTER: &str = "127.0.0.1";

fn member() -> Agent {
    // A master first (so the database holds this host), then made a member.
    let (dir, code, _) = Agent::start().terminate();
    assert_eq!(code, Some(0));
    std::fs::write(
        dir.path().join("data/pool.conf"),
        format!("slave:{MASTER}\n"),
    )
    .unwrap();
    Agent::restart(dir)
}

#[test]
fn member_redirects_logins_and_serves_local_sessions() {
    let agent = member();
    let a = agent.http;
    assert_eq!(
        fail2(a, "session.login_with_password", json!([USER, PASSWORD])),
        ["HOST_IS_SLAVE", MASTER]
    );
    let local = call2(
        a,
        "session.slave_local_login_with_password",
        json!([USER, PASSWORD]),
    );
    let local = local.as_str().unwrap();
    assert_eq!(
        call2(a, "pool.get_all", json!([local]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A local session ends with local_logout, not logout.
    assert_eq!(
        fail2(a, "session.logout", json!([local]))[0],
        "SESSION_INVALID"
    );
    call2(a, "session.local_logout", json!([local]));
    assert_eq!(
        fail2(a, "pool.get_all", json!([local])),
        ["SESSION_INVALID", local]
    );
    assert_eq!(
        fail2(
            a,
            "session.slave_local_login_with_password",
            json!([USER, "wrong"])
        )[0],
        "SESSION_AUTHENTICATION_FAILED"
    );
}

#[test]
fn xenapi_package_sees_host_is_slave() {
    let python = match python_with_xenapi() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let agent = member();
    let script = format!(
        r#"
import XenAPI
s = XenAPI.Session("http://{}/")
try:
    s.login_with_password("{USER}", "{PASSWORD}", "1.0", "test")
    print("logged in")
except XenAPI.Failure as f:
    print("details", f.details)
"#,
        agent.http
    );
    let out = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!("details ['HOST_IS_SLAVE', '{MASTER}']")
    );
}
