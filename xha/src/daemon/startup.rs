//! Start-up beyond the configuration (`docs/daemon.md`, "Run time"):
//! opening the statefiles, and the line of a boot-join timeout.
//!
//! Two rules beyond opening each file (`statefile_io::open`):
//! - Two entries that are one file (`sf` and `./sf`, a symlink, a hard link,
//!   a bind mount, two device nodes of one block device) would count twice
//!   towards the statefile majority: refused, exit 7, naming both entries.
//!   Files are compared by device and inode, block and character devices by
//!   the device number they stand for. Two regions of one device (entries
//!   with `offset` and `length`) are one statefile only when they overlap
//!   (caught by the configuration check) or start at the same offset. The
//!   `stat` runs on a helper thread
//!   bounded by the I/O deadline, like the open, so a hung mount cannot hang
//!   start-up. (Two paths to one LUN through different devices, such as
//!   multipath members, cannot be recognised this way.)
//! - A minority of statefiles that cannot be opened (missing, no access,
//!   hung) does not stop the host: it starts without them, logs each one, and
//!   the core sees every I/O on them fail, as if the storage had failed
//!   while running. A majority missing is exit 8, as before. A statefile that
//!   opens but is not one of this pool (not a statefile, too few slots,
//!   another generation: 9, 10) is a configuration mistake and still stops
//!   start-up whatever the others do.
//! - A statefile left out because it could not be opened (missing, no
//!   access) is retried every T by a [`Reopener`], on a helper thread so
//!   the main loop never waits for storage; once it opens (and is still a
//!   distinct file of this pool) its I/O is used from then on. One whose
//!   open hung is not retried: the stuck thread may never return, and
//!   retrying would pile up more.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sr_heartbeat::statefile::Statefile;

use super::config::{Config, ConfigError};
use super::exit::ExitCode;
use super::run::Fatal;
use super::statefile_io::{self, OpenError};
use crate::core::Instant;

/// What makes two paths one statefile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A block or character device: the device number it stands for.
    Device { rdev: u64 },
    /// Anything else: the file's device and inode.
    File { dev: u64, ino: u64 },
    /// The region at byte `offset` of the device or file `rdev`/`ino` (both
    /// of the identity above, whichever it is).
    Region { major: u64, minor: u64, offset: u64 },
}

impl Identity {
    /// The identity of `region` of the file or device with this identity.
    #[must_use]
    pub fn in_region(self, region: Option<sr_heartbeat::io::Region>) -> Identity {
        let Some(r) = region else { return self };
        let (major, minor) = match self {
            Identity::Device { rdev } => (rdev, u64::MAX),
            Identity::File { dev, ino } => (dev, ino),
            Identity::Region { major, minor, .. } => (major, minor),
        };
        Identity::Region {
            major,
            minor,
            offset: r.offset,
        }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Identity::Device { rdev } => write!(
                f,
                "device {}:{}",
                nix::sys::stat::major(*rdev),
                nix::sys::stat::minor(*rdev)
            ),
            Identity::File { dev, ino } => write!(
                f,
                "inode {ino} on device {}:{}",
                nix::sys::stat::major(*dev),
                nix::sys::stat::minor(*dev)
            ),
            Identity::Region { offset, .. } => {
                write!(f, "a region at offset {offset} of one device or file")
            }
        }
    }
}

/// The identity of the file at `path` (symlinks followed), or `None` when
/// it cannot be found out within `deadline` (opening then says why).
#[must_use]
pub fn identity(path: &Path, deadline: Duration) -> Option<Identity> {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("statefile-stat".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = tx.send(std::fs::metadata(&p));
        });
    if spawned.is_err() {
        return None;
    }
    let meta = rx.recv_timeout(deadline).ok()?.ok()?;
    let t = meta.file_type();
    Some(if t.is_block_device() || t.is_char_device() {
        Identity::Device { rdev: meta.rdev() }
    } else {
        Identity::File {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    })
}

