//! Starts the real `xapi-ha` binary for the API tests through the lab's
//! helper (`xha_lab::agent`): a temporary data directory, a password set
//! with `xapi-ha passwd`, listeners on port 0 of loopback (their addresses
//! read from the agent's log), killed on drop.
//! Also a small raw HTTP/1.1 client, so the tests can send exactly the
//! bytes they mean (malformed bodies, slow clients).

#![allow(dead_code)]

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use xha_lab::agent::AgentProcess;

pub const USER: &str = "root";
pub const PASSWORD: &str = "correct horse";

/// A running agent (started by the lab's one helper, `xha_lab::agent`).
pub struct Agent {
    // Declared before `dir`: the process is killed before its directory
    // is removed.
    process: AgentProcess,
    pub dir: tempfile::TempDir,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub unix: PathBuf,
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_xapi-ha"))
}

pub fn config_text(dir: &Path, api_extra: &str) -> String {
    format!(
        r#"[host]
uuid = "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f00"
name = "test-host"
address = "127.0.0.1"
[api]
tls_listen = ["127.0.0.1:0"]
http_listen = ["127.0.0.1:0"]
unix_socket = "{}/run/xapi-ha.sock"
{api_extra}
[data]
dir = "{}/data"
[vm]
drivers = ["qemu"]
[memory]
total_bytes = 17179869184
"#,
        dir.display(),
        dir.display()
    )
}

impl Agent {
    /// Starts an agent with extra `[api]` lines.
    pub fn start_with(api_extra: &str) -> Agent {
        Agent::start_configured(|dir| config_text(dir, api_extra))
    }

    /// Starts an agent with the configuration `text(dir)` gives for its
    /// temporary directory.
    pub fn start_configured(text: impl FnOnce(&Path) -> String) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let process = AgentProcess::start(binary(), dir.path(), &text(dir.path()), USER, PASSWORD)
            .unwrap_or_else(|e| panic!("start xapi-ha: {e}"));
        Agent::wrap(process, dir)
    }

    fn wrap(process: AgentProcess, dir: tempfile::TempDir) -> Agent {
        let l = process.listeners.clone();
        Agent {
            process,
            dir,
            http: l.http.expect("http listener logged"),
            https: l.https.expect("https listener logged"),
            unix: l.unix.expect("unix listener logged"),
        }
    }

    /// The agent's log lines since the last call (after "agent ready").
    pub fn log_lines(&self) -> Vec<String> {
        self.process.log.try_iter().collect()
    }

    /// Starts an agent with the default limits.
    pub fn start() -> Agent {
        Agent::start_with("")
    }

    fn run_in(dir: tempfile::TempDir) -> Agent {
        let process = AgentProcess::run(binary(), dir.path())
            .unwrap_or_else(|e| panic!("restart xapi-ha: {e}"));
        Agent::wrap(process, dir)
    }

    /// Kills the agent with SIGKILL and starts it again on the same data
    /// directory (new ports).
    pub fn kill9_and_restart(self) -> Agent {
        self.kill9_and_restart_with(|| {})
    }

    /// [`Agent::kill9_and_restart`], running `between` while the agent is
    /// down (haenable: to remove a file the agent wrote).
    pub fn kill9_and_restart_with(self, between: impl FnOnce()) -> Agent {
        let Agent {
            mut process, dir, ..
        } = self;
        process.kill();
        drop(process);
        between();
        Agent::run_in(dir)
    }

    /// Stops the agent with SIGTERM; its data directory, exit code and
    /// socket path.
    pub fn terminate(self) -> (tempfile::TempDir, Option<i32>, PathBuf) {
        let Agent {
            process, dir, unix, ..
        } = self;
        let code = process.terminate();
        (dir, code, unix)
    }

    /// Starts an agent again on a data directory left by [`Agent::terminate`].
    pub fn restart(dir: tempfile::TempDir) -> Agent {
        Agent::run_in(dir)
    }

    /// maint: after `host.reboot` (the agent executed itself again): waits
    /// until it is ready and takes its new listeners.
    pub fn wait_ready_again(&mut self) {
        self.process
            .wait_ready_again()
            .unwrap_or_else(|e| panic!("xapi-ha after a reboot: {e}"));
        let l = self.process.listeners.clone();
        self.http = l.http.expect("http listener logged");
        self.https = l.https.expect("https listener logged");
        self.unix = l.unix.expect("unix listener logged");
    }

    /// maint: the exit code once the agent ended by itself.
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.process.exit_code()
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.process.alive()
    }
}

