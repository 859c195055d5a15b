//! `xe lab` as a real process: the demo end to end (3 real agents with
//! their `xhad` daemons and 4 process VMs, a power cut, the failover, the
//! double-run check), `--keep` with `xe lab stop`, its argument errors,
//! Ctrl-C while it waits, `--driver qemu` (QEMU test guests; its run is in
//! the nextest `qemu` group) and `xe lab bench` with one run. Every run
//! gets its own TMPDIR, so the checks for leftovers (a lab directory, a
//! process whose command line names it) see only this test's lab.
//!
//! `xapi-ha`, `xhad`, `xha-supervisor`, `xha-vm-keeper` and `xha-stamp`
//! come from the tests' one build of the workspace's programs
//! (`xha_lab::workspace_build`), beside the `xe` under test.
//!
//! Just over 600 lines: every case shares the one `Run` harness (its
//! TMPDIR, output readers and leftover checks), so they stay in one file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

fn bin_dir() -> Option<PathBuf> {
    let built = xha_lab::workspace_build::build_workspace_bins(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_xe"),
    );
    let d = xha_lab::bin_dir(&built);
    xha_lab::agent_pool::missing_pool_bin(&d)
        .is_none()
        .then_some(d)
}

fn bins_or_skip(test: &str) -> Option<PathBuf> {
    let dir = bin_dir();
    if dir.is_none() {
        eprintln!(
            "{test}: SKIPPED: the lab's programs (xapi-ha, xhad, xha-supervisor, xha-vm-keeper, \
             xha-stamp) are not built beside {} (nor in $XE_LAB_BIN_DIR); run \
             `cargo build -p xha -p xapi_ha -p xapi_vm --bins` or `cargo build`",
            env!("CARGO_BIN_EXE_xe")
        );
    }
    dir
}

/// Processes whose command line mentions `needle` (the test's TMPDIR).
fn processes_mentioning(needle: &str) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            found.push((pid, cmd));
        }
    }
    found
}

/// One `xe lab` run in its own TMPDIR. On drop (test failure included) it
/// kills `xe` and any process its lab left, then removes the TMPDIR.
struct Run {
    tmp: tempfile::TempDir,
    child: Option<Child>,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
    stdout: Option<std::thread::JoinHandle<String>>,
}

impl Run {
    fn start(bins: &Path, args: &[&str]) -> Run {
        Run::start_env(bins, args, &[])
    }

