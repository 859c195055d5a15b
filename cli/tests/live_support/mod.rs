//! Starts the real `xapi-ha` agent for the live `xe` tests through the
//! lab's helper (`xha_lab::agent`): a temporary data directory, a password
//! set with `xapi-ha passwd`, TLS on port 0 of loopback and a Unix socket
//! (addresses read from the agent's log), killed on drop.
//!
//! The agent binary is `xapi-ha` beside the `xe` binary under test (cargo
//! does not build other packages' binaries for a test, so the first test
//! that needs it runs `cargo build -p xapi_ha --bin xapi-ha` and the VM
//! keeper, a no-op when they are up to date), or the one named by
//! `XE_TEST_XAPI_HA`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use xha_lab::agent::{self, AgentProcess};

pub const PASSWORD: &str = "correct horse";

/// The agent binary, built if needed.
pub fn agent_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("XE_TEST_XAPI_HA") {
        return PathBuf::from(p);
    }
    let xe = PathBuf::from(env!("CARGO_BIN_EXE_xe"));
    let path = xe.with_file_name("xapi-ha");
    // The keeper too (all of the workspace's programs): without it the
    // agent runs no VMs.
    xha_lab::workspace_build::build_workspace_bins(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_xe"),
    );
    path
}

/// A running agent (started by the lab's one helper, `xha_lab::agent`).
pub struct Agent {
    // Declared before `dir`: the process is killed before its directory
    // is removed.
    process: AgentProcess,
    pub dir: tempfile::TempDir,
    pub https: SocketAddr,
    pub unix: PathBuf,
    pub known_hosts: PathBuf,
}

fn config_text(dir: &Path, host: &str, tls: &str, drivers: &str, extra: &str) -> String {
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
drivers = [{drivers}]
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
        Agent::start_full(host, tls, &["qemu"], |_| String::new())
    }

    /// An agent offering these VM drivers (`vm.drivers`).
    pub fn start_drivers(drivers: &[&str]) -> Agent {
        Agent::start_full(HOST_UUID, "127.0.0.1:0", drivers, |_| String::new())
    }

    /// haenable: an agent whose configuration ends with `extra(dir)`.
    pub fn start_extra(host: &str, tls: &str, extra: impl FnOnce(&Path) -> String) -> Agent {
        Agent::start_full(host, tls, &["qemu"], extra)
    }

    fn start_full(
        host: &str,
        tls: &str,
        drivers: &[&str],
        extra: impl FnOnce(&Path) -> String,
    ) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let drivers: Vec<String> = drivers.iter().map(|d| format!("{d:?}")).collect();
        let text = config_text(
            dir.path(),
            host,
            tls,
            &drivers.join(", "),
            &extra(dir.path()),
        );
        let process = AgentProcess::start(&agent_binary(), dir.path(), &text, "root", PASSWORD)
            .unwrap_or_else(|e| panic!("start xapi-ha: {e}"));
        Agent::wrap(process, dir)
    }

    /// Stops the agent, makes it a member of the pool whose master is at
    /// `master` (its role file, as xapi's `pool.conf`), and starts it again.
    pub fn into_member(self, master: &str) -> Agent {
        let Agent {
            mut process, dir, ..
        } = self;
        process.kill();
        drop(process);
        agent::make_member(&dir.path().join("data"), master).expect("pool.conf");
        let process = AgentProcess::run(&agent_binary(), dir.path())
            .unwrap_or_else(|e| panic!("restart xapi-ha: {e}"));
        Agent::wrap(process, dir)
    }

    fn wrap(process: AgentProcess, dir: tempfile::TempDir) -> Agent {
        let l = process.listeners.clone();
        Agent {
            process,
            https: l.https.expect("https listener logged"),
            unix: l.unix.expect("unix listener logged"),
            known_hosts: dir.path().join("known-hosts"),
            dir,
        }
    }

    /// The file holding the password (for `-pwf`).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join(agent::PASSWORD_FILE)
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