/// Refuse two entries with one identity. `ids[i]` belongs to `paths[i]`.
pub fn check_distinct(paths: &[PathBuf], ids: &[Option<Identity>]) -> Result<(), ConfigError> {
    for (i, id) in ids.iter().enumerate() {
        let Some(id) = id else { continue };
        if let Some(j) = ids[..i].iter().position(|other| other.as_ref() == Some(id)) {
            return Err(ConfigError::SameStatefile {
                key: format!("statefiles[{i}]"),
                path: paths[i].clone(),
                first: format!("statefiles[{j}]"),
                first_path: paths[j].clone(),
                identity: id.to_string(),
            });
        }
    }
    Ok(())
}

/// The statefiles of a start-up: entry `i` of `files` is `None` when
/// statefile `i` could not be opened (at most a minority).
pub struct Opened {
    pub files: Vec<Option<Statefile>>,
    /// Every statefile's identity, where known.
    pub ids: Vec<Option<Identity>>,
    /// The statefiles left out whose open failed fast (not hung): worth
    /// retrying.
    pub retry: Vec<usize>,
}

/// Open every configured statefile (see the module doc).
pub fn open_statefiles(config: &Config) -> Result<Opened, Fatal> {
    let deadline = config.timeouts.io_deadline;
    let paths = &config.statefiles;
    let region = |i: usize| config.statefile_regions.get(i).copied().flatten();
    let ids: Vec<Option<Identity>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| identity(p, deadline).map(|id| id.in_region(region(i))))
        .collect();
    check_distinct(paths, &ids).map_err(|e| Fatal::new(e.exit_code(), e.to_string()))?;
    let mut files = Vec::with_capacity(paths.len());
    let mut unreachable = Vec::new();
    let mut retry = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        match statefile_io::open(
            i,
            p,
            region(i),
            config.pool_generation,
            config.hosts.len(),
            deadline,
        ) {
            Ok(f) => {
                tracing::info!(
                    statefile = i,
                    path = %p.display(),
                    sector_size = f.device().sector_size(),
                    "statefile opened (O_DIRECT)"
                );
                files.push(Some(f));
            }
            Err(e @ (OpenError::Access { .. } | OpenError::Hung { .. })) => {
                if matches!(e, OpenError::Access { .. }) {
                    retry.push(i);
                }
                unreachable.push(e.to_string());
                files.push(None);
            }
            Err(e) => {
                let code = match &e {
                    OpenError::Generation { .. } => ExitCode::GenerationMismatch,
                    _ => ExitCode::InvalidStatefile,
                };
                return Err(Fatal::new(code, e.to_string()));
            }
        }
    }
    let opened = files.iter().filter(|f| f.is_some()).count();
    let majority = paths.len() / 2 + 1;
    if opened < majority {
        return Err(Fatal::new(
            ExitCode::CannotAccessStatefile,
            format!(
                "{opened} of {} statefiles opened, a majority ({majority}) is required: {}",
                paths.len(),
                unreachable.join("; ")
            ),
        ));
    }
    for e in &unreachable {
        tracing::warn!(
            "{e}; starting without it ({opened} of {} statefiles open, a majority): its I/O counts as failed until it opens (retried every T unless the open hung)",
            paths.len()
        );
    }
    Ok(Opened { files, ids, retry })
}

/// The exit-12 line of a host that did not join within `timeout`: what it
/// was waiting for.
#[must_use]
pub fn boot_join_message(timeout: Duration, st: &crate::core::NodeStatus) -> String {
    let lacking = |f: fn(&crate::core::HostStatus) -> bool| {
        let v: Vec<String> = st
            .hosts
            .iter()
            .filter(|h| h.index != st.local && !f(h))
            .map(|h| format!("{}:{}", h.index, &h.uuid.to_string()[..8]))
            .collect();
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(" ")
        }
    };
    format!(
        "did not join the liveset within the boot-join timeout of {} s ({}; statefile access {}; hosts not heard: {}; not seen in the statefile: {})",
        timeout.as_secs(),
        st.text,
        if st.statefile_access { "yes" } else { "no" },
        lacking(|h| h.heard),
        lacking(|h| h.seen),
    )
}

