//! The QEMU driver against real QEMU (TCG here) and the test guest built by
//! tests/guest/build.sh: boot with stamps, clean stop (ACPI power button),
//! hard stop, shutdown from inside the guest reported as such, adoption by a
//! new driver owner, a second start refused (by us, and by QEMU's image lock
//! from another "host"), live migration between two "hosts" on this
//! machine (and a failed one that leaves the VM running), a missing kernel.
//! Each test prints why it skips when QEMU or the guest is missing; boots are
//! judged hung by QEMU's CPU time, not by wall time (support/guest.rs).

mod support;

use std::net::TcpListener;
use std::time::Duration;

use support::guest::*;
use support::*;
use xapi_vm::stamp::CheckOptions;
use xapi_vm::{
    DriverError, ExitStatus, PowerState, StopCause, StopMode, StopRequest, VmDriver, VmSpec,
};

const BOOT: Duration = SLOW;

#[test]
fn boots_stamps_and_stops_cleanly_then_hard() {
    let _serial = serial();
    let Some(g) = guest() else { return };
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let d0 = disk(tmp.path(), "disk0", 1);
    let mut drv = driver(&run, "host-a");
    let s = qspec(&g, vec![d0.clone()], &[]);
    let vm = start_booted(&mut drv, &run, &s);
    assert_eq!(drv.state(s.uuid).unwrap(), PowerState::Running);
    let log = wait_stamps(&d0, 0, s.uuid, 3, BOOT);
    let r = log.records().next().unwrap();
    assert_eq!((r.vm, r.host.as_str()), (s.uuid, "host-a"));
    // The guest's shell placed each record where the Rust layout says.
    for r in log.records() {
        let raw = std::fs::read(&d0).unwrap();
        let off = xapi_vm::stamp::region::ring_offset(0, &r.boot, r.seq) as usize;
        assert_eq!(
            xapi_vm::stamp::decode(&raw[off..off + 4096])
                .unwrap()
                .as_ref(),
            Some(r)
        );
    }
    assert!(drv.memory_used(s.uuid).unwrap() > 32 << 20);
    stop_and_check(
        &mut drv,
        &vm,
        StopMode::Clean { timeout: BOOT },
        StopRequest::Clean,
        BOOT,
    );

    // A hard stop of the same VM, booted again: a second boot in the stamps.
    let vm = start_booted(&mut drv, &run, &s);
    wait_for("stamps of the second boot", BOOT, || {
        let mut l = xapi_vm::stamp::StampLog::new();
        l.read_disk(&d0, 0).ok()?;
        (l.windows().len() == 2).then_some(())
    });
    // The non-blocking stop: the event comes from polling.
    drv.request_stop(s.uuid, StopMode::Hard).unwrap();
    assert_eq!(
        cause(wait_stopped(&mut drv, s.uuid, BOOT)),
        StopCause::Requested(StopRequest::Hard)
    );
    assert!(!pid_exists(vm.pid));
    let mut log = xapi_vm::stamp::StampLog::new();
    log.read_disk(&d0, 0).unwrap();
    assert_eq!(
        log.check(&CheckOptions::default()),
        vec![],
        "two boots one after the other"
    );
}

#[test]
fn a_shutdown_from_inside_the_guest_is_reported_as_such() {
    let _serial = serial();
    let Some(g) = guest() else { return };
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let mut drv = driver(&run, "h");
    let s = qspec(&g, vec![], &[("cmdline", "xha.halt_after=1")]);
    start_booted(&mut drv, &run, &s);
    let c = cause(wait_stopped(&mut drv, s.uuid, BOOT));
    assert_eq!(
        c,
        StopCause::ByItself {
            exit: Some(ExitStatus::Code(0)),
            guest_shutdown: Some("guest-shutdown".into())
        }
    );
    assert!(c.is_clean_exit());
}

#[test]
fn a_new_owner_adopts_the_vm_and_second_starts_are_refused() {
    let _serial = serial();
    let Some(g) = guest() else { return };
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let d0 = disk(tmp.path(), "disk0", 1);
    let s = qspec(&g, vec![d0.clone()], &[]);
    // The start is done by another process that then exits (agent restart).
    let up = (0..3).any(|_| {
        start_elsewhere("qemu", &run, "host-a", tmp.path(), &s);
        let pid = xapi_vm::rundir::VmDir::new(&run.join("qemu"), s.uuid)
            .read_proc("vm.pid")
            .map_or(0, |p| p.pid);
        booted(&run, s.uuid, pid) || {
            xha_vm(
                "qemu",
                &run,
                "host-a",
                &["stop", "--hard", &s.uuid.to_string()],
            );
            false
        }
    });
    assert!(up, "the guest hung at boot three times");
    wait_stamps(&d0, 0, s.uuid, 2, BOOT);

    let mut drv = driver(&run, "host-a");
    let adopted = drv.adopt().unwrap();
    assert_eq!(
        adopted.iter().map(|v| v.uuid).collect::<Vec<_>>(),
        vec![s.uuid]
    );
    assert!(drv.poll_events().is_empty());
    assert_eq!(drv.state(s.uuid).unwrap(), PowerState::Running);
    assert!(matches!(drv.start(&s), Err(DriverError::AlreadyRunning(u)) if u == s.uuid));

    // Another "host" (its own run directory) on the same disk: QEMU's image
    // lock refuses it, clearly, and leaves nothing running.
    let run_b = tmp.run("run-b");
    let mut other = driver(&run_b, "host-b");
    let err = other.start(&s).unwrap_err();
    assert!(
        matches!(&err, DriverError::ImageLocked { disk, .. } if disk == &d0.display().to_string()),
        "{err}"
    );
    assert!(other.running().is_empty());
    assert!(other.poll_events().is_empty());

    // The adopted VM is still ours to stop, cleanly.
    stop_and_check(
        &mut drv,
        &adopted[0],
        StopMode::Clean { timeout: BOOT },
        StopRequest::Clean,
        BOOT,
    );
    let mut log = xapi_vm::stamp::StampLog::new();
    log.read_disk(&d0, 0).unwrap();
    assert_eq!(log.windows().len(), 1, "one boot: never started twice");
}

