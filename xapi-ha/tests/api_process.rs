//! The `xapi-ha` process: `--check`, configuration errors naming the key,
//! the documented exit codes (docs/api.md), a second agent on the same
//! socket refused, SIGTERM a clean stop that removes the socket, and a
//! restart keeping the pool and the TLS identity.

mod api_support;

use std::process::Command;

use api_support::{Agent, call2, config_text, login};
use serde_json::json;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xapi-ha"))
        .args(args)
        .output()
        .expect("run xapi-ha");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_and_configuration_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(dir.path(), "")).unwrap();
    let (code, out, _) = run(&["--config", good.to_str().unwrap(), "--check"]);
    assert_eq!(code, 0);
    assert!(out.contains("ok (host test-host"), "{out}");

    let bad = dir.path().join("bad.toml");
    let text = config_text(dir.path(), "").replace(
        "http_listen = [\"127.0.0.1:0\"]",
        "http_listen = [\"0.0.0.0:0\"]",
    );
    std::fs::write(&bad, text).unwrap();
    let (code, _, err) = run(&["--config", bad.to_str().unwrap(), "--check"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("api.http_listen: 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );

    let (code, _, err) = run(&["--config", "/nonexistent/x.toml", "--check"]);
    assert_eq!(code, 3);
    assert!(err.contains("/nonexistent/x.toml"), "{err}");

    let (code, _, _) = run(&["--no-such-flag"]);
    assert_eq!(code, 2);
}

#[test]
fn a_second_agent_is_refused_and_the_first_keeps_serving() {
    let agent = Agent::start();
    // On the same data directory: refused before it opens the database.
    let config = agent.dir.path().join("xapi-ha.toml");
    let (code, _, err) = run(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("data.dir") && err.contains("another agent uses it"),
        "{err}"
    );
    // On another data directory but the same socket: refused at the bind.
    let other = tempfile::tempdir().unwrap();
    let text = config_text(other.path(), "").replace(
        &format!("{}/run/xapi-ha.sock", other.path().display()),
        agent.unix.to_str().unwrap(),
    );
    let config = other.path().join("xapi-ha.toml");
    std::fs::write(&config, text).unwrap();
    let (code, _, err) = run(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 5, "{err}");
    assert!(
        err.contains("api.unix_socket") && err.contains("another agent"),
        "{err}"
    );
    let s = login(agent.http);
    assert_eq!(
        call2(agent.http, "pool.get_all", json!([s]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn sigterm_stops_cleanly_and_a_restart_keeps_the_pool() {
    let agent = Agent::start();
    let s = login(agent.http);
    let pool = call2(agent.http, "pool.get_all", json!([s]));
    let host = call2(agent.http, "host.get_all", json!([s]))[0].clone();
    let fp =
        call2(agent.http, "host.get_other_config", json!([s, host]))["tls_fingerprint"].clone();
    assert!(fp.is_string());
    call2(agent.http, "VM.create", json!([s, {"name_label": "kept"}]));
    let (dir, code, socket) = agent.terminate();
    assert_eq!(code, Some(0));
    assert!(!socket.exists(), "the socket file was left behind");

    let agent = Agent::restart(dir);
    let s = login(agent.http);
    assert_eq!(call2(agent.http, "pool.get_all", json!([s])), pool);
    assert_eq!(
        call2(agent.http, "host.get_other_config", json!([s, host]))["tls_fingerprint"],
        fp
    );
    assert_eq!(
        call2(agent.http, "VM.get_by_name_label", json!([s, "kept"]))
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}
