//! The fence record: a daemon restarted after a fence decision must not
//! re-arm the watchdog and so extend the life of a host that should be
//! fencing (for example when the reboot failed, or a `linux` watchdog could
//! be reopened by a new process).
//!
//! Before acting on a fence decision the daemon writes `state-dir/fenced`
//! durably, holding the kernel's boot id, the reason and the time. At
//! start-up a record with the current boot id means "this boot already
//! decided to fence": the daemon refuses to start (exit 17,
//! `invalid-local-host-state`). A record from an earlier boot is moved to
//! [`EARLIER_FILE_NAME`] (replacing an older one there): the host was reset
//! since and may rejoin, and the pool agent reports the fence from it
//! (`HA_HOST_WAS_FENCED`, docs/alerts.md).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name inside the state directory.
pub const FILE_NAME: &str = "fenced";
/// The record of an earlier boot, kept for the pool agent.
pub const EARLIER_FILE_NAME: &str = "fenced.earlier";
/// Where Linux publishes the boot id.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";

/// A fence record of the current boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceRecord {
    pub boot_id: String,
    /// Why the host fenced (one line).
    pub reason: String,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FenceRecordError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: not a fence record (expected `boot <id>` then `reason <text>`)")]
    Corrupt { path: PathBuf },
}

/// The current boot id.
pub fn boot_id() -> Result<String, FenceRecordError> {
    fs::read_to_string(BOOT_ID_PATH)
        .map(|s| s.trim().to_owned())
        .map_err(|source| FenceRecordError::Io {
            path: BOOT_ID_PATH.into(),
            source,
        })
}

/// Write the record durably (temporary file, fsync, rename, fsync of the
/// directory) before acting on a fence decision.
pub fn write(state_dir: &Path, boot_id: &str, reason: &str) -> Result<(), FenceRecordError> {
    let path = state_dir.join(FILE_NAME);
    let io_err = |source| FenceRecordError::Io {
        path: path.clone(),
        source,
    };
    fs::create_dir_all(state_dir).map_err(io_err)?;
    let tmp = state_dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err)?;
    let reason = reason.replace('\n', " ");
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    write!(f, "boot {boot_id}\nreason {reason}\nat {at_ms}\n").map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    fs::rename(&tmp, &path).map_err(io_err)?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)
}

/// At start-up: the record of this boot if there is one. A record of an
/// earlier boot is moved to [`EARLIER_FILE_NAME`] and `None` returned.
pub fn check(state_dir: &Path, boot_id: &str) -> Result<Option<FenceRecord>, FenceRecordError> {
    let path = state_dir.join(FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(FenceRecordError::Io { path, source }),
    };
    let mut lines = text.lines();
    let parsed = (|| {
        let boot = lines.next()?.strip_prefix("boot ")?.to_owned();
        let reason = lines.next()?.strip_prefix("reason ")?.to_owned();
        Some(FenceRecord {
            boot_id: boot,
            reason,
        })
    })();
    let Some(record) = parsed else {
        return Err(FenceRecordError::Corrupt { path });
    };
    if record.boot_id == boot_id {
        return Ok(Some(record));
    }
    tracing::info!(
        "keeping the fence record of an earlier boot ({}) as {EARLIER_FILE_NAME}: {}",
        record.boot_id,
        record.reason
    );
    fs::rename(&path, state_dir.join(EARLIER_FILE_NAME))
        .map_err(|source| FenceRecordError::Io { path, source })?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_boot_blocks_a_later_boot_clears() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert!(check(&state, "b1").unwrap().is_none());
        write(&state, "b1", "lease expired\nat 12 s").unwrap();
        let r = check(&state, "b1").unwrap().unwrap();
        assert_eq!(r.reason, "lease expired at 12 s");
        // Still there: a second restart in the same boot is refused too.
        assert!(check(&state, "b1").unwrap().is_some());
        // After a reboot the record is cleared, kept for the pool agent.
        assert!(check(&state, "b2").unwrap().is_none());
        assert!(!state.join(FILE_NAME).exists());
        let kept = fs::read_to_string(state.join(EARLIER_FILE_NAME)).unwrap();
        assert!(
            kept.starts_with("boot b1\nreason lease expired at 12 s\nat "),
            "{kept}"
        );
    }

    #[test]
    fn corrupt_record_is_an_error_and_boot_id_reads() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(matches!(
            check(dir.path(), "b"),
            Err(FenceRecordError::Corrupt { .. })
        ));
        let id = boot_id().unwrap();
        assert_eq!(id.len(), 36, "{id}");
    }
}
