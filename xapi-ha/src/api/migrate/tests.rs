use uuid::Uuid;

use super::*;
use crate::api::bootstrap::{HostInfo, new_pool};
use crate::api::pool::admit_record;
use crate::api::{Caller, call};
use crate::value::{DateTime, Ref};

fn caller(n: u128, host: Ref) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: host,
    }
}

fn info(n: u8, memory_total: i64) -> HostInfo {
    HostInfo {
        uuid: format!("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d{n:02x}"),
        name_label: format!("h{n}"),
        address: format!("10.0.0.{n}"),
        hostname: format!("h{n}"),
        memory_total,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    }
}

/// A master with 8 GiB, a member with `member_memory`, and a 2 GiB process
/// VM running on the master.
fn pool(member_memory: i64) -> (Database, Ref, Ref, Ref) {
    let mut db = Database::new();
    let (master, changes) = new_pool(&db, &caller(0, Ref::NULL), &info(1, 8 << 30));
    let _ = db.apply(&changes).unwrap();
    let rec = admit_record(&info(2, member_memory), "AB:CD");
    let out = call(&db, &caller(1, master), "pool.admit", &[rec]).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let member = out.result.as_ref().unwrap();
    let rec = Value::Record(vec![
        ("name_label".into(), Value::String("vm".into())),
        ("memory_static_max".into(), Value::Int(2 << 30)),
        ("driver".into(), Value::String("process".into())),
    ]);
    let out = call(&db, &caller(2, master), "VM.create", &[rec]).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let vm = out.result.as_ref().unwrap();
    let start = [Value::Ref(vm), Value::Bool(false), Value::Bool(false)];
    let out = call(&db, &caller(3, master), "VM.start", &start).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    (db, master, member, vm)
}

fn migrate(
    db: &Database,
    master: Ref,
    vm: Ref,
    host: Ref,
    opts: &[(&str, &str)],
) -> Result<Outcome, ApiError> {
    let opts = Value::Map(
        opts.iter()
            .map(|(k, v)| (Key::String((*k).into()), Value::String((*v).into())))
            .collect(),
    );
    call(
        db,
        &caller(9, master),
        "VM.pool_migrate",
        &[Value::Ref(vm), Value::Ref(host), opts],
    )
}

fn resident(db: &Database, vm: Ref) -> Option<Value> {
    db.field(Class::Vm, vm, "resident_on")
}

#[test]
fn a_process_vm_moves_by_one_effect_then_runs_on_the_target() {
    let (mut db, master, member, vm) = pool(8 << 30);
    let out = migrate(&db, master, vm, member, &[("live", "true")]).unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::MigrateVm { vm: v, source, target, hard: false, spec }]
            if *v == vm && *source == master && *target == member && spec.driver == "process"),
        "{:?}",
        out.effects
    );
    let _ = db.apply(&out.changes).unwrap();
    assert_eq!(resident(&db, vm), Some(Value::Ref(member)));
    assert_eq!(
        db.field(Class::Vm, vm, "power_state"),
        Some(Value::Enum("Running".into()))
    );
    // And back, hard.
    let out = migrate(&db, master, vm, master, &[("force", "true")]).unwrap();
    assert!(matches!(
        &out.effects[..],
        [Effect::MigrateVm { hard: true, source, target, .. }] if *source == member && *target == master
    ));
}

