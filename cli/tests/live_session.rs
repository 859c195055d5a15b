//! `xe user-password-change` and `xe event-wait` against the real agent:
//! the password flow over TLS (wrong old password: exit 6, nothing
//! changed), and event-wait's three outcomes (reached at once, reached
//! later while it waits in `event.from`, timed out: exit 9) and its usage
//! errors (exit 1).

mod live_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live_support::{Agent, PASSWORD};

#[test]
fn user_password_change_over_tls() {
    let agent = Agent::start();
    let host = agent.https.ip().to_string();
    let port = agent.https.port().to_string();
    let over_tls = |pw: &str, extra: &[&str]| {
        let mut args = vec!["-s", &host, "-p", &port, "-pw", pw, "--trust-new"];
        args.extend_from_slice(extra);
        agent.run(&args)
    };
    let out = over_tls(PASSWORD, &["user-password-change", "old=wrong", "new=n3w"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("Authentication failed"), "{out:?}");
    // Missing new=: a usage error before anything is sent.
    let out = over_tls(PASSWORD, &["user-password-change", "old=x"]);
    assert_eq!(out.code, 1, "{out:?}");

    over_tls(
        PASSWORD,
        &[
            "user-password-change",
            &format!("old={PASSWORD}"),
            "new=n3w",
        ],
    )
    .ok();
    assert_eq!(over_tls(PASSWORD, &["host-list", "--minimal"]).code, 6);
    assert!(!over_tls("n3w", &["host-list", "--minimal"]).ok().is_empty());
    // The password file the helper wrote still holds the first password.
    let pwf = agent.password_file();
    let out = agent.run(&[
        "-s",
        &host,
        "-p",
        &port,
        "-pwf",
        pwf.to_str().unwrap(),
        "host-list",
    ]);
    assert_eq!(out.code, 6, "{out:?}");
}

#[test]
fn event_wait_reaches_waits_and_times_out() {
    let agent = Agent::start();
    let vm = agent.xe(&["vm-create", "name-label=before"]).ok();
    let uuid = format!("uuid={}", vm.trim());

    // Reached at once (the first event.from returns every VM).
    agent
        .xe(&["event-wait", "class=vm", &uuid, "name-label=before"])
        .ok();
    // "Not equal": not reached; timed out.
    let out = agent.xe(&[
        "event-wait",
        "class=vm",
        &uuid,
        "name-label=/=before",
        "timeout=1",
    ]);
    assert_eq!(out.code, 9, "{out:?}");
    assert!(out.stderr.contains("within 1 s"), "{out:?}");

    // Reached later: event-wait blocks in event.from until the change.
    let socket = agent.unix.to_str().unwrap().to_owned();
    let mut waiter = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args([
            "--socket",
            &socket,
            "event-wait",
            "class=vm",
            &uuid,
            "name-label=after",
            "timeout=120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(waiter.try_wait().unwrap().is_none());
    agent.xe(&["vm-param-set", &uuid, "name-label=after"]).ok();
    let deadline = Instant::now() + Duration::from_secs(100);
    let status = loop {
        if let Some(s) = waiter.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "event-wait did not return");
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = waiter.wait_with_output().unwrap();
    assert!(status.success(), "{status:?} {out:?}");

    // Usage errors: exit 1, nothing sent.
    for bad in [
        vec!["event-wait", "class=nope"],
        vec!["event-wait", "class=vm", "no-such-field=1"],
        vec!["event-wait", "class=vm", "timeout=soon"],
        vec!["event-wait", &uuid],
    ] {
        let out = agent.xe(&bad);
        assert_eq!(out.code, 1, "{bad:?}: {out:?}");
    }
}
