//! metrics: the master's status page (`GET /`) in a real headless Chromium
//! (Debian's `chromium`): the DOM it builds (`--dump-dom`) and a screenshot,
//! before and after a VM starts; the screenshots are kept in
//! `target/test-artifacts/`. ops: the same on the master of a 3-host HA
//! pool (`pool_support::ha`) before and after a member holding a protected
//! VM dies (its liveness, last fence, the liveset, the VM's new host and
//! `HA_HOST_FAILED`). Also the page's login (HTTP basic auth with
//! the pool's users) over raw HTTP. Skips the browser part, saying why,
//! when `chromium` is not installed (.ci/run installs it).

mod api_support;
mod ha_support;
mod pool_support;
mod web_support;

use std::path::Path;
use std::process::Command;

use api_support::call2;
use ha_support::pool;
use pool_support::ha::{HaPool, kill_host, protected_sleeper_on};
use pool_support::{StopVmsOnDrop, host_ref, wait_for};
use serde_json::json;
use web_support::{StopVm, agent, artifacts_dir, credentials, get, sleeping_vm, which};

/// The page as Chromium renders it; a screenshot saved at `png`.
fn chromium(binary: &Path, url: &str, png: &Path) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
    ];
    let run = |extra: &str| {
        let out = Command::new(binary)
            .args(common)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(extra)
            .arg(url)
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium {extra} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run("--dump-dom");
    let _ = std::fs::remove_file(png);
    run(&format!("--screenshot={}", png.display()));
    let bytes = std::fs::read(png).expect("screenshot written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    assert!(bytes.len() > 5_000, "screenshot of {} bytes", bytes.len());
    dom
}

/// The text of the `<tr>` in table `id` that contains `key`.
fn row<'a>(dom: &'a str, id: &str, key: &str) -> &'a str {
    let start = dom
        .find(&format!("<table id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no table {id} in {dom}"));
    let end = start + dom[start..].find("</table>").expect("table end");
    dom[start..end]
        .split("<tr>")
        .find(|r| r.contains(key))
        .unwrap_or_else(|| panic!("no row with {key} in table {id}: {dom}"))
}

#[test]
fn status_page_needs_a_pool_login() {
    let a = agent(false);
    let (user, password) = credentials();
    let none = get(a.http, "/", None);
    assert_eq!(none.status, 401, "{none:?}");
    assert!(
        none.headers
            .to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"xapi-ha\""),
        "{}",
        none.headers
    );
    let wrong = get(a.http, "/", Some((user, "wrong")));
    assert_eq!(wrong.status, 401);
    let ok = get(a.http, "/", Some((user, password)));
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.headers.contains("text/html"), "{}", ok.headers);
    assert!(ok.body.contains("<table id=\"hosts\">"));
    // /metrics is open.
    let m = get(a.http, "/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m.body.contains("xha_hosts 1"), "{}", m.body);
}

#[test]
fn chromium_shows_the_status_page_before_and_after_a_vm_starts() {
    let Some(binary) = which("chromium") else {
        eprintln!("skipped: no `chromium` on PATH (apt-get install chromium)");
        return;
    };
    let a = agent(false);
    let p = pool(&a);
    let vm = sleeping_vm(&a, &p, "web <1>");
    let _stop = StopVm {
        agent: &a,
        session: p.s.clone(),
        vm: vm.clone(),
    };
    let (user, password) = credentials();
    let url = format!("http://{user}:{}@{}/", password.replace(' ', "%20"), a.http);
    let dir = artifacts_dir();
    let before = chromium(&binary, &url, &dir.join("status-page-before.png"));
    assert!(before.contains("Pool"), "{before}");
    let host = row(&before, "hosts", "test-host");
    assert!(host.contains(">yes<"), "{host}");
    let vm_row = row(&before, "vms", "web &lt;1&gt;");
    assert!(vm_row.contains("Halted"), "{vm_row}");
    assert!(vm_row.contains("restart"), "{vm_row}");
    let master = row(&before, "summary", "Master");
    assert!(master.contains("test-host"), "{master}");

    call2(a.http, "VM.start", json!([p.s, vm, false, false]));
    let after = chromium(&binary, &url, &dir.join("status-page-after.png"));
    let vm_row = row(&after, "vms", "web &lt;1&gt;");
    assert!(vm_row.contains("Running"), "{vm_row}");
    assert!(vm_row.contains("test-host"), "{vm_row}");
    // A message raised meanwhile is listed.
    call2(
        a.http,
        "message.create",
        json!([
            p.s,
            "STATUS_PAGE_TEST",
            3,
            "Host",
            call2(a.http, "host.get_uuid", json!([p.s, p.host])),
            "a <b>note</b>"
        ]),
    );
    let later = chromium(&binary, &url, &dir.join("status-page-message.png"));
    let msg = row(&later, "messages", "STATUS_PAGE_TEST");
    assert!(msg.contains("a &lt;b&gt;note&lt;/b&gt;"), "{msg}");
}

