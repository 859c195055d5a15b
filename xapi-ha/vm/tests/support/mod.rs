//! Shared by the driver tests: scratch directories, specs, stamp disks,
//! polling, and the start / stop steps both drivers' tests take.
#![allow(dead_code)]

pub mod guest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;
use xapi_vm::stamp::region::REGION_BYTES;
use xapi_vm::stamp::{StampLog, StampRecord, read_region};
use xapi_vm::{DriverContext, StopCause, StopMode, StopRequest, VmDriver, VmEvent};

pub const KEEPER: &str = env!("CARGO_BIN_EXE_xha-vm-keeper");
pub const STAMP: &str = env!("CARGO_BIN_EXE_xha-stamp");
pub const XHA_VM: &str = env!("CARGO_BIN_EXE_xha-vm");

pub fn ctx(run_dir: &Path, host: &str) -> DriverContext {
    DriverContext {
        host: host.into(),
        run_dir: run_dir.to_path_buf(),
        keeper: KEEPER.into(),
    }
}

/// A stamp disk with room for `slots` slots (sparse file).
pub fn disk(dir: &Path, name: &str, slots: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(slots * REGION_BYTES).unwrap();
    p
}

pub fn spec(driver: &str, config: &[(&str, &str)], disks: Vec<PathBuf>) -> xapi_vm::VmSpec {
    xapi_vm::VmSpec {
        uuid: Uuid::new_v4(),
        name: "test-vm".into(),
        memory_bytes: 128 << 20,
        vcpus: 1,
        driver: driver.into(),
        config: config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        disks,
        disk_regions: Vec::new(),
    }
}

/// Polls `f` every 20 ms until it returns Some, or panics after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The records now in slot `slot` of `disk`.
pub fn records(disk: &Path, slot: u64) -> Vec<StampRecord> {
    read_region(disk, slot)
        .map(|r| r.records)
        .unwrap_or_default()
}

/// Waits until `vm` has stamped `disk` at least `n` distinct times.
pub fn wait_stamps(disk: &Path, slot: u64, vm: Uuid, n: usize, timeout: Duration) -> StampLog {
    wait_for(&format!("{n} stamps of {vm}"), timeout, || {
        let mut log = StampLog::new();
        log.read_disk(disk, slot).ok()?;
        (log.records().filter(|r| r.vm == vm).count() >= n).then_some(log)
    })
}

/// Polls the driver until it reports `vm` stopped; returns the event.
pub fn wait_stopped(d: &mut dyn VmDriver, vm: Uuid, timeout: Duration) -> VmEvent {
    wait_for(&format!("Stopped event of {vm}"), timeout, || {
        d.poll_events()
            .into_iter()
            .find(|VmEvent::Stopped { uuid, .. }| *uuid == vm)
    })
}

pub fn pid_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills every VM still running under the given run directories when
/// dropped, so a failing test leaves no QEMU or command behind.
pub struct KillOnDrop(pub Vec<PathBuf>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for run in &self.0 {
            for driver in ["qemu", "process"] {
                for (uuid, dir) in
                    xapi_vm::rundir::VmDir::list(&run.join(driver)).unwrap_or_default()
                {
                    if std::thread::panicking() {
                        // What the VM said, for the failure report.
                        for log in ["console.log", "stderr.log"] {
                            let text = std::fs::read_to_string(dir.file(log)).unwrap_or_default();
                            let tail: Vec<&str> = text.lines().rev().take(15).collect();
                            eprintln!("--- {uuid} {log}, newest line first:\n{}", tail.join("\n"));
                        }
                    }
                    if let Some(p) = dir.read_proc("vm.pid").filter(|p| p.is_alive()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p.pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    // Wait for the VM and its keeper to be gone, so the
                    // temporary directory is not written to while removed.
                    let gone = |name| {
                        dir.read_proc(name)
                            .is_none_or(|p: xapi_vm::rundir::ProcId| !p.is_alive())
                    };
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while !(gone("vm.pid") && gone("keeper.pid")) && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}

/// A temporary directory whose run directories (`run`, `run-a`, `run-b`)
/// have every VM killed when the scratch is dropped.
pub struct Scratch {
    // Dropped first: the VMs go before their directory.
    _guard: KillOnDrop,
    pub tmp: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let _guard = KillOnDrop(
            ["run", "run-a", "run-b"]
                .map(|r| tmp.path().join(r))
                .to_vec(),
        );
        Self { _guard, tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// `run`, `run-a` or `run-b`.
    pub fn run(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

/// The cause of a Stopped event.
pub fn cause(ev: VmEvent) -> StopCause {
    let VmEvent::Stopped { cause, .. } = ev;
    cause
}

/// Stops `vm` with `mode` and checks the whole ending: the stop's answer is
/// `want`, the VM's process `pid` is gone, and the one Stopped event says
/// we stopped it that way.
pub fn stop_and_check(
    d: &mut dyn VmDriver,
    vm: &xapi_vm::RunningVm,
    mode: StopMode,
    want: StopRequest,
    timeout: Duration,
) {
    assert_eq!(d.stop(vm.uuid, mode).unwrap(), want);
    assert!(!pid_exists(vm.pid), "the VM process {} is gone", vm.pid);
    assert_eq!(
        cause(wait_stopped(d, vm.uuid, timeout)),
        StopCause::Requested(want)
    );
    assert!(d.running().iter().all(|v| v.uuid != vm.uuid));
}

/// Runs `xha-vm --driver DRIVER --run-dir RUN --host HOST ARGS...` (a driver
/// owner in another process, which exits: an agent restart) and asserts it
/// succeeded.
pub fn xha_vm(driver: &str, run: &Path, host: &str, args: &[&str]) {
    let out = std::process::Command::new(XHA_VM)
        .args(["--driver", driver, "--run-dir"])
        .arg(run)
        .args(["--host", host, "--keeper", KEEPER])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xha-vm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `spec` from another process (see [`xha_vm`]); the spec goes
/// through a JSON file in `dir`.
pub fn start_elsewhere(driver: &str, run: &Path, host: &str, dir: &Path, spec: &xapi_vm::VmSpec) {
    let file = dir.join(format!("{}.json", spec.uuid));
    std::fs::write(&file, serde_json::to_vec(spec).unwrap()).unwrap();
    xha_vm(driver, run, host, &["start", file.to_str().unwrap()]);
}
