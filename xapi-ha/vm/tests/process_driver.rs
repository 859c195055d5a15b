//! The process driver against real processes: start, stamps, clean / forced
//! / hard stop, exits by itself, adoption by a new driver owner (another
//! process), a reused pid never mistaken for the VM, bad specs refused.

mod support;

use std::time::Duration;

use support::*;
use xapi_vm::process::ProcessDriver;
use xapi_vm::rundir::{ProcId, VmDir, VmRecord};
use xapi_vm::{
    DriverError, ExitStatus, PowerState, StopCause, StopMode, StopRequest, VmDriver, VmEvent,
};

const LONG: Duration = Duration::from_secs(20);

#[test]
fn a_stamping_process_vm_runs_reports_memory_and_stops_cleanly() {
    let tmp = Scratch::new();
    let d0 = disk(tmp.path(), "disk0", 1);
    let mut drv = ProcessDriver::new(ctx(&tmp.run("run"), "host-a"));
    let spec = spec(
        "process",
        &[("command", &format!("exec {STAMP}"))],
        vec![d0.clone()],
    );
    let vm = drv.start(&spec).unwrap();
    let log = wait_stamps(&d0, 0, spec.uuid, 3, LONG);
    let r = log.records().next().unwrap();
    assert_eq!((r.vm, r.host.as_str()), (spec.uuid, "host-a"));
    assert_eq!(drv.state(spec.uuid).unwrap(), PowerState::Running);
    let pid = nix::unistd::Pid::from_raw(vm.pid);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    wait_for("Paused", LONG, || {
        (drv.state(spec.uuid).unwrap() == PowerState::Paused).then_some(())
    });
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_for("Running", LONG, || {
        (drv.state(spec.uuid).unwrap() == PowerState::Running).then_some(())
    });
    assert!(drv.memory_used(spec.uuid).unwrap() > 0);
    assert_eq!(drv.running(), vec![vm.clone()]);
    stop_and_check(
        &mut drv,
        &vm,
        StopMode::Clean { timeout: LONG },
        StopRequest::Clean,
        LONG,
    );
    assert_eq!(drv.state(spec.uuid).unwrap(), PowerState::Halted);
    assert!(drv.running().is_empty());
}

#[test]
fn a_clean_stop_that_is_ignored_ends_in_sigkill_and_a_hard_stop_kills_at_once() {
    let tmp = Scratch::new();
    let mut drv = ProcessDriver::new(ctx(&tmp.run("run"), "h"));
    // The command ignores SIGTERM (and so does its sleep).
    let stubborn = spec(
        "process",
        &[("command", "trap '' TERM; while :; do sleep 1; done")],
        vec![],
    );
    let vm = drv.start(&stubborn).unwrap();
    let clean = StopMode::Clean {
        timeout: Duration::from_millis(300),
    };
    stop_and_check(&mut drv, &vm, clean, StopRequest::CleanForced, LONG);

    let s = spec("process", &[("command", "sleep 100")], vec![]);
    let vm = drv.start(&s).unwrap();
    stop_and_check(&mut drv, &vm, StopMode::Hard, StopRequest::Hard, LONG);
}

