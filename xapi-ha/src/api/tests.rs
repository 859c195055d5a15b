//! Unit tests of the handlers through `call`, committing their changes to a
//! database the way the server does.

use uuid::Uuid;

use super::bootstrap::{HostInfo, new_pool};
use super::*;
use crate::db::Class;
use crate::value::{Key, Ref};

struct Pool {
    db: Database,
    host: Ref,
    n: u128,
}

fn caller(n: u128) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: Ref::NULL,
    }
}

impl Pool {
    fn new() -> Pool {
        let mut db = Database::new();
        let info = HostInfo {
            uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e".into(),
            name_label: "h1".into(),
            address: "10.0.0.1".into(),
            hostname: "h1".into(),
            memory_total: 8 << 30,
            memory_overhead: 1 << 30,
            vm_drivers: vec!["process".into()],
        };
        let (host, changes) = new_pool(&db, &caller(0), &info);
        let _ = db.apply(&changes).unwrap();
        db.check_invariants().unwrap();
        Pool { db, host, n: 1 }
    }

    /// Calls and commits; on error checks that nothing would change.
    fn call(&mut self, method: &str, args: &[Value]) -> Result<Value, ApiError> {
        self.n += 1;
        let out = call(&self.db, &caller(self.n), method, args)?;
        let _ = self.db.apply(&out.changes).expect("handler changes apply");
        self.db.check_invariants().unwrap();
        Ok(out.result)
    }

    fn err(&mut self, method: &str, args: &[Value]) -> ApiError {
        let before = self.db.clone();
        let e = self.call(method, args).unwrap_err();
        assert_eq!(self.db, before);
        e
    }

    fn vm(&mut self, record: Vec<(&str, Value)>) -> Ref {
        let rec = Value::Map(
            record
                .into_iter()
                .map(|(k, v)| (Key::String(k.into()), v))
                .collect(),
        );
        self.call("VM.create", &[rec]).unwrap().as_ref().unwrap()
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn dispatcher_errors() {
    let mut p = Pool::new();
    let e = p.err("VM.fly", &[]);
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        ("MESSAGE_METHOD_UNKNOWN", vec!["VM.fly".into()])
    );
    let e = p.err("VM.get_record", &[]);
    assert_eq!(e.params, ["VM.get_record", "1", "0"]);
    let e = p.err("VM.get_record", &[s("OpaqueRef:nope")]);
    assert_eq!(e.params, ["VM", "OpaqueRef:nope"]);
    let missing = Ref::from_uuid(Uuid::from_u128(77)).to_string();
    let e = p.err("VM.get_record", &[s(&missing)]);
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        ("HANDLE_INVALID", vec!["VM".into(), missing])
    );
    let e = p.err("VM.get_by_uuid", &[s("nope")]);
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        ("UUID_INVALID", vec!["VM".into(), "nope".into()])
    );
    let host_uuid = p.db.get(Class::Host, p.host).unwrap().uuid().to_owned();
    let e = p.err("VM.get_by_uuid", &[s(&host_uuid)]);
    assert_eq!(e.code, "UUID_INVALID", "a host's uuid is no VM's");
    let vm = p.vm(vec![]);
    let e = p.err("VM.set_order", &[Value::Ref(vm), s("first")]);
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        ("FIELD_TYPE_ERROR", vec!["order".into()])
    );
    let e = p.err("VM.set_ha_restart_priority", &[Value::Ref(vm), s("always")]);
    assert_eq!(e.params, ["ha_restart_priority", "always"]);
    let e = p.err("VM.set_start_delay", &[Value::Ref(vm), Value::Int(-1)]);
    assert_eq!(e.params, ["start_delay", "-1"]);
    let pool = p.db.objects(Class::Pool).next().unwrap().0;
    let e = p.err(
        "pool.set_ha_host_failures_to_tolerate",
        &[Value::Ref(pool), Value::Int(-2)],
    );
    assert_eq!(e.params, ["ha_host_failures_to_tolerate", "-2"]);
    assert_eq!(
        p.err("VM.set_power_state", &[Value::Ref(vm), s("Running")])
            .code,
        "MESSAGE_METHOD_UNKNOWN"
    );
}