/// The standing warning of a statefile left out at start-up (withdrawn
/// when a retry opens it).
#[must_use]
pub fn left_out_warning(index: usize, path: &Path) -> String {
    format!(
        "statefiles[{index}] {} could not be opened at start-up; its I/O counts as failed until it opens",
        path.display()
    )
}

/// Why a retry did not open a statefile.
#[derive(Debug)]
pub enum RetryError {
    /// The open did not return within the deadline: not retried again.
    Hung(String),
    /// Anything else: retried next round.
    Failed(String),
}

/// One retry round's outcome for one statefile.
pub type Reopened = (usize, Result<Statefile, RetryError>);

/// The channel on which a [`Reopener`]'s rounds report.
pub type ReopenReceiver = tokio::sync::mpsc::UnboundedReceiver<Vec<Reopened>>;

/// Retries, every `interval`, opening the statefiles left out at start-up
/// (see the module doc). Owned by the main loop: [`Reopener::tick`] when
/// [`Reopener::next_at`] is due; each round's results arrive on the
/// [`ReopenReceiver`] and go to [`Reopener::done`].
pub struct Reopener {
    pending: Vec<usize>,
    in_flight: bool,
    next_at: Option<Instant>,
    interval: Duration,
    paths: Vec<PathBuf>,
    regions: Vec<Option<sr_heartbeat::io::Region>>,
    ids: Vec<Option<Identity>>,
    generation: uuid::Uuid,
    hosts: usize,
    deadline: Duration,
    /// Kept so the receiver never sees the channel closed.
    tx: tokio::sync::mpsc::UnboundedSender<Vec<Reopened>>,
}

impl Reopener {
    /// Retry `opened.retry`, the first time at `now + T`.
    #[must_use]
    pub fn new(config: &Config, opened: &Opened, now: Instant) -> (Reopener, ReopenReceiver) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let interval = config.timeouts.base;
        let r = Reopener {
            pending: opened.retry.clone(),
            in_flight: false,
            next_at: (!opened.retry.is_empty()).then(|| now + interval),
            interval,
            paths: config.statefiles.clone(),
            regions: config.statefile_regions.clone(),
            ids: opened.ids.clone(),
            generation: config.pool_generation,
            hosts: config.hosts.len(),
            deadline: config.timeouts.io_deadline,
            tx,
        };
        (r, rx)
    }

    /// When [`Reopener::tick`] wants to run (`None`: nothing to retry, or a
    /// round is in flight).
    #[must_use]
    pub fn next_at(&self) -> Option<Instant> {
        if self.in_flight { None } else { self.next_at }
    }

    /// Start a retry round on a helper thread if one is due.
    pub fn tick(&mut self, now: Instant) {
        if self.in_flight || self.pending.is_empty() || self.next_at.is_none_or(|at| at > now) {
            return;
        }
        let (pending, paths, ids) = (self.pending.clone(), self.paths.clone(), self.ids.clone());
        let regions = self.regions.clone();
        let (generation, hosts, deadline) = (self.generation, self.hosts, self.deadline);
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("statefile-reopen".into())
            .stack_size(128 * 1024)
            .spawn(move || {
                let out = pending
                    .into_iter()
                    .map(|i| {
                        let region = regions.get(i).copied().flatten();
                        let r = reopen(i, &paths, region, &ids, generation, hosts, deadline);
                        (i, r)
                    })
                    .collect();
                let _ = tx.send(out);
            });
        match spawned {
            Ok(_) => self.in_flight = true,
            Err(e) => {
                tracing::debug!("cannot start the statefile reopen thread: {e}");
                self.next_at = Some(now + self.interval);
            }
        }
    }

    /// Take a round's results: the statefiles that opened, for the caller
    /// to start using. Failures are retried `interval` later (a hung open
    /// is not retried).
    pub fn done(&mut self, results: Vec<Reopened>, now: Instant) -> Vec<(usize, Statefile)> {
        self.in_flight = false;
        let mut opened = Vec::new();
        for (i, r) in results {
            match r {
                Ok(f) => {
                    self.pending.retain(|&p| p != i);
                    opened.push((i, f));
                }
                Err(RetryError::Hung(e)) => {
                    tracing::warn!("{e}; not retried (the open is stuck in the kernel)");
                    self.pending.retain(|&p| p != i);
                }
                Err(RetryError::Failed(e)) => tracing::debug!("statefile retry: {e}"),
            }
        }
        self.next_at = (!self.pending.is_empty()).then(|| now + self.interval);
        opened
    }
}

