//! The `faultfs` file system: one regular file forwarded to a backing file,
//! or (a backing directory) that directory's regular files, with a fault
//! mode that a control socket switches at run time.
//!
//! Threads:
//! - the FUSE session loop (the caller of [`Server::run`]) answers lookups
//!   and attributes at once and hands reads, writes and fsyncs to
//!   [`Core::submit`], which forwards them at once (`ok`), fails them
//!   (`error`), holds them (`hang`) or schedules them (`delay`). It never
//!   sleeps, so a held or delayed request never blocks another one;
//! - the timer thread answers scheduled requests when they fall due, with
//!   the mode in force at that moment;
//! - one thread per control connection.
//!
//! A FUSE reply may be sent from any thread, which is what lets a request
//! outlive the session loop's call that received it.
//!
//! Parts: `core` (the fault queue: held and scheduled requests, the timer),
//! `fs` (the one-file FUSE file system over it), `dir_fs` (the directory
//! one), this file (mounting, stopping, the control socket).

mod core;
mod dir_fs;
mod fs;

use self::core::Core;
pub use self::core::MAX_PENDING;
use self::dir_fs::DirFs;
use self::fs::Fs;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{MountOption, Session};

use super::{FaultFsError, Mode, mounts};

/// How long a stop waits for released requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the backing file is, where to mount, and where to listen.
#[derive(Clone, Debug)]
pub struct Config {
    /// The regular file every read and write is forwarded to; or a
    /// directory, whose regular files the mount shows (`name` unused).
    pub backing: PathBuf,
    /// An existing directory to mount on.
    pub mount: PathBuf,
    /// Name of the one file in the mount (a backing file only).
    pub name: OsString,
    /// Path of the control socket (created; an old socket there is replaced).
    pub control: PathBuf,
}

/// A mounted faultfs, ready to [`run`](Server::run).
pub struct Server {
    session: Sessions,
    stopper: Stopper,
}

/// The FUSE session of a one-file or a directory mount.
enum Sessions {
    File(Session<Fs>),
    Dir(Session<DirFs>),
}

/// Stops a running [`Server`] from another thread (a signal handler thread).
#[derive(Clone)]
pub struct Stopper {
    core: Arc<Core>,
    mount: PathBuf,
    control: PathBuf,
}

impl Stopper {
    /// Release every held request (mode `ok`), wait up to two seconds for
    /// them to be answered, remove the control socket and detach the mount.
    /// The caller then exits the process, which ends the FUSE connection.
    pub fn stop(&self) {
        self.core.set_mode(Mode::Ok);
        let until = Instant::now() + DRAIN_TIMEOUT;
        while !self.core.idle() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = std::fs::remove_file(&self.control) {
            tracing::warn!("remove {}: {e}", self.control.display());
        }
        if let Err(e) = mounts::detach(&self.mount) {
            tracing::warn!("unmount {}: {e}", self.mount.display());
        }
    }
}

impl Server {
    /// Open the backing file, mount, start the timer and the control socket.
    pub fn mount(config: &Config) -> Result<Server, FaultFsError> {
        let backing_err = |source| FaultFsError::Backing {
            path: config.backing.clone(),
            source,
        };
        let options = [
            MountOption::FSName("faultfs".into()),
            MountOption::Subtype("faultfs".into()),
        ];
        let mount_err = |source| FaultFsError::Mount {
            dir: config.mount.clone(),
            source,
        };
        let core = Arc::new(Core::new());
        let is_dir = std::fs::metadata(&config.backing)
            .map_err(backing_err)?
            .is_dir();
        let session = if is_dir {
            let fs = DirFs::new(Arc::clone(&core), config.backing.clone()).map_err(backing_err)?;
            Sessions::Dir(Session::new(fs, &config.mount, &options).map_err(mount_err)?)
        } else {
            // O_DSYNC: a write is durable when answered. Not O_DIRECT: FUSE
            // hands us unaligned buffers. Every mount of one backing file
            // shares its page cache, so all of them see each write at once.
            let backing = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DSYNC)
                .open(&config.backing)
                .map_err(backing_err)?;
            if !backing.metadata().map_err(backing_err)?.is_file() {
                return Err(backing_err(std::io::Error::other(
                    "not a regular file or a directory",
                )));
            }
            let fs = Fs::new(Arc::clone(&core), backing, config.name.clone());
            Sessions::File(Session::new(fs, &config.mount, &options).map_err(mount_err)?)
        };
        let stopper = Stopper {
            core: Arc::clone(&core),
            mount: config.mount.clone(),
            control: config.control.clone(),
        };
        // Bound only once mounted: a client that can connect may use the file.
        let listener = bind(&config.control).inspect_err(|_| {
            let _ = mounts::detach(&config.mount);
        })?;
        let timer_core = Arc::clone(&core);
        spawn("faultfs-timer", move || timer_core.timer_loop())?;
        spawn("faultfs-control", move || accept_loop(&listener, &core))?;
        Ok(Server { session, stopper })
    }

    /// A handle that stops this server from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serve until the mount goes away.
    pub fn run(mut self) -> Result<(), FaultFsError> {
        let result = match &mut self.session {
            Sessions::File(session) => session.run(),
            Sessions::Dir(session) => session.run(),
        };
        let result = result.map_err(|source| FaultFsError::Mount {
            dir: self.stopper.mount.clone(),
            source,
        });
        let _ = std::fs::remove_file(&self.stopper.control);
        result
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), FaultFsError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(FaultFsError::Thread)
}

fn bind(path: &Path) -> Result<UnixListener, FaultFsError> {
    let err = |source| FaultFsError::Control {
        path: path.to_owned(),
        source,
    };
    // Replace a socket left by a killed server; refuse to delete anything else.
    let stale = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if stale {
        std::fs::remove_file(path).map_err(err)?;
    }
    UnixListener::bind(path).map_err(err)
}

fn accept_loop(listener: &UnixListener, core: &Arc<Core>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                let core = Arc::clone(core);
                let spawned = spawn("faultfs-conn", move || serve(stream, &core));
                if let Err(e) = spawned {
                    tracing::warn!("control connection: {e}");
                }
            }
            Err(e) => tracing::warn!("control accept: {e}"),
        }
    }
}

/// Answer one control connection, a line per command.
fn serve(stream: UnixStream, core: &Core) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { return };
        let answer = command(core, line.trim());
        if writeln!(out, "{answer}").is_err() {
            return;
        }
    }
}

fn command(core: &Core, line: &str) -> String {
    match line.split_once(' ') {
        _ if line == "stats" => format!("ok {}", core.stats()),
        _ if line == "ping" => "ok".to_owned(),
        Some(("mode", mode)) => match mode.parse::<Mode>() {
            Ok(mode) => {
                tracing::info!("mode {mode}");
                core.set_mode(mode);
                "ok".to_owned()
            }
            Err(e) => format!("err {e}"),
        },
        _ => format!("err unknown command {line:?}: expected mode ok|error|hang|delay MS, stats"),
    }
}
