//! Live `VM.pool_migrate` of a QEMU VM between two real agents on this
//! machine (issue 12): the test guest, its disk a VDI on a shared `file`
//! SR, moves master -> member -> master -> member over loopback. After
//! each move exactly one QEMU runs it, on the host the record names, and
//! the guest was never rebooted: one boot id in its stamps, the sequence
//! going on, and the double-run checker passes. A migration to a target
//! whose agent is gone fails and leaves the VM running on the source.
//! Before that, `host.evacuate` of the member moves the VM live to the
//! master (its time printed as a `FIGURE` line, docs/operations.md).
//! Prints each migration's time (the call, end to end) and the longest gap
//! between two stamps. Skips, saying why, without QEMU or the test guest
//! (.ci/run installs both).

mod api_support;
mod pool_support;

use std::path::{Path, PathBuf};
use std::time::Instant;

use api_support::{call2, fail2};
use pool_support::{
    Host, StopVmsOnDrop, host_ref, join, process_alive, session, start_hosts_with_drivers, wait_for,
};
use serde_json::json;
use uuid::Uuid;
use xapi_vm::stamp::region::REGION_BYTES;
use xapi_vm::stamp::{CheckOptions, StampLog};

/// The test guest's kernel and initrd, or None with the reason printed.
fn guest() -> Option<(PathBuf, PathBuf)> {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v qemu-system-x86_64"])
        .output();
    if !which.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIP: qemu-system-x86_64 is not installed (.ci/run installs it)");
        return None;
    }
    let dir =
        std::env::var("XHA_TEST_GUEST_DIR").unwrap_or_else(|_| "/var/cache/xha-test-guest".into());
    let Some(build) = std::fs::canonicalize(PathBuf::from(&dir).join("current"))
        .ok()
        .filter(|b| b.join("ready").exists())
    else {
        eprintln!("SKIP: no test guest in {dir}/current (run tests/guest/build.sh)");
        return None;
    };
    Some((build.join("vmlinux"), build.join("initrd.gz")))
}

/// The pid of the QEMU `h`'s agent runs for the VM, if it is alive.
fn qemu_pid(h: &Host, uuid: Uuid) -> Option<i32> {
    let p = h
        .agent
        .dir
        .path()
        .join(format!("data/vm-run/qemu/{uuid}/vm.pid"));
    std::fs::read_to_string(p)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|p| process_alive(*p))
}

fn stamps(disk: &Path) -> StampLog {
    let mut log = StampLog::new();
    let _ = log.read_disk(disk, 0);
    log
}

/// Waits until the VM's stamps go past `seq` (it runs and writes).
fn wait_seq_past(disk: &Path, seq: u64) -> u64 {
    wait_for(&format!("stamps past {seq}"), || {
        stamps(disk)
            .records()
            .map(|r| r.seq)
            .max()
            .filter(|m| *m > seq)
    })
}

fn max_seq(disk: &Path) -> u64 {
    stamps(disk).records().map(|r| r.seq).max().unwrap_or(0)
}

