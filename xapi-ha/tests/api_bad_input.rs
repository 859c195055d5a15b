//! Bad input against the real agent: malformed XML and JSON, a body over
//! the limit, non-UTF-8, unknown methods, wrong arity, wrong types, unknown
//! references, a thousand concurrent clients, clients that send one byte a
//! second. Each gets the documented answer (docs/api.md), changes nothing
//! (the database generation stays), and the agent keeps answering others.

mod api_support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use api_support::{Agent, call2, fail2, jsonrpc, login, post};
use serde_json::json;

/// Short limits, so the slow-client tests finish quickly.
const LIMITS: &str = "max_body_bytes = 4096\nheader_timeout_s = 2\nbody_timeout_s = 2\n";

fn generation(a: SocketAddr, s: &str) -> serde_json::Value {
    call2(a, "event.get_current_id", json!([s]))
}

fn xml_call(method: &str, params: &str) -> String {
    format!(
        "<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
    )
}

#[test]
fn malformed_bodies_get_400_and_change_nothing() {
    let agent = Agent::start_with(LIMITS);
    let a = agent.http;
    let s = login(a);
    let before = generation(a, &s);

    for body in [
        &b"<methodCall><methodName>VM.get_all"[..],
        b"not xml at all",
        b"<methodCall/>",
        b"",
    ] {
        let r = post(a, "/", "text/xml", body);
        assert_eq!(r.status, 400, "{r:?}");
        assert!(
            r.body.contains("<value>Failure</value>")
                && r.body.contains("XMLRPC_UNMARSHAL_FAILURE"),
            "{r:?}"
        );
    }
    for body in [
        &b"{"[..],
        b"[]",
        br#"{"method":"VM.get_all","params":[]}"#,
        br#"{"jsonrpc":"3","method":"m","id":1}"#,
    ] {
        let r = post(a, "/jsonrpc", "application/json", body);
        assert_eq!(r.status, 400, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["message"], "JSONRPC_UNMARSHAL_FAILURE", "{v}");
        assert_eq!(v["id"], json!(null));
    }
    // Non-UTF-8, in XML and in JSON: xapi's INVALID_VALUE.
    let mut bad = xml_call(
        "VM.set_name_label",
        &format!("<param><value>{s}</value></param><param><value>x"),
    )
    .into_bytes();
    bad.extend_from_slice(b"\xff\xfe</value></param>");
    bad.extend_from_slice(b"</params></methodCall>");
    let r = post(a, "/", "text/xml", &bad);
    assert!(
        r.body.contains("INVALID_VALUE") && r.body.contains("Invalid UTF-8 string in parameter"),
        "{r:?}"
    );
    let r = post(
        a,
        "/jsonrpc",
        "application/json",
        b"{\"method\":\"VM.get_all\",\"params\":[\"\xff\"],\"id\":1}",
    );
    assert!(r.body.contains("INVALID_VALUE"), "{r:?}");
    // Over the body limit: 413, the limit named.
    let big = xml_call(
        "VM.get_all",
        &format!("<param><value>{}</value></param>", "a".repeat(10_000)),
    );
    let r = post(a, "/", "text/xml", big.as_bytes());
    assert_eq!(r.status, 413, "{r:?}");
    assert!(
        r.body.contains("REQUEST_BODY_TOO_LARGE") && r.body.contains("4096"),
        "{r:?}"
    );

    assert_eq!(
        generation(a, &s),
        before,
        "a refused request changed the database"
    );
}

#[test]
fn refused_calls_get_xapi_errors_and_change_nothing() {
    let agent = Agent::start_with(LIMITS);
    let a = agent.http;
    let s = login(a);
    let vm = call2(a, "VM.create", json!([s, {"name_label": "keep"}]));
    let vm = vm.as_str().unwrap();
    let before = generation(a, &s);
    let bogus = "OpaqueRef:00000000-0000-0000-0000-000000000002";
    assert_eq!(
        fail2(a, "VM.frobnicate", json!([s, vm])),
        ["MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"]
    );
    assert_eq!(
        fail2(a, "VM.set_order", json!([s, vm, 1, 2]))[0],
        "MESSAGE_PARAMETER_COUNT_MISMATCH"
    );
    assert_eq!(
        fail2(a, "session.login_with_password", json!(["root"]))[0],
        "MESSAGE_PARAMETER_COUNT_MISMATCH"
    );
    let e = fail2(a, "VM.set_order", json!([s, vm, {"not": "an int"}]));
    assert!(
        e[0] == "FIELD_TYPE_ERROR" || e[0] == "INVALID_VALUE",
        "{e:?}"
    );
    let e = fail2(a, "VM.set_name_label", json!([s, vm, 5]));
    assert!(
        e[0] == "FIELD_TYPE_ERROR" || e[0] == "INVALID_VALUE",
        "{e:?}"
    );
    assert_eq!(
        fail2(a, "VM.set_name_label", json!([s, bogus, "x"]))[0],
        "HANDLE_INVALID"
    );
    assert_eq!(
        fail2(a, "VM.destroy", json!([s, "not a ref"]))[0],
        "HANDLE_INVALID"
    );
    assert_eq!(
        fail2(a, "VM.get_all", json!(["OpaqueRef:forged"])),
        ["SESSION_INVALID", "OpaqueRef:forged"]
    );
    assert_eq!(fail2(a, "VM.get_all", json!([]))[0], "SESSION_INVALID");
    assert_eq!(generation(a, &s), before);
    assert_eq!(call2(a, "VM.get_name_label", json!([s, vm])), "keep");
}

