//! The `faultfs` file system: one regular file forwarded to a backing file,
//! with a fault mode that a control socket switches at run time.
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

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request, Session,
};

use super::{FaultFsError, Mode, Stats, mounts};

/// Requests held or delayed at once; beyond this a request fails with `EIO`
/// (each one is a blocked thread somewhere, so this is never reached by a
/// sane test, but the queue stays bounded).
pub const MAX_PENDING: usize = 4096;

/// How long the kernel may cache names and attributes. The file's size
/// never changes, and data is never cached (direct I/O).
const TTL: Duration = Duration::from_secs(1);
const ROOT_INO: u64 = 1;
const FILE_INO: u64 = 2;
/// Not in fuser's ABI constants: lets several direct writes to the file be
/// in flight at once instead of queueing on the inode lock behind a held one.
const FOPEN_PARALLEL_DIRECT_WRITES: u32 = 1 << 6;
/// How long a stop waits for released requests to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the backing file is, where to mount, and where to listen.
#[derive(Clone, Debug)]
pub struct Config {
    /// The regular file every read and write is forwarded to.
    pub backing: PathBuf,
    /// An existing directory to mount on.
    pub mount: PathBuf,
    /// Name of the one file in the mount.
    pub name: OsString,
    /// Path of the control socket (created; an old socket there is replaced).
    pub control: PathBuf,
}

enum Op {
    Read {
        offset: u64,
        size: u32,
        reply: ReplyData,
    },
    Write {
        offset: u64,
        data: Vec<u8>,
        reply: ReplyWrite,
    },
    Fsync {
        reply: ReplyEmpty,
    },
}

impl Op {
    fn fail(self, errno: i32) {
        match self {
            Op::Read { reply, .. } => reply.error(errno),
            Op::Write { reply, .. } => reply.error(errno),
            Op::Fsync { reply } => reply.error(errno),
        }
    }
}

struct State {
    mode: Mode,
    /// Held requests with their arrival number, oldest first.
    held: Vec<(u64, Op)>,
    /// Scheduled requests by (due, arrival number).
    timed: BTreeMap<(Instant, u64), Op>,
    arrivals: u64,
    /// Requests being forwarded or failed right now (out of the queues,
    /// not yet answered): a stop waits for them too.
    running: u64,
    stats: Stats,
}

