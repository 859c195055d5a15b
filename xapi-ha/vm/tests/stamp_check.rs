//! The double-run checker on real stamp writers (`xha-stamp` processes on a
//! disk file): it fails on two boots of one VM writing at the same time and
//! on a protected VM down longer than the bound, and passes one boot after
//! the other. Also through the `xha-vm check` command.

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use support::*;
use uuid::Uuid;
use xapi_vm::stamp::{CheckOptions, StampLog, Violation};

fn stamper(disk: &std::path::Path, vm: Uuid, host: &str, count: Option<u64>) -> Child {
    let mut c = Command::new(STAMP);
    c.arg("--disk")
        .arg(disk)
        .args(["--vm", &vm.to_string(), "--host", host, "--slot", "1"]);
    if let Some(n) = count {
        c.args(["--count", &n.to_string()]);
    }
    c.spawn().unwrap()
}

/// A writer that is killed when the test ends, passed or not.
struct Writer(Child);

impl Writer {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn xha_vm_check(disk: &std::path::Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(XHA_VM)
        .arg("check")
        .arg(format!("{}@1", disk.display()))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn two_boots_writing_at_the_same_time_fail_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let d = disk(tmp.path(), "shared", 2);
    let vm = Uuid::new_v4();
    // The same VM running on two hosts at once (a fencing failure).
    let mut a = Writer(stamper(&d, vm, "host-a", None));
    let mut b = Writer(stamper(&d, vm, "host-b", None));
    // The checker reads the disk repeatedly into one log, as the lab does.
    let mut log = StampLog::new();
    wait_for("stamps of both boots", Duration::from_secs(20), || {
        log.read_disk(&d, 1).ok()?;
        let w = log.windows();
        (w.len() == 2 && w.iter().all(|w| w.records >= 3)).then_some(())
    });
    a.stop();
    b.stop();
    let v = log.check(&CheckOptions::default());
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(matches!(&v[0], Violation::Overlap { vm: x, .. } if *x == vm));
    let (ok, out) = xha_vm_check(&d, &[]);
    assert!(
        !ok && out.contains("VIOLATION") && out.contains("ran twice"),
        "{out}"
    );
}

#[test]
fn one_boot_after_the_other_passes_and_a_long_gap_fails_the_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let d = disk(tmp.path(), "shared", 2);
    let vm = Uuid::new_v4();
    let mut log = StampLog::new();
    for host in ["host-a", "host-b"] {
        let status = stamper(&d, vm, host, Some(5)).wait().unwrap();
        assert!(status.success());
        log.read_disk(&d, 1).unwrap();
    }
    assert_eq!(log.windows().len(), 2);
    assert_eq!(log.len(), 10);
    // Restarted within a second: fine with a 2 s bound.
    let opts = CheckOptions {
        protected: [vm].into(),
        max_down_ms: 2_000,
        span_ms: None,
    };
    assert_eq!(log.check(&opts), vec![]);
    let (ok, out) = xha_vm_check(
        &d,
        &["--protected", &vm.to_string(), "--max-down-ms", "2000"],
    );
    assert!(ok, "{out}");

    // A third boot 2.5 s later: down longer than the bound.
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(stamper(&d, vm, "host-c", Some(2)).wait().unwrap().success());
    log.read_disk(&d, 1).unwrap();
    let v = log.check(&opts);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(matches!(v[0], Violation::Down { from_ms, to_ms, .. } if to_ms - from_ms > 2_000));
    let (ok, out) = xha_vm_check(
        &d,
        &["--protected", &vm.to_string(), "--max-down-ms", "2000"],
    );
    assert!(!ok && out.contains("was down"), "{out}");
    // Slot 0 of the same disk is untouched.
    assert!(records(&d, 0).is_empty());
}

/// A boot's ring positions come from its boot id, so a later boot of the
/// VM may land on the tail of an earlier one and overwrite its last
/// records: read once at the end, the earlier boot seems to have stopped
/// sooner than it did. A log read between the boots keeps them (why the
/// lab and the fault campaign read the disks all through a run: a
/// campaign run once measured a restart from the wrong place and missed
/// it).
#[test]
fn a_later_boot_overwrites_an_earlier_ones_tail_unless_read_in_between() {
    let tmp = tempfile::tempdir().unwrap();
    let d = disk(tmp.path(), "shared", 2);
    let vm = Uuid::new_v4();
    // Ring starts 0 and 10 (the boot id's first 32 bits).
    let first = Uuid::from_u128(0);
    let later = Uuid::from_u128(10 << 96);
    let boot = |boot: Uuid, host: &str, count: u64| {
        let mut c = Command::new(STAMP);
        c.arg("--disk").arg(&d).args([
            "--vm",
            &vm.to_string(),
            "--host",
            host,
            "--slot",
            "1",
            "--boot",
            &boot.to_string(),
            "--interval-ms",
            "5",
            "--count",
            &count.to_string(),
        ]);
        assert!(c.status().unwrap().success());
    };
    let last_seq = |log: &StampLog| {
        log.records()
            .filter(|r| r.boot == first)
            .map(|r| r.seq)
            .max()
    };
    boot(first, "host-a", 20);
    let mut read_between = StampLog::new();
    read_between.read_disk(&d, 1).unwrap();
    boot(later, "host-b", 10);
    read_between.read_disk(&d, 1).unwrap();
    let mut read_at_end = StampLog::new();
    read_at_end.read_disk(&d, 1).unwrap();
    assert_eq!(last_seq(&read_between), Some(19));
    assert_eq!(
        last_seq(&read_at_end),
        Some(9),
        "records 10..19 overwritten"
    );
    assert_eq!(read_between.windows().len(), 2);
}
