//! The QEMU driver: the agent starts `qemu-system-x86_64` itself (no
//! libvirt), under a keeper, with `-pidfile` and two QMP sockets in the VM's
//! run directory: `qmp.sock` for commands (one short connection each) and
//! `events.sock`, held by a listener thread that records the `SHUTDOWN`
//! event (with its `guest` flag and reason) in the run directory.
//!
//! Clean stop: `system_powerdown` (the guest's ACPI power button), SIGKILL
//! after the timeout. Hard stop: SIGKILL. A stop we asked for is recorded
//! before it is sent, so "stopped by us" and "shut down from inside" stay
//! apart even across an agent restart (both yield `SHUTDOWN` with `guest:
//! true`; only the record tells them apart).
//!
//! QEMU's image locking stays on: a second QEMU opening a disk for writing
//! fails, which the driver reports as [`DriverError::ImageLocked`]. It guards
//! across hosts only where the storage carries POSIX (OFD) locks; fencing
//! remains the guarantee.

pub mod accel;
pub mod args;
mod migrate;

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::qmp::{Qmp, QmpError};
use crate::rundir::VmDir;
use crate::spec::KEY_STAMP_SLOT;
use crate::supervise::{Fleet, wait_until};
use crate::{
    DriverContext, DriverError, PowerState, RunningVm, StopMode, StopRequest, VmDriver, VmEvent,
    VmSpec, now_ms,
};
pub use accel::{Accel, AccelChoice};
use args::{Launch, MEMORY_MIN_BYTES};

pub const NAME: &str = "qemu";
/// Kernel to boot (an uncompressed `vmlinux` boots fastest under TCG).
pub const KEY_KERNEL: &str = "kernel";
pub const KEY_INITRD: &str = "initrd";
/// Appended to the kernel command line.
pub const KEY_CMDLINE: &str = "cmdline";
/// `off` disables the test guest's stamp workload.
pub const KEY_STAMP: &str = "stamp";
/// Booting a disk image with firmware: not supported (microvm boots kernels).
pub const KEY_IMAGE: &str = "image";
const KEYS: &[&str] = &[
    KEY_KERNEL,
    KEY_INITRD,
    KEY_CMDLINE,
    KEY_STAMP,
    KEY_STAMP_SLOT,
    KEY_IMAGE,
];

/// How long QEMU may take to open its QMP socket.
const QMP_UP_DEADLINE: Duration = Duration::from_secs(30);
const QMP_TIMEOUT: Duration = Duration::from_secs(5);

/// Host-wide settings of the QEMU driver (the agent config).
#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub binary: PathBuf,
    pub accel: AccelChoice,
    /// Where the KVM probe's answer is cached.
    pub probe_cache: PathBuf,
    /// The host TSC in kHz for `tsc_early_khz`; None reads /proc/cpuinfo.
    pub tsc_khz: Option<u64>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("qemu-system-x86_64"),
            accel: AccelChoice::Auto,
            probe_cache: accel::default_cache(),
            tsc_khz: None,
        }
    }
}

pub struct QemuDriver {
    fleet: Fleet,
    cfg: QemuConfig,
    accel: Option<Accel>,
    /// The QMP event listener of each VM; a VM's end is reported only after
    /// its listener has read the last event (see `poll_events`).
    listeners: HashMap<Uuid, std::thread::JoinHandle<()>>,
}

/// How long a listener may take to record the last event after QEMU exited.
const LISTENER_DRAIN: Duration = Duration::from_secs(2);

fn qmp_err(vm: Uuid) -> impl Fn(QmpError) -> DriverError {
    move |e| DriverError::Qmp {
        vm,
        reason: e.to_string(),
    }
}

impl QemuDriver {
    pub fn new(ctx: DriverContext, cfg: QemuConfig) -> Self {
        Self {
            fleet: Fleet::new(ctx, NAME),
            cfg,
            accel: None,
            listeners: HashMap::new(),
        }
    }

    /// The accelerator VMs get (after the first start, or by probing now).
    pub fn accel_for(&mut self, kernel: &Path, initrd: Option<&Path>) -> Accel {
        let cfg = &self.cfg;
        *self.accel.get_or_insert_with(|| {
            accel::choose(cfg.accel, &cfg.binary, kernel, initrd, &cfg.probe_cache)
        })
    }

    fn qmp(&self, uuid: Uuid) -> Result<Qmp, DriverError> {
        let dir = &self.fleet.tracked(uuid)?.dir;
        Qmp::connect(&dir.file("qmp.sock"), QMP_TIMEOUT).map_err(qmp_err(uuid))
    }