/// The fault state shared by the session loop, the timer and the control
/// connections.
struct Core {
    backing: File,
    state: Mutex<State>,
    wake: Condvar,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread cannot leave the queues half-updated in a way
        // that matters more than losing the mount, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn submit(&self, op: Op) {
        let mut st = self.lock();
        match op {
            Op::Read { .. } => st.stats.reads += 1,
            Op::Write { .. } => st.stats.writes += 1,
            Op::Fsync { .. } => st.stats.fsyncs += 1,
        }
        st.arrivals += 1;
        let arrival = st.arrivals;
        let full = st.held.len() + st.timed.len() >= MAX_PENDING;
        match st.mode {
            _ if full => {
                st.stats.errors += 1;
                drop(st);
                tracing::warn!("{MAX_PENDING} requests pending: failing one more");
                op.fail(libc::EIO);
            }
            Mode::Ok => {
                st.running += 1;
                drop(st);
                self.execute(op);
                self.lock().running -= 1;
            }
            Mode::Error => {
                st.stats.errors += 1;
                drop(st);
                op.fail(libc::EIO);
            }
            Mode::Hang => st.held.push((arrival, op)),
            Mode::Delay(d) => {
                st.timed.insert((Instant::now() + d, arrival), op);
                self.wake.notify_all();
            }
        }
    }

    /// Switch mode; the new mode applies to every unanswered request too:
    /// `ok` and `error` answer them now (oldest first), `hang` holds the
    /// delayed ones, `delay` answers the held ones that long from now.
    fn set_mode(&self, mode: Mode) {
        let mut st = self.lock();
        st.mode = mode;
        let now = Instant::now();
        match mode {
            Mode::Ok | Mode::Error => {
                let timed = std::mem::take(&mut st.timed);
                let held = std::mem::take(&mut st.held);
                let all = timed.into_iter().map(|((_, a), op)| (a, op)).chain(held);
                st.timed = all.map(|(a, op)| ((now, a), op)).collect();
            }
            Mode::Hang => {
                let timed = std::mem::take(&mut st.timed);
                st.held
                    .extend(timed.into_iter().map(|((_, a), op)| (a, op)));
                st.held.sort_by_key(|(a, _)| *a);
            }
            Mode::Delay(d) => {
                for (a, op) in std::mem::take(&mut st.held) {
                    st.timed.insert((now + d, a), op);
                }
            }
        }
        st.stats.mode = mode;
        drop(st);
        self.wake.notify_all();
    }

    /// No request is waiting or being answered.
    fn idle(&self) -> bool {
        let st = self.lock();
        st.held.is_empty() && st.timed.is_empty() && st.running == 0
    }

    fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            held: st.held.len() as u64,
            delayed: st.timed.len() as u64,
            ..st.stats
        }
    }

    /// Answer scheduled requests as they fall due, for ever.
    fn timer_loop(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let due = st.timed.first_key_value().map(|(k, _)| k.0);
            match due {
                Some(due) if due <= now => {
                    let Some(((_, arrival), op)) = st.timed.pop_first() else {
                        continue;
                    };
                    let mode = st.mode;
                    if mode == Mode::Hang {
                        st.held.push((arrival, op));
                        continue;
                    }
                    st.running += 1;
                    if mode == Mode::Error {
                        st.stats.errors += 1;
                    }
                    drop(st);
                    match mode {
                        Mode::Error => op.fail(libc::EIO),
                        _ => self.execute(op),
                    }
                    st = self.lock();
                    st.running -= 1;
                }
                Some(due) => {
                    st = self
                        .wake
                        .wait_timeout(st, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Forward one request to the backing file and answer it.
    fn execute(&self, op: Op) {
        let failed = |e: std::io::Error| {
            tracing::warn!("backing file: {e}");
            self.lock().stats.errors += 1;
            e.raw_os_error().unwrap_or(libc::EIO)
        };
        match op {
            Op::Read {
                offset,
                size,
                reply,
            } => {
                let mut buf = vec![0u8; size as usize];
                match read_full(&self.backing, &mut buf, offset) {
                    Ok(n) => reply.data(&buf[..n]),
                    Err(e) => reply.error(failed(e)),
                }
            }
            Op::Write {
                offset,
                data,
                reply,
            } => match self.backing.write_all_at(&data, offset) {
                // FUSE writes are at most max_write (far below 4 GiB) long.
                Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
                Err(e) => reply.error(failed(e)),
            },
            Op::Fsync { reply } => match self.backing.sync_data() {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(failed(e)),
            },
        }
    }
}

/// Read until `buf` is full or end of file; the byte count read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

struct Fs {
    core: Arc<Core>,
    name: OsString,
}

impl Fs {
    fn attr(&self, ino: u64) -> std::io::Result<FileAttr> {
        let meta = self.core.backing.metadata()?;
        let time = |secs: i64, nsecs: i64| {
            let since = Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32);
            UNIX_EPOCH + since
        };
        let mtime = time(meta.mtime(), meta.mtime_nsec());
        let (kind, perm, nlink, size) = if ino == ROOT_INO {
            (FileType::Directory, 0o755, 2, 0)
        } else {
            (FileType::RegularFile, 0o600, 1, meta.len())
        };
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: time(meta.atime(), meta.atime_nsec()),
            mtime,
            ctime: time(meta.ctime(), meta.ctime_nsec()),
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Filesystem for Fs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent != ROOT_INO || name != self.name {
            return reply.error(libc::ENOENT);
        }
        match self.attr(FILE_INO) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        if ino != ROOT_INO && ino != FILE_INO {
            return reply.error(libc::ENOENT);
        }
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &mut self,
        req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        // The file's size is the backing file's: refuse truncation, accept
        // (and ignore) time and ownership changes.
        match size {
            Some(_) => reply.error(libc::EPERM),
            None => self.getattr(req, ino, fh, reply),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match ino {
            FILE_INO => reply.opened(
                0,
                fuser::consts::FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES,
            ),
            ROOT_INO => reply.error(libc::EISDIR),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(libc::EINVAL);
        };
        self.core.submit(Op::Read {
            offset,
            size,
            reply,
        });
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(libc::EINVAL);
        };
        self.core.submit(Op::Write {
            offset,
            data: data.to_vec(),
            reply,
        });
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        self.core.submit(Op::Fsync { reply });
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn access(&mut self, _req: &Request<'_>, _ino: u64, _mask: i32, reply: ReplyEmpty) {
        reply.ok();
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT_INO {
            return reply.error(libc::ENOTDIR);
        }
        let entries = [
            (ROOT_INO, FileType::Directory, OsStr::new(".")),
            (ROOT_INO, FileType::Directory, OsStr::new("..")),
            (FILE_INO, FileType::RegularFile, self.name.as_os_str()),
        ];
        let skip = usize::try_from(offset).unwrap_or(0);
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(skip) {
            if reply.add(ino, i as i64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A mounted faultfs, ready to [`run`](Server::run).
pub struct Server {
    session: Session<Fs>,
    stopper: Stopper,
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
        // O_DSYNC: a write is durable when answered. Not O_DIRECT: FUSE hands
        // us unaligned buffers. Every mount of one backing file shares its
        // page cache, so all of them see each write at once.
        let backing = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DSYNC)
            .open(&config.backing)
            .map_err(backing_err)?;
        if !backing.metadata().map_err(backing_err)?.is_file() {
            return Err(backing_err(std::io::Error::other("not a regular file")));
        }
        let core = Arc::new(Core {
            backing,
            state: Mutex::new(State {
                mode: Mode::Ok,
                held: Vec::new(),
                timed: BTreeMap::new(),
                arrivals: 0,
                running: 0,
                stats: Stats::zero(Mode::Ok),
            }),
            wake: Condvar::new(),
        });
        let fs = Fs {
            core: Arc::clone(&core),
            name: config.name.clone(),
        };
        let options = [
            MountOption::FSName("faultfs".into()),
            MountOption::Subtype("faultfs".into()),
        ];
        let session =
            Session::new(fs, &config.mount, &options).map_err(|source| FaultFsError::Mount {
                dir: config.mount.clone(),
                source,
            })?;
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
        let result = self.session.run().map_err(|source| FaultFsError::Mount {
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
