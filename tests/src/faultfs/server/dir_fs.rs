//! The FUSE file system of a directory mount: the backing directory's
//! regular files (one level: what a `file` SR holds), which the mount can
//! create, truncate, rename and remove. Reads, writes, fsyncs and the
//! directory's fsync go to the fault queue; names, attributes, opens,
//! creations, renames and removals are answered at once (a test can always
//! tear the mount down, and the faults hit the I/O a host's daemons and VMs
//! depend on).
//!
//! Several mounts of one directory are several hosts' views of one shared
//! SR: nothing is cached (attributes and names live 0 s, data is direct
//! I/O), so a file one mount creates or grows is what the others see next.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyWrite, Request,
};

use super::core::{Core, Op};
use super::fs::{FOPEN_PARALLEL_DIRECT_WRITES, ROOT_INO, attr_of, errno, list_root};

/// Nothing is cached: another mount may change any name at any time.
const TTL: Duration = Duration::ZERO;

pub(super) struct DirFs {
    core: Arc<Core>,
    root: PathBuf,
    /// The root directory, opened for `fsyncdir`.
    root_file: Arc<File>,
    /// Inode numbers handed out, by name and back; a number is never
    /// reused while mounted.
    inos: HashMap<OsString, u64>,
    names: HashMap<u64, OsString>,
    next_ino: u64,
    /// Open files by handle.
    handles: HashMap<u64, Arc<File>>,
    next_fh: u64,
}

/// How a backing file is opened: read and write whatever the caller asked
/// (the kernel checked the permissions), O_DSYNC so that a write is
/// durable when answered (FUSE hands over unaligned buffers: no O_DIRECT).
fn backing_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).custom_flags(libc::O_DSYNC);
    o
}

impl DirFs {
    /// The file system showing the regular files of `root`, through the
    /// fault queue `core`.
    pub(super) fn new(core: Arc<Core>, root: PathBuf) -> std::io::Result<DirFs> {
        let root_file = File::open(&root)?;
        if !root_file.metadata()?.is_dir() {
            return Err(std::io::Error::other("not a directory"));
        }
        Ok(DirFs {
            core,
            root,
            root_file: Arc::new(root_file),
            inos: HashMap::new(),
            names: HashMap::new(),
            next_ino: ROOT_INO + 1,
            handles: HashMap::new(),
            next_fh: 1,
        })
    }

    fn ino_of(&mut self, name: &OsStr) -> u64 {
        if let Some(&ino) = self.inos.get(name) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inos.insert(name.to_owned(), ino);
        self.names.insert(ino, name.to_owned());
        ino
    }

    fn forget_name(&mut self, name: &OsStr) {
        if let Some(ino) = self.inos.remove(name) {
            self.names.remove(&ino);
        }
    }

    /// The backing path of a file inode.
    fn path(&self, ino: u64) -> Option<PathBuf> {
        self.names.get(&ino).map(|n| self.root.join(n))
    }

    /// The attributes of `name` in the root, if it is a regular file.
    fn file_attr(&mut self, name: &OsStr) -> Result<FileAttr, i32> {
        let meta = std::fs::symlink_metadata(self.root.join(name)).map_err(|e| errno(&e))?;
        if !meta.is_file() {
            return Err(libc::ENOENT);
        }
        let ino = self.ino_of(name);
        let perm =
            u16::try_from(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777)
                .unwrap_or(0o600);
        Ok(attr_of(ino, &meta, FileType::RegularFile, perm, meta.len()))
    }

    fn attr(&mut self, ino: u64) -> Result<FileAttr, i32> {
        if ino == ROOT_INO {
            let meta = self.root_file.metadata().map_err(|e| errno(&e))?;
            return Ok(attr_of(ino, &meta, FileType::Directory, 0o755, 0));
        }
        let name = self.names.get(&ino).cloned().ok_or(libc::ENOENT)?;
        self.file_attr(&name)
    }