    /// Starts QEMU for `spec`; `incoming` makes it wait for a migration.
    fn launch(&mut self, spec: &VmSpec, incoming: bool) -> Result<RunningVm, DriverError> {
        spec.check_common(NAME)?;
        spec.check_keys(KEYS)?;
        if spec.get(KEY_IMAGE).is_some() {
            return Err(DriverError::BadConfig {
                key: KEY_IMAGE.into(),
                reason: "booting a disk image is not supported; give kernel (and initrd)".into(),
            });
        }
        if spec.memory_bytes < MEMORY_MIN_BYTES {
            return Err(DriverError::BadSpec {
                field: "memory",
                reason: format!(
                    "{} MiB is below the QEMU driver's minimum of 128 MiB",
                    spec.memory_bytes / args::MIB
                ),
            });
        }
        let file_key = |key: &str, required: bool| -> Result<Option<String>, DriverError> {
            match spec.get(key) {
                None if required => Err(DriverError::BadConfig {
                    key: key.into(),
                    reason: "missing: the kernel to boot".into(),
                }),
                None => Ok(None),
                Some(p) if !Path::new(p).is_file() => Err(DriverError::BadConfig {
                    key: key.into(),
                    reason: format!("{p}: no such file"),
                }),
                Some(p) => Ok(Some(p.to_owned())),
            }
        };
        let kernel = file_key(KEY_KERNEL, true)?.unwrap_or_default();
        let initrd = file_key(KEY_INITRD, false)?;
        let stamp = match spec.get(KEY_STAMP) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => {
                return Err(DriverError::BadConfig {
                    key: KEY_STAMP.into(),
                    reason: format!("{v:?}: want on or off"),
                });
            }
        };
        self.fleet.ensure_not_running(spec.uuid)?;
        let accel = self.accel_for(Path::new(&kernel), initrd.as_deref().map(Path::new));
        let dir = self.fleet.dir(spec.uuid);
        let launch = Launch {
            accel,
            dir: dir.path(),
            kernel: &kernel,
            initrd: initrd.as_deref(),
            host: &self.fleet.ctx.host,
            tsc_khz: self.cfg.tsc_khz.or_else(args::host_tsc_khz),
            t0_ms: now_ms(),
            stamp,
            slot: spec.stamp_slot()?,
            extra_cmdline: spec.get(KEY_CMDLINE),
            incoming,
        };
        let argv = args::build(spec, &launch);
        let binary = OsString::from(self.cfg.binary.as_os_str());
        let vm = self.fleet.spawn(spec, &binary, &argv, &[])?.running_vm();
        let want = if incoming { "inmigrate" } else { "running" };
        if let Err(e) = self.wait_qmp_status(spec.uuid, want) {
            // Nothing left running: kill what may be there, drop the record, no event.
            if let Some(mut t) = self.fleet.vms.remove(&spec.uuid) {
                t.signal(nix::sys::signal::Signal::SIGKILL);
                wait_until(Duration::from_secs(10), || !t.vm.is_alive());
                if let Some(mut keeper) = t.child.take() {
                    // It exits once it has recorded the VM's end.
                    let _ = keeper.wait();
                }
                let _ = t.dir.remove();
            }
            return Err(e);
        }
        if let Some(h) = spawn_event_listener(spec.uuid, dir) {
            self.listeners.insert(spec.uuid, h);
        }
        tracing::info!(vm = %spec.uuid, pid = vm.pid, accel = accel.as_str(), "QEMU VM started");
        Ok(vm)
    }

    /// Waits until QMP answers with status `want`; a QEMU that exits first
    /// is reported with the reason from its stderr.
    fn wait_qmp_status(&self, uuid: Uuid, want: &str) -> Result<(), DriverError> {
        let t = self.fleet.tracked(uuid)?;
        let deadline = Instant::now() + QMP_UP_DEADLINE;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if !t.vm.is_alive() {
                // Let the keeper record the exit and QEMU's stderr land.
                wait_until(Duration::from_secs(2), || t.dir.read_exit().is_some());
                let stderr = t.dir.stderr_tail();
                if let Some(disk) = locked_disk(&stderr) {
                    return Err(DriverError::ImageLocked { vm: uuid, disk });
                }
                return Err(DriverError::StartFailed {
                    vm: uuid,
                    reason: format!("QEMU exited: {stderr}"),
                });
            }
            match Qmp::connect(&t.dir.file("qmp.sock"), QMP_TIMEOUT).and_then(|mut q| q.status()) {
                Ok(s) if s == want => return Ok(()),
                Ok(s) => last = format!("status {s}"),
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(DriverError::StartFailed {
            vm: uuid,
            reason: format!("QMP not {want} after {QMP_UP_DEADLINE:?}: {last}"),
        })
    }
}

