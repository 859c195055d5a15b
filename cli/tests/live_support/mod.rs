//! Starts the real `xapi-ha` agent for the live `xe` tests: a temporary
//! data directory, a password set with `xapi-ha passwd`, TLS on port 0 of
//! loopback and a Unix socket (addresses read from the agent's log),
//! killed on drop.
//!
//! The agent binary is `xapi-ha` beside the `xe` binary under test (cargo
//! does not build other packages' binaries for a test, so the first test
//! that needs it runs `cargo build -p xapi_ha --bin xapi-ha`, a no-op when
//! it is up to date), or the one named by `XE_TEST_XAPI_HA`.

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse";

static BUILT: Mutex<bool> = Mutex::new(false);

/// The agent binary, built if needed.
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("XE_TEST_XAPI_HA") {
        return PathBuf::from(p);
    }
    let xe = PathBuf::from(env!("CARGO_BIN_EXE_xe"));
    let path = xe.with_file_name("xapi-ha");
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "xapi_ha", "--bin", "xapi-ha"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p xapi_ha failed");
        *built = true;
    }
    path
}

/// A running agent.
pub struct Agent {
    child: Child,
    pub dir: tempfile::TempDir,
    pub https: SocketAddr,
    pub unix: PathBuf,
    pub known_hosts: PathBuf,
}

fn config_text(dir: &Path, host: &str, tls: &str, extra: &str) -> String {
    format!(
        r#"[host]
uuid = "{host}"
name = "live-host"
address = "127.0.0.1"
[api]
tls_listen = ["{tls}"]
unix_socket = "{d}/run/xapi-ha.sock"
[data]
dir = "{d}/data"
[vm]
drivers = ["qemu"]
[memory]
total_bytes = 17179869184
{extra}"#,
        d = dir.display()
    )
}

/// The host uuid of [`Agent::start`].
pub const HOST_UUID: &str = "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f00";

impl Agent {
    pub fn start() -> Agent {
        Agent::start_with(HOST_UUID, "127.0.0.1:0")
    }

    /// An agent with this host uuid, serving TLS on `tls`.
    pub fn start_with(host: &str, tls: &str) -> Agent {
        Agent::start_extra(host, tls, |_| String::new())
    }

    /// haenable: an agent whose configuration ends with `extra(dir)`.
    pub fn start_extra(host: &str, tls: &str, extra: impl FnOnce(&Path) -> String) -> Agent {
        let binary = agent_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("xapi-ha.toml");
        let text = config_text(dir.path(), host, tls, &extra(dir.path()));
        std::fs::write(&config, text).expect("config");
        let config = config.to_str().expect("utf-8 path").to_owned();
        let mut passwd = Command::new(&binary)
            .args(["--config", &config, "passwd", "--user", "root"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("xapi-ha passwd");
        writeln!(passwd.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
        assert!(passwd.wait().expect("passwd").success());
        Agent::run_in(dir)
    }

    /// Stops the agent, makes it a member of the pool whose master is at
    /// `master` (its role file, as xapi's `pool.conf`), and starts it again.
    pub fn into_member(mut self, master: &str) -> Agent {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
        drop(self);
        std::fs::write(dir.path().join("data/pool.conf"), format!("slave:{master}"))
            .expect("pool.conf");
        Agent::run_in(dir)
    }

    fn run_in(dir: tempfile::TempDir) -> Agent {
        let binary = agent_binary();
        let config = dir.path().join("xapi-ha.toml");
        let config = config.to_str().expect("utf-8 path").to_owned();
        let mut child = Command::new(&binary)
            .args(["--config", &config])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start xapi-ha");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                let _ = tx.send(line);
            }
        });
        let (mut https, mut unix) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("the agent did not become ready within 60 s");
            if let Some(l) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listener="))
            {
                let l = l.trim_matches('"');
                if let Some(a) = l.strip_prefix("https://") {
                    https = a.parse().ok();
                } else if let Some(p) = l.strip_prefix("unix:") {
                    unix = Some(PathBuf::from(p));
                }
            }
            if line.contains("agent ready") {
                break;
            }
        }
        let known_hosts = dir.path().join("known-hosts");
        Agent {
            child,
            https: https.expect("https listener logged"),
            unix: unix.expect("unix listener logged"),
            known_hosts,
            dir,
        }
    }

    /// Runs `xe` on the Unix socket with the password.
    pub fn xe(&self, args: &[&str]) -> Out {
        let socket = self.unix.to_str().expect("utf-8").to_owned();
        let mut all = vec!["--socket", &socket, "-u", "root", "-pw", PASSWORD];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Runs `xe` with exactly `args` (known-hosts file in the temp dir).
    pub fn run(&self, args: &[&str]) -> Out {
        let output = Command::new(env!("CARGO_BIN_EXE_xe"))
            .args(args)
            .env("XE_KNOWN_HOSTS", &self.known_hosts)
            .env_remove("XE_SOCKET")
            .output()
            .expect("run xe");
        Out {
            code: output.status.code().expect("xe exited by a signal"),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(self) -> String {
        assert_eq!(self.code, 0, "xe failed: {self:?}");
        self.stdout
    }
}