#[test]
fn vm_create_defaults_and_limits() {
    let mut p = Pool::new();
    let vm = p.vm(vec![
        ("name_label", s("web")),
        ("memory_static_max", s("1073741824")),
        ("VCPUs_max", Value::Int(4)),
        ("ha_restart_priority", s("restart")),
        ("resident_on", Value::Ref(p.host)),
        ("PV_bootloader", s("pygrub")),
    ]);
    let rec = p.call("VM.get_record", &[Value::Ref(vm)]).unwrap();
    assert_eq!(rec.field("name_label"), Some(&s("web")));
    assert_eq!(
        rec.field("power_state"),
        Some(&Value::Enum("Halted".into()))
    );
    assert_eq!(
        rec.field("resident_on"),
        Some(&Value::Ref(Ref::NULL)),
        "runtime field ignored"
    );
    for f in [
        "memory_static_max",
        "memory_dynamic_max",
        "memory_dynamic_min",
        "memory_static_min",
    ] {
        assert_eq!(rec.field(f), Some(&Value::Int(1 << 30)), "{f}");
    }
    assert_eq!(rec.field("VCPUs_at_startup"), Some(&Value::Int(4)));
    assert_eq!(rec.field("domid"), Some(&Value::Int(-1)));
    assert_eq!(rec.field("driver"), Some(&s("")));
    assert_ne!(
        rec.field("uuid").and_then(Value::as_str),
        vm.uuid().map(|u| u.to_string()).as_deref()
    );
    let e = p.err(
        "VM.create",
        &[Value::string_map([
            ("memory_static_max", "100"),
            ("memory_dynamic_min", "200"),
        ])],
    );
    assert_eq!(e.code, "MEMORY_CONSTRAINT_VIOLATION");
    let e = p.err(
        "VM.create",
        &[Value::string_map([("power_state", "Running")])],
    );
    assert_eq!(e.params, ["power_state", "Running"]);
    let e = p.err("VM.create", &[s("x")]);
    assert_eq!(e.params, ["args"]);
    let e = p.err(
        "VM.create",
        &[Value::Map(vec![(
            Key::String("affinity".into()),
            s(&Ref::from_uuid(Uuid::from_u128(5)).to_string()),
        )])],
    );
    assert_eq!(e.code, "HANDLE_INVALID");
}

#[test]
fn vm_destroy_needs_a_halted_vm() {
    let mut p = Pool::new();
    let vm = p.vm(vec![]);
    let _ =
        p.db.apply(&[Change::Modify {
            class: Class::Vm,
            r#ref: vm,
            fields: vec![
                ("power_state".into(), Value::Enum("Running".into())),
                ("resident_on".into(), Value::Ref(p.host)),
            ],
        }])
        .unwrap();
    let e = p.err("VM.destroy", &[Value::Ref(vm)]);
    assert_eq!(
        e.params,
        [vm.to_string(), "halted".into(), "running".into()]
    );
    let resident = p
        .call("host.get_resident_VMs", &[Value::Ref(p.host)])
        .unwrap();
    assert_eq!(resident, Value::Set(vec![Value::Ref(vm)]));
    let other = p.vm(vec![]);
    p.call("VM.destroy", &[Value::Ref(other)]).unwrap();
    assert_eq!(
        p.err("VM.get_record", &[Value::Ref(other)]).code,
        "HANDLE_INVALID"
    );
}