#[test]
fn refusals_name_the_problem() {
    let (db, master, member, vm) = pool(1 << 30);
    let e = migrate(&db, master, vm, master, &[]).unwrap_err();
    assert_eq!(e.code, "OPERATION_NOT_ALLOWED");
    assert!(e.params[0].contains("already runs on host h1"), "{e:?}");
    let e = migrate(&db, master, vm, member, &[]).unwrap_err();
    assert_eq!(e.code, "HOST_NOT_ENOUGH_FREE_MEMORY");
    assert_eq!(
        e.params,
        [(2i64 << 30).to_string(), (1i64 << 30).to_string()]
    );
    let e = migrate(&db, master, vm, member, &[("force", "maybe")]).unwrap_err();
    assert_eq!(e.code, "INVALID_VALUE");
    assert_eq!(e.params[0], "options:force");
    let e = migrate(&db, master, vm, Ref::NULL, &[]).unwrap_err();
    assert_eq!(e.code, "HANDLE_INVALID");

    let (mut db, master, member, vm) = pool(8 << 30);
    let out = call(
        &db,
        &caller(5, master),
        "VM.hard_shutdown",
        &[Value::Ref(vm)],
    )
    .unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let e = migrate(&db, master, vm, member, &[]).unwrap_err();
    assert_eq!(e.code, "VM_BAD_POWER_STATE");
    assert_eq!(e.params[1..], ["running", "halted"]);
}

#[test]
fn a_target_without_the_driver_is_refused() {
    let (mut db, master, member, vm) = pool(8 << 30);
    let _ = db
        .apply(&[Change::set(
            Class::Host,
            member,
            "vm_drivers",
            Value::Set(vec![Value::String("qemu".into())]),
        )])
        .unwrap();
    let e = migrate(&db, master, vm, member, &[]).unwrap_err();
    assert_eq!(e.code, "OPERATION_NOT_ALLOWED");
    assert!(
        e.params[0].contains("does not offer VM driver process"),
        "{e:?}"
    );
}

#[test]
fn a_qemu_vm_moves_live_only_with_its_disks_on_shared_srs() {
    let (mut db, master, member, vm) = pool(8 << 30);
    let qemu = Value::Set(vec![Value::String("qemu".into())]);
    let _ = db
        .apply(&[
            Change::set(Class::Host, master, "vm_drivers", qemu.clone()),
            Change::set(Class::Host, member, "vm_drivers", qemu),
            Change::set(Class::Vm, vm, "driver", Value::String("qemu".into())),
        ])
        .unwrap();
    // No disks: it moves (live, by the server).
    let out = migrate(&db, master, vm, member, &[]).unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::MigrateVm { spec, target, .. }] if spec.driver == "qemu" && *target == member),
        "{:?}",
        out.effects
    );
    // A disk on an unshared SR: refused, naming the SR, nothing changes.
    let sr_args = [
        Value::Ref(master),
        Value::Map(vec![(
            Key::String("path".into()),
            Value::String("/nonexistent/local-sr".into()),
        )]),
        Value::Int(0),
        Value::String("local".into()),
        Value::String(String::new()),
        Value::String("file".into()),
        Value::String(String::new()),
        Value::Bool(false),
        Value::Map(vec![]),
    ];
    let out = call(&db, &caller(10, master), "SR.create", &sr_args).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let sr = out.result.as_ref().unwrap();
    let vdi = Value::Record(vec![
        ("SR".into(), Value::Ref(sr)),
        ("virtual_size".into(), Value::Int(1 << 20)),
    ]);
    let out = call(&db, &caller(11, master), "VDI.create", &[vdi]).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let vdi = out.result.as_ref().unwrap();
    let vbd = Value::Record(vec![
        ("VM".into(), Value::Ref(vm)),
        ("VDI".into(), Value::Ref(vdi)),
        ("userdevice".into(), Value::String("0".into())),
    ]);
    // VBD.create wants a halted VM: plug the disk "offline".
    let state = |s: &str| Change::set(Class::Vm, vm, "power_state", Value::Enum(s.into()));
    let _ = db.apply(&[state("Halted")]).unwrap();
    let out = call(&db, &caller(12, master), "VBD.create", &[vbd]).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    let _ = db.apply(&[state("Running")]).unwrap();
    let e = migrate(&db, master, vm, member, &[]).unwrap_err();
    assert_eq!(e.code, "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED");
    assert_eq!(e.params, [sr.to_string()]);
}