    fn start_env(bins: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        // A short TMPDIR: QEMU's socket paths under it must stay within
        // the 107 bytes of a Unix socket path.
        let tmp = tempfile::Builder::new().prefix("xlt").tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_xe"))
            .args(args)
            .env("TMPDIR", tmp.path())
            .env(xha_lab::BIN_DIR_ENV, bins)
            .env_remove("XE_LAB_KEEP")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut s);
            s
        });
        Run {
            tmp,
            child: Some(child),
            stderr: rx,
            stderr_seen: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// Wait for a stderr line containing `text`.
    fn wait_for_stderr(&mut self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.stderr_seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.stderr_seen.push(line),
                Err(_) => panic!(
                    "no stderr line with {text:?} within {timeout:?}; got:\n{}",
                    self.stderr_seen.join("\n")
                ),
            }
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Wait for `xe` to exit; (exit code, stdout, stderr).
    fn finish(&mut self, timeout: Duration) -> (i32, String, String) {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "xe lab still running after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        let stdout = self.stdout.take().unwrap().join().unwrap();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(5)) {
            self.stderr_seen.push(line);
        }
        let code = status
            .code()
            .unwrap_or_else(|| panic!("xe killed by a signal: {status:?}"));
        (code, stdout, self.stderr_seen.join("\n"))
    }

    /// Nothing of the lab is left: no process naming the TMPDIR, no file in it.
    fn assert_nothing_left(&self) {
        let needle = self.tmp.path().to_str().unwrap();
        let left = processes_mentioning(needle);
        assert!(left.is_empty(), "processes left behind: {left:?}");
        let files: Vec<_> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(files.is_empty(), "files left behind: {files:?}");
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(needle) = self.tmp.path().to_str() {
            for (pid, _) in processes_mentioning(needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// The demo: a pool of 3 agents with 4 VMs; the member holding the
/// protected VMs loses power; its protected VMs run again on other hosts
/// within T + 4 s plus a margin for a loaded machine, the unprotected one
/// stays down, no VM ran twice, and nothing is left afterwards.
#[test]
fn demo_cuts_a_hosts_power_and_its_protected_vms_run_again_elsewhere() {
    let Some(bins) =
        bins_or_skip("demo_cuts_a_hosts_power_and_its_protected_vms_run_again_elsewhere")
    else {
        return;
    };
    let t = 10.0;
    let mut run = Run::start(&bins, &["lab", "--hosts", "3", "--timeout", "10", "--json"]);
    let (code, stdout, stderr) = run.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "xe lab failed:\n{stderr}");
    let v = common::json(&stdout);
    eprintln!("{v}");
    assert_eq!(v["hosts"], 3);
    assert_eq!(v["timeout_s"], 10);
    assert_eq!(v["double_runs"], 0, "{v}");
    let killed = v["killed"].as_str().unwrap().to_owned();
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 4, "{v}");
    let mut protected_on_killed = 0;
    let mut unprotected_on_killed = 0;
    for vm in vms {
        let on_killed = vm["host_before"] == killed.as_str();
        match vm["priority"].as_str().unwrap() {
            "restart" if on_killed => {
                protected_on_killed += 1;
                let after = vm["host_after"].as_str().unwrap_or_else(|| panic!("{vm}"));
                assert_ne!(after, killed, "{vm}");
                let again = vm["running_again_after_fault_s"].as_f64().unwrap();
                assert!(again > 0.0 && again <= t + 4.0 + 20.0, "{vm}");
            }
            "" if on_killed => {
                unprotected_on_killed += 1;
                assert!(vm["host_after"].is_null(), "{vm}");
                assert!(vm["running_again_after_fault_s"].is_null(), "{vm}");
            }
            _ if !on_killed => assert_eq!(vm["host_after"], vm["host_before"], "{vm}"),
            _ => {}
        }
    }
    assert_eq!((protected_on_killed, unprotected_on_killed), (2, 1), "{v}");
    let last = v["protected_running_again_after_fault_s"].as_f64().unwrap();
    assert!(last <= t + 4.0 + 20.0, "{v}");
    for key in [
        "detected_after_fault_s",
        "fenced_after_fault_s",
        "shrink_after_fault_s",
    ] {
        let s = v[key].as_f64().unwrap_or_else(|| panic!("{key}: {v}"));
        assert!(s > 0.0 && s <= 3.0 * t, "{key}: {v}");
    }
    assert!(
        v["api_url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{v}"
    );
    assert!(v.get("dir").is_none(), "{v}");
    // Progress went to stderr, in order.
    let order = [
        "pool.enable_ha",
        "power cut on",
        "detected:",
        "unprotected) stays down",
        "double-run check",
        "stopped cleanly",
    ];
    let mut from = 0;
    for step in order {
        let at = stderr[from..]
            .find(step)
            .unwrap_or_else(|| panic!("no {step:?} after byte {from} in:\n{stderr}"));
        from += at;
    }
    run.assert_nothing_left();
}

/// `--keep`: the pool keeps running after the failover and answers on the
/// printed API URL with the printed user and password file; `xe lab stop
/// DIR` then leaves nothing behind.
#[test]
fn keep_leaves_the_pool_running_until_xe_lab_stop() {
    let Some(bins) = bins_or_skip("keep_leaves_the_pool_running_until_xe_lab_stop") else {
        return;
    };
    let mut run = Run::start(
        &bins,
        &["lab", "--hosts", "2", "--vms", "2", "--json", "--keep"],
    );
    let (code, stdout, stderr) = run.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "xe lab failed:\n{stderr}");
    let v = common::json(&stdout);
    let dir = PathBuf::from(v["dir"].as_str().unwrap());
    assert!(dir.starts_with(run.tmp.path()), "{v}");
    assert_eq!(v["username"], "root");
    let password = std::fs::read_to_string(v["password_file"].as_str().unwrap()).unwrap();
    assert!(stderr.contains("xe -s "), "{stderr}");
    assert!(
        stderr.contains(&format!("xe lab stop {}", dir.display())),
        "{stderr}"
    );
    // The master still answers: a login and the VM list.
    let addr = v["api_url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://")
        .unwrap()
        .parse()
        .unwrap();
    let session = xha_lab::rpc::call(
        addr,
        "session.login_with_password",
        serde_json::json!(["root", password.trim(), "1.0", "test"]),
    )
    .unwrap();
    let vms = xha_lab::rpc::call(addr, "VM.get_all", serde_json::json!([session])).unwrap();
    assert!(vms.as_array().unwrap().len() >= 2, "{vms}");
    let needle = run.tmp.path().to_str().unwrap().to_owned();
    assert!(!processes_mentioning(&needle).is_empty());
    let out = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(["lab", "stop"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run.assert_nothing_left();
    // Not a lab directory: refused, nothing touched.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(["lab", "stop"])
        .arg(other.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(other.path().exists());
}

/// SIGINT while `xe lab` waits for the failover: it stops the lab, exits
/// 130 naming the step, and leaves no process or file.
#[test]
fn ctrl_c_stops_the_lab_and_leaves_nothing() {
    let Some(bins) = bins_or_skip("ctrl_c_stops_the_lab_and_leaves_nothing") else {
        return;
    };
    let mut run = Run::start(&bins, &["lab", "--hosts", "3", "--timeout", "10", "--json"]);
    run.wait_for_stderr("power cut on", Duration::from_secs(240));
    // The lab's daemons are running now (two survivors at least).
    let needle = run.tmp.path().to_str().unwrap().to_owned();
    assert!(
        processes_mentioning(&needle).len() >= 4,
        "{:?}",
        processes_mentioning(&needle)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let (code, stdout, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, 130, "stderr:\n{stderr}");
    assert_eq!(stdout, "");
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("xe: lab: interrupted by SIGINT during step \"wait for the"),
        "{last}"
    );
    run.assert_nothing_left();
}

#[test]
fn argument_errors_are_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["lab", "--hosts", "0"],
            "xe: --hosts must be a whole number of hosts from 2 to 64 (one non-master host is killed), got \"0\"",
        ),
        (
            &["lab", "--hosts", "65"],
            "xe: --hosts must be a whole number of hosts from 2 to 64 (one non-master host is killed), got \"65\"",
        ),
        (
            &["lab", "--timeout", "5"],
            "xe: --timeout must be whole seconds from 10 to 3600 (the base timeout T of xhad), got \"5\"",
        ),
        (
            &["lab", "--timeout=ten"],
            "xe: --timeout must be whole seconds from 10 to 3600 (the base timeout T of xhad), got \"ten\"",
        ),
        (
            &["lab", "--host", "3"],
            "xe: lab does not take the flag \"--host\"; did you mean \"--hosts\"?",
        ),
        (
            &["lab", "--verbose"],
            "xe: lab does not take the flag \"--verbose\"; run \"xe help lab\"",
        ),
        (&["lab", "--hosts"], "xe: --hosts needs a value"),
        (&["lab", "hosts=3"], "xe: unexpected argument \"hosts=3\""),
        (
            &["lab", "--vms", "0"],
            "xe: --vms must be a whole number of VMs from 1 to 32, got \"0\"",
        ),
        (&["lab", "stop", "a", "b"], "xe: unexpected argument \"b\""),
        (
            &["lab", "--json", "--json"],
            "xe: flag \"--json\" given more than once",
        ),
        (
            &["lab", "--driver", "xen"],
            "xe: --driver must be process (process VMs, the default) or qemu (QEMU test guests), got \"xen\"",
        ),
        (&["lab", "--driver"], "xe: --driver needs a value"),
        (
            &["lab", "--runs", "2"],
            "xe: lab does not take the flag \"--runs\"; did you mean \"--vms\"?",
        ),
        (
            &["lab", "bench", "--keep"],
            "xe: bench and --keep cannot be used together",
        ),
        (
            &["lab", "bench", "--runs", "0"],
            "xe: --runs must be a whole number of runs from 1 to 1000, got \"0\"",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(common::fails(1, args), *want, "{args:?}");
    }
}

#[test]
fn missing_binaries_are_named_with_the_fix() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xe"))
        .args(["lab"])
        .env(xha_lab::BIN_DIR_ENV, empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("xe: lab: step \"find the programs\" failed: "),
        "{stderr}"
    );
    assert!(stderr.contains("xhad not found"), "{stderr}");
    assert!(stderr.contains("cargo build --release"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_describes_the_options() {
    let text = common::ok(&["help", "lab"]);
    for flag in [
        "--hosts",
        "--vms",
        "--timeout",
        "--driver",
        "--runs",
        "--json",
        "--keep",
    ] {
        assert!(text.contains(flag), "{text}");
    }
    assert!(common::ok(&["lab", "--help"]) == text);
}

/// `--driver qemu` without QEMU or without the test guest: the step
/// `find the QEMU guest` fails naming what is missing, before anything
/// starts.
#[test]
fn qemu_driver_names_what_is_missing() {
    let Some(bins) = bins_or_skip("qemu_driver_names_what_is_missing") else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    // No qemu-system-x86_64 on the PATH.
    let mut run = Run::start_env(
        &bins,
        &["lab", "--driver", "qemu"],
        &[("PATH", empty.path().as_os_str())],
    );
    let (code, stdout, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, 5, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "xe: lab: step \"find the QEMU guest\" failed: qemu-system-x86_64 is not installed"
        ),
        "{stderr}"
    );
    run.assert_nothing_left();
    // QEMU there (when it is), no guest in the directory named.
    if !std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join("qemu-system-x86_64").is_file())
    {
        eprintln!(
            "qemu_driver_names_what_is_missing: the guest case SKIPPED: qemu-system-x86_64 is not installed"
        );
        return;
    }
    let mut run = Run::start_env(
        &bins,
        &["lab", "--driver=qemu"],
        &[("XHA_TEST_GUEST_DIR", empty.path().as_os_str())],
    );
    let (code, _, stderr) = run.finish(Duration::from_secs(60));
    assert_eq!(code, 5, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "step \"find the QEMU guest\" failed: no QEMU test guest in {}/current",
            empty.path().display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("tests/guest/build.sh"), "{stderr}");
    run.assert_nothing_left();
}

/// `xe lab --driver qemu`: one protected QEMU guest on the member that
/// loses power boots again on a survivor, no VM ran twice, nothing left.
/// Skips, saying why, without QEMU or the test guest (.ci/run installs
/// both). In the nextest `qemu` group (its name), one TCG guest at a time.
#[test]
fn qemu_guest_runs_again_after_the_power_cut() {
    let Some(bins) = bins_or_skip("qemu_guest_runs_again_after_the_power_cut") else {
        return;
    };
    if let Err(e) = xha_lab::agent_pool::find_guest() {
        eprintln!("qemu_guest_runs_again_after_the_power_cut: SKIPPED: {e}");
        return;
    }
    let mut run = Run::start(
        &bins,
        &[
            "lab", "--driver", "qemu", "--vms", "1", "--hosts", "2", "--json",
        ],
    );
    let (code, stdout, stderr) = run.finish(Duration::from_secs(600));
    assert_eq!(code, 0, "xe lab failed:\n{stderr}");
    let v = common::json(&stdout);
    eprintln!("{v}");
    assert_eq!(v["double_runs"], 0, "{v}");
    let vm = &v["vms"][0];
    assert_eq!(vm["priority"], "restart", "{v}");
    assert_eq!(vm["host_before"], v["killed"], "{v}");
    assert!(
        vm["host_after"].is_string() && vm["host_after"] != v["killed"],
        "{v}"
    );
    assert!(vm["running_again_after_fault_s"].as_f64().is_some(), "{v}");
    assert!(stderr.contains("(qemu driver)"), "{stderr}");
    run.assert_nothing_left();
}

/// `xe lab bench` with one run of 3 hosts and 2 VMs: the tables on stdout
/// name every row, XenServer's figures and both VMs; `--json` likewise.
#[test]
fn bench_runs_the_failover_and_prints_medians_beside_xenserver() {
    let Some(bins) = bins_or_skip("bench_runs_the_failover_and_prints_medians_beside_xenserver")
    else {
        return;
    };
    let mut run = Run::start(
        &bins,
        &[
            "lab", "bench", "--runs", "1", "--hosts", "3", "--vms", "2", "--json",
        ],
    );
    let (code, stdout, stderr) = run.finish(Duration::from_secs(300));
    assert_eq!(code, 0, "xe lab bench failed:\n{stderr}");
    assert!(stderr.contains("bench: run 1 of 1"), "{stderr}");
    let v = common::json(&stdout);
    eprintln!("{v}");
    assert_eq!(
        (v["runs"].as_u64(), v["hosts"].as_u64()),
        (Some(1), Some(3)),
        "{v}"
    );
    assert_eq!(v["double_runs"], 0, "{v}");
    for key in ["detected", "fenced", "shrink", "protected_running_again"] {
        let f = &v["figures"][key];
        assert_eq!(f["runs"], 1, "{key}: {v}");
        let (median, max) = (
            f["median_s"].as_f64().unwrap(),
            f["max_s"].as_f64().unwrap(),
        );
        assert!(median > 0.0 && median == max, "{key}: {v}");
        assert!(
            f["xenserver"].as_str().unwrap().contains(" s"),
            "{key}: {v}"
        );
    }
    let vms = v["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 2, "{v}");
    for vm in vms {
        assert_eq!(vm["priority"], "restart", "{v}");
        assert_eq!(vm["values_s"].as_array().unwrap().len(), 1, "{v}");
    }
    run.assert_nothing_left();
}