/// One retry of statefile `i`: open it as at start-up, and refuse it if it
/// turned out to be another entry's file.
fn reopen(
    i: usize,
    paths: &[PathBuf],
    region: Option<sr_heartbeat::io::Region>,
    ids: &[Option<Identity>],
    generation: uuid::Uuid,
    hosts: usize,
    deadline: Duration,
) -> Result<Statefile, RetryError> {
    let f =
        statefile_io::open(i, &paths[i], region, generation, hosts, deadline).map_err(
            |e| match e {
                OpenError::Hung { .. } => RetryError::Hung(e.to_string()),
                _ => RetryError::Failed(e.to_string()),
            },
        )?;
    let mut ids = ids.to_vec();
    ids[i] = identity(&paths[i], deadline).map(|id| id.in_region(region));
    check_distinct(paths, &ids).map_err(|e| RetryError::Failed(e.to_string()))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_of_one_file_are_distinct_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("lun");
        std::fs::write(&f, b"x").unwrap();
        let t = Duration::from_secs(5);
        let region = |offset| {
            Some(sr_heartbeat::io::Region {
                offset,
                len: 4 << 20,
            })
        };
        let id = identity(&f, t).unwrap();
        let paths = vec![f.clone(), f.clone(), f];
        let ids = [
            Some(id.in_region(region(1 << 20))),
            Some(id.in_region(region(5 << 20))),
            Some(id.in_region(region(1 << 20))),
        ];
        check_distinct(&paths[..2], &ids[..2]).unwrap();
        let e = check_distinct(&paths, &ids).unwrap_err();
        assert!(e.to_string().contains("offset 1048576"), "{e}");
        assert_eq!(id.in_region(None), id);
    }

    #[test]
    fn same_file_under_other_names() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("sf"), b"x").unwrap();
        std::fs::write(d.join("other"), b"x").unwrap();
        std::os::unix::fs::symlink(d.join("sf"), d.join("link")).unwrap();
        std::fs::hard_link(d.join("sf"), d.join("hard")).unwrap();
        let t = Duration::from_secs(5);
        let paths: Vec<PathBuf> = ["sf", "other", "missing", "./sf", "link", "hard"]
            .iter()
            .map(|n| d.join(n))
            .collect();
        let ids: Vec<Option<Identity>> = paths.iter().map(|p| identity(p, t)).collect();
        assert!(ids[2].is_none());
        check_distinct(&paths[..3], &ids[..3]).unwrap();
        for k in 3..6 {
            let e = check_distinct(&[paths[0].clone(), paths[k].clone()], &[ids[0], ids[k]])
                .unwrap_err();
            assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
            let s = e.to_string();
            assert!(
                s.starts_with("statefiles[1]: ") && s.contains("same file as statefiles[0]"),
                "{s}"
            );
            assert!(s.contains("inode"), "{s}");
        }
        // Device nodes compare by the device they stand for.
        let null = identity(Path::new("/dev/null"), t).unwrap();
        assert!(matches!(null, Identity::Device { .. }), "{null:?}");
        assert_eq!(null.to_string(), "device 1:3");
    }
}
