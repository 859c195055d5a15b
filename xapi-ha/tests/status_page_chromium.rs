//! metrics: the master's status page (`GET /`) in a real headless Chromium
//! (Debian's `chromium`): the DOM it builds (`--dump-dom`) and a screenshot,
//! before and after a VM starts; the screenshots are kept in
//! `target/test-artifacts/`. Also the page's login (HTTP basic auth with
//! the pool's users) over raw HTTP. Skips the browser part, saying why,
//! when `chromium` is not installed (.ci/run installs it).

mod api_support;
mod web_support;

use std::path::Path;
use std::process::Command;

use api_support::call2;
use serde_json::json;
use web_support::{StopVm, agent, artifacts_dir, credentials, get, pool, sleeping_vm, which};

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
