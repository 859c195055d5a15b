//! The FUSE file system: a root directory holding one regular file whose
//! reads, writes and fsyncs go to the fault queue.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyWrite, Request,
};

use super::core::{Core, Op};

/// How long the kernel may cache names and attributes. The file's size
/// never changes, and data is never cached (direct I/O).
const TTL: Duration = Duration::from_secs(1);
pub(super) const ROOT_INO: u64 = 1;
const FILE_INO: u64 = 2;
/// Not in fuser's ABI constants: lets several direct writes to the file be
/// in flight at once instead of queueing on the inode lock behind a held one.
pub(super) const FOPEN_PARALLEL_DIRECT_WRITES: u32 = 1 << 6;

pub(super) struct Fs {
    core: Arc<Core>,
    backing: Arc<File>,
    name: OsString,
}

impl Fs {
    /// The file system showing one file, `name`, backed by `backing`
    /// through the fault queue `core`.
    pub(super) fn new(core: Arc<Core>, backing: File, name: OsString) -> Fs {
        Fs {
            core,
            backing: Arc::new(backing),
            name,
        }
    }

    fn attr(&self, ino: u64) -> std::io::Result<FileAttr> {
        let meta = self.backing.metadata()?;
        Ok(if ino == ROOT_INO {
            attr_of(ino, &meta, FileType::Directory, 0o755, 0)
        } else {
            attr_of(ino, &meta, FileType::RegularFile, 0o600, meta.len())
        })
    }
}

/// The attributes shown for inode `ino`: `kind`, `perm` and `size`, the
/// times and owner of `meta` (the backing file's or directory's).
pub(super) fn attr_of(
    ino: u64,
    meta: &std::fs::Metadata,
    kind: FileType,
    perm: u16,
    size: u64,
) -> FileAttr {
    let time = |secs: i64, nsecs: i64| {
        let since = Duration::new(secs.max(0) as u64, nsecs.clamp(0, 999_999_999) as u32);
        UNIX_EPOCH + since
    };
    FileAttr {
        ino,
        size,
        blocks: size.div_ceil(512),
        atime: time(meta.atime(), meta.atime_nsec()),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: meta.uid(),
        gid: meta.gid(),
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub(super) fn errno(e: &std::io::Error) -> i32 {
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
        self.core
            .read(Arc::clone(&self.backing), offset, size, reply);
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
        self.core
            .write(Arc::clone(&self.backing), offset, data, reply);
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        self.core.submit(Op::Fsync {
            file: Arc::clone(&self.backing),
            reply,
        });
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
        reply: ReplyDirectory,
    ) {
        if ino != ROOT_INO {
            return reply.error(libc::ENOTDIR);
        }
        list_root(reply, offset, [(FILE_INO, self.name.as_os_str())]);
    }
}

/// Answers a `readdir` of the root from `offset`: `.`, `..`, then `files`
/// (inode and name of each regular file).
pub(super) fn list_root<'a>(
    mut reply: ReplyDirectory,
    offset: i64,
    files: impl IntoIterator<Item = (u64, &'a OsStr)>,
) {
    let dots = [
        (ROOT_INO, FileType::Directory, OsStr::new(".")),
        (ROOT_INO, FileType::Directory, OsStr::new("..")),
    ];
    let entries = dots.into_iter().chain(
        files
            .into_iter()
            .map(|(ino, name)| (ino, FileType::RegularFile, name)),
    );
    let skip = usize::try_from(offset).unwrap_or(0);
    for (i, (ino, kind, name)) in entries.enumerate().skip(skip) {
        if reply.add(ino, i as i64 + 1, kind, name) {
            break;
        }
    }
    reply.ok();
}
