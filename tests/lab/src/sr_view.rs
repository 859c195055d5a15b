//! Per-host views of the shared SR. Hosts that mount one NFS export each
//! reach it by their own mount at the same path, and one host's mount can
//! hang or fail while the others' work. The lab does the same on one
//! machine: each host's processes (agent, `xhad`, supervisor, VMs) run in
//! a mount namespace of their own where the SR directory is covered by
//! that host's view (a `faultfs` directory mount of the real SR directory,
//! made by the caller), bind-mounted over it. The product sees one path
//! and one `device_config:path` for the whole pool, as with NFS.
//!
//! Needs root (CAP_SYS_ADMIN for the namespace and the bind mount).

use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

use crate::LabError;

/// The shared SR directory and each host's view of it (host `i`'s at
/// `views[i]`; mounted by the caller before the pool starts).
#[derive(Clone, Debug)]
pub struct SrViews {
    pub sr: PathBuf,
    pub views: Vec<PathBuf>,
}

/// Runs `f` on a thread of its own in a new mount namespace where `view`
/// is bind-mounted on `sr`; every process `f` starts (and their children)
/// lives in that namespace. The lab's own mounts and unmounts still reach
/// the namespace (it is a slave of this one); its bind mount stays in it.
pub fn in_view<R: Send>(
    sr: &Path,
    view: &Path,
    f: impl FnOnce() -> R + Send,
) -> Result<R, LabError> {
    let step = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |e: nix::Error| LabError::Io {
            step: what,
            path,
            source: std::io::Error::from(e),
        }
    };
    std::thread::scope(|s| {
        let thread = s.spawn(|| {
            // A thread may leave its mount namespace alone (CLONE_NEWNS
            // implies CLONE_FS, which a thread may unshare).
            unshare(CloneFlags::CLONE_NEWNS).map_err(step("a mount namespace for a host", sr))?;
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .map_err(step("make the host's mounts private", Path::new("/")))?;
            mount(Some(view), sr, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(step("bind the host's SR view", view))?;
            Ok(f())
        });
        thread
            .join()
            .map_err(|_| LabError::Spec("a host's SR view thread panicked".into()))?
    })
}
