use uuid::Uuid;

use super::*;
use crate::api::bootstrap::new_pool;
use crate::api::call;
use crate::value::DateTime;

fn caller(n: u128, host: Ref) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: host,
    }
}

fn info(n: u8) -> HostInfo {
    HostInfo {
        uuid: format!("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d{n:02x}"),
        name_label: format!("h{n}"),
        address: format!("10.0.0.{n}"),
        hostname: format!("h{n}"),
        memory_total: 8 << 30,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    }
}

fn pool_of_one() -> (Database, Ref) {
    let mut db = Database::new();
    let (host, changes) = new_pool(&db, &caller(0, Ref::NULL), &info(1));
    let _ = db.apply(&changes).unwrap();
    (db, host)
}

fn admit_host(db: &mut Database, master: Ref, n: u8) -> Ref {
    let rec = admit_record(&info(n), "AB:CD");
    let out = call(
        db,
        &caller(u128::from(n) + 10, master),
        "pool.admit",
        &[rec],
    )
    .unwrap();
    let _ = db.apply(&out.changes).unwrap();
    out.result.as_ref().unwrap()
}

fn set(db: &mut Database, class: Class, r: Ref, field: &str, v: Value) {
    let _ = db.apply(&[Change::set(class, r, field, v)]).unwrap();
}

fn no_params(code: &str) -> ApiError {
    ApiError::new(code, Vec::<String>::new())
}

#[test]
fn join_checks_the_joiner_then_is_an_effect() {
    let (mut db, host) = pool_of_one();
    let args = [
        Value::String("10.0.0.9".into()),
        Value::String("root".into()),
        Value::String("pw".into()),
    ];
    let out = call(&db, &caller(1, host), "pool.join", &args).unwrap();
    assert!(out.changes.is_empty());
    assert_eq!(
        out.effects,
        [Effect::JoinPool {
            master_address: "10.0.0.9".into(),
            username: "root".into(),
            password: "pw".into()
        }]
    );
    let bad = [Value::String(" ".into()), args[1].clone(), args[2].clone()];
    assert_eq!(
        call(&db, &caller(1, host), "pool.join", &bad)
            .unwrap_err()
            .code,
        "INVALID_VALUE"
    );

    // A running VM.
    let vm = call(
        &db,
        &caller(2, host),
        "VM.create",
        &[Value::Record(vec![(
            "name_label".into(),
            Value::String("v".into()),
        )])],
    )
    .unwrap();
    let _ = db.apply(&vm.changes).unwrap();
    let vm = vm.result.as_ref().unwrap();
    let mut running = db.clone();
    set(
        &mut running,
        Class::Vm,
        vm,
        "power_state",
        Value::Enum("Running".into()),
    );
    set(&mut running, Class::Vm, vm, "resident_on", Value::Ref(host));
    assert_eq!(
        call(&running, &caller(1, host), "pool.join", &args).unwrap_err(),
        no_params("JOINING_HOST_CANNOT_HAVE_RUNNING_VMS")
    );
    // HA on.
    let mut ha = db.clone();
    let p = the_pool(&ha).unwrap();
    set(&mut ha, Class::Pool, p, "ha_enabled", Value::Bool(true));
    assert_eq!(
        call(&ha, &caller(1, host), "pool.join", &args).unwrap_err(),
        no_params("HA_IS_ENABLED")
    );
    // Other hosts.
    let mut big = db.clone();
    admit_host(&mut big, host, 2);
    assert_eq!(
        call(&big, &caller(1, host), "pool.join", &args).unwrap_err(),
        no_params("JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS")
    );
}

#[test]
fn admit_adds_the_host_with_metrics_and_fingerprint_once() {
    let (mut db, master) = pool_of_one();
    let h2 = admit_host(&mut db, master, 2);
    db.check_invariants().unwrap();
    assert_eq!(db.count(Class::Host), 2);
    assert_eq!(host_fingerprint(&db, h2).as_deref(), Some("AB:CD"));
    let metrics = db
        .field(Class::Host, h2, "metrics")
        .unwrap()
        .as_ref()
        .unwrap();
    assert_eq!(
        db.field(Class::HostMetrics, metrics, "memory_total"),
        Some(Value::Int(8 << 30))
    );
    // The same uuid again; the master's own uuid; another version.
    let again = call(
        &db,
        &caller(30, master),
        "pool.admit",
        &[admit_record(&info(2), "x")],
    );
    assert_eq!(again.unwrap_err().code, "UUID_ALREADY_EXISTS");
    let me = call(
        &db,
        &caller(31, master),
        "pool.admit",
        &[admit_record(&info(1), "x")],
    );
    assert_eq!(
        me.unwrap_err(),
        ApiError::operation_not_allowed("Host cannot become slave of itself")
    );
    let Value::Map(mut rec) = admit_record(&info(3), "x") else {
        unreachable!()
    };
    for (k, v) in &mut rec {
        if *k == Key::String("software_version".into()) {
            *v = Value::String("0.0.0-other".into());
        }
    }
    let e = call(&db, &caller(32, master), "pool.admit", &[Value::Map(rec)]).unwrap_err();
    assert_eq!(e.code, "HOSTS_NOT_HOMOGENEOUS");
    let e = call(&db, &caller(33, master), "pool.admit", &[Value::Int(1)]).unwrap_err();
    assert_eq!(e.code, "FIELD_TYPE_ERROR");
}