/// A loopback port nobody listens on (bound, then closed).
fn free_port() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[test]
fn live_migration_moves_the_vm_and_a_failed_one_leaves_it_running() {
    let _serial = serial();
    let Some(g) = guest() else { return };
    let tmp = Scratch::new();
    let d0 = disk(tmp.path(), "disk0", 1);
    let mut src = driver(&tmp.run("run-a"), "host-a");
    let mut dst = driver(&tmp.run("run-b"), "host-b");
    let s = qspec(&g, vec![d0.clone()], &[]);
    start_booted(&mut src, &tmp.run("run-a"), &s);
    wait_stamps(&d0, 0, s.uuid, 2, BOOT);

    // Nothing listens there: the migration fails, the VM keeps running here.
    let err = src
        .migrate(s.uuid, &free_port(), BOOT, || true)
        .unwrap_err();
    assert!(matches!(err, DriverError::MigrationFailed { .. }), "{err}");
    assert_eq!(src.state(s.uuid).unwrap(), PowerState::Running);
    let n = records(&d0, 0).len();
    wait_for("stamps after the failed migration", BOOT, || {
        (records(&d0, 0).len() > n).then_some(())
    });

    // The target opens the same disk while the source holds it: QEMU's
    // image lock lets an `-incoming` QEMU do that (it opens it inactive).
    let addr = dst.start_incoming(&s, "127.0.0.1").unwrap();
    assert_eq!(
        dst.state(s.uuid).unwrap(),
        PowerState::Paused,
        "waiting for the migration"
    );
    src.migrate(s.uuid, &addr, BOOT, || {
        dst.resume_incoming(s.uuid, BOOT).is_ok()
    })
    .unwrap();
    assert_eq!(
        cause(wait_stopped(&mut src, s.uuid, BOOT)),
        StopCause::Requested(StopRequest::Migrated)
    );
    assert!(src.running().is_empty());
    assert_eq!(dst.state(s.uuid).unwrap(), PowerState::Running);
    // The same boot keeps stamping from the target.
    let before = records(&d0, 0).iter().map(|r| r.seq).max().unwrap();
    wait_for("stamps from the target", BOOT, || {
        (records(&d0, 0).iter().map(|r| r.seq).max().unwrap() > before + 2).then_some(())
    });
    let mut log = xapi_vm::stamp::StampLog::new();
    log.read_disk(&d0, 0).unwrap();
    assert_eq!(log.windows().len(), 1, "one boot across the migration");
    assert_eq!(log.check(&CheckOptions::default()), vec![]);
    dst.stop(s.uuid, StopMode::Hard).unwrap();
}

#[test]
fn a_missing_kernel_is_a_clear_error_and_leaves_nothing_running() {
    let _serial = serial();
    let Some(g) = guest() else { return };
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let mut drv = driver(&run, "h");
    let mut s = qspec(&g, vec![], &[]);
    s.config.insert(
        "kernel".into(),
        tmp.path().join("no-such-vmlinux").display().to_string(),
    );
    let err = drv.start(&s).unwrap_err();
    assert!(
        matches!(&err, DriverError::BadConfig { key, reason } if key == "kernel" && reason.contains("no such file")),
        "{err}"
    );
    // A kernel file QEMU cannot boot: QEMU exits, the error says why, nothing is left.
    let bogus = tmp.path().join("bogus-kernel");
    std::fs::write(&bogus, b"not a kernel").unwrap();
    s.config
        .insert("kernel".into(), bogus.display().to_string());
    let err = drv.start(&s).unwrap_err();
    assert!(
        matches!(&err, DriverError::StartFailed { reason, .. } if reason.contains("QEMU exited")),
        "{err}"
    );
    assert!(drv.running().is_empty());
    assert!(drv.poll_events().is_empty());
    assert!(
        std::fs::read_dir(run.join("qemu"))
            .map(|d| d.filter(|e| e.as_ref().unwrap().path().is_dir()).count())
            .unwrap_or(0)
            == 0
    );
    let small = VmSpec {
        memory_bytes: 64 << 20,
        ..qspec(&g, vec![], &[])
    };
    assert!(matches!(
        drv.start(&small),
        Err(DriverError::BadSpec {
            field: "memory",
            ..
        })
    ));
}