#[test]
fn maps_sets_and_lookups() {
    let mut p = Pool::new();
    let vm = p.vm(vec![("name_label", s("a"))]);
    let me = Value::Ref(vm);
    p.call("VM.add_to_other_config", &[me.clone(), s("k"), s("v")])
        .unwrap();
    let e = p.err("VM.add_to_other_config", &[me.clone(), s("k"), s("w")]);
    assert_eq!(e.params, ["VM", "other_config", &vm.to_string(), "k"]);
    p.call("VM.add_to_other_config", &[me.clone(), s("a"), s("1")])
        .unwrap();
    assert_eq!(
        p.call("VM.get_other_config", std::slice::from_ref(&me))
            .unwrap(),
        Value::string_map([("a", "1"), ("k", "v")])
    );
    let g = p.db.generation();
    p.call("VM.remove_from_other_config", &[me.clone(), s("zz")])
        .unwrap();
    assert_eq!(
        p.db.generation(),
        g,
        "removing an absent key changes nothing"
    );
    p.call("VM.remove_from_other_config", &[me.clone(), s("k")])
        .unwrap();
    p.call("VM.add_tags", &[me.clone(), s("t")]).unwrap();
    p.call("VM.add_tags", &[me.clone(), s("t")]).unwrap();
    assert_eq!(
        p.call("VM.get_tags", std::slice::from_ref(&me)).unwrap(),
        Value::string_set(["t"])
    );
    p.call("VM.remove_tags", &[me.clone(), s("t")]).unwrap();
    p.call("VM.set_name_label", &[me.clone(), s("b")]).unwrap();
    assert_eq!(
        p.call("VM.get_by_name_label", &[s("b")]).unwrap(),
        Value::Set(vec![me.clone()])
    );
    assert_eq!(
        p.call("VM.get_by_name_label", &[s("a")]).unwrap(),
        Value::Set(vec![])
    );
    let uuid = p.db.get(Class::Vm, vm).unwrap().uuid().to_owned();
    assert_eq!(p.call("VM.get_by_uuid", &[s(&uuid)]).unwrap(), me);
    let all = p.call("VM.get_all_records", &[]).unwrap();
    let Value::Map(pairs) = all else { panic!() };
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].0, Key::Ref(vm));
}

#[test]
fn restart_priority_of_a_running_vm_sets_ha_always_run() {
    let mut p = Pool::new();
    let vm = p.vm(vec![]);
    let _ =
        p.db.apply(&[Change::set(
            Class::Vm,
            vm,
            "power_state",
            Value::Enum("Running".into()),
        )])
        .unwrap();
    p.call(
        "VM.set_ha_restart_priority",
        &[Value::Ref(vm), s("restart")],
    )
    .unwrap();
    assert_eq!(
        p.db.field(Class::Vm, vm, "ha_always_run"),
        Some(Value::Bool(true))
    );
    p.call("VM.set_ha_restart_priority", &[Value::Ref(vm), s("")])
        .unwrap();
    assert_eq!(
        p.db.field(Class::Vm, vm, "ha_always_run"),
        Some(Value::Bool(false))
    );
    p.call("VM.set_ha_always_run", &[Value::Ref(vm), Value::Bool(true)])
        .unwrap();
    assert_eq!(
        p.db.field(Class::Vm, vm, "ha_restart_priority"),
        Some(s("restart"))
    );
}

