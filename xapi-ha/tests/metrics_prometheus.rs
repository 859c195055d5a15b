//! metrics: a real Prometheus server (Debian's `prometheus`) scrapes a real
//! agent with HA on (a pool of one: `xapi-ha`, `xhad`, `xha-supervisor`)
//! on loopback every second; the series are read back through
//! Prometheus's HTTP API (`/api/v1/query`) and must move when a VM starts.
//! ops: then a 3-host HA pool (`pool_support::ha`), every agent scraped,
//! loses the member holding a protected VM: the master's liveset, host
//! liveness, plan, restart and fence series move as docs/metrics.md says.
//! Skips, saying why, when `prometheus` is not installed (.ci/run installs
//! it). Also checks the shipped alerting rules with `promtool`.

mod api_support;
mod ha_support;
mod pool_support;
mod web_support;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api_support::call2;
use ha_support::{enable_ha, pool};
use pool_support::ha::{HaPool, kill_host, protected_sleeper_on};
use pool_support::{StopVmsOnDrop, host_ref};
use serde_json::{Value, json};
use web_support::{StopVm, agent, get, sleeping_vm, wait_for, which};

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

/// Prometheus scraping `targets` (job `xapi-ha`) every second.
fn start_prometheus(binary: &Path, targets: &[SocketAddr]) -> Prometheus {
    let targets = targets
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: xapi-ha\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [{targets}]\n"
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

    let prom = start_prometheus(&binary, &[a.http]);
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

/// ops: what Prometheus holds for `q` restricted to one scrape target
/// (`instance`), summed; 0 when there is no such series.
fn on(p: &Prometheus, instance: SocketAddr, series: &str, labels: &str) -> Option<f64> {
    let sep = if labels.is_empty() { "" } else { "," };
    scalar(
        p,
        &format!("sum({series}{{instance=\"{instance}\"{sep}{labels}}}) or vector(0)"),
    )
}

#[test]
fn prometheus_sees_a_member_of_a_three_host_ha_pool_die() {
    let Some(binary) = which("prometheus") else {
        eprintln!("skipped: no `prometheus` on PATH (apt-get install prometheus)");
        return;
    };
    let started = Instant::now();
    let (p, took) = HaPool::enabled(3, 10);
    eprintln!("FIGURE pool.enable_ha on 3 hosts: {took:?}");
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let master = p.master().agent.http;
    let victim = &p.hosts.hosts[2];
    let victim_ref = host_ref(p.master(), victim);
    let (vm, vm_uuid) = protected_sleeper_on(&p, &victim_ref, "prom-protected");
    // A target of 2: three hosts tolerate 2 failures of a 64 MiB VM, two
    // hosts only 1, so the plan must drop and the pool be overcommitted.
    p.call("pool.set_ha_host_failures_to_tolerate", json!([p.pool, 2]));

    let targets: Vec<SocketAddr> = p.hosts.hosts.iter().map(|h| h.agent.http).collect();
    let prom = start_prometheus(&binary, &targets);
    wait_for("Prometheus to scrape the three agents", LIMIT, || {
        scalar(&prom, "count(up{job=\"xapi-ha\"} == 1)").filter(|v| *v == 3.0)
    });
    let name3 = "name=\"host-3\"";
    let before = [
        ("xha_ha_enabled", "", 1.0),
        ("xha_hosts", "", 3.0),
        ("xha_liveset_size", "", 3.0),
        ("xha_xhad_liveset_size", "", 3.0),
        ("xha_host_live", name3, 1.0),
        ("xha_ha_host_failures_to_tolerate", "", 2.0),
        ("xha_ha_plan_exists_for", "", 2.0),
        ("xha_ha_overcommitted", "", 0.0),
        ("xha_vms", "power_state=\"Running\"", 1.0),
    ];
    for (series, labels, want) in before {
        let v = wait_for(&format!("{series}{{{labels}}} = {want}"), LIMIT, || {
            on(&prom, master, series, labels).filter(|v| *v == want)
        });
        assert_eq!(v, want);
    }
    // The members publish the same pool-wide state (their copies of the
    // database): the liveset of 3 on every host.
    let everywhere = wait_for("the liveset of 3 on every host", LIMIT, || {
        scalar(&prom, "count(xha_liveset_size == 3)").filter(|v| *v == 3.0)
    });
    assert_eq!(everywhere, 3.0);
    let restarts_before =
        on(&prom, master, "xha_restarts_total", "outcome=\"started\"").expect("restarts");
    let latency_before =
        on(&prom, master, "xha_restart_latency_seconds_count", "").expect("latency count");
    let fences_before =
        on(&prom, master, "xha_fences_total", "rule=\"left_liveset\"").expect("fences");

    // host-3 dies holding the protected VM.
    let (fault, _) = kill_host(victim, "host-3", std::slice::from_ref(&vm_uuid));
    let gone = wait_for("host-3's target down", LIMIT, || {
        scalar(&prom, &format!("up{{instance=\"{}\"}}", victim.agent.http)).filter(|v| *v == 0.0)
    });
    assert_eq!(gone, 0.0);
    let after = [
        ("xha_liveset_size", "", 2.0),
        ("xha_xhad_liveset_size", "", 2.0),
        ("xha_host_live", name3, 0.0),
        ("xha_hosts", "", 3.0),
        ("xha_ha_plan_exists_for", "", 1.0),
        ("xha_ha_overcommitted", "", 1.0),
    ];
    for (series, labels, want) in after {
        let v = wait_for(&format!("{series}{{{labels}}} = {want}"), LIMIT, || {
            on(&prom, master, series, labels).filter(|v| *v == want)
        });
        assert_eq!(v, want);
        eprintln!(
            "FIGURE {series}{{{labels}}} = {want} in Prometheus {:?} after the kill",
            fault.elapsed()
        );
    }
    let restarts = wait_for("a restart counted", LIMIT, || {
        on(
            &prom,
            master,
            "xha_restarts_total",
            "priority=\"restart\",outcome=\"started\"",
        )
        .filter(|v| *v >= restarts_before + 1.0)
    });
    assert!(restarts >= 1.0);
    let latency = wait_for("a restart latency observed", LIMIT, || {
        on(&prom, master, "xha_restart_latency_seconds_count", "")
            .filter(|v| *v >= latency_before + 1.0)
    });
    assert!(latency >= 1.0);
    // The sample runs from the host found dead (engine time) to the VM's
    // start: positive, and below the histogram's top bucket.
    let sum = on(&prom, master, "xha_restart_latency_seconds_sum", "").expect("sum");
    assert!(sum > 0.0 && sum < 1024.0, "restart latency sum {sum}");
    let fences = wait_for("the fence seen by the master", LIMIT, || {
        on(&prom, master, "xha_fences_total", "rule=\"left_liveset\"")
            .filter(|v| *v > fences_before)
    });
    assert!(fences >= 1.0);
    eprintln!(
        "FIGURE restart latency observed by the master: {sum:.2} s (sum of {latency} samples); \
         restarts started {restarts}; fences {fences}"
    );
    // The VM runs again, on a survivor.
    assert_eq!(p.call("VM.get_power_state", json!([vm])), json!("Running"));
    assert_ne!(p.call("VM.get_resident_on", json!([vm])), json!(victim_ref));
    wait_for("one running VM in Prometheus", LIMIT, || {
        on(&prom, master, "xha_vms", "power_state=\"Running\"").filter(|v| *v == 1.0)
    });

    p.call("VM.set_ha_restart_priority", json!([vm, ""]));
    p.call("pool.disable_ha", json!([]));
    eprintln!(
        "FIGURE prometheus_sees_a_member_of_a_three_host_ha_pool_die: {:?}",
        started.elapsed()
    );
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
