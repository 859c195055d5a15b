//! The pool secret (the HMAC key of heartbeats) and the checks on its file.
//!
//! Anyone who holds the secret can forge heartbeats, and one forged packet
//! can fence a host; a secret without entropy can be guessed. So the daemon
//! refuses (exit 7, naming the file and why), rather than warns about:
//! - a path that is not a regular file. A FIFO would block `open` and then
//!   `read` forever (`xhad --check` hung on one), so the type is checked
//!   before opening and the file is opened with `O_NONBLOCK`, then checked
//!   again on the open descriptor (the path may have changed in between);
//! - a file readable or writable by group or others, or owned by another
//!   user than the daemon's (or root): they could read or replace the key;
//! - fewer than [`SECRET_MIN_BYTES`] or more than [`SECRET_MAX_BYTES`] bytes;
//! - an obviously constant key: every byte the same, or fewer than
//!   [`SECRET_MIN_DISTINCT`] distinct byte values. 32 bytes from a good
//!   random source hold about 30 distinct values; fewer than 16 has a
//!   probability below 1e-9. A hex-encoded key has at most 16 (and often
//!   15): use raw random bytes (`docs/operations.md`).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::config::ConfigError;

/// Shortest pool secret accepted: an HMAC-SHA256 key should be at least as
/// long as the hash output (RFC 2104).
pub const SECRET_MIN_BYTES: usize = 32;
/// Longest pool secret accepted (a guard against pointing at a huge file).
pub const SECRET_MAX_BYTES: usize = 4096;
/// Fewest distinct byte values a secret file must hold.
pub const SECRET_MIN_DISTINCT: usize = 16;

/// The pool secret (the HMAC key). `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct PoolSecret(Vec<u8>);

impl PoolSecret {
    /// A secret from bytes, with the length checked. For tests and tools
    /// that need a key of their own; the daemon reads its key with [`read`],
    /// which also refuses exposed files and keys without entropy.
    pub fn new(bytes: Vec<u8>) -> Result<PoolSecret, ConfigError> {
        check_len(Path::new("<memory>"), bytes.len())?;
        Ok(PoolSecret(bytes))
    }
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PoolSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolSecret({} bytes)", self.0.len())
    }
}