#[test]
fn sr_create_and_forget() {
    let mut p = Pool::new();
    let host = Value::Ref(p.host);
    let args = |t: &str, cfg: Value| {
        vec![
            host.clone(),
            cfg,
            Value::Int(1 << 30),
            s("nfs"),
            s(""),
            s(t),
            s("user"),
            Value::Bool(true),
            Value::Map(vec![]),
        ]
    };
    let e = p.err(
        "SR.create",
        &args("lvm", Value::string_map([("path", "/x")])),
    );
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        ("SR_UNKNOWN_DRIVER", vec!["lvm".into()])
    );
    let e = p.err("SR.create", &args("file", Value::Map(vec![])));
    assert_eq!(e.params, ["device_config:path", ""]);
    let out = call(
        &p.db,
        &caller(9),
        "SR.create",
        &args("file", Value::string_map([("path", "/srv/sr")])),
    )
    .unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::CreateSr { sr_type, shared: true, .. }] if sr_type == "file")
    );
    let _ = p.db.apply(&out.changes).unwrap();
    let sr = out.result.as_ref().unwrap();
    let pool = p.db.objects(Class::Pool).next().unwrap().0;
    p.call("pool.set_default_SR", &[Value::Ref(pool), Value::Ref(sr)])
        .unwrap();
    p.call("SR.forget", &[Value::Ref(sr)]).unwrap();
    assert_eq!(p.db.count(Class::Sr), 0);
    assert_eq!(
        p.db.field(Class::Pool, pool, "default_SR"),
        Some(Value::Ref(Ref::NULL))
    );
}

#[test]
fn servertime_messages_list_methods() {
    let mut p = Pool::new();
    assert_eq!(
        p.call("host.get_servertime", &[Value::Ref(p.host)])
            .unwrap(),
        Value::DateTime(DateTime::from_unix(1_742_357_784))
    );
    let m = Ref::from_uuid(Uuid::from_u128(3));
    let _ =
        p.db.apply(&[Change::Create {
            class: Class::Message,
            r#ref: m,
            fields: vec![
                ("uuid".into(), s("0f0e0d0c-0b0a-4000-8000-000000000001")),
                ("name".into(), s("HA_HOST_FAILED")),
                ("cls".into(), Value::Enum("Host".into())),
                ("obj_uuid".into(), s("x")),
                (
                    "timestamp".into(),
                    Value::DateTime(DateTime::from_unix(100)),
                ),
            ],
        }])
        .unwrap();
    let mut since = |t: &str| p.call("message.get_since", &[s(t)]).unwrap();
    assert!(matches!(since("19700101T00:01:39Z"), Value::Map(m) if m.len() == 1));
    assert!(matches!(since("19700101T00:01:40Z"), Value::Map(m) if m.is_empty()));
    let got = p
        .call("message.get", &[s("Host"), s("x"), s("19700101T00:00:00Z")])
        .unwrap();
    assert!(matches!(got, Value::Map(m) if m.len() == 1));
    assert_eq!(
        p.err("message.get", &[s("Planet"), s("x"), s("")]).code,
        "INVALID_VALUE"
    );
    let Value::Set(names) = p.call("system.listMethods", &[]).unwrap() else {
        panic!()
    };
    for want in [
        "session.login_with_password",
        "VM.create",
        "VM.set_order",
        "pool.get_all_records",
        "event.from",
    ] {
        assert!(names.contains(&s(want)), "{want}");
    }
}

#[test]
fn event_from_asks_the_server_to_wait_when_nothing_is_pending() {
    let mut p = Pool::new();
    let classes = Value::string_set(["vm"]);
    let out = call(
        &p.db,
        &caller(1),
        "event.from",
        &[classes.clone(), s(""), Value::Float(30.0)],
    )
    .unwrap();
    assert!(out.wait.is_some(), "no VM yet");
    let token = out.result.field("token").unwrap().clone();
    let vm = p.vm(vec![]);
    let wait = out.wait.unwrap();
    let batch = poll_events(&p.db, &wait.query).unwrap();
    let Some(Value::Set(events)) = batch.field("events") else {
        panic!()
    };
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field("ref"), Some(&Value::Ref(vm)));
    assert_eq!(
        events[0].field("operation"),
        Some(&Value::Enum("add".into()))
    );
    let out = call(
        &p.db,
        &caller(2),
        "event.from",
        &[classes, token, Value::Int(0)],
    )
    .unwrap();
    assert!(out.wait.is_none());
    assert_eq!(
        p.call("event.get_current_id", &[]).unwrap(),
        Value::Int(p.db.generation() as i64)
    );
}