#[test]
fn eject_is_refused_for_the_master_with_ha_and_with_running_vms() {
    let (mut db, master) = pool_of_one();
    let h2 = admit_host(&mut db, master, 2);
    let eject =
        |db: &Database, h: Ref| call(db, &caller(40, master), "pool.eject", &[Value::Ref(h)]);
    assert_eq!(
        eject(&db, master).unwrap_err(),
        ApiError::operation_not_allowed("Cannot eject the pool master")
    );
    let vm = call(
        &db,
        &caller(41, master),
        "VM.create",
        &[Value::Record(vec![("affinity".into(), Value::Ref(h2))])],
    )
    .unwrap();
    let _ = db.apply(&vm.changes).unwrap();
    let vm = vm.result.as_ref().unwrap();
    let mut running = db.clone();
    set(
        &mut running,
        Class::Vm,
        vm,
        "power_state",
        Value::Enum("Running".into()),
    );
    set(&mut running, Class::Vm, vm, "resident_on", Value::Ref(h2));
    assert_eq!(
        eject(&running, h2).unwrap_err(),
        ApiError::operation_not_allowed("VM resident on host")
    );
    let mut ha = db.clone();
    let p = the_pool(&ha).unwrap();
    set(&mut ha, Class::Pool, p, "ha_enabled", Value::Bool(true));
    assert_eq!(eject(&ha, h2).unwrap_err(), no_params("HA_IS_ENABLED"));

    // Halted with affinity to it: the affinity is cleared, host and metrics go.
    let out = eject(&db, h2).unwrap();
    assert_eq!(out.effects, [Effect::EjectHost { host: h2 }]);
    let _ = db.apply(&out.changes).unwrap();
    db.check_invariants().unwrap();
    assert_eq!(db.count(Class::Host), 1);
    assert_eq!(db.count(Class::HostMetrics), 1);
    assert_eq!(
        db.field(Class::Vm, vm, "affinity"),
        Some(Value::Ref(Ref::NULL))
    );
}

#[test]
fn designate_moves_pool_master_and_hands_over() {
    let (mut db, master) = pool_of_one();
    let h2 = admit_host(&mut db, master, 2);
    let d = |db: &Database, h: Ref| {
        call(
            db,
            &caller(50, master),
            "pool.designate_new_master",
            &[Value::Ref(h)],
        )
    };
    let same = d(&db, master).unwrap();
    assert!(same.changes.is_empty() && same.effects.is_empty());
    let out = d(&db, h2).unwrap();
    assert_eq!(out.effects, [Effect::HandOverMaster { host: h2 }]);
    let _ = db.apply(&out.changes).unwrap();
    assert_eq!(super::master(&db), Some(h2));
    let p = the_pool(&db).unwrap();
    set(&mut db, Class::Pool, p, "ha_enabled", Value::Bool(true));
    assert_eq!(d(&db, master).unwrap_err(), no_params("HA_IS_ENABLED"));
}

#[test]
fn vm_calls_for_another_host_are_forwarded() {
    let (mut db, master) = pool_of_one();
    let h2 = admit_host(&mut db, master, 2);
    let vm = call(
        &db,
        &caller(60, master),
        "VM.create",
        &[Value::Record(vec![
            ("memory_static_max".into(), Value::Int(1 << 30)),
            ("driver".into(), Value::String("process".into())),
        ])],
    )
    .unwrap();
    let _ = db.apply(&vm.changes).unwrap();
    let vm = vm.result.as_ref().unwrap();
    let args = [
        Value::Ref(vm),
        Value::Ref(h2),
        Value::Bool(false),
        Value::Bool(false),
    ];
    let out = call(&db, &caller(61, master), "VM.start_on", &args).unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::OnHost { host, effect }] if *host == h2 && matches!(**effect, Effect::StartVm { .. }))
    );
    let _ = db.apply(&out.changes).unwrap();
    assert_eq!(db.field(Class::Vm, vm, "resident_on"), Some(Value::Ref(h2)));
    let out = call(
        &db,
        &caller(62, master),
        "VM.hard_shutdown",
        &[Value::Ref(vm)],
    )
    .unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::OnHost { host, effect }] if *host == h2 && matches!(**effect, Effect::StopVm { hard: true, .. }))
    );
    let _ = db.apply(&out.changes).unwrap();

    // VM.start places here first; when this host is full, on the other.
    let start = [Value::Ref(vm), Value::Bool(false), Value::Bool(false)];
    let out = call(&db, &caller(63, master), "VM.start", &start).unwrap();
    assert!(matches!(&out.effects[..], [Effect::StartVm { .. }]));
    let m = db
        .field(Class::Host, master, "metrics")
        .unwrap()
        .as_ref()
        .unwrap();
    set(
        &mut db,
        Class::HostMetrics,
        m,
        "memory_total",
        Value::Int(1),
    );
    let out = call(&db, &caller(64, master), "VM.start", &start).unwrap();
    assert!(matches!(&out.effects[..], [Effect::OnHost { host, .. }] if *host == h2));
}
