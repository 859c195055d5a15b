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
    /// stderr, prefixed `agent: `, or is in [`LOG_FILE`]).
    pub log: mpsc::Receiver<String>,
    detached: bool,
}

/// How [`AgentProcess::run_with`] starts the agent.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// In a process group of its own (a terminal's Ctrl-C reaches only the
    /// caller, which cleans up).
    pub own_process_group: bool,
    /// Its log appended to `dir/agent.log` ([`LOG_FILE`]) instead of a pipe
    /// echoed to stderr: the agent can outlive the caller.
    pub log_to_file: bool,
}

/// The agent's log with [`RunOptions::log_to_file`].
pub const LOG_FILE: &str = "agent.log";

/// Sends the lines appended to `path` after byte `start` until the
/// receiver is gone.
fn tail(path: &Path, start: u64, tx: &mpsc::Sender<String>) {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return;
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return;
    }
    let mut pending = String::new();
    let mut buf = [0u8; 8192];
    loop {
        match file.read(&mut buf) {
            Ok(0) => std::thread::sleep(Duration::from_millis(50)),
            Ok(n) => {
                pending.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        return;
                    }
                }
            }
            Err(_) => return,
        }
    }
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
        AgentProcess::start_with(
            binary,
            dir,
            config_text,
            user,
            password,
            &RunOptions::default(),
        )
    }

    /// Runs the agent on a directory [`AgentProcess::start`] prepared
    /// (again: after a kill, or with a changed role file).
    pub fn run(binary: &Path, dir: &Path) -> Result<AgentProcess, AgentError> {
        AgentProcess::run_with(binary, dir, &RunOptions::default())
    }

    /// [`AgentProcess::start`] with [`RunOptions`].
    pub fn start_with(
        binary: &Path,
        dir: &Path,
        config_text: &str,
        user: &str,
        password: &str,
        options: &RunOptions,
    ) -> Result<AgentProcess, AgentError> {
        let config = dir.join(CONFIG_FILE);
        std::fs::write(&config, config_text)
            .map_err(io_error("write the configuration", &config))?;
        let pw_file = dir.join(PASSWORD_FILE);
        write_private(&pw_file, &format!("{password}\n"))?;
        set_password(binary, &config, user, password)?;
        AgentProcess::run_with(binary, dir, options)
    }

    /// [`AgentProcess::run`] with [`RunOptions`].
    pub fn run_with(
        binary: &Path,
        dir: &Path,
        options: &RunOptions,
    ) -> Result<AgentProcess, AgentError> {
        use std::os::unix::process::CommandExt as _;
        let mut command = Command::new(binary);
        command
            .arg("--config")
            .arg(dir.join(CONFIG_FILE))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if options.own_process_group {
            command.process_group(0);
        }
        let log_file = dir.join(LOG_FILE);
        if options.log_to_file {
            let file = std::fs::File::options()
                .create(true)
                .append(true)
                .open(&log_file)
                .map_err(io_error("open the agent's log", &log_file))?;
            command.stderr(file);
        } else {
            command.stderr(Stdio::piped());
        }
        let mut child = command.spawn().map_err(|source| AgentError::Spawn {
            step: "serve",
            binary: binary.to_path_buf(),
            source,
        })?;
        let (tx, rx) = mpsc::channel();
        if options.log_to_file {
            let start = std::fs::metadata(&log_file).map_or(0, |m| m.len());
            std::thread::spawn(move || tail(&log_file, start, &tx));
        } else {
            let Some(stderr) = child.stderr.take() else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AgentError::NotReady {
                    reason: "no stderr pipe".into(),
                });
            };
            std::thread::spawn(move || {
                // Keeps draining after the receiver is gone, so the agent
                // never blocks on a full pipe.
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("agent: {line}");
                    let _ = tx.send(line);
                }
            });
        }
        let mut agent = AgentProcess {
            child,
            listeners: Listeners::default(),
            log: rx,
            detached: false,
        };
        agent.wait_ready()?;
        Ok(agent)
    }

    /// Lets the agent run on after this handle is gone (`xe lab --keep`):
    /// dropping it no longer kills the process.
    pub fn detach(mut self) {
        self.detached = true;
    }

    fn wait_ready(&mut self) -> Result<(), AgentError> {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.log.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    // A log file's reader never sees the agent exit.
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(AgentError::NotReady {
                            reason: format!("the agent exited ({status})"),
                        });
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(AgentError::NotReady {
                        reason: "no \"agent ready\" line".into(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(AgentError::NotReady {
                        reason: "the agent exited".into(),
                    });
                }
            };
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
        if self.detached {
            return;
        }
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
