//! API benchmark over real HTTP: the `xapi-ha` binary with 1,000 VMs,
//! `VM.get_all_records` and a `set_` call, in XML-RPC and JSON-RPC, beside
//! a minimal baseline server (axum, same machine, same client) answering a
//! body of the same size in the same run. One client on one keep-alive
//! connection; prints calls per second, p50 and p99, and the agent's RSS.
//!
//! `cargo bench -p xapi_ha --bench api_http` (figures in docs/api.md).

#[path = "../tests/api_support/mod.rs"]
mod api_support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use api_support::{Agent, call2, login};
use serde_json::json;

const VMS: usize = 1000;

/// One keep-alive connection and a minimal response reader.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(a: SocketAddr) -> Client {
        let s = TcpStream::connect(a).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        }
    }

    /// POSTs `body` and returns the response body's length.
    fn post(&mut self, path: &str, body: &[u8]) -> usize {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: b\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        self.writer.write_all(head.as_bytes()).expect("write");
        self.writer.write_all(body).expect("write");
        let mut len = 0;
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("read");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().expect("length");
            }
        }
        let mut buf = vec![0; len];
        self.reader.read_exact(&mut buf).expect("body");
        len
    }
}

struct Row {
    name: String,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    bytes: usize,
}

fn measure(name: &str, a: SocketAddr, path: &str, body: &[u8], n: usize) -> Row {
    let mut c = Client::connect(a);
    for _ in 0..n / 10 + 1 {
        c.post(path, body);
    }
    let mut times = Vec::with_capacity(n);
    let mut bytes = 0;
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        bytes = c.post(path, body);
        times.push(t.elapsed());
    }
    let total = t0.elapsed();
    times.sort();
    Row {
        name: name.to_owned(),
        per_second: n as f64 / total.as_secs_f64(),
        p50: times[n / 2],
        p99: times[(n * 99) / 100],
        bytes,
    }
}

/// A minimal server answering every POST with `body`: the baseline.
fn baseline(body: String) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().route(
                "/",
                axum::routing::post(move |_b: axum::body::Bytes| {
                    let body = body.clone();
                    async move { body }
                }),
            );
            axum::serve(l, app).await.expect("serve");
        });
    });
    rx.recv().expect("baseline address")
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let agent = Agent::start();
    let a = agent.http;
    let s = login(a);
    let rss_empty = rss_kib(agent.pid());
    let mut vm = String::new();
    for i in 0..VMS {
        let r = call2(
            a,
            "VM.create",
            json!([s, {"name_label": format!("vm-{i}"), "memory_static_max": 1 << 30}]),
        );
        vm = r.as_str().expect("ref").to_owned();
    }
    let xml = |method: &str, params: &[&str]| {
        let p: String = params
            .iter()
            .map(|p| format!("<param><value><string>{p}</string></value></param>"))
            .collect();
        format!("<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{p}</params></methodCall>")
            .into_bytes()
    };
    let jsn = |method: &str, params: serde_json::Value| {
        json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1})
            .to_string()
            .into_bytes()
    };
    let get_xml = xml("VM.get_all_records", &[&s]);
    let get_json = jsn("VM.get_all_records", json!([s]));
    let set_xml = xml("VM.set_name_label", &[&s, &vm, "renamed"]);
    let set_json = jsn("VM.set_name_label", json!([s, vm, "renamed"]));

    let mut rows = vec![
        measure(
            "XML-RPC VM.get_all_records (1,000 VMs)",
            a,
            "/",
            &get_xml,
            100,
        ),
        measure(
            "JSON-RPC VM.get_all_records (1,000 VMs)",
            a,
            "/jsonrpc",
            &get_json,
            100,
        ),
        measure(
            "XML-RPC VM.set_name_label (durable commit)",
            a,
            "/",
            &set_xml,
            300,
        ),
        measure(
            "JSON-RPC VM.set_name_label (durable commit)",
            a,
            "/jsonrpc",
            &set_json,
            300,
        ),
        measure(
            "XML-RPC VM.get_name_label (read, no commit)",
            a,
            "/",
            &xml("VM.get_name_label", &[&s, &vm]),
            1000,
        ),
    ];
    let big = baseline("x".repeat(rows[0].bytes));
    let small = baseline("x".repeat(rows[2].bytes));
    rows.push(measure(
        "baseline: same-size body as XML get_all_records",
        big,
        "/",
        &get_xml,
        100,
    ));
    rows.push(measure(
        "baseline: same-size body as XML set_name_label",
        small,
        "/",
        &set_xml,
        1000,
    ));
    let rss_full = rss_kib(agent.pid());

    println!("| request | calls/s | p50 | p99 | reply bytes |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2?} | {:.2?} | {} |",
            r.name, r.per_second, r.p50, r.p99, r.bytes
        );
    }
    println!();
    println!(
        "agent RSS: {rss_empty} KiB after start, {rss_full} KiB with {VMS} VMs (after the runs)"
    );
}
