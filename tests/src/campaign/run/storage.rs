//! Per-host storage faults. Each host reaches the shared SR through a view
//! of its own, as hosts that each mount one NFS export do: a `faultfs`
//! directory mount of the real SR directory, bind-mounted over the SR's
//! path in the host's mount namespace (`xha_lab::sr_view`). A fault
//! switches one host's view to `error`, `hang` or `delay` (its `xhad`'s
//! statefile I/O, its VMs' disks and, on the master, the redo log); the
//! other hosts' I/O goes on.
//!
//! A reset (a power cut, the watchdog's reset after a fence) fails what the
//! host had in flight on its view before its processes are killed: a host
//! that resets loses its queued I/O, and a process blocked in a held
//! request could not die otherwise. The view then keeps its fault until
//! the fault heals.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use xha_lab::LabError;
use xha_lab::sr_view::SrViews;

use crate::faultfs::{FaultFs, Mode};

/// The views of one run's pool; every view is healed and unmounted on drop
/// (after the pool, which the runner stops first).
pub(crate) struct Views {
    /// Each host's mount and the mode its fault wants.
    hosts: Vec<(FaultFs, Mutex<Mode>)>,
    sr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Views {
    /// `hosts` views of a new, empty SR directory, served by the `faultfs`
    /// binary in `bin_dir`.
    pub(crate) fn create(hosts: usize, bin_dir: &Path) -> Result<Views, LabError> {
        let io = |step: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| LabError::Io { step, path, source }
        };
        let dir = tempfile::Builder::new()
            .prefix("xha-sr-views-")
            .tempdir()
            .map_err(io("make the SR views' directory", &std::env::temp_dir()))?;
        let sr = dir.path().join("sr");
        std::fs::create_dir(&sr).map_err(io("make the SR directory", &sr))?;
        let bin = bin_dir.join("faultfs");
        let mut mounts = Vec::new();
        for i in 1..=hosts {
            let at = dir.path().join(format!("host-{i}"));
            std::fs::create_dir(&at).map_err(io("make a host's SR view", &at))?;
            let fs = FaultFs::mount_dir(&bin, &sr, &at)
                .map_err(|e| LabError::Spec(format!("mount host {i}'s SR view: {e}")))?;
            mounts.push((fs, Mutex::new(Mode::Ok)));
        }
        Ok(Views {
            hosts: mounts,
            sr,
            _dir: dir,
        })
    }

    /// What the pool needs to start its hosts on these views.
    pub(crate) fn sr_views(&self) -> SrViews {
        SrViews {
            sr: self.sr.clone(),
            views: self
                .hosts
                .iter()
                .map(|(fs, _)| fs.path().to_path_buf())
                .collect(),
        }
    }

    /// Host `i`'s storage is `mode` from now on (a fault, or `ok`: healed).
    pub(crate) fn set(&self, i: usize, mode: Mode) -> Result<(), LabError> {
        let (fs, wanted) = &self.hosts[i];
        let mut wanted = wanted.lock().unwrap_or_else(PoisonError::into_inner);
        fs.set_mode(mode)
            .map_err(|e| LabError::Spec(format!("host {}'s SR view: mode {mode}: {e}", i + 1)))?;
        *wanted = mode;
        Ok(())
    }

    /// Host `i` resets: its in-flight requests fail, `kill` kills its
    /// processes, then its view has its fault's mode again.
    pub(crate) fn reset<R>(&self, i: usize, kill: impl FnOnce() -> R) -> R {
        let (fs, wanted) = &self.hosts[i];
        let wanted = wanted.lock().unwrap_or_else(PoisonError::into_inner);
        if *wanted == Mode::Ok {
            return kill();
        }
        let failed = fs.set_mode(Mode::Error);
        let r = kill();
        if let Err(e) = failed.and_then(|()| fs.set_mode(*wanted)) {
            tracing::warn!("host {}'s SR view across its reset: {e}", i + 1);
        }
        r
    }

    /// Every view healed (the end of a run, or its failure).
    pub(crate) fn heal_all(&self) {
        for i in 0..self.hosts.len() {
            if let Err(e) = self.set(i, Mode::Ok) {
                tracing::warn!("{e}");
            }
        }
    }
}

impl Drop for Views {
    fn drop(&mut self) {
        self.heal_all();
    }
}

/// Host `i` resets: `kill` kills its processes, after its view's in-flight
/// requests fail when it has one ([`Views::reset`]). The runner's power
/// cuts and fence resets and the watchdog thread's resets all go here.
pub(crate) fn reset<R>(views: Option<&Views>, i: usize, kill: impl FnOnce() -> R) -> R {
    match views {
        Some(v) => v.reset(i, kill),
        None => kill(),
    }
}
