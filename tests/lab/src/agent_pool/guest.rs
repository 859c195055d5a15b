//! The QEMU test guest for the lab's `qemu` VMs: `qemu-system-x86_64` on
//! the `PATH` and the guest `tests/guest/build.sh` builds (its kernel and
//! initrd in `$XHA_TEST_GUEST_DIR/current`, default
//! `/var/cache/xha-test-guest/current`, complete once `ready` exists). The
//! guest's init runs the stamp workload on its first disk.

use std::path::{Path, PathBuf};

use crate::LabError;

/// The QEMU binary the agents' `qemu` driver runs.
pub const QEMU: &str = "qemu-system-x86_64";
/// Overrides where the guest is looked for.
pub const GUEST_DIR_ENV: &str = "XHA_TEST_GUEST_DIR";
/// Where `tests/guest/build.sh` puts the guest.
pub const DEFAULT_GUEST_DIR: &str = "/var/cache/xha-test-guest";
/// A QEMU VM's memory: the test guest needs at least 96 MiB.
pub const QEMU_VM_MEMORY: u64 = 128 << 20;

/// The guest's kernel and initrd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuGuest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The first `name` in the directories of `path` (a `PATH` value).
#[must_use]
pub fn on_path(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The guest built in `dir` (its `current` link resolved once: a build
/// elsewhere may repoint it), or why not.
pub fn guest_in(dir: &Path) -> Result<QemuGuest, LabError> {
    let current = dir.join("current");
    let build = std::fs::canonicalize(&current)
        .ok()
        .filter(|b| b.join("ready").is_file())
        .ok_or_else(|| {
            LabError::Spec(format!(
                "no QEMU test guest in {} (build it with tests/guest/build.sh, as root; or point ${GUEST_DIR_ENV} at one)",
                current.display()
            ))
        })?;
    Ok(QemuGuest {
        kernel: build.join("vmlinux"),
        initrd: build.join("initrd.gz"),
    })
}

/// QEMU on the `PATH` and the guest (`$XHA_TEST_GUEST_DIR` or
/// [`DEFAULT_GUEST_DIR`]), or an error naming what is missing and how to
/// get it.
pub fn find_guest() -> Result<QemuGuest, LabError> {
    let path = std::env::var("PATH").unwrap_or_default();
    if on_path(QEMU, &path).is_none() {
        return Err(LabError::Spec(format!(
            "{QEMU} is not installed (not on the PATH); install QEMU (Debian: apt-get install qemu-system-x86)"
        )));
    }
    let dir = std::env::var_os(GUEST_DIR_ENV)
        .map_or_else(|| PathBuf::from(DEFAULT_GUEST_DIR), PathBuf::from);
    guest_in(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_is_found_on_the_path_or_not() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(QEMU), b"").unwrap();
        let path = format!("/nonexistent::{}", d.path().display());
        assert_eq!(on_path(QEMU, &path), Some(d.path().join(QEMU)));
        assert_eq!(on_path(QEMU, "/nonexistent"), None);
    }

    #[test]
    fn a_guest_without_ready_is_missing_and_named() {
        let d = tempfile::tempdir().unwrap();
        let err = guest_in(d.path()).unwrap_err().to_string();
        assert!(err.contains("no QEMU test guest in"), "{err}");
        assert!(err.contains("tests/guest/build.sh"), "{err}");
        let build = d.path().join("b1");
        std::fs::create_dir(&build).unwrap();
        std::os::unix::fs::symlink(&build, d.path().join("current")).unwrap();
        assert!(guest_in(d.path()).is_err());
        std::fs::write(build.join("ready"), b"").unwrap();
        let g = guest_in(d.path()).unwrap();
        let build = std::fs::canonicalize(&build).unwrap();
        assert_eq!(g.kernel, build.join("vmlinux"));
        assert_eq!(g.initrd, build.join("initrd.gz"));
    }
}
