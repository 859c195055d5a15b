//! The QEMU tests' guest: where it is (or why the tests skip), and waiting
//! for a boot without a wall-clock deadline that only holds on an idle
//! machine.
//!
//! Why not a fixed deadline: a TCG guest is CPU-bound. Measured here, a boot
//! to the guest's /init takes about 1.8 s of QEMU CPU time and 2.3-3 s of
//! wall time on an idle machine, but 14-23 s of wall time with six busy
//! loops beside it on the 2 cores, and a workspace test run beside other
//! builds starved it past the old fixed 40 s, three boots in a row (the
//! "silent boots" of docs/vm-drivers.md). A hung boot (the kernel spinning
//! at "Marking TSC unstable" or after "ACPI: Core revision") burns CPU
//! without progress, so the test counts QEMU's CPU time, not wall time: a
//! guest that used [`HUNG_CPU`] of CPU without reaching /init is hung; a
//! starved one just waits (up to [`BOOT_WALL_CAP`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use xapi_vm::qemu::{AccelChoice, QemuConfig, QemuDriver};
use xapi_vm::{StopMode, VmDriver, VmSpec};

use super::{ctx, spec};

/// QEMU CPU time after which a boot that has not reached /init is hung
/// (about 20 times a normal boot's).
pub const HUNG_CPU: Duration = Duration::from_secs(40);
/// However starved, a boot may take this long in wall time.
pub const BOOT_WALL_CAP: Duration = Duration::from_secs(600);
/// Deadline for conditions after the boot (stamps, stops, migration): the
/// polls return as soon as the condition holds, so it can be generous.
pub const SLOW: Duration = Duration::from_secs(300);

pub struct Guest {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The test guest, or None with the reason printed: QEMU not installed or
/// the guest not built (.ci/run does both).
pub fn guest() -> Option<Guest> {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v qemu-system-x86_64"])
        .output();
    if !which.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: qemu-system-x86_64 is not installed (.ci/run installs it)");
        return None;
    }
    let dir =
        std::env::var("XHA_TEST_GUEST_DIR").unwrap_or_else(|_| "/var/cache/xha-test-guest".into());
    let cur = Path::new(&dir).join("current");
    // Resolve `current` once: a build.sh run elsewhere may repoint it.
    let Some(build) = std::fs::canonicalize(&cur)
        .ok()
        .filter(|b| b.join("ready").exists())
    else {
        eprintln!(
            "SKIP: no test guest in {} (run tests/guest/build.sh)",
            cur.display()
        );
        return None;
    };
    Some(Guest {
        kernel: build.join("vmlinux"),
        initrd: build.join("initrd.gz"),
    })
}

pub fn driver(run: &Path, host: &str) -> QemuDriver {
    // The default probe cache (/var/cache/xha-vm): the KVM probe boot (up to
    // 10 s where /dev/kvm exists but does not work) runs once per machine.
    let cfg = QemuConfig {
        accel: AccelChoice::Auto,
        ..QemuConfig::default()
    };
    QemuDriver::new(ctx(run, host), cfg)
}

pub fn qspec(g: &Guest, disks: Vec<PathBuf>, extra: &[(&str, &str)]) -> VmSpec {
    let k = g.kernel.display().to_string();
    let i = g.initrd.display().to_string();
    let mut cfg = vec![("kernel", k.as_str()), ("initrd", i.as_str())];
    cfg.extend_from_slice(extra);
    spec("qemu", &cfg, disks)
}

/// How a boot ended.
#[derive(Debug)]
pub enum Boot {
    /// The guest reached /init after this wall and CPU time.
    Init { wall: Duration, cpu: Duration },
    /// It used [`HUNG_CPU`] (or [`BOOT_WALL_CAP`]) without reaching /init.
    Hung { wall: Duration, cpu: Duration },
    /// QEMU exited first.
    Exited,
}

/// CPU time (user + system) of process `pid`.
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let ticks = xapi_vm::procfs::stat(pid)?.cpu_ticks;
    Some(Duration::from_millis(
        ticks * 1000 / xapi_vm::procfs::ticks_per_second(),
    ))
}

/// Waits until the guest of QEMU process `pid` writes "xha-guest: init"
/// to `console`, judging a hang by QEMU's CPU time (module doc).
pub fn wait_init(console: &Path, pid: i32) -> Boot {
    let t0 = Instant::now();
    let mut cpu = Duration::ZERO;
    loop {
        if std::fs::read_to_string(console).is_ok_and(|c| c.contains("xha-guest: init")) {
            return Boot::Init {
                wall: t0.elapsed(),
                cpu,
            };
        }
        match cpu_time(pid) {
            Some(c) => cpu = c,
            None => return Boot::Exited,
        }
        if cpu >= HUNG_CPU || t0.elapsed() >= BOOT_WALL_CAP {
            return Boot::Hung {
                wall: t0.elapsed(),
                cpu,
            };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn console_tail(console: &Path) -> String {
    let text = std::fs::read_to_string(console).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    tail.join("\n")
}

/// Waits for the boot of the VM `uuid` started under `run`; true when it
/// reached /init. A hung boot is reported with its console.
pub fn booted(run: &Path, uuid: uuid::Uuid, pid: i32) -> bool {
    let console = run.join("qemu").join(uuid.to_string()).join("console.log");
    match wait_init(&console, pid) {
        Boot::Init { wall, cpu } => {
            eprintln!("boot of {uuid}: /init after {wall:.1?} ({cpu:.1?} of QEMU CPU)");
            true
        }
        b => {
            eprintln!(
                "NOTE: the guest did not reach /init ({b:?}; a guest problem, not the driver's). Console, newest first:\n{}",
                console_tail(&console)
            );
            false
        }
    }
}

/// Starts the VM and waits until its guest reaches /init. A boot that hung
/// (rare: [`HUNG_CPU`] of CPU without progress) is stopped hard and
/// retried, up to three boots. Driver errors are never retried.
pub fn start_booted(drv: &mut QemuDriver, run: &Path, s: &VmSpec) -> xapi_vm::RunningVm {
    for _ in 0..3 {
        let vm = drv.start(s).unwrap();
        if booted(run, s.uuid, vm.pid) {
            return vm;
        }
        drv.stop(s.uuid, StopMode::Hard).unwrap();
        drv.poll_events();
    }
    panic!("the guest hung at boot three times");
}

/// One QEMU test at a time in this process: TCG guests are CPU-bound, and
/// booting several at once on 2 cores only slows each.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