#[test]
fn a_qemu_vm_migrates_live_between_agents_without_a_reboot() {
    let Some((kernel, initrd)) = guest() else {
        return;
    };
    let pool = start_hosts_with_drivers(2, &["process", "qemu"]);
    let _vms = StopVmsOnDrop::of(&pool);
    let [master, member] = &pool.hosts[..] else {
        unreachable!()
    };
    join(member, master);
    let s = session(master);
    let me = host_ref(master, master);
    let m = host_ref(master, member);
    let a = master.agent.http;

    // A shared file SR and the VM's disk on it.
    let sr_dir = master.agent.dir.path().join("shared-sr");
    std::fs::create_dir(&sr_dir).expect("sr dir");
    let sr = call2(
        a,
        "SR.create",
        json!([s, me, {"path": sr_dir.display().to_string()}, 0, "shared", "", "file", "", true, {}]),
    );
    let vdi = call2(
        a,
        "VDI.create",
        json!([s, {"SR": sr, "virtual_size": REGION_BYTES, "name_label": "disk0"}]),
    );
    let location = call2(a, "VDI.get_location", json!([s, vdi]));
    let disk = sr_dir.join(location.as_str().expect("location"));
    let vm = call2(
        a,
        "VM.create",
        json!([s, {
            "name_label": "live",
            "memory_static_max": 128 << 20,
            "driver": "qemu",
            "driver_config": {
                "kernel": kernel.display().to_string(),
                "initrd": initrd.display().to_string(),
            },
        }]),
    );
    let vm = vm.as_str().expect("ref").to_owned();
    let uuid: Uuid = call2(a, "VM.get_uuid", json!([s, vm]))
        .as_str()
        .and_then(|u| u.parse().ok())
        .expect("uuid");
    call2(
        a,
        "VBD.create",
        json!([s, {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": true, "mode": "RW", "type": "Disk"}]),
    );
    call2(a, "VM.start_on", json!([s, vm, me, false, false]));
    let mut seq = wait_seq_past(&disk, 1);
    let boot = stamps(&disk).records().next().expect("a stamp").boot;
    let where_is = || {
        let r = call2(a, "VM.get_record", json!([s, vm]));
        (r["power_state"].clone(), r["resident_on"].clone())
    };

    // Three moves, each checked: runs only on the target, same boot going on.
    let mut times = Vec::new();
    for (from, to, to_ref) in [
        (master, member, &m),
        (member, master, &me),
        (master, member, &m),
    ] {
        let before = qemu_pid(from, uuid).expect("QEMU on the source");
        let t = Instant::now();
        call2(
            a,
            "VM.pool_migrate",
            json!([s, vm, to_ref, {"live": "true"}]),
        );
        times.push(t.elapsed());
        assert_eq!(where_is(), (json!("Running"), json!(to_ref.as_str())));
        assert!(qemu_pid(to, uuid).is_some(), "QEMU runs on the target");
        wait_for("the source's QEMU gone", || {
            (!process_alive(before)).then_some(())
        });
        assert!(qemu_pid(from, uuid).is_none(), "no QEMU on the source");
        seq = wait_seq_past(&disk, seq + 2);
    }
    let log = stamps(&disk);
    assert_eq!(log.windows().len(), 1, "one boot across three migrations");
    assert!(log.records().all(|r| r.boot == boot && r.vm == uuid));
    assert_eq!(log.check(&CheckOptions::default()), vec![]);
    let mut t: Vec<u64> = log.records().map(|r| r.time_ms).collect();
    t.sort_unstable();
    let gap = t.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    times.sort();
    eprintln!(
        "FIGURE: live migration through the agents: {:?} (median {:?}); longest gap between stamps {gap} ms",
        times, times[1]
    );

    // maint: the member is evacuated (host.disable, host.evacuate): the
    // VM moves live to the master; then the member is enabled again.
    let on_member = qemu_pid(member, uuid).expect("QEMU on the member");
    call2(a, "host.disable", json!([s, m]));
    let t = Instant::now();
    call2(a, "host.evacuate", json!([s, m]));
    let evacuation = t.elapsed();
    call2(a, "host.enable", json!([s, m]));
    eprintln!(
        "FIGURE host.evacuate of 1 QEMU VM (live migration): {} ms",
        evacuation.as_millis()
    );
    assert_eq!(where_is(), (json!("Running"), json!(me.as_str())));
    let on_master = qemu_pid(master, uuid).expect("QEMU on the master");
    wait_for("the member's QEMU gone", || {
        (!process_alive(on_member)).then_some(())
    });
    assert_eq!(
        stamps(&disk).windows().len(),
        1,
        "evacuated without a reboot"
    );

    // The target's agent is gone: the migration fails before the source
    // pauses, and the VM keeps running on the source (the master).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(member.agent.pid()).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the member's agent");
    let e = fail2(a, "VM.pool_migrate", json!([s, vm, m, {}]));
    assert_eq!(e[0], "VM_MIGRATE_FAILED", "{e:?}");
    assert!(e[4].contains("CANNOT_CONTACT_HOST"), "{e:?}");
    assert_eq!(where_is(), (json!("Running"), json!(me.as_str())));
    assert_eq!(
        qemu_pid(master, uuid),
        Some(on_master),
        "the same QEMU runs"
    );
    seq = max_seq(&disk);
    wait_seq_past(&disk, seq + 2);
    let log = stamps(&disk);
    assert_eq!(log.windows().len(), 1, "still the one boot");
    assert_eq!(log.check(&CheckOptions::default()), vec![]);
    call2(a, "VM.hard_shutdown", json!([s, vm]));
    assert_eq!(where_is().0, json!("Halted"));
    wait_for("the master's QEMU gone", || {
        (!process_alive(on_master)).then_some(())
    });
}
