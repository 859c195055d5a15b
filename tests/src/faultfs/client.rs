//! The test side: one [`FaultFs`] per mount, torn down on drop.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{DEFAULT_FILE_NAME, FaultFsError, Mode, Stats, mounts};

/// How long [`FaultFs::mount`] waits for the file to appear.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Read and write timeout of one control request.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long teardown waits for the process after each signal.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

/// Why FUSE mounts cannot work here, or `Ok` if they can: tests that need
/// [`FaultFs`] print the reason and skip.
pub fn fuse_available() -> Result<(), String> {
    let root = nix::unistd::geteuid().is_root();
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        let who = if root { "" } else { " (not root)" };
        return Err(format!(
            "cannot open /dev/fuse{who}: {e} (load the fuse module; in a container pass --device /dev/fuse)"
        ));
    }
    if root {
        return Ok(());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let has_fusermount3 = std::env::split_paths(&path).any(|d| d.join("fusermount3").exists());
    if has_fusermount3 {
        Ok(())
    } else {
        Err("not root and no fusermount3 in PATH (Debian package fuse3)".to_owned())
    }
}

/// The `faultfs` binary: `$FAULTFS_BIN`, else next to the running test
/// executable (`target/debug/faultfs` for `target/debug/deps/TEST-HASH`).
/// Integration tests of `ha_tests` can use `env!("CARGO_BIN_EXE_faultfs")`.
pub fn find_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FAULTFS_BIN") {
        return Some(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("faultfs"))
        .find(|bin| bin.is_file())
}

/// One `faultfs` process serving one mount. Dropping it releases held
/// requests, stops the process and unmounts, even if the server hangs.
#[derive(Debug)]
pub struct FaultFs {
    child: Option<Child>,
    pid: u32,
    dir: PathBuf,
    file: PathBuf,
    control: PathBuf,
    conn: Option<u32>,
}

impl FaultFs {
    /// Mount `backing` on the existing directory `dir` as `dir/statefile`,
    /// served by the `faultfs` binary `bin`; returns once the file is there.
    /// The control socket is `dir` with `.ctl` appended.
    pub fn mount(bin: &Path, backing: &Path, dir: &Path) -> Result<FaultFs, FaultFsError> {
        FaultFs::mount_named(bin, backing, dir, DEFAULT_FILE_NAME)
    }

    /// [`FaultFs::mount`] with another name for the file.
    pub fn mount_named(
        bin: &Path,
        backing: &Path,
        dir: &Path,
        name: &str,
    ) -> Result<FaultFs, FaultFsError> {
        FaultFs::spawn(bin, backing, dir, Some(name))
    }

    /// Mount the directory `backing` on the existing directory `dir`: its
    /// regular files, created, grown, renamed and removed through the
    /// mount too (one host's view of a shared `file` SR). [`FaultFs::path`]
    /// is the mount point.
    pub fn mount_dir(bin: &Path, backing: &Path, dir: &Path) -> Result<FaultFs, FaultFsError> {
        FaultFs::spawn(bin, backing, dir, None)
    }

