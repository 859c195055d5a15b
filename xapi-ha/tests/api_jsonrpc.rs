//! JSON-RPC 1.0 and 2.0 on `POST /jsonrpc` against the real agent, with a
//! plain HTTP client: the calls the Python test makes, the per-version
//! result and error shapes, sessions shared between encodings and
//! listeners (the Unix socket too), and `event.from` waiting server-side.

mod api_support;

use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use api_support::{Agent, call2, fail2, jsonrpc, login, post, read_response};
use serde_json::json;

#[test]
fn json_rpc_2_calls_and_error_shapes() {
    let agent = Agent::start();
    let a = agent.http;
    let s = login(a);
    let pools = call2(a, "pool.get_all_records", json!([s]));
    let pool = pools.as_object().unwrap().values().next().unwrap().clone();
    let hosts = call2(a, "host.get_all_records", json!([s]));
    assert!(
        hosts.get(pool["master"].as_str().unwrap()).is_some(),
        "{pools} {hosts}"
    );

    let vm = call2(
        a,
        "VM.create",
        json!([s, {"name_label": "j", "memory_static_max": 1073741824}]),
    );
    let vm = vm.as_str().unwrap();
    call2(
        a,
        "VM.set_ha_restart_priority",
        json!([s, vm, "best-effort"]),
    );
    call2(a, "VM.set_order", json!([s, vm, 7]));
    let rec = call2(a, "VM.get_record", json!([s, vm]));
    // JSON carries integers as numbers (XML-RPC as bare text).
    assert_eq!(rec["order"], json!(7));
    assert_eq!(rec["ha_restart_priority"], "best-effort");
    assert_eq!(rec["memory_static_max"], json!(1_073_741_824_i64));

    let bogus = "OpaqueRef:00000000-0000-0000-0000-000000000001";
    let (_, v) = jsonrpc(
        a,
        &json!({"jsonrpc": "2.0", "method": "VM.get_record", "params": [s, bogus], "id": "q"}),
    );
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["id"], "q");
    assert_eq!(v["error"]["code"], 1);
    assert_eq!(v["error"]["message"], "HANDLE_INVALID");
    assert!(
        v["error"]["data"]
            .as_array()
            .unwrap()
            .contains(&json!(bogus)),
        "{v}"
    );
    assert!(v.get("result").is_none());

    assert_eq!(
        fail2(a, "VM.no_such", json!([s])),
        ["MESSAGE_METHOD_UNKNOWN", "VM.no_such"]
    );
    assert_eq!(
        fail2(a, "VM.set_order", json!([s, vm]))[0],
        "MESSAGE_PARAMETER_COUNT_MISMATCH"
    );
    assert_eq!(call2(a, "VM.get_order", json!([s, vm])), json!(7));

    call2(a, "session.logout", json!([s]));
    assert_eq!(
        fail2(a, "VM.get_all", json!([s])),
        ["SESSION_INVALID", s.as_str()]
    );
}

#[test]
fn json_rpc_1_shapes() {
    let agent = Agent::start();
    let a = agent.http;
    let (_, v) = jsonrpc(
        a,
        &json!({"method": "session.login_with_password", "params": ["root", "correct horse"], "id": 5}),
    );
    assert_eq!(v["error"], json!(null));
    assert_eq!(v["id"], 5);
    let s = v["result"].as_str().unwrap().to_owned();
    let (_, v) = jsonrpc(a, &json!({"method": "VM.get_all", "params": [s], "id": 6}));
    assert_eq!(v, json!({"result": [], "error": null, "id": 6}));
    let (_, v) = jsonrpc(
        a,
        &json!({"method": "VM.get_record", "params": [s, "OpaqueRef:NULL"], "id": 7}),
    );
    assert_eq!(v["result"], json!(null));
    assert_eq!(v["error"][0], "HANDLE_INVALID");
    let (_, v) = jsonrpc(
        a,
        &json!({"method": "session.login_with_password", "params": ["root", "nope"], "id": 8}),
    );
    assert_eq!(v["error"][0], "SESSION_AUTHENTICATION_FAILED");
}

#[test]
fn sessions_are_shared_by_encodings_and_listeners() {
    let agent = Agent::start();
    let s = login(agent.http);
    // The same session over XML-RPC.
    let xml = format!(
        "<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params><param><value><string>{s}</string></value></param></params></methodCall>"
    );
    let r = post(agent.http, "/RPC2", "text/xml", xml.as_bytes());
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .to_ascii_lowercase()
            .contains("content-type: text/xml"),
        "{r:?}"
    );
    assert!(r.body.contains("<value>Success</value>"), "{r:?}");
    // ... and over the Unix socket, which is root-only.
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&agent.unix).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut u = UnixStream::connect(&agent.unix).unwrap();
    let body =
        json!({"jsonrpc": "2.0", "method": "pool.get_all", "params": [s], "id": 1}).to_string();
    write!(
        u,
        "POST /jsonrpc HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let r = read_response(&mut u);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["result"].as_array().map(Vec::len), Some(1), "{v}");
}

