//! `xhad`'s start-up checks as a real process (issue 9, sections 5 and 7):
//! weak or exposed pool secrets, a statefile listed twice under two names,
//! broadcast heartbeat addresses, a second daemon on one configuration, the
//! boot-join timeout, and a minority of statefiles missing at start-up.
//! Pools use the `none` watchdog: no supervisor is needed here.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;
use xha_lab::setup;

mod support;
use support::{Guard, wait_exit};

const XHAD: &str = env!("CARGO_BIN_EXE_xhad");
const HOST: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
const PEER: &str = "ffffffff-2fa1-11d2-883f-0016d3cca427";
/// The base timeout T of every pool here (the minimum).
const T: Duration = Duration::from_secs(10);

/// A one-host pool in a temporary directory: `statefile`, `secret`,
/// `xhad.toml`, state in `state/`.
struct Pool {
    dir: tempfile::TempDir,
    generation: Uuid,
    port: u16,
}

impl Pool {
    fn new() -> Pool {
        let dir = tempfile::tempdir().expect("tempdir");
        let generation = Uuid::new_v4();
        setup::format_statefile(&dir.path().join("statefile"), generation, 2).expect("format");
        setup::write_secret(&dir.path().join("secret")).expect("secret");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let p = Pool {
            dir,
            generation,
            port,
        };
        p.write_config(&["statefile"], "", "");
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `statefiles` as listed; `extra` top-level keys; `hosts` more
    /// `[[hosts]]` tables after this host's.
    fn write_config(&self, statefiles: &[&str], extra: &str, hosts: &str) {
        let list: Vec<String> = statefiles.iter().map(|s| format!("\"{s}\"")).collect();
        let text = format!(
            "pool-generation = \"{}\"\nhost = \"{HOST}\"\ntimeout = {}\n\
             secret-file = \"secret\"\nstatefiles = [{}]\n\
             control-socket = \"control.sock\"\nstate-dir = \"state\"\n{extra}\
             [watchdog]\nbackend = \"none\"\nallow-no-watchdog = true\n\
             [[hosts]]\nuuid = \"{HOST}\"\naddress = \"127.0.0.1:{}\"\n{hosts}",
            self.generation,
            T.as_secs(),
            list.join(", "),
            self.port
        );
        std::fs::write(self.path("xhad.toml"), text).expect("write config");
    }

    fn spawn(&self, args: &[&str], log: &str) -> Child {
        Command::new(XHAD)
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.path(log)).expect("log file"))
            .spawn()
            .expect("spawn xhad")
    }

    /// Run `xhad --config xhad.toml [--check]` to its end, killing it after
    /// `bound` (a hang is a failure, not a stuck test).
    fn run(&self, check: bool, bound: Duration) -> Option<i32> {
        let mut args = vec!["--config", "xhad.toml"];
        if check {
            args.push("--check");
        }
        let mut g = Guard(self.spawn(&args, "log"));
        wait_exit(&mut g.0, bound).and_then(|s| s.code())
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }
}

/// Send one request line and read one answer line.
fn request(socket: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("write");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("read");
    answer
}