/// The disk named in QEMU's image-lock error, if that is why it failed:
/// `...: Failed to get "write" lock | Is another process using the image [PATH]?`
fn locked_disk(stderr: &str) -> Option<String> {
    if !stderr.contains("Failed to get") || !stderr.contains("lock") {
        return None;
    }
    let after = stderr.split("using the image [").nth(1)?;
    Some(after.split("]?").next()?.to_owned())
}

/// Presses the guest's ACPI power button.
fn powerdown(uuid: Uuid, qmp_path: &Path) -> Result<(), DriverError> {
    let mut q = Qmp::connect(qmp_path, QMP_TIMEOUT).map_err(qmp_err(uuid))?;
    q.execute("system_powerdown", None).map_err(qmp_err(uuid))?;
    Ok(())
}

/// Holds the events socket and records `SHUTDOWN` as `guest REASON` or
/// `host REASON` in the run directory's `shutdown` file. Ends with QEMU.
fn spawn_event_listener(uuid: Uuid, dir: VmDir) -> Option<std::thread::JoinHandle<()>> {
    let spawned = std::thread::Builder::new()
        .name(format!("qmp-events-{uuid}"))
        .spawn(move || {
            let Ok(mut q) = Qmp::connect(&dir.file("events.sock"), QMP_TIMEOUT) else {
                return;
            };
            // Events come whenever they come: no read timeout from here on.
            let _ = q.set_read_timeout(None);
            while let Ok(msg) = q.read_message() {
                if msg["event"] == "SHUTDOWN" {
                    let data = &msg["data"];
                    let who = if data["guest"].as_bool() == Some(true) {
                        "guest"
                    } else {
                        "host"
                    };
                    let reason = data["reason"].as_str().unwrap_or("unknown");
                    let _ = dir.write_atomic("shutdown", format!("{who} {reason}\n").as_bytes());
                }
            }
        });
    spawned
        .inspect_err(
            |e| tracing::warn!(vm = %uuid, error = %e, "cannot start the QMP event listener"),
        )
        .ok()
}

impl VmDriver for QemuDriver {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, spec: &VmSpec) -> Result<RunningVm, DriverError> {
        self.launch(spec, false)
    }

    fn stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<StopRequest, DriverError> {
        let qmp_path = self.fleet.tracked(uuid)?.dir.file("qmp.sock");
        self.fleet
            .stop_with(uuid, mode, |_| powerdown(uuid, &qmp_path))
    }

    fn request_stop(&mut self, uuid: Uuid, mode: StopMode) -> Result<(), DriverError> {
        let qmp_path = self.fleet.tracked(uuid)?.dir.file("qmp.sock");
        self.fleet
            .request_stop_with(uuid, mode, |_| powerdown(uuid, &qmp_path))
    }

    fn state(&mut self, uuid: Uuid) -> Result<PowerState, DriverError> {
        if !self.fleet.is_alive(uuid) {
            return Ok(PowerState::Halted);
        }
        match self
            .qmp(uuid)
            .and_then(|mut q| q.status().map_err(qmp_err(uuid)))
        {
            Ok(s) if s == "running" => Ok(PowerState::Running),
            Ok(_) => Ok(PowerState::Paused),
            // QMP busy (one client at a time) or going away: /proc decides.
            Err(_) => Ok(self.fleet.proc_state(uuid)),
        }
    }

    fn memory_used(&mut self, uuid: Uuid) -> Result<u64, DriverError> {
        self.fleet.memory_used(uuid)
    }

    fn adopt(&mut self) -> Result<Vec<RunningVm>, DriverError> {
        let before: Vec<Uuid> = self.fleet.vms.keys().copied().collect();
        let found = self.fleet.adopt()?;
        for vm in &found {
            if !before.contains(&vm.uuid)
                && let Some(h) = spawn_event_listener(vm.uuid, self.fleet.dir(vm.uuid))
            {
                self.listeners.insert(vm.uuid, h);
            }
        }
        Ok(found)
    }

    fn running(&self) -> Vec<RunningVm> {
        self.fleet.running()
    }

    fn poll_events(&mut self) -> Vec<VmEvent> {
        // QEMU sends SHUTDOWN and exits; the keeper may record the exit
        // before the listener has written the event down. The listener ends
        // at EOF of the events socket (QEMU gone): wait for that (briefly)
        // so a guest shutdown is never reported without its reason.
        let gone: Vec<Uuid> = self
            .listeners
            .keys()
            .copied()
            .filter(|u| !self.fleet.is_alive(*u))
            .collect();
        for uuid in gone {
            if let Some(h) = self.listeners.remove(&uuid)
                && wait_until(LISTENER_DRAIN, || h.is_finished())
            {
                let _ = h.join();
            }
        }
        self.fleet.poll()
    }
}
