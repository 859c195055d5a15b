//! Live migration of a QEMU VM between two hosts (docs/vm-drivers.md,
//! "Live migration"), in steps another process can drive one by one (the
//! pool agent runs the target's steps on the target host's agent):
//!
//! 1. target: [`QemuDriver::start_incoming`]: QEMU paused (`-S`) with
//!    `-incoming defer`, then `migrate-incoming tcp:HOST:0`; returns the
//!    address QEMU listens on (the port it was given).
//! 2. source: [`QemuDriver::migrate_send`]: `migrate-set-capabilities`,
//!    `migrate`, `query-migrate` until `completed`. The guest runs on the
//!    source while its memory is copied, then QEMU pauses it for the last
//!    pass (`postmigrate` once completed). On failure the source is resumed.
//! 3. target: [`QemuDriver::resume_incoming`]: waits until the state is
//!    loaded and `cont`s; returns once the guest runs there.
//! 4. source: [`QemuDriver::migrate_commit`] (`quit`; the VM's end is
//!    `Requested(Migrated)`), or, when step 3 failed,
//!    [`QemuDriver::migrate_abort`] (`cont`: the VM runs on here again) after
//!    the target's QEMU was killed.
//!
//! Never both running: the source is paused from the end of step 2 and
//! quits only after step 3; the target is paused (`-S`) until step 3.
//!
//! Image locking stays on for the handover: a QEMU started with `-incoming`
//! opens its images inactive (no write lock) and takes the lock when it
//! activates them at the end of the migration, after the source has
//! inactivated its own (released its write lock). The source's `cont` after
//! a failure re-activates them, which fails while a target holds them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use uuid::Uuid;

use super::{QemuDriver, qmp_err};
use crate::qmp::Qmp;
use crate::{DriverError, StopMode, StopRequest, VmSpec};

fn failed(vm: Uuid, reason: impl Into<String>) -> DriverError {
    DriverError::MigrationFailed {
        vm,
        reason: reason.into(),
    }
}