/// ops: the master of a 3-host HA pool in Chromium, before and after the
/// member holding a protected VM dies; the two screenshots are kept as
/// `target/test-artifacts/status-page-{before,after}-host-kill.png`.
#[test]
fn chromium_shows_a_three_host_ha_pool_before_and_after_a_host_dies() {
    let Some(binary) = which("chromium") else {
        eprintln!("skipped: no `chromium` on PATH (apt-get install chromium)");
        return;
    };
    let started = std::time::Instant::now();
    let (p, _) = HaPool::enabled(3, 10);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let victim = &p.hosts.hosts[2];
    let victim_ref = host_ref(p.master(), victim);
    let (vm, vm_uuid) = protected_sleeper_on(&p, &victim_ref, "protected <db>");
    let (user, password) = credentials();
    let url = format!(
        "http://{user}:{}@{}/",
        password.replace(' ', "%20"),
        p.master().agent.http
    );
    let dir = artifacts_dir();

    let before = chromium(&binary, &url, &dir.join("status-page-before-host-kill.png"));
    for name in ["host-1", "host-2", "host-3"] {
        let host = row(&before, "hosts", name);
        assert!(host.contains(">yes<"), "{host}");
        assert!(host.contains("never"), "no fence yet: {host}");
    }
    let liveset = row(&before, "summary", "Liveset");
    assert!(liveset.contains("3 of 3"), "{liveset}");
    let vm_row = row(&before, "vms", "protected &lt;db&gt;");
    for want in ["Running", "started", "host-3", "restart"] {
        assert!(vm_row.contains(want), "{want} not in {vm_row}");
    }

    kill_host(victim, "host-3", std::slice::from_ref(&vm_uuid));
    // The page is made from the master's database: wait until it says the
    // VM runs elsewhere (HA_HOST_FAILED is raised before the restart).
    wait_for("the protected VM running on a survivor", || {
        (p.call("VM.get_power_state", json!([vm])) == json!("Running")
            && p.call("VM.get_resident_on", json!([vm])) != json!(victim_ref)
            && p.call("VM.get_ha_state", json!([vm])) == json!("started"))
        .then_some(())
    });
    let new_host = p.call(
        "host.get_name_label",
        json!([p.call("VM.get_resident_on", json!([vm]))]),
    );
    let new_host = new_host.as_str().expect("name").to_owned();

    let after = chromium(&binary, &url, &dir.join("status-page-after-host-kill.png"));
    let dead = row(&after, "hosts", "host-3");
    assert!(dead.contains(">no<"), "host-3 still live: {dead}");
    assert!(
        dead.contains("HA_HOST_FAILED at "),
        "no fence shown: {dead}"
    );
    for name in ["host-1", "host-2"] {
        let host = row(&after, "hosts", name);
        assert!(host.contains(">yes<"), "{host}");
    }
    let liveset = row(&after, "summary", "Liveset");
    assert!(liveset.contains("2 of 3: "), "{liveset}");
    assert!(!liveset.contains("host-3"), "{liveset}");
    let vm_row = row(&after, "vms", "protected &lt;db&gt;");
    assert!(vm_row.contains("Running"), "{vm_row}");
    assert!(vm_row.contains("started"), "{vm_row}");
    assert!(vm_row.contains(&new_host), "{new_host} not in {vm_row}");
    assert!(!vm_row.contains("host-3"), "{vm_row}");
    let failed = row(&after, "messages", "HA_HOST_FAILED");
    assert!(failed.contains(&victim.uuid), "{failed}");

    p.call("VM.set_ha_restart_priority", json!([vm, ""]));
    p.call("pool.disable_ha", json!([]));
    eprintln!(
        "FIGURE chromium_shows_a_three_host_ha_pool_before_and_after_a_host_dies: {:?}",
        started.elapsed()
    );
}

#[test]
fn root_on_the_unix_socket_needs_no_login_and_a_member_names_its_master() {
    use std::io::{Read as _, Write as _};
    // A master first (so the database holds this host), then a member.
    let a = api_support::Agent::start();
    let mut s = std::os::unix::net::UnixStream::connect(&a.unix).expect("unix socket");
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let as_root = running_as_root();
    if as_root {
        assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
        assert!(raw.contains("<table id=\"vms\">"), "{raw}");
    } else {
        eprintln!("not root: the Unix-socket peer is not trusted, checking the refusal");
        assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    }
    let (dir, code, _) = a.terminate();
    assert_eq!(code, Some(0));
    std::fs::write(dir.path().join("data/pool.conf"), "slave:192.0.2.7\n").expect("role");
    let m = api_support::Agent::restart(dir);
    let (user, password) = credentials();
    assert_eq!(get(m.http, "/", None).status, 401);
    let page = get(m.http, "/", Some((user, password)));
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("pool member"), "{}", page.body);
    assert!(page.body.contains("192.0.2.7"), "{}", page.body);
    assert!(!page.body.contains("<table"), "{}", page.body);
    // Every host serves /metrics.
    let metrics = get(m.http, "/metrics", None);
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("xha_hosts 1"), "{}", metrics.body);
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}
