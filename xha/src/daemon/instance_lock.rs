//! One daemon per state directory: `state-dir/xhad.lock`, held with an
//! exclusive `flock` for the life of the process.
//!
//! Taken right after the configuration is read and before anything changes
//! (the heartbeat incarnation, the fence record, the sockets), so a second
//! `xhad` on the same configuration exits 15 (`daemon-present`) and changes
//! nothing. The kernel drops the lock when the process ends, however it
//! ends, so a crash leaves no stale lock. The control socket's "somebody
//! answers" check is only a second line: it comes after the incarnation and
//! two daemons starting together could both pass it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// File name inside the state directory.
pub const FILE_NAME: &str = "xhad.lock";

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: a daemon already runs with this
    /// state directory.
    #[error(
        "another xhad is already running with this state directory ({path} is locked{})",
        holder.as_ref().map(|p| format!(" by pid {p}")).unwrap_or_default()
    )]
    Held { path: PathBuf, holder: Option<u32> },
    /// The directory or the lock file could not be created, opened or locked.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The held lock; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Take the lock in `state_dir` (created 0700 if missing) and write this
/// process's id into the file, for the message of the next daemon.
pub fn acquire(state_dir: &Path) -> Result<InstanceLock, LockError> {
    let path = state_dir.join(FILE_NAME);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| LockError::Io { path: p, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io(state_dir))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(LockError::Held { path, holder });
        }
        Err(TryLockError::Error(e)) => return Err(io(&path)(e)),
    }
    file.set_len(0).map_err(io(&path))?;
    file.rewind().map_err(io(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io(&path))?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_releases() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = acquire(&state).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process conflicts like another process would.
        let e = acquire(&state).unwrap_err();
        assert!(
            matches!(&e, LockError::Held { holder: Some(pid), .. } if *pid == std::process::id()),
            "{e}"
        );
        assert!(e.to_string().contains("already running"), "{e}");
        drop(first);
        let _again = acquire(&state).unwrap();
        let text = std::fs::read_to_string(state.join(FILE_NAME)).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
