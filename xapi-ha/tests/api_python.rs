//! The official `XenAPI` Python package (PyPI) drives a running agent over
//! XML-RPC (tests/python/xenapi_client.py): login, pool and host records,
//! VM.create, VM.set_ha_restart_priority, VM.set_order, reading back,
//! error codes in `Failure.details`, SESSION_INVALID after logout. Over
//! plain HTTP on loopback (`POST /`) and over TLS (`POST /RPC2` as
//! Python's xmlrpc sends it for a URL without a path).

mod api_support;

use std::process::Command;

use api_support::{Agent, PASSWORD, USER, python_with_xenapi};

fn run_client(url: &str) {
    let python = match python_with_xenapi() {
        Ok(p) => p,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/xenapi_client.py");
    let out = Command::new(&python)
        .args([script, url, USER, PASSWORD])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    println!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the XenAPI client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));
}

#[test]
fn xenapi_package_over_plain_http() {
    let agent = Agent::start();
    run_client(&format!("http://{}/", agent.http));
}

#[test]
fn xenapi_package_over_tls() {
    let agent = Agent::start();
    run_client(&format!("https://{}", agent.https));
}
