//! `xe lab` as a real process: the demo end to end (3 real `xhad` daemons,
//! a SIGKILL, the fence and the smaller liveset), its argument errors, and
//! Ctrl-C while it waits. Every run gets its own TMPDIR, so the checks for
//! leftovers (a lab directory, a process whose command line names it) see
//! only this test's lab.
//!
//! `xhad` and `xha-supervisor` are found beside the `xe` under test (`cargo
//! test --workspace` builds them there, since package `xha` has integration
//! tests) or in `$XE_LAB_BIN_DIR`. When they are not built (`cargo test -p
//! xe` on a clean target directory) the end-to-end tests print why and pass
//! without running: build them with `cargo build -p xha --bins`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

fn bin_dir() -> Option<PathBuf> {
    let d = xha_lab::bin_dir(Path::new(env!("CARGO_BIN_EXE_xe")).parent()?);
    xha_lab::missing_bin(&d).is_none().then_some(d)
}

fn bins_or_skip(test: &str) -> Option<PathBuf> {
    let dir = bin_dir();
    if dir.is_none() {
        eprintln!(
            "{test}: SKIPPED: xhad and xha-supervisor are not built beside {} (nor in $XE_LAB_BIN_DIR); \
             run `cargo build -p xha --bins` or `cargo test --workspace`",
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
        let tmp = tempfile::Builder::new()
            .prefix("xe-lab-test")
            .tempdir()
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_xe"))
            .args(args)
            .env("TMPDIR", tmp.path())
            .env(xha_lab::BIN_DIR_ENV, bins)
            .env_remove("XE_LAB_KEEP")
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

fn uuids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect()
}

/// The demo: all hosts online, a non-master killed, only it fenced, the
/// survivors' liveset shrinks within 3 T, and nothing is left afterwards.
#[test]
fn demo_kills_a_host_and_the_liveset_shrinks() {
    let Some(bins) = bins_or_skip("demo_kills_a_host_and_the_liveset_shrinks") else {
        return;
    };
    let t = 10.0;
    let mut run = Run::start(&bins, &["lab", "--hosts", "3", "--timeout", "10", "--json"]);
    let (code, stdout, stderr) = run.finish(Duration::from_secs(240));
    assert_eq!(code, 0, "xe lab failed:\n{stderr}");
    let v = common::json(&stdout);
    assert_eq!(v["hosts"], 3);
    assert_eq!(v["timeout_s"], 10);
    let killed = v["killed"].as_str().unwrap().to_owned();
    let survivors = uuids(&v["survivors"]);
    assert_eq!(survivors.len(), 2, "{v}");
    assert!(!survivors.contains(&killed), "{v}");
    assert_ne!(
        v["master"].as_str().unwrap(),
        killed,
        "the master was killed: {v}"
    );
    assert!(survivors.iter().any(|s| *s == v["master"]), "{v}");
    assert_eq!(uuids(&v["fenced"]), vec![killed], "{v}");
    let online = v["online_after_s"].as_f64().unwrap();
    assert!(online > 0.0 && online <= 5.0 * t + 30.0, "{v}");
    let shrink = v["shrink_after_fault_s"].as_f64().unwrap();
    assert!(shrink > 0.0 && shrink <= 3.0 * t, "{v}");
    let fenced = v["fenced_after_fault_s"].as_f64().unwrap();
    assert!(fenced > 0.0 && fenced <= 3.0 * t, "{v}");
    // Progress went to stderr, in order.
    let order = [
        "online after",
        "killing host",
        "fenced:",
        "liveset shrank",
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

/// SIGINT while `xe lab` waits for the failover: it stops the lab, exits
/// 130 naming the step, and leaves no process or file.
#[test]
fn ctrl_c_stops_the_lab_and_leaves_nothing() {
    let Some(bins) = bins_or_skip("ctrl_c_stops_the_lab_and_leaves_nothing") else {
        return;
    };
    let mut run = Run::start(&bins, &["lab", "--hosts", "3", "--timeout", "10", "--json"]);
    run.wait_for_stderr("killing host", Duration::from_secs(120));
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
            &["lab", "--json", "--json"],
            "xe: flag \"--json\" given more than once",
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
        stderr.starts_with("xe: lab: step \"find xhad\" failed: "),
        "{stderr}"
    );
    assert!(stderr.contains("xhad not found"), "{stderr}");
    assert!(stderr.contains("cargo build --release"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_describes_the_options() {
    let text = common::ok(&["help", "lab"]);
    for flag in ["--hosts", "--timeout", "--json"] {
        assert!(text.contains(flag), "{text}");
    }
    assert!(common::ok(&["lab", "--help"]) == text);
}
