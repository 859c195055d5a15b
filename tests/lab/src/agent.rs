//! One real pool agent (`xapi-ha`) on a directory of its own: its
//! configuration written there, a password set with `xapi-ha passwd` (and
//! kept in a `password` file for `xe -pwf`), the process started with its
//! log on a pipe, and its listener addresses read from that log once it
//! says "agent ready". The agent's API tests and the live `xe` tests start
//! their agents through this one helper.
//!
//! ```text
//! let agent = AgentProcess::start(&binary, dir, &config_text, "root", "pw")?;
//! agent.listeners.https  // Some(127.0.0.1:PORT) when tls_listen is set
//! agent.kill();          // SIGKILL; AgentProcess::run(&binary, dir) again
//! ```
//!
//! The caller owns the directory (a temporary one in the tests) and must
//! keep it until the agent is dropped; dropping an [`AgentProcess`] kills
//! the process and reaps it.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The configuration file's name in the agent's directory.
pub const CONFIG_FILE: &str = "xapi-ha.toml";
/// The file holding the password [`AgentProcess::start`] set (mode 0600).
pub const PASSWORD_FILE: &str = "password";
/// How long an agent may take to log "agent ready" (argon2 and TLS key
/// generation on a slow machine; generous on purpose).
pub const READY_WITHIN: Duration = Duration::from_secs(60);

/// Why an agent could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A file of the agent's directory could not be written.
    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be run.
    #[error("run {binary} ({step}): {source}")]
    Spawn {
        step: &'static str,
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `xapi-ha passwd` failed.
    #[error("xapi-ha passwd for {user} exited with {status}")]
    Passwd { user: String, status: String },
    /// The agent exited, or did not log "agent ready" in time.
    #[error("the agent did not become ready within {} s: {reason}", READY_WITHIN.as_secs())]
    NotReady { reason: String },
}

/// The addresses an agent logged (`listener=...`).
#[derive(Clone, Debug, Default)]
pub struct Listeners {
    pub http: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub unix: Option<PathBuf>,
}

/// A running agent. See the module documentation.
pub struct AgentProcess {
    child: Child,
    /// Where the agent said it listens.
    pub listeners: Listeners,
    /// The agent's log lines after "agent ready" (each also goes to
    /// stderr, prefixed `agent: `).
    pub log: mpsc::Receiver<String>,
}

