//! Where a lab finds `xhad` and `xha-supervisor`: the one helper that `xe lab`,
//! its tests and the end-to-end harness share.

use std::path::{Path, PathBuf};

use super::{SUPERVISOR, XHAD};

/// Environment variable naming the directory that holds `xhad` and
/// `xha-supervisor` (default: the directory of the `xe` executable).
pub const BIN_DIR_ENV: &str = "XE_LAB_BIN_DIR";

/// The directory holding the lab's binaries: `$XE_LAB_BIN_DIR` when it is set
/// and not empty, else `default` (the caller's own directory).
#[must_use]
pub fn bin_dir(default: &Path) -> PathBuf {
    match std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => default.to_path_buf(),
    }
}

/// The path of the first lab binary missing from `dir`, if any.
#[must_use]
pub fn missing_bin(dir: &Path) -> Option<PathBuf> {
    [XHAD, SUPERVISOR]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| !path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_bin_names_the_first_absent_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(missing_bin(dir.path()), Some(dir.path().join(XHAD)));
        std::fs::write(dir.path().join(XHAD), b"").expect("write");
        assert_eq!(missing_bin(dir.path()), Some(dir.path().join(SUPERVISOR)));
        std::fs::write(dir.path().join(SUPERVISOR), b"").expect("write");
        assert_eq!(missing_bin(dir.path()), None);
    }
}