#[test]
fn a_thousand_concurrent_clients_are_all_answered() {
    let mut agent = Agent::start();
    let a = agent.http;
    let s = login(a);
    // Open a thousand connections and send half of each request first, so
    // all are in flight at once; then finish them and read every answer.
    let body =
        json!({"jsonrpc": "2.0", "method": "pool.get_all", "params": [s], "id": 1}).to_string();
    let head = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut c = TcpStream::connect(a).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(first.as_bytes()).unwrap();
            c
        })
        .collect();
    let t0 = Instant::now();
    for c in &mut conns {
        c.write_all(rest.as_bytes()).unwrap();
    }
    let mut ok = 0;
    for c in &mut conns {
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        if reply.starts_with("HTTP/1.1 200") && reply.contains("OpaqueRef:") {
            ok += 1;
        }
    }
    println!("1000 concurrent clients answered in {:?}", t0.elapsed());
    assert_eq!(ok, 1000);
    assert!(agent.alive());
}

#[test]
fn slow_clients_are_cut_off_and_do_not_starve_others() {
    let agent = Agent::start_with(LIMITS);
    let a = agent.http;
    let s = login(a);
    // A client sending its request head one byte a second, and one sending
    // its body one byte a second, and one that sends nothing at all.
    let slow_head = std::thread::spawn(move || {
        trickle(
            a,
            b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
        )
    });
    let slow_body = std::thread::spawn(move || {
        let mut c = TcpStream::connect(a).unwrap();
        c.write_all(b"POST /jsonrpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
            .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        for b in b"{\"method\"".iter() {
            if c.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut reply = String::new();
        let _ = c.read_to_string(&mut reply);
        reply
    });
    let mut idle = TcpStream::connect(a).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();

    // Meanwhile others are answered at once.
    for _ in 0..5 {
        let t = Instant::now();
        call2(a, "pool.get_all", json!([s]));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "a normal call took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (closed_after, _) = slow_head.join().unwrap();
    assert!(
        closed_after < Duration::from_secs(20),
        "the slow head was not cut off ({closed_after:?})"
    );
    let reply = slow_body.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("REQUEST_BODY_TIMEOUT"), "{reply}");
    // The idle connection is closed by the header timeout.
    let t = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(
        idle.read(&mut buf).ok(),
        Some(0),
        "the idle connection was not closed"
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    let (_, v) = jsonrpc(
        a,
        &json!({"jsonrpc": "2.0", "method": "pool.get_all", "params": [s], "id": 2}),
    );
    assert!(v.get("result").is_some());
}

/// Sends `bytes` one a second until the server closes; how long that took.
fn trickle(a: SocketAddr, bytes: &[u8]) -> (Duration, usize) {
    let t = Instant::now();
    let mut c = TcpStream::connect(a).unwrap();
    let mut sent = 0;
    for b in bytes {
        if c.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        std::thread::sleep(Duration::from_secs(1));
        // A closed connection shows as EOF on a non-blocking peek.
        c.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        let closed =
            matches!(c.read(&mut buf), Ok(0)) || matches!(c.read(&mut buf), Ok(n) if n > 0);
        c.set_nonblocking(false).unwrap();
        if closed {
            break;
        }
    }
    (t.elapsed(), sent)
}

#[test]
fn the_connection_limit_holds_and_frees() {
    let agent =
        Agent::start_with("max_connections = 3\nheader_timeout_s = 2\nbody_timeout_s = 2\n");
    let a = agent.http;
    let s = login(a);
    // Three idle connections take every slot; a fourth client waits until
    // the header timeout frees them, then is answered.
    let idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(a).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    call2(a, "pool.get_all", json!([s]));
    let waited = t.elapsed();
    println!("the fourth client waited {waited:?}");
    assert!(waited < Duration::from_secs(30));
    drop(idle);
}