    fn handle(&self, fh: u64) -> Option<Arc<File>> {
        self.handles.get(&fh).map(Arc::clone)
    }

    fn add_handle(&mut self, file: File) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Arc::new(file));
        fh
    }
}

/// A name in the root that this file system serves (one path component).
fn plain(parent: u64, name: &OsStr) -> Result<(), i32> {
    if parent != ROOT_INO {
        return Err(libc::ENOENT);
    }
    if name.is_empty() || name == "." || name == ".." {
        return Err(libc::EINVAL);
    }
    Ok(())
}

impl Filesystem for DirFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match plain(parent, name).and_then(|()| self.file_attr(name)) {
            Ok(attr) => reply.entry(&TTL, &attr, 0),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        // Sizes are kept (VDI.create sizes its file); times, modes and
        // owners are accepted and ignored.
        if let Some(size) = size {
            let Some(path) = self.path(ino) else {
                return reply.error(libc::ENOENT);
            };
            if let Err(e) = backing_options().open(&path).and_then(|f| f.set_len(size)) {
                return reply.error(errno(&e));
            }
        }
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if ino == ROOT_INO {
            return reply.error(libc::EISDIR);
        }
        let Some(path) = self.path(ino) else {
            return reply.error(libc::ENOENT);
        };
        match backing_options().open(&path) {
            Ok(file) => {
                let fh = self.add_handle(file);
                reply.opened(
                    fh,
                    fuser::consts::FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES,
                );
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        if let Err(e) = plain(parent, name) {
            return reply.error(e);
        }
        let mut options = backing_options();
        options.mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        } else {
            options.create(true);
        }
        if flags & libc::O_TRUNC != 0 {
            options.truncate(true);
        }
        let file = match options.open(self.root.join(name)) {
            Ok(file) => file,
            Err(e) => return reply.error(errno(&e)),
        };
        match self.file_attr(name) {
            Ok(attr) => {
                let fh = self.add_handle(file);
                reply.created(
                    &TTL,
                    &attr,
                    0,
                    fh,
                    fuser::consts::FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES,
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        match self.handle(fh) {
            Some(file) => self.core.read(file, offset, size, reply),
            None => reply.error(libc::EBADF),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        match self.handle(fh) {
            Some(file) => self.core.write(file, offset, data, reply),
            None => reply.error(libc::EBADF),
        }
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _ds: bool, reply: ReplyEmpty) {
        match self.handle(fh) {
            Some(file) => self.core.submit(Op::Fsync { file, reply }),
            None => reply.error(libc::EBADF),
        }
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        self.core.submit(Op::Fsync {
            file: Arc::clone(&self.root_file),
            reply,
        });
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lo: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // A request still queued holds its own reference to the file.
        self.handles.remove(&fh);
        reply.ok();
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        if let Err(e) = plain(parent, name) {
            return reply.error(e);
        }
        match std::fs::remove_file(self.root.join(name)) {
            Ok(()) => {
                self.forget_name(name);
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        if let Err(e) = plain(parent, name).and_then(|()| plain(newparent, newname)) {
            return reply.error(e);
        }
        if flags != 0 {
            return reply.error(libc::EINVAL); // RENAME_NOREPLACE and friends
        }
        match std::fs::rename(self.root.join(name), self.root.join(newname)) {
            Ok(()) => {
                self.forget_name(newname);
                if let Some(ino) = self.inos.remove(name) {
                    self.inos.insert(newname.to_owned(), ino);
                    self.names.insert(ino, newname.to_owned());
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
        }
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
        let listing = match std::fs::read_dir(&self.root) {
            Ok(listing) => listing,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut files: Vec<OsString> = listing
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name())
            .collect();
        files.sort();
        let files: Vec<(u64, OsString)> = files
            .into_iter()
            .map(|name| (self.ino_of(&name), name))
            .collect();
        list_root(
            reply,
            offset,
            files.iter().map(|(ino, name)| (*ino, name.as_os_str())),
        );
    }
}