fn io_error(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AgentError {
    let path = path.to_path_buf();
    move |source| AgentError::Io { step, path, source }
}

/// Sets `user`'s password in the agent's user file (`xapi-ha passwd`).
pub fn set_password(
    binary: &Path,
    config: &Path,
    user: &str,
    password: &str,
) -> Result<(), AgentError> {
    let spawn = |source| AgentError::Spawn {
        step: "passwd",
        binary: binary.to_path_buf(),
        source,
    };
    let mut passwd = Command::new(binary)
        .arg("--config")
        .arg(config)
        .args(["passwd", "--user", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(spawn)?;
    if let Some(mut stdin) = passwd.stdin.take() {
        writeln!(stdin, "{password}").map_err(spawn)?;
    }
    let status = passwd.wait().map_err(spawn)?;
    if !status.success() {
        return Err(AgentError::Passwd {
            user: user.to_owned(),
            status: status.to_string(),
        });
    }
    Ok(())
}

impl AgentProcess {
    /// Writes `config_text` to `dir/xapi-ha.toml`, sets `user`'s password
    /// (also written to `dir/password`), and runs the agent there.
    pub fn start(
        binary: &Path,
        dir: &Path,
        config_text: &str,
        user: &str,
        password: &str,
    ) -> Result<AgentProcess, AgentError> {
        let config = dir.join(CONFIG_FILE);
        std::fs::write(&config, config_text)
            .map_err(io_error("write the configuration", &config))?;
        let pw_file = dir.join(PASSWORD_FILE);
        write_private(&pw_file, &format!("{password}\n"))?;
        set_password(binary, &config, user, password)?;
        AgentProcess::run(binary, dir)
    }

    /// Runs the agent on a directory [`AgentProcess::start`] prepared
    /// (again: after a kill, or with a changed role file).
    pub fn run(binary: &Path, dir: &Path) -> Result<AgentProcess, AgentError> {
        let mut child = Command::new(binary)
            .arg("--config")
            .arg(dir.join(CONFIG_FILE))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| AgentError::Spawn {
                step: "serve",
                binary: binary.to_path_buf(),
                source,
            })?;
        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(AgentError::NotReady {
                reason: "no stderr pipe".into(),
            });
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining after the receiver is gone, so the agent never
            // blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                let _ = tx.send(line);
            }
        });
        let mut agent = AgentProcess {
            child,
            listeners: Listeners::default(),
            log: rx,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    fn wait_ready(&mut self) -> Result<(), AgentError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .log
                .recv_timeout(left)
                .map_err(|e| AgentError::NotReady {
                    reason: match e {
                        mpsc::RecvTimeoutError::Timeout => "no \"agent ready\" line".into(),
                        mpsc::RecvTimeoutError::Disconnected => "the agent exited".into(),
                    },
                })?;
            if let Some(l) = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listener="))
            {
                let l = l.trim_matches('"');
                if let Some(a) = l.strip_prefix("http://") {
                    self.listeners.http = a.parse().ok();
                } else if let Some(a) = l.strip_prefix("https://") {
                    self.listeners.https = a.parse().ok();
                } else if let Some(p) = l.strip_prefix("unix:") {
                    self.listeners.unix = Some(PathBuf::from(p));
                }
            }
            if line.contains("agent ready") {
                return Ok(());
            }
        }
    }

    /// maint: after the agent executed itself again (`host.reboot`, same
    /// pid): waits for its new "agent ready" and listeners.
    pub fn wait_ready_again(&mut self) -> Result<(), AgentError> {
        self.listeners = Listeners::default();
        self.wait_ready()
    }

    /// maint: the exit code once the process ended by itself (`None` while
    /// it runs; `Some(None)` when a signal ended it).
    pub fn exit_code(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (an orderly stop); the exit code once it has exited.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// The process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Makes `dir` a member of the pool whose master is at `master` (the role
/// file `data/pool.conf`, as xapi's `pool.conf`); takes effect on the
/// agent's next start.
pub fn make_member(data_dir: &Path, master: &str) -> Result<(), AgentError> {
    let path = data_dir.join("pool.conf");
    std::fs::write(&path, format!("slave:{master}")).map_err(io_error("write pool.conf", &path))
}

fn write_private(path: &Path, text: &str) -> Result<(), AgentError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("write the password file", path))?;
    f.write_all(text.as_bytes())
        .map_err(io_error("write the password file", path))
}

/// Stops the daemon and supervisor an enable started when a test ends (a
/// failing test included: they are detached and outlive the agent by
/// design). Made right after the enable: it reads the pidfiles then, and
/// later signals only those pids, and only while they still run this
/// test's configuration.
pub struct StopDaemons {
    dir: PathBuf,
    pids: Vec<i32>,
}

impl StopDaemons {
    /// Reads the pidfiles in `dir` (the agent's xhad directory) now.
    #[must_use]
    pub fn new(dir: PathBuf) -> StopDaemons {
        let read = |f: &str| -> Option<i32> {
            std::fs::read_to_string(dir.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let pids = [read("xhad.pid"), read("supervisor.pid")]
            .into_iter()
            .flatten()
            .collect();
        StopDaemons { dir, pids }
    }
}

impl Drop for StopDaemons {
    fn drop(&mut self) {
        let socket = self.dir.join("control.sock");
        for r in [
            xha_control::Request::DisarmFencing,
            xha_control::Request::Stop,
        ] {
            let _ = xha_control::client::request(&socket, r, xha_control::client::REQUEST_TIMEOUT);
        }
        let marker = self.dir.to_string_lossy().into_owned();
        let ours = |pid: i32| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
        };
        for &pid in &self.pids {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while ours(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            if ours(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
