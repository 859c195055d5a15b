//! Start-up checks before the runtime starts, in order; each failure is one
//! log line and a named exit code (`docs/daemon.md`, "Start-up").

use std::path::Path;
use std::time::Duration;

use super::config::{Config, PoolSecret, WatchdogConfig};
use super::control::WarningKind;
use super::exit::ExitCode;
use super::run::{Fatal, SUPERVISOR_CONNECT_WAIT};
use super::watchdog::{self, Watchdog, WatchdogError};
use super::{fence_record, incarnation, instance_lock, realtime, startup};

/// Everything checked before the runtime starts.
pub(super) struct Prepared {
    pub(super) config: Config,
    pub(super) secret: PoolSecret,
    /// The statefiles; a minority may be missing.
    pub(super) statefiles: startup::Opened,
    /// Held until the process exits.
    pub(super) lock: instance_lock::InstanceLock,
    pub(super) boot_id: String,
    pub(super) incarnation: u64,
    pub(super) standing: Vec<(WarningKind, String)>,
    pub(super) heartbeat_fd: Option<i32>,
}

/// Everything before the runtime: configuration, instance lock, fence
/// record, statefiles, real-time priority, incarnation. `None`: `--check`
/// passed, nothing more to do.
pub(super) fn prepare(path: &Path, check: bool) -> Result<Option<Prepared>, Fatal> {
    let loaded = super::config::Config::load(path)
        .map_err(|e| Fatal::new(e.exit_code(), format!("{}: {e}", path.display())))?;
    let config = loaded.config;
    // Before anything changes: a second daemon on this state directory
    // must leave the incarnation and the fence record alone. `--check`
    // changes nothing and may run beside the daemon.
    let lock = if check {
        None
    } else {
        Some(instance_lock::acquire(&config.state_dir).map_err(|e| {
            let code = match e {
                instance_lock::LockError::Held { .. } => ExitCode::DaemonPresent,
                instance_lock::LockError::Io { .. } => ExitCode::SystemError,
            };
            Fatal::new(code, e.to_string())
        })?)
    };
    let mut standing = Vec::new();
    let boot_id = fence_record::boot_id().map_err(|e| {
        Fatal::new(
            ExitCode::SystemError,
            format!("cannot read the boot id: {e}"),
        )
    })?;
    match fence_record::check(&config.state_dir, &boot_id) {
        Ok(None) => {}
        Ok(Some(record)) => {
            return Err(Fatal::new(
                ExitCode::InvalidLocalHostState,
                format!(
                    "this host decided to fence earlier in this boot ({}); it must be reset before xhad may arm again ({})",
                    record.reason,
                    config.state_dir.join(fence_record::FILE_NAME).display()
                ),
            ));
        }
        Err(e) => {
            return Err(Fatal::new(
                ExitCode::InvalidLocalHostState,
                format!("cannot check the fence record: {e}"),
            ));
        }
    }
    let statefiles = startup::open_statefiles(&config)?;
    let files = &statefiles.files;
    for (i, f) in files.iter().enumerate() {
        if f.is_none() {
            let message = startup::left_out_warning(i, &config.statefiles[i]);
            standing.push((WarningKind::Other, message));
        }
    }
    let Some(lock) = lock else {
        println!(
            "{}: valid; host {} (index {}) of {} hosts, {} of {} statefile(s) open, T = {} s",
            path.display(),
            config.local_uuid,
            config.local_index,
            config.hosts.len(),
            files.iter().filter(|f| f.is_some()).count(),
            files.len(),
            config.timeouts.base.as_secs()
        );
        return Ok(None);
    };
    // On the main thread before any other thread starts: new threads
    // inherit the policy.
    let rt = realtime::request();
    for w in rt.warnings() {
        standing.push((WarningKind::NotRealtime, w));
    }
    let incarnation = incarnation::next(&config.state_dir, incarnation::wall_clock_us())
        .map_err(|e| Fatal::new(ExitCode::SystemError, format!("heartbeat incarnation: {e}")))?;
    Ok(Some(Prepared {
        config,
        secret: loaded.secret,
        statefiles,
        lock,
        boot_id,
        incarnation,
        standing,
        heartbeat_fd: None,
    }))
}

/// Open the configured watchdog, waiting up to [`SUPERVISOR_CONNECT_WAIT`]
/// for the supervisor's socket.
pub(super) async fn connect_watchdog(config: &WatchdogConfig) -> Result<Box<dyn Watchdog>, Fatal> {
    let started = std::time::Instant::now();
    loop {
        match watchdog::from_config(config) {
            Ok(w) => return Ok(w),
            Err(WatchdogError::Supervisor { op: "connect", .. })
                if started.elapsed() < SUPERVISOR_CONNECT_WAIT =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(Fatal::new(ExitCode::WatchdogError, e.to_string())),
        }
    }
}