#[test]
fn a_vm_that_exits_or_is_killed_by_someone_else_is_reported_as_stopped_by_itself() {
    let tmp = Scratch::new();
    let mut drv = ProcessDriver::new(ctx(&tmp.run("run"), "h"));
    let exits = spec("process", &[("command", "sleep 0.2; exit 3")], vec![]);
    drv.start(&exits).unwrap();
    let c = cause(wait_stopped(&mut drv, exits.uuid, LONG));
    assert_eq!(
        c,
        StopCause::ByItself {
            exit: Some(ExitStatus::Code(3)),
            guest_shutdown: None
        }
    );

    let killed = spec("process", &[("command", "sleep 100")], vec![]);
    let vm = drv.start(&killed).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(vm.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let c = cause(wait_stopped(&mut drv, killed.uuid, LONG));
    // sh -c with one command execs it, so the signal is the VM's own status.
    assert_eq!(
        c,
        StopCause::ByItself {
            exit: Some(ExitStatus::Signal(9)),
            guest_shutdown: None
        }
    );
}

#[test]
fn a_new_driver_owner_adopts_running_vms_refuses_a_second_start_and_reports_vms_that_ended_meanwhile()
 {
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let d0 = disk(tmp.path(), "disk0", 1);
    let runs = spec(
        "process",
        &[("command", &format!("exec {STAMP}"))],
        vec![d0.clone()],
    );
    let ends = spec("process", &[("command", "sleep 0.3; exit 5")], vec![]);
    // Another process owns the driver for the starts and exits: the agent
    // restarted. Its VMs must not be its children that die with it.
    for s in [&runs, &ends] {
        start_elsewhere("process", &run, "host-a", tmp.path(), s);
    }
    wait_stamps(&d0, 0, runs.uuid, 2, LONG);
    std::thread::sleep(Duration::from_millis(600)); // `ends` has exited by now

    let mut drv = ProcessDriver::new(ctx(&run, "host-a"));
    let adopted = drv.adopt().unwrap();
    assert_eq!(
        adopted.iter().map(|v| v.uuid).collect::<Vec<_>>(),
        vec![runs.uuid]
    );
    let events = drv.poll_events();
    assert_eq!(
        events,
        vec![VmEvent::Stopped {
            uuid: ends.uuid,
            cause: StopCause::ByItself {
                exit: Some(ExitStatus::Code(5)),
                guest_shutdown: None
            }
        }]
    );
    assert!(matches!(drv.start(&runs), Err(DriverError::AlreadyRunning(u)) if u == runs.uuid));
    // Adopting twice changes nothing.
    assert_eq!(drv.adopt().unwrap(), adopted);
    // The adopted VM keeps stamping with the same boot; a stop reaches it.
    let before = records(&d0, 0).len();
    wait_for("more stamps", LONG, || {
        (records(&d0, 0).len() > before).then_some(())
    });
    stop_and_check(
        &mut drv,
        &adopted[0],
        StopMode::Clean { timeout: LONG },
        StopRequest::Clean,
        LONG,
    );
    let log = wait_stamps(&d0, 0, runs.uuid, 1, LONG);
    assert_eq!(log.windows().len(), 1, "one boot only");
}

#[test]
fn a_reused_pid_is_never_taken_for_the_vm() {
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let s = spec("process", &[("command", "sleep 100")], vec![]);
    // A run directory as a crashed agent left it, naming a pid that now
    // belongs to another process (this test): same pid, other start time.
    let dir = VmDir::new(&run.join("process"), s.uuid);
    dir.create().unwrap();
    dir.write_record(&VmRecord {
        spec: s.clone(),
        driver: "process".into(),
        host: "h".into(),
        started_ms: 0,
    })
    .unwrap();
    let me = ProcId::of(std::process::id() as i32).unwrap();
    dir.write_proc(
        "vm.pid",
        ProcId {
            pid: me.pid,
            start_ticks: me.start_ticks + 1,
        },
    )
    .unwrap();
    let mut drv = ProcessDriver::new(ctx(&run, "h"));
    assert!(drv.adopt().unwrap().is_empty());
    assert_eq!(
        drv.poll_events(),
        vec![VmEvent::Stopped {
            uuid: s.uuid,
            cause: StopCause::ByItself {
                exit: None,
                guest_shutdown: None
            }
        }]
    );
    assert!(!dir.path().exists());
    // And the VM can be started again.
    drv.start(&s).unwrap();
    drv.stop(s.uuid, StopMode::Hard).unwrap();
}

#[test]
fn bad_specs_are_refused_naming_the_field_and_start_nothing() {
    let tmp = Scratch::new();
    let run = tmp.run("run");
    let mut drv = ProcessDriver::new(ctx(&run, "h"));
    let err = drv.start(&spec("process", &[], vec![])).unwrap_err();
    assert!(
        matches!(&err, DriverError::BadConfig { key, .. } if key == "command"),
        "{err}"
    );
    let err = drv
        .start(&spec(
            "process",
            &[("command", "true"), ("kernal", "x")],
            vec![],
        ))
        .unwrap_err();
    assert!(
        matches!(&err, DriverError::BadConfig { key, .. } if key == "kernal"),
        "{err}"
    );
    let err = drv
        .start(&spec("qemu", &[("command", "true")], vec![]))
        .unwrap_err();
    assert!(matches!(err, DriverError::WrongDriver { .. }), "{err}");
    let err = drv
        .start(&spec(
            "process",
            &[("command", "true")],
            vec![tmp.path().join("nope")],
        ))
        .unwrap_err();
    assert!(
        matches!(err, DriverError::BadSpec { field: "disks", .. }),
        "{err}"
    );
    let err = drv
        .start(&spec(
            "process",
            &[("command", "true"), ("stamp-slot", "-1")],
            vec![],
        ))
        .unwrap_err();
    assert!(err.to_string().contains("stamp-slot"), "{err}");
    let mut spaced = ProcessDriver::new(ctx(&run, "a host"));
    let err = spaced
        .start(&spec("process", &[("command", "true")], vec![]))
        .unwrap_err();
    assert!(err.to_string().contains("host name"), "{err}");
    assert!(drv.running().is_empty());
    assert!(
        std::fs::read_dir(run.join("process"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
}

#[test]
fn a_stop_requested_without_waiting_ends_in_an_event_and_is_forced_by_polling() {
    let tmp = Scratch::new();
    let mut drv = ProcessDriver::new(ctx(&tmp.run("run"), "h"));
    let polite = spec("process", &[("command", "sleep 100")], vec![]);
    let stubborn = spec(
        "process",
        &[("command", "trap '' TERM; while :; do sleep 1; done")],
        vec![],
    );
    drv.start(&polite).unwrap();
    drv.start(&stubborn).unwrap();
    let clean = StopMode::Clean {
        timeout: Duration::from_millis(500),
    };
    drv.request_stop(polite.uuid, clean).unwrap();
    drv.request_stop(stubborn.uuid, clean).unwrap();
    // Both calls returned at once; polling delivers the ends.
    let mut causes = std::collections::BTreeMap::new();
    wait_for("both Stopped events", LONG, || {
        for VmEvent::Stopped { uuid, cause } in drv.poll_events() {
            causes.insert(uuid, cause);
        }
        (causes.len() == 2).then_some(())
    });
    assert_eq!(
        causes[&polite.uuid],
        StopCause::Requested(StopRequest::Clean)
    );
    assert_eq!(
        causes[&stubborn.uuid],
        StopCause::Requested(StopRequest::CleanForced)
    );
    assert!(drv.running().is_empty());
}