/// Read and check the secret file at `path` (see the module doc).
pub fn read(path: &Path) -> Result<PoolSecret, ConfigError> {
    let read_err = |e: std::io::Error| ConfigError::ReadSecret {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (file, meta) = open_regular(path).map_err(|e| match e {
        OpenRegularError::Io(e) => read_err(e),
        OpenRegularError::NotRegular(kind) => ConfigError::SecretNotRegular {
            path: path.to_path_buf(),
            kind,
        },
    })?;
    check_access(path, &meta, nix::unistd::geteuid().as_raw())?;
    let mut bytes = Vec::new();
    // Read one byte past the cap so an oversized file is recognised
    // without reading all of it.
    file.take(SECRET_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    check_len(path, bytes.len())?;
    check_entropy(path, &bytes)?;
    Ok(PoolSecret(bytes))
}

/// Why [`open_regular`] failed.
#[derive(Debug)]
pub enum OpenRegularError {
    Io(std::io::Error),
    /// What the path is instead ("a FIFO", "a directory", ...).
    NotRegular(&'static str),
}

/// Open a file that must be a regular file for reading, without ever
/// blocking: opening a FIFO for reading blocks until a writer comes (and
/// would hang `xhad --check`), and a socket fails with a confusing reason.
/// The type is checked before opening and again on the descriptor (opened
/// `O_NONBLOCK`), since the path may have been replaced in between. Returns
/// the file and the descriptor's metadata. Used for the secret and the
/// configuration file.
pub fn open_regular(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), OpenRegularError> {
    let meta = std::fs::metadata(path).map_err(OpenRegularError::Io)?;
    not_regular(&meta).map_or(Ok(()), |kind| Err(OpenRegularError::NotRegular(kind)))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(OpenRegularError::Io)?;
    let meta = file.metadata().map_err(OpenRegularError::Io)?;
    not_regular(&meta).map_or(Ok(()), |kind| Err(OpenRegularError::NotRegular(kind)))?;
    Ok((file, meta))
}

/// What a non-regular file is, or `None` for a regular file.
fn not_regular(meta: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    Some(if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    })
}

/// The owner must be the daemon's user or root, and nobody else may read
/// or write the file.
fn check_access(path: &Path, meta: &std::fs::Metadata, euid: u32) -> Result<(), ConfigError> {
    let mode = meta.mode() & 0o7777;
    let exposed = |why: &'static str| ConfigError::SecretExposed {
        path: path.to_path_buf(),
        mode,
        why,
    };
    if mode & 0o044 != 0 {
        return Err(exposed("readable by group or others"));
    }
    if mode & 0o022 != 0 {
        return Err(exposed("writable by group or others"));
    }
    let uid = meta.uid();
    if uid != 0 && uid != euid {
        return Err(ConfigError::SecretOwner {
            path: path.to_path_buf(),
            uid,
            euid,
        });
    }
    Ok(())
}

pub(super) fn check_len(path: &Path, len: usize) -> Result<(), ConfigError> {
    if len < SECRET_MIN_BYTES {
        return Err(ConfigError::SecretTooShort {
            path: path.to_path_buf(),
            len,
        });
    }
    if len > SECRET_MAX_BYTES {
        return Err(ConfigError::SecretTooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    Ok(())
}

/// Refuse keys that are obviously not random (see the module doc).
fn check_entropy(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    let weak = |reason: String| ConfigError::SecretWeak {
        path: path.to_path_buf(),
        reason,
    };
    let mut seen = [false; 256];
    for &b in bytes {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|&&s| s).count();
    if distinct == 1 {
        return Err(weak(format!(
            "every byte is the same (0x{:02x})",
            bytes.first().copied().unwrap_or(0)
        )));
    }
    if distinct < SECRET_MIN_DISTINCT {
        return Err(weak(format!(
            "only {distinct} distinct byte values in {} bytes, at least {SECRET_MIN_DISTINCT} are required",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::exit::ExitCode;
    use std::os::unix::fs::PermissionsExt;

    fn random(n: usize) -> Vec<u8> {
        use rand::RngCore;
        let mut v = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut v);
        v
    }

    fn write(path: &Path, bytes: &[u8], mode: u32) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn lengths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        let e = read(&p).unwrap_err();
        assert!(matches!(e, ConfigError::ReadSecret { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);
        write(&p, &random(31), 0o600);
        let e = read(&p).unwrap_err();
        assert!(
            matches!(e, ConfigError::SecretTooShort { len: 31, .. }),
            "{e}"
        );
        assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
        write(&p, &random(SECRET_MAX_BYTES + 10), 0o600);
        assert!(matches!(
            read(&p).unwrap_err(),
            ConfigError::SecretTooLong { .. }
        ));
        let good = random(32);
        write(&p, &good, 0o600);
        let s = read(&p).unwrap();
        assert_eq!(s.as_bytes(), &good[..]);
        assert_eq!(format!("{s:?}"), "PoolSecret(32 bytes)");
        write(&p, &good, 0o400);
        assert!(read(&p).is_ok());
    }

    #[test]
    fn exposed_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        for (mode, why) in [
            (0o644, "readable"),
            (0o640, "readable"),
            (0o604, "readable"),
            (0o666, "readable"),
            (0o620, "writable"),
            (0o602, "writable"),
        ] {
            write(&p, &random(32), mode);
            let e = read(&p).unwrap_err();
            assert!(
                matches!(&e, ConfigError::SecretExposed { why: w, .. } if w.contains(why)),
                "{mode:o}: {e}"
            );
            assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
            let s = e.to_string();
            assert!(s.contains(&p.display().to_string()), "{s}");
            assert!(s.contains(&format!("{mode:o}")), "{s}");
        }
        // Another user's file (the owner could read or change it).
        write(&p, &random(32), 0o600);
        let meta = std::fs::metadata(&p).unwrap();
        let e = check_access(&p, &meta, meta.uid() + 1);
        if meta.uid() == 0 {
            e.unwrap();
        } else {
            assert!(matches!(e, Err(ConfigError::SecretOwner { .. })));
        }
    }

    #[test]
    fn keys_without_entropy_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        let cases: [(Vec<u8>, &str); 4] = [
            (vec![0u8; 32], "every byte is the same (0x00)"),
            (vec![0xffu8; 64], "every byte is the same (0xff)"),
            ((0..32u8).map(|i| i % 2).collect(), "only 2 distinct"),
            ((0..64u8).map(|i| i % 15).collect(), "only 15 distinct"),
        ];
        for (bytes, why) in cases {
            write(&p, &bytes, 0o600);
            let e = read(&p).unwrap_err();
            assert!(matches!(e, ConfigError::SecretWeak { .. }), "{e}");
            assert!(e.to_string().contains(why), "{e}");
            assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
        }
        // 16 distinct values is the floor.
        write(&p, &(0..32u8).map(|i| i % 16).collect::<Vec<_>>(), 0o600);
        assert!(read(&p).is_ok());
    }

    #[test]
    fn non_regular_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read(&fifo).unwrap_err();
        assert!(
            matches!(e, ConfigError::SecretNotRegular { kind: "a FIFO", .. }),
            "{e}"
        );
        assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
        let e = read(dir.path()).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::SecretNotRegular {
                    kind: "a directory",
                    ..
                }
            ),
            "{e}"
        );
        let e = read(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(
                e,
                ConfigError::SecretNotRegular {
                    kind: "a character device",
                    ..
                }
            ),
            "{e}"
        );
        // A symlink to a good file is followed.
        let target = dir.path().join("real");
        write(&target, &random(32), 0o600);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read(&link).is_ok());
    }
}
