//! `xha_lab` against the real `xhad` and `xha-supervisor` of this package
//! (cargo builds them for this test): a frozen host is fenced by its
//! supervisor and can be restarted, an early daemon exit is reported with
//! its log, a bad spec starts nothing, and neither `stop` nor `Drop` leaves
//! a process or a file behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xha::daemon::control::Status;
use xha_lab::{Lab, LabError, LabSpec, Signal};

const T: u64 = 10;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_xhad"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A spec whose lab directory goes into `base`.
fn spec(hosts: usize, base: &Path) -> LabSpec {
    let mut s = LabSpec::new(hosts, T, &bin_dir());
    assert_eq!(
        s.supervisor,
        PathBuf::from(env!("CARGO_BIN_EXE_xha-supervisor"))
    );
    s.base_dir = base.to_path_buf();
    s
}

/// Processes whose command line mentions `dir`.
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|cmd| cmd.contains(needle))
        .collect()
}

fn assert_nothing_left(base: &Path) {
    let left = processes_mentioning(base);
    assert!(left.is_empty(), "processes left: {left:?}");
    let files: Vec<_> = std::fs::read_dir(base)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(files.is_empty(), "files left: {files:?}");
}

/// A host frozen with SIGSTOP stops kicking its supervisor, which kills its
/// group (exit 3); the survivors' liveset shrinks; the host restarts and
/// rejoins. Dropping the lab (no `stop`) leaves nothing.
#[test]
fn frozen_host_is_fenced_then_restarted_and_drop_cleans_up() {
    let base = tempfile::tempdir().unwrap();
    {
        let mut lab = Lab::start(spec(3, base.path())).unwrap();
        lab.wait_all_online(Duration::from_secs(5 * T + 30))
            .unwrap();
        let master = lab
            .wait_master(&lab.all(), Duration::from_secs(3 * T + 30))
            .unwrap();
        let victim = (master + 1) % 3;
        let survivors: Vec<usize> = lab.all().into_iter().filter(|&i| i != victim).collect();
        lab.kill_host(victim, Signal::SIGSTOP).unwrap();
        let status = lab
            .supervisor_exit(victim, Duration::from_secs(3 * T))
            .unwrap_or_else(|| panic!("not fenced:\n{}", lab.supervisor_log(victim)));
        assert_eq!(status.code(), Some(3), "{}", lab.supervisor_log(victim));
        let daemon = lab.daemon_exit(victim, Duration::from_secs(5)).unwrap();
        assert_eq!(
            xha_lab::describe_status(daemon),
            "killed by signal 9 (SIGKILL)"
        );
        assert!(matches!(
            lab.kill_host(victim, Signal::SIGCONT),
            Err(LabError::HostGone { .. })
        ));
        lab.wait_online(&survivors, Duration::from_secs(3 * T))
            .unwrap();
        // Back again: a new daemon and supervisor, and all hosts online.
        lab.restart_host(victim).unwrap();
        lab.wait_all_online(Duration::from_secs(5 * T + 30))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.log(victim)));
        assert_eq!(lab.query(victim).unwrap().status, Status::Online);
        assert!(!processes_mentioning(base.path()).is_empty());
    }
    assert_nothing_left(base.path());
}

/// `stop` disarms and stops every daemon: supervisors exit 0, nothing left.
#[test]
fn stop_is_clean() {
    let base = tempfile::tempdir().unwrap();
    let lab = Lab::start(spec(2, base.path())).unwrap();
    let reports = lab
        .wait_all_online(Duration::from_secs(5 * T + 30))
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports
            .iter()
            .all(|r| r.watchdog == "supervisor" && r.fencing_armed)
    );
    assert_eq!(reports[0].pool_generation, lab.pool_generation());
    let events = lab.watch(1).unwrap();
    let (_, first) = events.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(first.local_host, lab.uuid(1));
    lab.stop().unwrap();
    assert_nothing_left(base.path());
}

/// A daemon that cannot start (its statefile does not exist: exit 8) is
/// reported by the wait with its exit status and log.
#[test]
fn early_exit_is_reported_with_the_log() {
    let base = tempfile::tempdir().unwrap();
    let mut s = spec(2, base.path());
    s.host(0).statefile = Some(base.path().join("no-such-statefile"));
    let lab = Lab::start(s).unwrap();
    let err = lab.wait_all_online(Duration::from_secs(60)).unwrap_err();
    match &err {
        LabError::DaemonExited {
            host,
            status,
            log_tail,
            ..
        } => {
            assert_eq!(*host, 0);
            assert_eq!(status, "exit status 8", "{err}");
            assert!(log_tail.contains("no-such-statefile"), "{err}");
        }
        other => panic!("unexpected: {other}"),
    }
    drop(lab);
    assert_nothing_left(base.path());
}

#[test]
fn bad_specs_start_nothing() {
    let base = tempfile::tempdir().unwrap();
    let cases: Vec<(LabSpec, &str)> = vec![
        (
            {
                let mut s = spec(2, base.path());
                s.hosts = 0;
                s
            },
            "0 hosts",
        ),
        (
            {
                let mut s = spec(2, base.path());
                s.hosts = 65;
                s
            },
            "65 hosts",
        ),
        (
            {
                let mut s = spec(2, base.path());
                s.timeout_s = 5;
                s
            },
            "timeout 5 s",
        ),
        (
            {
                let mut s = spec(2, base.path());
                s.xhad = base.path().join("xhad");
                s
            },
            "cargo build --release",
        ),
        (
            {
                let mut s = spec(2, base.path());
                s.host(2);
                s
            },
            "options for 3 hosts",
        ),
    ];
    for (s, want) in cases {
        let err = Lab::start(s).err().expect("refused");
        assert!(matches!(err, LabError::Spec(_)), "{err}");
        assert!(err.to_string().contains(want), "{err}");
    }
    // A base directory so long that the sockets cannot be bound.
    let long = base.path().join("d".repeat(100));
    std::fs::create_dir(&long).unwrap();
    let err = Lab::start(spec(2, &long)).err().expect("refused");
    assert!(err.to_string().contains("Unix socket path"), "{err}");
    std::fs::remove_dir(&long).unwrap();
    assert_nothing_left(base.path());
}
