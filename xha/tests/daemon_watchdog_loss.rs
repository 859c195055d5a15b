//! Issue 9, section 2: a dead watchdog must not leave the workload running.
//! Real `xhad` processes, each the leader of its own process group with a
//! stand-in workload (`sleep`) in that group, as a VM would be.
//!
//! - The daemon's own path: its watchdog is lost while armed (the
//!   supervisor's connection drops; the `/dev/watchdog` stand-in, a FIFO,
//!   loses its reader). The daemon must fence with its fence action
//!   (`kill-host`: SIGKILL to its whole group), not exit 4 and leave the
//!   workload behind.
//! - Every kill order with the real supervisor (a one-host lab): the
//!   supervisor first, the daemon first, both together, the daemon frozen
//!   then the supervisor killed. The workload must be gone before the
//!   peers could act.
//!
//! The bound: a fault at `k` (while the host was writing its slot every
//! T/50) leaves the host a lease that ends by `k + lease`; peers may act no
//! earlier than `peers_may_act` after they saw its last write, i.e. about
//! `k + peers_may_act`. The workload must be gone by `k + lease` plus half
//! the gap (for the kill and the reaping on a loaded machine).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use uuid::Uuid;
use xha::core::Timeouts;
use xha::daemon::fence_record;
use xha_lab::{Lab, LabSpec, setup};

const XHAD: &str = env!("CARGO_BIN_EXE_xhad");
const HOST: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const T: u64 = 10;
/// Generous bound for start-up and joining on a loaded machine.
const ONLINE: Duration = Duration::from_secs(5 * T + 30);

fn timeouts() -> Timeouts {
    Timeouts::derive(Duration::from_secs(T)).expect("T")
}

/// The latest the host's group may be gone after a fault (module doc).
fn gone_bound() -> Duration {
    let t = timeouts();
    t.lease + (t.peers_may_act - t.lease) / 2
}

