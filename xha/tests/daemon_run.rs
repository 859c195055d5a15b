//! The `xhad` binary as a real process: start-up failures and their named
//! exit codes, `--check`, the `stop` handshake (its reply always arrives,
//! the socket is removed), and SIGTERM refused while fencing is armed.
//! One-host pools with the `none` watchdog: no supervisor needed here (the
//! lab and the end-to-end tests cover the supervisor).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;
use xha::daemon::fence_record;
use xha_lab::setup;

mod support;
use support::{Guard, wait_exit};

const XHAD: &str = env!("CARGO_BIN_EXE_xhad");
const HOST: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";

struct Pool {
    dir: tempfile::TempDir,
    generation: Uuid,
}

impl Pool {
    fn new() -> Pool {
        let dir = tempfile::tempdir().expect("tempdir");
        let generation = Uuid::new_v4();
        setup::format_statefile(&dir.path().join("statefile"), generation, 1).expect("format");
        setup::write_secret(&dir.path().join("secret")).expect("secret");
        let p = Pool { dir, generation };
        p.write_config(generation, "statefile", "");
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self, generation: Uuid, statefile: &str, extra: &str) {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("free port")
            .port();
        let text = format!(
            "pool-generation = \"{generation}\"\nhost = \"{HOST}\"\ntimeout = 10\n\
             secret-file = \"secret\"\nstatefiles = [\"{statefile}\"]\n\
             control-socket = \"control.sock\"\nstate-dir = \"state\"\n{extra}\
             [watchdog]\nbackend = \"none\"\nallow-no-watchdog = true\n\
             [[hosts]]\nuuid = \"{HOST}\"\naddress = \"127.0.0.1:{port}\"\n"
        );
        std::fs::write(self.path("xhad.toml"), text).expect("write config");
    }

    fn spawn(&self, args: &[&str]) -> Child {
        Command::new(XHAD)
            .args(args)
            .current_dir(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.path("log")).expect("log file"))
            .spawn()
            .expect("spawn xhad")
    }

    fn run(&self, args: &[&str]) -> (ExitStatus, String) {
        let child = self.spawn(args);
        let out = child.wait_with_output().expect("wait");
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }
}

/// Send one request line and read one answer line.
fn request(socket: &Path, line: &str) -> String {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A refused connection (busy, forbidden) may be closed before the
    // request is written: its one error line is still readable.
    let _ = s.write_all(format!("{line}\n").as_bytes());
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("read");
    answer
}