    fn spawn(
        bin: &Path,
        backing: &Path,
        dir: &Path,
        name: Option<&str>,
    ) -> Result<FaultFs, FaultFsError> {
        let mount_err = |source| FaultFsError::Mount {
            dir: dir.to_owned(),
            source,
        };
        // Canonical before mounting: afterwards resolving it asks the server.
        let dir = dir.canonicalize().map_err(mount_err)?;
        let mut control = OsString::from(dir.as_os_str());
        control.push(".ctl");
        let child = Command::new(bin)
            .arg("--backing")
            .arg(backing)
            .arg("--mount")
            .arg(&dir)
            .args(name.map(|n| ["--name", n]).into_iter().flatten())
            .arg("--control")
            .arg(&control)
            .arg("--exit-with-parent")
            .env(
                "RUST_LOG",
                std::env::var_os("FAULTFS_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .map_err(FaultFsError::Process)?;
        let mut fs = FaultFs {
            pid: child.id(),
            child: Some(child),
            file: name.map_or_else(|| dir.clone(), |n| dir.join(n)),
            dir,
            control: PathBuf::from(control),
            conn: None,
        };
        fs.wait_ready()?; // On error, dropping `fs` cleans up.
        Ok(fs)
    }

    fn wait_ready(&mut self) -> Result<(), FaultFsError> {
        let until = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().map_err(FaultFsError::Process)?
            {
                self.child = None;
                return Err(FaultFsError::Exited(status));
            }
            // The server binds its socket only once mounted.
            if self.request("ping").is_ok() {
                self.conn = mounts::mounted_connection(&self.dir);
                let meta = std::fs::metadata(&self.file).map_err(|source| FaultFsError::Mount {
                    dir: self.dir.clone(),
                    source,
                })?;
                let served = if self.file == self.dir {
                    meta.is_dir()
                } else {
                    meta.is_file()
                };
                if served && self.conn.is_some() {
                    return Ok(());
                }
            }
            if Instant::now() > until {
                return Err(FaultFsError::NotReady(self.file.clone(), READY_TIMEOUT));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The file inside the mount: what the host under test opens.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// The mount point (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The control socket.
    pub fn control_path(&self) -> &Path {
        &self.control
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The FUSE connection number (`/sys/fs/fuse/connections/N`).
    pub fn connection(&self) -> Option<u32> {
        self.conn
    }

    /// Switch the mode; returns once the server applied it.
    pub fn set_mode(&self, mode: Mode) -> Result<(), FaultFsError> {
        self.request(&format!("mode {mode}")).map(drop)
    }

    /// The server's counters.
    pub fn stats(&self) -> Result<Stats, FaultFsError> {
        self.request("stats")?.parse()
    }

    /// Abort the FUSE connection, as if the server crashed: every pending
    /// and future request on this mount fails (`ENOTCONN`/`ECONNABORTED`).
    pub fn abort(&self) -> Result<(), FaultFsError> {
        let conn = self.conn.ok_or_else(|| FaultFsError::Teardown {
            dir: self.dir.clone(),
            what: "connection number unknown".to_owned(),
        })?;
        mounts::abort_connection(conn).map_err(|what| FaultFsError::Teardown {
            dir: self.dir.clone(),
            what,
        })
    }

    /// Tear down now and report what could not be cleaned up (drop does the
    /// same and only logs).
    pub fn unmount(mut self) -> Result<(), FaultFsError> {
        self.teardown()
    }

    /// One control request: a line out, a line back starting with `ok`.
    fn request(&self, line: &str) -> Result<String, FaultFsError> {
        let err = |source| FaultFsError::Control {
            path: self.control.clone(),
            source,
        };
        let mut stream = UnixStream::connect(&self.control).map_err(err)?;
        stream
            .set_read_timeout(Some(CONTROL_TIMEOUT))
            .map_err(err)?;
        stream
            .set_write_timeout(Some(CONTROL_TIMEOUT))
            .map_err(err)?;
        writeln!(stream, "{line}").map_err(err)?;
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).map_err(err)?;
        let answer = answer.trim_end();
        match answer.strip_prefix("ok") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => Ok(rest.trim().to_owned()),
            _ => Err(FaultFsError::BadReply(answer.to_owned())),
        }
    }

    /// Release held requests, SIGTERM (then abort the connection and
    /// SIGKILL), detach the mount if still there, remove the socket. Never
    /// panics, never blocks on the mount; bounded by a few seconds.
    fn teardown(&mut self) -> Result<(), FaultFsError> {
        let mut problems = Vec::new();
        if let Some(mut child) = self.child.take()
            && matches!(child.try_wait(), Ok(None))
        {
            if let Err(e) = self.set_mode(Mode::Ok) {
                tracing::debug!("release held requests: {e}");
            }
            self.stop(&mut child, &mut problems);
        }
        if self.conn.is_some() && mounts::mounted_connection(&self.dir) == self.conn {
            if let Some(conn) = self.conn {
                let _ = mounts::abort_connection(conn);
            }
            if let Err(e) = mounts::detach(&self.dir) {
                problems.push(format!("unmount: {e}"));
            }
        }
        if std::fs::symlink_metadata(&self.control).is_ok()
            && let Err(e) = std::fs::remove_file(&self.control)
        {
            problems.push(format!("remove {}: {e}", self.control.display()));
        }
        if problems.is_empty() {
            return Ok(());
        }
        let what = problems.join("; ");
        tracing::warn!("faultfs teardown of {}: {what}", self.dir.display());
        Err(FaultFsError::Teardown {
            dir: self.dir.clone(),
            what,
        })
    }

    fn stop(&self, child: &mut Child, problems: &mut Vec<String>) {
        let pid = Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX));
        if kill(pid, Signal::SIGTERM).is_ok() && wait_exit(child, EXIT_TIMEOUT) {
            return;
        }
        // Stuck (or stopped): end its requests, then kill it.
        if let Some(conn) = self.conn
            && let Err(e) = mounts::abort_connection(conn)
        {
            tracing::debug!("abort: {e}");
        }
        let _ = kill(pid, Signal::SIGKILL);
        if !wait_exit(child, EXIT_TIMEOUT) {
            problems.push(format!("process {} did not exit", self.pid));
        }
    }
}

/// Poll until `child` has exited (and is reaped), at most `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Err(_) => return false,
            Ok(None) if Instant::now() > until => return false,
            Ok(None) => std::thread::sleep(POLL),
        }
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