/// Wait until the daemon answers `query-liveset` with `status` (bounded by
/// a few T: a one-host pool joins within a few statefile intervals).
fn wait_status(p: &Pool, child: &mut Child, status: &str) {
    let socket = p.path("control.sock");
    let start = Instant::now();
    loop {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "xhad exited: {}",
            p.log("log")
        );
        if UnixStream::connect(&socket).is_ok() {
            let a = request(&socket, r#"{"request":"query-liveset"}"#);
            if a.contains(&format!(r#""status":"{status}""#)) {
                return;
            }
        }
        assert!(start.elapsed() < 3 * T, "not {status}\n{}", p.log("log"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CHECK_BOUND: Duration = Duration::from_secs(20);

/// Secret files that are exposed, not regular (a FIFO must not hang
/// `--check`), or obviously without entropy: refused with exit 7, naming
/// the file and why.
#[test]
fn weak_or_exposed_secrets_are_refused() {
    let p = Pool::new();
    assert_eq!(p.run(true, CHECK_BOUND), Some(0), "{}", p.log("log"));
    let secret = p.path("secret");
    let good = std::fs::read(&secret).expect("read");

    for (mode, why) in [
        (0o644, "readable by group or others"),
        (0o660, "readable by group or others"),
        (0o602, "writable by group or others"),
    ] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).expect("chmod");
        assert_eq!(p.run(true, CHECK_BOUND), Some(7), "mode {mode:o}");
        let log = p.log("log");
        assert!(log.contains("secret-file: secret has mode"), "{log}");
        assert!(log.contains(why), "mode {mode:o}: {log}");
    }
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    for (bytes, why) in [
        (vec![0u8; 32], "every byte is the same"),
        (
            (0..32u8).map(|i| i % 15).collect(),
            "15 distinct byte values",
        ),
    ] {
        std::fs::write(&secret, bytes).expect("write");
        assert_eq!(p.run(true, CHECK_BOUND), Some(7));
        let log = p.log("log");
        assert!(log.contains(why), "{log}");
    }

    std::fs::remove_file(&secret).expect("rm");
    nix::unistd::mkfifo(&secret, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    assert_eq!(p.run(true, CHECK_BOUND), Some(7), "a FIFO as the secret");
    let log = p.log("log");
    assert!(log.contains("not a regular file"), "{log}");

    std::fs::remove_file(&secret).expect("rm");
    std::fs::create_dir(&secret).expect("mkdir");
    assert_eq!(
        p.run(true, CHECK_BOUND),
        Some(7),
        "a directory as the secret"
    );
    std::fs::remove_dir(&secret).expect("rmdir");

    std::fs::write(&secret, &good).expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(p.run(true, CHECK_BOUND), Some(0), "{}", p.log("log"));
}

/// One statefile under two names (`sf` and `./sf`, a symlink, a hard link)
/// would count twice towards the majority: refused (exit 7), naming both.
#[test]
fn one_statefile_under_two_names_is_refused() {
    let p = Pool::new();
    std::os::unix::fs::symlink("statefile", p.path("link")).expect("symlink");
    std::fs::hard_link(p.path("statefile"), p.path("hard")).expect("link");
    for other in ["./statefile", "link", "hard"] {
        p.write_config(&["statefile", other, "no-such-file"], "", "");
        assert_eq!(p.run(true, CHECK_BOUND), Some(7), "{other}");
        let log = p.log("log");
        assert!(log.contains("statefiles[1]"), "{log}");
        assert!(log.contains("statefiles[0]"), "{log}");
        assert!(log.contains("same file"), "{log}");
    }
}

/// A broadcast, multicast or unspecified heartbeat address (this host's or
/// a peer's) is refused in the configuration (exit 7).
#[test]
fn broadcast_and_multicast_addresses_are_refused() {
    let p = Pool::new();
    for bad in [
        "255.255.255.255:7000",
        "224.0.0.1:7000",
        "239.1.2.3:7000",
        "0.0.0.0:7000",
        "[::ffff:255.255.255.255]:7000",
    ] {
        let peer = format!("[[hosts]]\nuuid = \"{PEER}\"\naddress = \"{bad}\"\n");
        p.write_config(&["statefile"], "", &peer);
        assert_eq!(p.run(true, CHECK_BOUND), Some(7), "{bad}");
        assert!(
            p.log("log").contains("hosts[1].address"),
            "{}",
            p.log("log")
        );
    }
}

/// A second `xhad` on the same configuration exits 15 (daemon present) and
/// changes nothing: the incarnation file keeps its value and the first
/// daemon keeps serving.
#[test]
fn second_daemon_exits_15_and_changes_nothing() {
    let p = Pool::new();
    let mut first = Guard(p.spawn(&["--config", "xhad.toml"], "log"));
    wait_status(&p, &mut first.0, "online");
    let incarnation = std::fs::read(p.path("state/incarnation")).expect("incarnation");

    let mut second = Guard(p.spawn(&["--config", "xhad.toml"], "log2"));
    let status = wait_exit(&mut second.0, CHECK_BOUND);
    assert_eq!(status.and_then(|s| s.code()), Some(15), "{}", p.log("log2"));
    assert!(
        p.log("log2").contains("already running"),
        "{}",
        p.log("log2")
    );
    assert_eq!(
        std::fs::read(p.path("state/incarnation")).expect("incarnation"),
        incarnation,
        "the second daemon bumped the incarnation"
    );
    wait_status(&p, &mut first.0, "online");
}

/// A host whose peer never starts cannot form the liveset: after the
/// configured boot-join timeout it exits 12 with one clear line, and not
/// before.
#[test]
fn boot_join_timeout_exits_12() {
    let p = Pool::new();
    let peer = format!("[[hosts]]\nuuid = \"{PEER}\"\naddress = \"127.0.0.1:9\"\n");
    let join = T;
    p.write_config(
        &["statefile"],
        &format!("boot-join-timeout = {}\n", join.as_secs()),
        &peer,
    );
    let start = Instant::now();
    let mut g = Guard(p.spawn(&["--config", "xhad.toml"], "log"));
    // The daemon's clock starts after ours: it must not exit earlier than
    // the timeout, and must exit well within one more T.
    let status = wait_exit(&mut g.0, join + T);
    let elapsed = start.elapsed();
    assert_eq!(status.and_then(|s| s.code()), Some(12), "{}", p.log("log"));
    assert!(elapsed >= join, "exited after {elapsed:?}");
    let log = p.log("log");
    assert!(log.contains("did not join the liveset within"), "{log}");
}

/// Three statefiles, one missing: the host starts, says which one it could
/// not open, and joins on the other two (a majority). When the missing one
/// appears, a retry (every T) opens it and the warning goes. Two missing:
/// exit 8.
#[test]
fn a_minority_of_missing_statefiles_does_not_stop_start_up() {
    let p = Pool::new();
    setup::format_statefile(&p.path("statefile2"), p.generation, 2).expect("format");
    p.write_config(&["statefile", "missing", "statefile2"], "", "");
    assert_eq!(p.run(true, CHECK_BOUND), Some(0), "{}", p.log("log"));
    let mut g = Guard(p.spawn(&["--config", "xhad.toml"], "log"));
    wait_status(&p, &mut g.0, "online");
    let log = p.log("log");
    assert!(log.contains("statefiles[1]"), "{log}");
    assert!(log.contains("missing"), "{log}");
    let query = || request(&p.path("control.sock"), r#"{"request":"query-liveset"}"#);
    assert!(query().contains("could not be opened at start-up"));

    setup::format_statefile(&p.path("missing"), p.generation, 2).expect("format");
    let start = Instant::now();
    while !p.log("log").contains("statefile opened after start-up") {
        assert!(start.elapsed() < 3 * T, "not reopened\n{}", p.log("log"));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!query().contains("could not be opened at start-up"));
    wait_status(&p, &mut g.0, "online");
    drop(g);

    p.write_config(&["statefile", "gone", "gone2"], "", "");
    assert_eq!(p.run(false, CHECK_BOUND), Some(8), "{}", p.log("log"));
    assert_eq!(p.run(true, CHECK_BOUND), Some(8), "{}", p.log("log"));
}