#[test]
fn event_from_waits_for_a_change_and_times_out_empty() {
    let agent = Agent::start();
    let a = agent.http;
    let s = login(a);
    let first = call2(a, "event.from", json!([s, ["vm", "pool"], "", 0.0]));
    let token = first["token"].as_str().unwrap().to_owned();
    assert!(
        first["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["class"] == "pool" && e["operation"] == "add")
    );

    // Nothing changes: an empty batch after about the timeout.
    let t0 = Instant::now();
    let quiet = call2(a, "event.from", json!([s, ["vm"], token, 1.0]));
    assert!(quiet["events"].as_array().unwrap().is_empty(), "{quiet}");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "returned after {:?}",
        t0.elapsed()
    );

    // A waiting event.from returns when another client makes a VM.
    let waiter = {
        let (s, token) = (s.clone(), token.clone());
        std::thread::spawn(move || call2(a, "event.from", json!([s, ["vm"], token, 60.0])))
    };
    std::thread::sleep(Duration::from_millis(300));
    let t1 = Instant::now();
    let vm = call2(a, "VM.create", json!([s, {"name_label": "ev"}]));
    let got = waiter.join().unwrap();
    assert!(
        t1.elapsed() < Duration::from_secs(30),
        "the waiter was not woken"
    );
    let events = got["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["ref"] == vm
            && e["operation"] == "add"
            && e["snapshot"]["name_label"] == "ev"),
        "{got}"
    );
    assert!(got["token"].as_str().unwrap() > token.as_str());
}

/// One JSON-RPC 2.0 call over the Unix socket.
fn unix_call(path: &std::path::Path, method: &str, params: serde_json::Value) -> serde_json::Value {
    let mut u = UnixStream::connect(path).unwrap();
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string();
    write!(
        u,
        "POST /jsonrpc HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    serde_json::from_str(&read_response(&mut u).body).unwrap()
}

#[test]
fn root_on_the_unix_socket_logs_in_without_a_password() {
    if !nix::unistd::geteuid().is_root() {
        println!("SKIPPED: needs root (the password-less login is for a root peer on the socket)");
        return;
    }
    let agent = Agent::start();
    let v = unix_call(
        &agent.unix,
        "session.login_with_password",
        json!(["root", "", "1.0", "xe"]),
    );
    let s = v["result"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_owned();
    let v = unix_call(&agent.unix, "VM.get_all", json!([s]));
    assert_eq!(v["result"], json!([]), "{v}");
    // The session works over TCP too; over TCP the password is checked.
    assert_eq!(call2(agent.http, "VM.get_all", json!([s])), json!([]));
    assert_eq!(
        fail2(
            agent.http,
            "session.login_with_password",
            json!(["root", ""])
        )[0],
        "SESSION_AUTHENTICATION_FAILED"
    );
}

#[test]
fn sr_create_file_labels_the_directory_and_refuses_foreign_data() {
    let agent = Agent::start();
    let a = agent.http;
    let s = login(a);
    let host = call2(a, "host.get_all", json!([s]))[0].clone();
    let sr_dir = tempfile::tempdir().unwrap();
    let path = sr_dir.path().display().to_string();
    let sr = call2(
        a,
        "SR.create",
        json!([s, host, {"path": path}, 0, "sr1", "", "file", "", true, {}]),
    );
    assert_eq!(call2(a, "SR.get_type", json!([s, sr])), "file");
    assert!(sr_dir.path().join(".xapi-ha-sr").exists());
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join("someone-elses.img"), b"data").unwrap();
    let e = fail2(
        a,
        "SR.create",
        json!([s, host, {"path": foreign.path()}, 0, "sr2", "", "file", "", true, {}]),
    );
    assert_eq!(e[0], "SR_DEVICE_IN_USE", "{e:?}");
    assert_eq!(
        call2(a, "SR.get_all", json!([s])).as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn cors_preflight() {
    let agent = Agent::start();
    for path in ["/", "/jsonrpc"] {
        let mut c = std::net::TcpStream::connect(agent.http).unwrap();
        write!(
            c,
            "OPTIONS {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let r = read_response(&mut c);
        assert_eq!(r.status, 200, "{r:?}");
        let h = r.headers.to_ascii_lowercase();
        assert!(
            h.contains("access-control-allow-origin: *")
                && h.contains("access-control-allow-methods: post, options"),
            "{r:?}"
        );
    }
}