/// Wait up to `bound` for `child` to exit.
fn wait_exit(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + bound;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A workload must have been killed by SIGKILL within `bound` of `since`.
fn assert_killed(
    what: &str,
    child: &mut Child,
    since: Instant,
    bound: Duration,
    log: &dyn Fn() -> String,
) {
    let status = wait_exit(child, bound + Duration::from_secs(30)).unwrap_or_else(|| {
        panic!(
            "{what} still running {:?} after the fault\n{}",
            since.elapsed(),
            log()
        )
    });
    let after = since.elapsed();
    eprintln!("{what} gone {after:?} after the fault (bound {bound:?}): {status:?}");
    assert_eq!(
        status.signal(),
        Some(9),
        "{what} ended by {status:?}\n{}",
        log()
    );
    assert!(
        after <= bound,
        "{what} gone after {after:?}, bound {bound:?}\n{}",
        log()
    );
}

// ----- the daemon's own path -----

/// A one-host pool whose `xhad` uses `watchdog` (a TOML table body).
struct Pool {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    workload: Option<Child>,
    pgid: i32,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.pgid > 1 {
            let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGKILL);
        }
        for c in [self.daemon.as_mut(), self.workload.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Pool {
    fn new(watchdog: &str) -> Pool {
        let dir = tempfile::tempdir().expect("tempdir");
        let generation = Uuid::new_v4();
        setup::format_statefile(&dir.path().join("statefile"), generation, 1).expect("format");
        setup::write_secret(&dir.path().join("secret")).expect("secret");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let text = format!(
            "pool-generation = \"{generation}\"\nhost = \"{HOST}\"\ntimeout = {T}\n\
             secret-file = \"secret\"\nstatefiles = [\"statefile\"]\n\
             control-socket = \"control.sock\"\nstate-dir = \"state\"\n\
             fence-action = \"kill-host\"\n\
             [watchdog]\n{watchdog}\n\
             [[hosts]]\nuuid = \"{HOST}\"\naddress = \"127.0.0.1:{port}\"\n"
        );
        std::fs::write(dir.path().join("xhad.toml"), text).expect("config");
        Pool {
            dir,
            daemon: None,
            workload: None,
            pgid: 0,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Start `xhad` as the leader of a new group, and a workload in it.
    fn start(&mut self) {
        let daemon = Command::new(XHAD)
            .args(["--config", "xhad.toml"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.path("log")).expect("log"))
            .process_group(0)
            .spawn()
            .expect("spawn xhad");
        self.pgid = i32::try_from(daemon.id()).expect("pid");
        self.daemon = Some(daemon);
        let workload = Command::new("sleep")
            .arg("600")
            .process_group(self.pgid)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn workload");
        self.workload = Some(workload);
    }

    /// The daemon fenced its own group: it and the workload died by
    /// SIGKILL within the bound, it logged why, and it left a fence record.
    fn assert_fenced_itself(&mut self, since: Instant, why: &str) {
        let bound = gone_bound();
        let log_of = |p: &Path| std::fs::read_to_string(p.join("log")).unwrap_or_default();
        let dir = self.dir.path().to_path_buf();
        let log = move || log_of(&dir);
        let workload = self.workload.as_mut().expect("workload");
        assert_killed("workload", workload, since, bound, &log);
        let daemon = self.daemon.as_mut().expect("daemon");
        assert_killed("xhad", daemon, since, bound, &log);
        let text = self.log();
        assert!(
            text.contains("FENCING this host") && text.contains(why),
            "{text}"
        );
        assert!(
            self.path("state").join(fence_record::FILE_NAME).exists(),
            "no fence record\n{text}"
        );
    }
}

/// The supervisor's connection drops while armed (the supervisor died):
/// the daemon fences its own group (before, it exited 4 "kicking: Broken
/// pipe" and the workload ran on). A stand-in supervisor plays the part,
/// so no reaper is involved: this is the daemon's path alone.
#[test]
fn lost_supervisor_connection_fences_the_whole_group() {
    let mut p = Pool::new("backend = \"supervisor\"\nsocket = \"sup.sock\"");
    let listener = UnixListener::bind(p.path("sup.sock")).expect("bind");
    p.start();
    let (stream, _) = listener.accept().expect("accept");
    stream.set_read_timeout(Some(ONLINE)).expect("read timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("arm line");
    assert!(line.starts_with("arm "), "{line:?}\n{}", p.log());
    (&stream).write_all(b"ok\n").expect("reply");
    for _ in 0..5 {
        line.clear();
        reader.read_line(&mut line).expect("kick line");
        assert!(line.starts_with("kick"), "{line:?}");
    }
    drop(reader);
    drop(stream);
    drop(listener);
    let lost = Instant::now();
    p.assert_fenced_itself(lost, "the watchdog (supervisor) failed while armed");
}

/// The `linux` backend loses its device while armed (a FIFO standing in
/// for /dev/watchdog loses its reader, so the next keepalive write fails):
/// the daemon fences with its fence action.
#[test]
fn failed_watchdog_device_write_fences_the_whole_group() {
    let mut p = Pool::new("backend = \"linux\"\ndevice = \"wd\"");
    nix::unistd::mkfifo(&p.path("wd"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(p.path("wd"))
        .expect("open the FIFO");
    p.start();
    // Wait for the arm and a few keepalives.
    let mut got = 0;
    let end = Instant::now() + ONLINE;
    let mut buf = [0u8; 64];
    while got < 5 {
        match reader.read(&mut buf) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("read the FIFO: {e}"),
        }
        assert!(Instant::now() < end, "no keepalives\n{}", p.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(reader);
    let lost = Instant::now();
    p.assert_fenced_itself(lost, "the watchdog (linux) failed while armed");
}

// ----- every kill order, with the real supervisor -----

fn lab() -> Lab {
    let bin_dir = Path::new(XHAD).parent().expect("bin dir");
    let mut spec = LabSpec::new(1, T, bin_dir);
    spec.die_with_parent = true;
    let lab = Lab::start(spec).expect("lab");
    lab.wait_all_online(ONLINE)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", lab.log(0), lab.supervisor_log(0)));
    lab
}

fn logs(lab: &Lab) -> String {
    format!(
        "----- xhad -----\n{}\n----- supervisor -----\n{}",
        lab.log(0),
        lab.supervisor_log(0)
    )
}

/// Start a workload in the host, run `fault`, and assert the workload is
/// killed within the bound.
fn kill_order(fault: impl FnOnce(&Lab)) {
    let lab = lab();
    let mut workload = Workload(
        lab.spawn_in_host(0, Command::new("sleep").arg("600"))
            .expect("workload"),
    );
    let k = Instant::now();
    fault(&lab);
    assert_killed("workload", &mut workload.0, k, gone_bound(), &|| logs(&lab));
    assert!(
        lab.daemon_exit(0, Duration::from_secs(30)).is_some(),
        "xhad survived\n{}",
        logs(&lab)
    );
    drop(lab);
}

#[test]
fn kill_order_supervisor_first() {
    kill_order(|lab| lab.signal_supervisor(0, Signal::SIGKILL).expect("SIGKILL"));
}

#[test]
fn kill_order_daemon_first() {
    kill_order(|lab| lab.signal_daemon(0, Signal::SIGKILL).expect("SIGKILL"));
}

#[test]
fn kill_order_both_together() {
    // Daemon first: the other order races with the reaper, which may have
    // killed (and the lab reaped) the daemon before the second signal.
    kill_order(|lab| {
        lab.signal_daemon(0, Signal::SIGKILL).expect("SIGKILL");
        lab.signal_supervisor(0, Signal::SIGKILL).expect("SIGKILL");
    });
}

#[test]
fn kill_order_daemon_frozen_then_supervisor_killed() {
    kill_order(|lab| {
        lab.signal_daemon(0, Signal::SIGSTOP).expect("SIGSTOP");
        lab.signal_supervisor(0, Signal::SIGKILL).expect("SIGKILL");
    });
}

// ----- issue 9, section 3, with the real daemon -----

/// A supervisor started for an unrelated group (`--pgid` of a `sleep`
/// group, not the daemon's): the daemon is refused, so the supervisor never
/// arms for it, and the daemon exits 4 when it tries to arm (before, the
/// supervisor armed for it and would have killed the wrong group).
#[test]
fn a_supervisor_for_another_group_refuses_the_daemon() {
    let mut p = Pool::new("backend = \"supervisor\"\nsocket = \"sup.sock\"");
    let mut unrelated = Command::new("sleep")
        .arg("600")
        .process_group(0)
        .spawn()
        .expect("unrelated group");
    let group = i32::try_from(unrelated.id()).expect("pid");
    let mut supervisor = Command::new(Path::new(XHAD).with_file_name("xha-supervisor"))
        .args(["run", "--socket", "sup.sock", "--pgid", &group.to_string()])
        .current_dir(p.dir.path())
        .stderr(std::fs::File::create(p.path("supervisor.log")).expect("log"))
        .process_group(0)
        .spawn()
        .expect("supervisor");
    let sup_log = p.path("supervisor.log");
    let cleanup = |sup: &mut Child, other: &mut Child| {
        let _ = sup.kill();
        let _ = sup.wait();
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
        let _ = other.wait();
    };
    p.start();
    let status = wait_exit(p.daemon.as_mut().expect("daemon"), ONLINE);
    let sup_text = std::fs::read_to_string(&sup_log).unwrap_or_default();
    let code = status.and_then(|s| s.code());
    let running = supervisor.try_wait().expect("try_wait").is_none();
    let unrelated_alive = unrelated.try_wait().expect("try_wait").is_none();
    cleanup(&mut supervisor, &mut unrelated);
    assert_eq!(code, Some(4), "xhad: {}\nsupervisor: {sup_text}", p.log());
    assert!(p.log().contains("not in the host's group"), "{}", p.log());
    assert!(sup_text.contains("connection refused"), "{sup_text}");
    assert!(!sup_text.contains("countdown armed"), "{sup_text}");
    assert!(running, "the supervisor ended: {sup_text}");
    assert!(unrelated_alive, "the unrelated group was killed");
}

/// Kills the stand-in workload if a test fails before the host took it down
/// (before the fix, nothing else would).
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
