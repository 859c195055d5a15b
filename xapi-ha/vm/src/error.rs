//! Refusals and failures of the VM drivers.

use std::path::PathBuf;

use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Error)]
pub enum DriverError {
    /// The VM record names another driver.
    #[error("VM {vm} uses driver {wanted:?}, this is the {have:?} driver")]
    WrongDriver {
        vm: Uuid,
        wanted: String,
        have: String,
    },
    /// A field of the VM spec is unusable.
    #[error("VM spec field {field}: {reason}")]
    BadSpec { field: &'static str, reason: String },
    /// A `driver-config` key is missing, unknown or invalid.
    #[error("driver-config:{key}: {reason}")]
    BadConfig { key: String, reason: String },
    /// The VM already runs on this host (this driver's run directory says so).
    #[error("VM {0} is already running on this host")]
    AlreadyRunning(Uuid),
    /// QEMU refused to open a disk another process holds (image locking).
    #[error(
        "VM {vm}: disk {disk} is in use by another process (QEMU image lock): is the VM running elsewhere?"
    )]
    ImageLocked { vm: Uuid, disk: String },
    /// The driver does not know this VM as running here.
    #[error("VM {0} is not running on this host")]
    NotRunning(Uuid),
    /// The VM's process failed to start or exited during start-up.
    #[error("VM {vm} failed to start: {reason}")]
    StartFailed { vm: Uuid, reason: String },
    /// The VM did not go away after SIGKILL (should not happen).
    #[error("VM {vm} did not stop within {waited_ms} ms")]
    StopTimeout { vm: Uuid, waited_ms: u64 },
    /// This driver cannot do that (for example migration by the process driver).
    #[error("{0}")]
    Unsupported(String),
    /// Live migration failed; the VM still runs on the source.
    #[error("VM {vm}: migration failed ({reason}); the VM keeps running on this host")]
    MigrationFailed { vm: Uuid, reason: String },
    /// A QMP exchange failed.
    #[error("VM {vm}: QMP: {reason}")]
    Qmp { vm: Uuid, reason: String },
    /// A file of the run directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DriverError {
    let path = path.into();
    move |source| DriverError::Io { path, source }
}