/// `HOST:PORT` from a `query-migrate` `socket-address` entry (IPv6 hosts
/// in brackets).
fn listen_address(reply: &Value) -> Option<String> {
    let a = reply["socket-address"].as_array()?.first()?;
    let host = a["host"].as_str()?;
    let port = a["port"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| a["port"].as_u64().map(|p| p.to_string()))?;
    Some(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

impl QemuDriver {
    /// Target, step 1: starts QEMU for `spec` paused and waiting for the
    /// VM's state on `listen_host` (a port QEMU picks); returns `HOST:PORT`.
    /// On failure nothing is left running.
    pub fn start_incoming(
        &mut self,
        spec: &VmSpec,
        listen_host: &str,
    ) -> Result<String, DriverError> {
        self.launch(spec, true)?;
        let uuid = spec.uuid;
        let listening = self.qmp(uuid).and_then(|mut q| {
            q.execute(
                "migrate-incoming",
                Some(json!({ "uri": format!("tcp:{listen_host}:0") })),
            )
            .and_then(|_| q.execute("query-migrate", None))
            .map_err(qmp_err(uuid))
        });
        match listening.map(|r| listen_address(&r)) {
            Ok(Some(addr)) => {
                tracing::info!(vm = %uuid, %addr, "waiting for a live migration");
                Ok(addr)
            }
            other => {
                let reason = match other {
                    Err(e) => e.to_string(),
                    _ => "QEMU did not say where it listens".into(),
                };
                let _ = self.abort_incoming(uuid);
                Err(failed(uuid, reason))
            }
        }
    }

    /// Target: kills a QEMU that waits for (or received) a migration that
    /// did not finish; its end is `Requested(Hard)`.
    pub fn abort_incoming(&mut self, uuid: Uuid) -> Result<(), DriverError> {
        use crate::VmDriver;
        self.stop(uuid, StopMode::Hard).map(|_| ())
    }

    /// Target, step 3: waits until the migrated state is loaded, `cont`s,
    /// and waits until the guest runs.
    pub fn resume_incoming(&mut self, uuid: Uuid, timeout: Duration) -> Result<(), DriverError> {
        let deadline = Instant::now() + timeout;
        let mut q = self.qmp(uuid)?;
        loop {
            if !self.fleet.is_alive(uuid) {
                return Err(failed(uuid, "the target's QEMU exited"));
            }
            let r = q.execute("query-migrate", None).map_err(qmp_err(uuid))?;
            match r["status"].as_str().unwrap_or("") {
                "completed" => break,
                s @ ("failed" | "cancelled") => {
                    return Err(failed(uuid, format!("incoming migration {s}")));
                }
                s if Instant::now() >= deadline => {
                    return Err(failed(
                        uuid,
                        format!(
                            "incoming migration not completed within {timeout:?} (status {s:?})"
                        ),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        q.execute("cont", None).map_err(qmp_err(uuid))?;
        loop {
            if q.status().map_err(qmp_err(uuid))? == "running" {
                tracing::info!(vm = %uuid, "migrated VM runs here");
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(uuid, "the target does not run after cont"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Source, step 2: sends the VM to a QEMU listening at `to` (`HOST:PORT`
    /// from [`QemuDriver::start_incoming`]) and waits until the transfer is
    /// complete; the VM is then paused here. On failure, or after
    /// `timeout`, the migration is cancelled and the VM runs here again.
    pub fn migrate_send(
        &mut self,
        uuid: Uuid,
        to: &str,
        timeout: Duration,
    ) -> Result<(), DriverError> {
        let mut q = self.qmp(uuid)?;
        let resume = |q: &mut Qmp, reason: String| -> DriverError {
            let _ = q.execute("migrate_cancel", None);
            // `cont` re-activates the disks the migration had handed over.
            if let Err(e) = q.execute("cont", None) {
                tracing::error!(vm = %uuid, error = %e, "cannot resume the VM after a failed migration");
            }
            failed(uuid, reason)
        };
        // Without `events` QEMU sends nothing we would have to skip.
        let caps = json!({ "capabilities": [{ "capability": "events", "state": false }] });
        if let Err(e) = q.execute("migrate-set-capabilities", Some(caps)) {
            return Err(failed(uuid, e.to_string()));
        }
        if let Err(e) = q.execute("migrate", Some(json!({ "uri": format!("tcp:{to}") }))) {
            return Err(resume(&mut q, e.to_string()));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let status = match q.execute("query-migrate", None) {
                Ok(r) => r["status"].as_str().unwrap_or("").to_owned(),
                Err(e) => return Err(resume(&mut q, e.to_string())),
            };
            match status.as_str() {
                "completed" => return Ok(()),
                "failed" | "cancelled" => {
                    let detail = q
                        .execute("query-migrate", None)
                        .ok()
                        .and_then(|r| r["error-desc"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    return Err(resume(
                        &mut q,
                        format!("migration {status} {detail}").trim_end().to_owned(),
                    ));
                }
                _ if Instant::now() >= deadline => {
                    return Err(resume(
                        &mut q,
                        format!("not completed within {timeout:?} (status {status})"),
                    ));
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Source, step 4 after a target that runs: quits QEMU here (SIGKILL if
    /// it does not go); the VM's end is `Requested(Migrated)`.
    pub fn migrate_commit(&mut self, uuid: Uuid) -> Result<(), DriverError> {
        self.fleet.mark_stop(uuid, StopRequest::Migrated)?;
        if let Ok(mut q) = self.qmp(uuid) {
            let _ = q.execute("quit", None);
        }
        // `quit` exits QEMU at once; SIGKILL only if it does not.
        if !self.fleet.wait_gone(uuid, Duration::from_secs(5)) {
            self.fleet.signal(uuid, nix::sys::signal::Signal::SIGKILL)?;
            self.fleet.wait_gone(uuid, Duration::from_secs(10));
        }
        self.fleet.finish(uuid);
        Ok(())
    }

    /// Source, step 4 after a target that failed (and was killed): the VM
    /// runs here again.
    pub fn migrate_abort(&mut self, uuid: Uuid) -> Result<(), DriverError> {
        let mut q = self.qmp(uuid)?;
        let _ = q.execute("migrate_cancel", None);
        q.execute("cont", None).map_err(qmp_err(uuid))?;
        tracing::warn!(vm = %uuid, "migration undone: the VM runs here again");
        Ok(())
    }

    /// All steps of the source in one call, for a target in the same
    /// process: `target_runs` is step 3. Used by the driver tests.
    pub fn migrate(
        &mut self,
        uuid: Uuid,
        to: &str,
        timeout: Duration,
        target_runs: impl FnOnce() -> bool,
    ) -> Result<(), DriverError> {
        self.migrate_send(uuid, to, timeout)?;
        if !target_runs() {
            self.migrate_abort(uuid)?;
            return Err(failed(uuid, "the target did not report the VM running"));
        }
        self.migrate_commit(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listen_address_comes_from_the_socket_address() {
        let r = json!({"status": "setup", "socket-address": [{"type": "inet", "host": "127.0.0.2", "port": "41234"}]});
        assert_eq!(listen_address(&r).as_deref(), Some("127.0.0.2:41234"));
        let r = json!({"socket-address": [{"type": "inet", "host": "::1", "port": 5}]});
        assert_eq!(listen_address(&r).as_deref(), Some("[::1]:5"));
        assert_eq!(listen_address(&json!({"status": "none"})), None);
    }
}