/// A raw HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// Sends `body` with `POST path` on a fresh connection and reads the
/// response (the request says `Connection: close`).
pub fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> Response {
    try_post(addr, path, content_type, body).expect("HTTP exchange")
}

/// [`post`], with connection errors returned.
pub fn try_post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<Response> {
    use std::io::Read as _;
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// Reads a whole `Connection: close` response.
pub fn read_response(s: &mut impl std::io::Read) -> Response {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        headers: headers.to_owned(),
        body: body.to_owned(),
    }
}

/// A JSON-RPC call over plain HTTP; the parsed reply.
pub fn jsonrpc(addr: SocketAddr, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = post(
        addr,
        "/jsonrpc",
        "application/json",
        body.to_string().as_bytes(),
    );
    let v =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {r:?}"));
    (r.status, v)
}

/// A JSON-RPC 2.0 call that must succeed; its result.
pub fn call2(addr: SocketAddr, method: &str, params: serde_json::Value) -> serde_json::Value {
    let (status, v) = jsonrpc(
        addr,
        &serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(v.get("error").is_none(), "{method} failed: {v}");
    v["result"].clone()
}

/// A JSON-RPC 2.0 call that must fail; `[code, params...]`.
pub fn fail2(addr: SocketAddr, method: &str, params: serde_json::Value) -> Vec<String> {
    let (_, v) = jsonrpc(
        addr,
        &serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}),
    );
    let e = v
        .get("error")
        .unwrap_or_else(|| panic!("{method} succeeded: {v}"));
    assert_eq!(e["code"], 1, "{v}");
    let mut out = vec![e["message"].as_str().expect("message").to_owned()];
    out.extend(
        e["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| d.as_str().expect("string").to_owned()),
    );
    out
}

/// Logs in over JSON-RPC; the session reference.
pub fn login(addr: SocketAddr) -> String {
    call2(
        addr,
        "session.login_with_password",
        serde_json::json!([USER, PASSWORD, "1.0", "test"]),
    )
    .as_str()
    .expect("session ref")
    .to_owned()
}

/// A Python with the `XenAPI` package: `XAPI_HA_PYTHON`, the venv that
/// .ci/run makes under target/, or `python3` if it has the package.
pub fn python_with_xenapi() -> Result<PathBuf, String> {
    python_with("XAPI_HA_PYTHON", "xenapi-venv", "XenAPI", true)
}

/// A Python that can `import module`: the one named by the environment
/// variable `env`, the venv `target/<venv>` that .ci/run makes, or (with
/// `system`) `python3` if it has the module. The error says how .ci/run
/// installs it.
pub fn python_with(env: &str, venv: &str, module: &str, system: bool) -> Result<PathBuf, String> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os(env) {
        candidates.push(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    candidates.push(target.join(venv).join("bin/python3"));
    if system {
        candidates.push(PathBuf::from("python3"));
    }
    for c in &candidates {
        let ok = Command::new(c)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "no Python with {module} (tried {candidates:?}); .ci/run installs it with \
         `python3 -m venv target/{venv} && target/{venv}/bin/pip install {module}`"
    ))
}

/// `xha-vm-keeper` and `xha-stamp` (another package's binaries) built
/// once, next to `xapi-ha`, where the agent looks for the keeper.
pub fn vm_binaries() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace_bins();
        assert!(dir.join("xha-vm-keeper").exists(), "no keeper in {dir:?}");
        dir
    })
}

/// Every program of the workspace, built once (xha_lab's one build), in
/// the directory of `xapi-ha`.
pub fn workspace_bins() -> PathBuf {
    xha_lab::workspace_build::build_workspace_bins(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_xapi-ha"),
    )
}

/// `xhad` and `xha-supervisor` (the `xha` package's binaries) built once,
/// next to `xapi-ha` (a no-op when they are current).
pub fn xha_bins() -> (PathBuf, PathBuf) {
    let dir = workspace_bins();
    (dir.join("xhad"), dir.join("xha-supervisor"))
}
