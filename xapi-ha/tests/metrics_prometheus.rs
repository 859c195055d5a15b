//! metrics: a real Prometheus server (Debian's `prometheus`) scrapes a real
//! agent with HA on (a pool of one: `xapi-ha`, `xhad`, `xha-supervisor`)
//! on loopback every second; the series are read back through
//! Prometheus's HTTP API (`/api/v1/query`) and must move when a VM starts.
//! Skips, saying why, when `prometheus` is not installed (.ci/run installs
//! it). Also checks the shipped alerting rules with `promtool`.

mod api_support;
mod web_support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api_support::call2;
use serde_json::{Value, json};
use web_support::{StopVm, agent, enable_ha, get, pool, sleeping_vm, wait_for, which};

const LIMIT: Duration = Duration::from_secs(90);

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start_prometheus(binary: &Path, target: SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: xapi-ha\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .expect("config");
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: dir,
    }
}

/// `query` through Prometheus's HTTP API: the result vector (empty if the
/// server is not up yet or the series does not exist).
fn query(p: &Prometheus, q: &str) -> Vec<Value> {
    let enc: String = q
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let Ok(mut s) = std::net::TcpStream::connect(p.addr) else {
        return Vec::new();
    };
    use std::io::Write as _;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    if write!(
        s,
        "GET /api/v1/query?query={enc} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return Vec::new();
    }
    let r = api_support::read_response(&mut s);
    // Chunked or not, the JSON object is between the first '{' and last '}'.
    let (Some(a), Some(b)) = (r.body.find('{'), r.body.rfind('}')) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&r.body[a..=b]).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The value of a one-element result.
fn scalar(p: &Prometheus, q: &str) -> Option<f64> {
    let r = query(p, q);
    r.first()?["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_the_agent_and_sees_series_move() {
    let Some(binary) = which("prometheus") else {
        eprintln!("skipped: no `prometheus` on PATH (apt-get install prometheus)");
        return;
    };
    let a = agent(true);
    let p = pool(&a);
    let _daemons = enable_ha(&a, &p);
    // The endpoint itself: open, OpenMetrics text.
    let direct = get(a.http, "/metrics", None);
    assert_eq!(direct.status, 200, "{direct:?}");
    assert!(
        direct.headers.contains("application/openmetrics-text"),
        "{}",
        direct.headers
    );
    assert!(direct.body.contains("xha_ha_enabled 1"), "{}", direct.body);

    let prom = start_prometheus(&binary, a.http);
    let up = wait_for("Prometheus to scrape the agent", LIMIT, || {
        scalar(&prom, "up{job=\"xapi-ha\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(up, 1.0);
    // The state series, as Prometheus stored them.
    for (q, want) in [
        ("xha_ha_enabled", 1.0),
        ("xha_liveset_size", 1.0),
        ("xha_hosts", 1.0),
        ("xha_ha_host_failures_to_tolerate", 0.0),
        ("xha_ha_overcommitted", 0.0),
        ("xha_mail_queue_length", 0.0),
    ] {
        let v = wait_for(q, LIMIT, || scalar(&prom, q));
        assert_eq!(v, want, "{q}");
    }
    assert!(wait_for("master epoch", LIMIT, || scalar(&prom, "xha_master_epoch")) >= 1.0);
    let host_live = wait_for("xha_host_live", LIMIT, || {
        let r = query(&prom, "xha_host_live");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(
        host_live[0]["metric"]["name"],
        json!("test-host"),
        "{host_live:?}"
    );
    assert_eq!(host_live[0]["value"][1], json!("1"));
    // xhad's figures: its liveset, its drop counters by reason, its
    // heartbeat latency histogram.
    assert_eq!(
        wait_for("xhad liveset", LIMIT, || scalar(
            &prom,
            "xha_xhad_liveset_size"
        )),
        1.0
    );
    let drops = wait_for("drop counters", LIMIT, || {
        let r = query(&prom, "xha_dropped_packets_total");
        (r.len() >= 10).then_some(r)
    });
    assert!(
        drops
            .iter()
            .any(|d| d["metric"]["reason"] == json!("bad-magic")),
        "{drops:?}"
    );
    let logins = wait_for("API requests", LIMIT, || {
        scalar(
            &prom,
            "xha_api_requests_total{method=\"session.login_with_password\",status=\"success\"}",
        )
    });
    assert!(logins >= 1.0);

    // A change: a VM starts. The running count moves 0 -> 1, and the
    // VM.start call is counted.
    let vm = sleeping_vm(&a, &p, "web");
    let _stop = StopVm {
        agent: &a,
        session: p.s.clone(),
        vm: vm.clone(),
    };
    let halted = wait_for("a halted VM", LIMIT, || {
        scalar(&prom, "xha_vms{power_state=\"Halted\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(halted, 1.0);
    assert_eq!(
        scalar(&prom, "sum(xha_vms{power_state=\"Running\"}) or vector(0)"),
        Some(0.0)
    );
    call2(a.http, "VM.start", json!([p.s, vm, false, false]));
    let running = wait_for("the VM running in Prometheus", LIMIT, || {
        scalar(&prom, "xha_vms{power_state=\"Running\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(running, 1.0);
    let starts = wait_for("VM.start counted", LIMIT, || {
        scalar(
            &prom,
            "xha_api_requests_total{method=\"VM.start\",status=\"success\"}",
        )
    });
    assert_eq!(starts, 1.0);
    // A failing call is counted with its error code.
    let e = api_support::fail2(a.http, "VM.start", json!([p.s, vm, false, false]));
    assert_eq!(e[0], "VM_BAD_POWER_STATE");
    let bad = wait_for("the failure counted", LIMIT, || {
        scalar(
            &prom,
            "xha_api_requests_total{method=\"VM.start\",status=\"VM_BAD_POWER_STATE\"}",
        )
    });
    assert_eq!(bad, 1.0);
    call2(a.http, "VM.hard_shutdown", json!([p.s, vm]));
    let back = wait_for("the VM halted again", LIMIT, || {
        scalar(&prom, "xha_vms{power_state=\"Halted\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(back, 1.0);
    call2(a.http, "pool.disable_ha", json!([p.s]));
    let off = wait_for("HA off in Prometheus", LIMIT, || {
        scalar(&prom, "xha_ha_enabled").filter(|v| *v == 0.0)
    });
    assert_eq!(off, 0.0);
}

fn packaging(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .join("packaging")
        .join(path)
}

#[test]
fn shipped_alert_rules_pass_promtool_and_name_real_series() {
    let rules = packaging("prometheus/xha-alerts.yml");
    let text = std::fs::read_to_string(&rules).expect("rules file");
    // Every series a rule uses is one the agent exports (docs/metrics.md).
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md"))
            .expect("docs/metrics.md");
    let mut used = 0;
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("xha_") {
            used += 1;
            let base = word
                .trim_end_matches("_bucket")
                .trim_end_matches("_count")
                .trim_end_matches("_sum")
                .trim_end_matches("_total");
            assert!(
                docs.contains(&format!("`{base}`")),
                "{word} is used by a rule but not in docs/metrics.md"
            );
        }
    }
    assert!(used >= 5, "the rules use {used} xha_ series");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(packaging("grafana/xha-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6, "{} panels", panels.len());
    for panel in panels {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("expr");
            assert!(expr.contains("xha_"), "{expr}");
        }
    }
    let Some(promtool) = which("promtool") else {
        eprintln!("skipped the promtool check: no `promtool` on PATH (apt-get install prometheus)");
        return;
    };
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