fn wait_socket(p: &Pool, child: &mut Child) -> PathBuf {
    let socket = p.path("control.sock");
    let start = Instant::now();
    while UnixStream::connect(&socket).is_err() {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "xhad exited: {}",
            p.log()
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no control socket\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    socket
}

#[test]
fn check_validates_and_exits() {
    let p = Pool::new();
    let (status, out) = p.run(&["--config", "xhad.toml", "--check"]);
    assert_eq!(status.code(), Some(0), "{}", p.log());
    assert!(out.contains("valid; host"), "{out}");
    assert!(!p.path("control.sock").exists());
}

#[test]
fn start_up_failures_have_named_exit_codes() {
    let p = Pool::new();
    let code = |args: &[&str]| p.run(args).0.code();
    assert_eq!(code(&["--frobnicate"]), Some(1), "invalid-parameter");
    assert_eq!(
        code(&["--config", "missing.toml"]),
        Some(6),
        "cannot-read-config"
    );

    std::fs::write(p.path("bad.toml"), "pool-generation = 3\n").expect("write");
    assert_eq!(code(&["--config", "bad.toml"]), Some(7), "invalid-config");
    assert!(p.log().contains("pool-generation"), "{}", p.log());

    p.write_config(p.generation, "no-such-statefile", "");
    assert_eq!(
        code(&["--config", "xhad.toml"]),
        Some(8),
        "cannot-access-statefile"
    );

    std::fs::write(p.path("zeros"), vec![0u8; 4 << 20]).expect("write");
    p.write_config(p.generation, "zeros", "");
    assert_eq!(
        code(&["--config", "xhad.toml"]),
        Some(9),
        "invalid-statefile"
    );

    p.write_config(Uuid::new_v4(), "statefile", "");
    assert_eq!(
        code(&["--config", "xhad.toml"]),
        Some(10),
        "generation-mismatch"
    );
    assert!(p.log().contains(&p.generation.to_string()), "{}", p.log());

    p.write_config(p.generation, "statefile", "");
    let listener = UnixListener::bind(p.path("control.sock")).expect("bind");
    assert_eq!(code(&["--config", "xhad.toml"]), Some(15), "daemon-present");
    drop(listener);
    std::fs::remove_file(p.path("control.sock")).expect("rm");

    assert_eq!(
        code(&["--config", "xhad.toml", "--heartbeat-fd", "77"]),
        Some(1),
        "invalid-parameter: descriptor 77 is not open"
    );
    assert!(p.log().contains("descriptor 77 is not open"), "{}", p.log());

    let boot = fence_record::boot_id().expect("boot id");
    fence_record::write(&p.path("state"), &boot, "test").expect("record");
    assert_eq!(
        code(&["--config", "xhad.toml"]),
        Some(17),
        "invalid-local-host-state"
    );
    assert!(p.log().contains("fence"), "{}", p.log());
}

/// `stop` to a daemon that has not joined yet: the reply always arrives,
/// the daemon exits 0 and removes its socket (several times, since a lost
/// reply is a race).
#[test]
fn stop_is_answered_and_the_socket_removed() {
    let p = Pool::new();
    for round in 0..5 {
        let mut g = Guard(p.spawn(&["--config", "xhad.toml"]));
        let socket = wait_socket(&p, &mut g.0);
        let answer = request(&socket, r#"{"request":"stop","id":9}"#);
        assert_eq!(answer.trim(), r#"{"id":9,"ok":true}"#, "round {round}");
        let status = wait_exit(&mut g.0, Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", p.log());
        assert!(!socket.exists(), "round {round}: socket left behind");
    }
}

/// A one-host pool joins and arms; SIGTERM is refused while armed (the host
/// would fail silently); after `set-excluded`, `stop` works.
#[test]
fn sigterm_is_refused_while_armed() {
    let p = Pool::new();
    let mut g = Guard(p.spawn(&["--config", "xhad.toml"]));
    let socket = wait_socket(&p, &mut g.0);
    let start = Instant::now();
    loop {
        let a = request(&socket, r#"{"request":"query-liveset"}"#);
        if a.contains(r#""status":"online""#) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not online: {a}\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(g.0.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    assert!(
        wait_exit(&mut g.0, Duration::from_secs(2)).is_none(),
        "exited on SIGTERM"
    );
    assert!(p.log().contains("SIGTERM refused"), "{}", p.log());
    assert_eq!(
        request(&socket, r#"{"request":"set-excluded"}"#).trim(),
        r#"{"ok":true}"#
    );
    assert_eq!(
        request(&socket, r#"{"request":"stop"}"#).trim(),
        r#"{"ok":true}"#
    );
    let status = wait_exit(&mut g.0, Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", p.log());
}

/// A request line refused for a duplicate key is answered with an error
/// naming the key and echoing the id, and nothing is executed: before, the
/// second `request` (here `stop`) ran and the error replies carried no id.
#[test]
fn duplicate_keys_are_refused_and_errors_echo_the_id() {
    let p = Pool::new();
    let mut g = Guard(p.spawn(&["--config", "xhad.toml"]));
    let socket = wait_socket(&p, &mut g.0);
    let a = request(
        &socket,
        r#"{"request":"query-liveset","request":"stop","id":4}"#,
    );
    assert!(a.starts_with(r#"{"id":4,"ok":false"#), "{a}");
    assert!(a.contains(r#""code":"bad-request""#), "{a}");
    assert!(
        a.contains(r#"key \"request\" appears more than once"#),
        "{a}"
    );
    let a = request(&socket, r#"{"request":"reboot","id":5}"#);
    assert!(a.starts_with(r#"{"id":5,"ok":false"#), "{a}");
    // Still running: the `stop` was not executed.
    std::thread::sleep(Duration::from_millis(300));
    assert!(g.0.try_wait().expect("try_wait").is_none(), "{}", p.log());
    let a = request(&socket, r#"{"request":"query-liveset","id":6}"#);
    assert!(a.starts_with(r#"{"id":6,"ok":true"#), "{a}");
}

/// 64 idle connections (the cap) do not lock clients out: each is closed
/// after the idle timeout (10 s) with an `idle` error, and a new client is
/// served soon after. Before, every client got `busy` for over a minute.
#[test]
fn idle_connections_do_not_lock_clients_out() {
    use xha::daemon::control_server::{IDLE_TIMEOUT, MAX_CONNECTIONS};
    let p = Pool::new();
    let mut g = Guard(p.spawn(&["--config", "xhad.toml"]));
    let socket = wait_socket(&p, &mut g.0);
    let start = Instant::now();
    let held: Vec<UnixStream> = (0..MAX_CONNECTIONS)
        .map(|_| UnixStream::connect(&socket).expect("connect"))
        .collect();
    // Served again within the idle timeout plus a generous margin (the
    // machine may be loaded).
    let bound = IDLE_TIMEOUT * 3;
    loop {
        let a = request(&socket, r#"{"request":"query-liveset","id":1}"#);
        if a.starts_with(r#"{"id":1,"ok":true"#) {
            break;
        }
        assert!(a.contains(r#""code":"busy""#), "{a}");
        assert!(
            start.elapsed() < bound,
            "still locked out after {bound:?}: {a}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let waited = start.elapsed();
    eprintln!("served again after {waited:?}");
    // The idle connections were told why they were closed.
    let mut line = String::new();
    let mut first = BufReader::new(held.into_iter().next().expect("one"));
    first
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    first.read_line(&mut line).expect("read");
    assert!(line.contains(r#""code":"idle""#), "{line}");
}

/// A client of another user (`nobody`) is refused by peer credentials even
/// when the socket's mode would let it connect, unless its uid is listed in
/// `control-uids`. Runs a tiny Python client as uid 65534.
#[test]
fn other_users_are_refused_unless_configured() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    const PYTHON: &str = "/usr/bin/python3";
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        eprintln!("skipped: needs root to run a client as another user");
        return;
    }
    if !Path::new(PYTHON).exists() {
        eprintln!("skipped: {PYTHON} is needed for the client running as nobody");
        return;
    }
    let ask_as_nobody = |socket: &Path| -> String {
        let script = "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.settimeout(10)\n\
             s.connect(sys.argv[1])\n\
             try: s.sendall(b'{\"request\":\"query-liveset\",\"id\":3}\\n')\n\
             except OSError: pass\n\
             print(s.makefile().readline().strip())\n";
        let out = Command::new(PYTHON)
            .args(["-c", script])
            .arg(socket)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run the client");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    for (extra, allowed) in [("", false), ("control-uids = [65534]\n", true)] {
        let p = Pool::new();
        p.write_config(p.generation, "statefile", extra);
        let mut g = Guard(p.spawn(&["--config", "xhad.toml"]));
        let socket = wait_socket(&p, &mut g.0);
        let mode = std::fs::metadata(&socket)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Open the socket and its directory to everyone: only the peer
        // credentials check stands between `nobody` and the daemon now.
        std::fs::set_permissions(p.dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod dir");
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))
            .expect("chmod socket");
        let a = ask_as_nobody(&socket);
        if allowed {
            assert!(a.starts_with(r#"{"id":3,"ok":true"#), "{a}\n{}", p.log());
        } else {
            assert!(a.contains(r#""code":"forbidden""#), "{a}");
            assert!(a.contains("uid 65534"), "{a}");
            assert!(p.log().contains("uid 65534 refused"), "{}", p.log());
        }
    }
}
