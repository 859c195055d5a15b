//! The live plan, the overcommit check and the HA planning calls on a real
//! database, through `api::call` and `Database::apply` as the server does.

use uuid::Uuid;

use crate::api::bootstrap::{HostInfo, add_host, new_pool};
use crate::api::{ApiError, Caller, call};
use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Key, Ref, Value};

use super::live_plan;
use super::view::pool_ref;

const GIB: i64 = 1 << 30;

struct Pool {
    db: Database,
    hosts: Vec<Ref>,
    n: u128,
}

fn caller(n: u128, host: Ref) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: host,
    }
}

fn info(i: usize) -> HostInfo {
    HostInfo {
        uuid: Uuid::from_u128(0x1000 + i as u128).hyphenated().to_string(),
        name_label: format!("h{i}"),
        address: format!("10.0.0.{i}"),
        hostname: format!("h{i}"),
        memory_total: 16 * GIB,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    }
}

impl Pool {
    /// A pool of `hosts` hosts of 16 GiB, HA on, target `ntol`.
    fn new(hosts: usize, ntol: i64) -> Pool {
        let mut db = Database::new();
        let (h0, changes) = new_pool(&db, &caller(0, Ref::NULL), &info(0));
        let _ = db.apply(&changes).unwrap();
        let mut refs = vec![h0];
        for i in 1..hosts {
            let (h, changes) = add_host(&db, &caller(i as u128, Ref::NULL), &info(i));
            let _ = db.apply(&changes).unwrap();
            refs.push(h);
        }
        let pool = pool_ref(&db).unwrap();
        let _ = db
            .apply(&[Change::Modify {
                class: Class::Pool,
                r#ref: pool,
                fields: vec![
                    ("ha_enabled".into(), Value::Bool(true)),
                    ("ha_host_failures_to_tolerate".into(), Value::Int(ntol)),
                    ("ha_plan_exists_for".into(), Value::Int(ntol)),
                ],
            }])
            .unwrap();
        Pool {
            db,
            hosts: refs,
            n: 100,
        }
    }

    fn call_on(&mut self, host: Ref, method: &str, args: &[Value]) -> Result<Value, ApiError> {
        self.n += 1;
        let c = caller(self.n, host);
        let out = call(&self.db, &c, method, args)?;
        let _ = self.db.apply(&out.changes).expect("changes apply");
        // What the server does after every commit.
        if live_plan::affects_plan(&out.changes) {
            let follow = live_plan::follow_up(&self.db, &c);
            let _ = self.db.apply(&follow).expect("plan changes apply");
        }
        self.db.check_invariants().unwrap();
        Ok(out.result)
    }

    fn call(&mut self, method: &str, args: &[Value]) -> Result<Value, ApiError> {
        self.call_on(self.hosts[0], method, args)
    }

    /// A halted VM of `gib` GiB with the given priority.
    fn vm(&mut self, name: &str, gib: i64, priority: &str) -> Ref {
        let rec = Value::Map(
            [
                ("name_label", Value::String(name.into())),
                ("memory_static_max", Value::Int(gib * GIB)),
                ("memory_dynamic_max", Value::Int(gib * GIB)),
                ("memory_dynamic_min", Value::Int(gib * GIB)),
                ("memory_static_min", Value::Int(gib * GIB)),
                ("driver", Value::String("process".into())),
                ("ha_restart_priority", Value::String(priority.into())),
            ]
            .into_iter()
            .map(|(k, v)| (Key::String(k.into()), v))
            .collect(),
        );
        self.call("VM.create", &[rec]).unwrap().as_ref().unwrap()
    }

    /// Puts a VM running on a host, as a committed start would.
    fn run(&mut self, vm: Ref, host: Ref) {
        let protected = self.db.field(Class::Vm, vm, "ha_restart_priority")
            == Some(Value::String("restart".into()));
        let changes = [Change::Modify {
            class: Class::Vm,
            r#ref: vm,
            fields: vec![
                ("power_state".into(), Value::Enum("Running".into())),
                ("resident_on".into(), Value::Ref(host)),
                ("ha_always_run".into(), Value::Bool(protected)),
            ],
        }];
        let _ = self.db.apply(&changes).unwrap();
        let follow = live_plan::follow_up(&self.db, &caller(7, host));
        let _ = self.db.apply(&follow).unwrap();
    }

    fn pool_int(&self, name: &str) -> i64 {
        let p = pool_ref(&self.db).unwrap();
        self.db
            .field(Class::Pool, p, name)
            .unwrap()
            .as_int()
            .unwrap()
    }

    fn pool_bool(&self, name: &str) -> bool {
        let p = pool_ref(&self.db).unwrap();
        self.db
            .field(Class::Pool, p, name)
            .unwrap()
            .as_bool()
            .unwrap()
    }

    fn messages(&self, name: &str) -> Vec<String> {
        self.db
            .objects(Class::Message)
            .filter(|(r, _)| {
                self.db.field(Class::Message, *r, "name") == Some(Value::String(name.into()))
            })
            .map(|(r, _)| {
                self.db
                    .field(Class::Message, r, "body")
                    .and_then(|b| b.as_str().map(str::to_owned))
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

#[test]
fn the_live_plan_follows_every_start_and_flags_overcommit_on_the_edge() {
    // Three hosts of 16 GiB, target 1: protected VMs of 10 GiB, one per host.
    let mut p = Pool::new(3, 1);
    let vms: Vec<Ref> = (0..3)
        .map(|i| p.vm(&format!("v{i}"), 10, "restart"))
        .collect();
    p.run(vms[0], p.hosts[0]);
    p.run(vms[1], p.hosts[1]);
    assert_eq!(live_plan::compute(&p.db).max_host_failures, 1);
    assert!(!p.pool_bool("ha_overcommitted"));
    assert_eq!(p.pool_int("ha_plan_exists_for"), 1);
    // A third 10 GiB VM: no host has 20 GiB for two of them, so one
    // failure is no longer survivable.
    p.run(vms[2], p.hosts[2]);
    assert_eq!(live_plan::compute(&p.db).max_host_failures, 0);
    assert!(p.pool_bool("ha_overcommitted"));
    assert_eq!(p.pool_int("ha_plan_exists_for"), 0);
    assert_eq!(
        p.messages("HA_POOL_OVERCOMMITTED"),
        [
            "The failover tolerance for pool '' has dropped and the initially specified number \
          of host failures to tolerate can no longer be guaranteed"
        ]
    );
    assert_eq!(p.messages("HA_POOL_DROP_IN_PLAN_EXISTS_FOR"), ["0"]);
    // Recomputing changes nothing and raises nothing again.
    assert_eq!(
        p.call("pool.ha_compute_max_host_failures_to_tolerate", &[]),
        Ok(int(0))
    );
    assert_eq!(p.messages("HA_POOL_OVERCOMMITTED").len(), 1);
}

#[test]
fn starts_that_break_the_plan_are_refused_unless_overcommit_is_allowed() {
    let mut p = Pool::new(3, 1);
    let vms: Vec<Ref> = (0..3)
        .map(|i| p.vm(&format!("v{i}"), 10, "restart"))
        .collect();
    p.run(vms[0], p.hosts[0]);
    p.run(vms[1], p.hosts[1]);
    let before = p.db.clone();
    let h2 = p.hosts[2];
    let e = p
        .call_on(
            h2,
            "VM.start",
            &[Value::Ref(vms[2]), Value::Bool(false), Value::Bool(false)],
        )
        .unwrap_err();
    assert_eq!(e.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN");
    assert!(e.params.is_empty());
    assert_eq!(p.db, before, "a refused start changes nothing");
    // Raising the target beyond the plan is refused too.
    let pool = pool_ref(&p.db).unwrap();
    let e = p
        .call(
            "pool.set_ha_host_failures_to_tolerate",
            &[Value::Ref(pool), int(2)],
        )
        .unwrap_err();
    assert_eq!(e.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN");
    // A protected VM found halted is refused too when started through the
    // API; the restart engine's own start of it goes through (the live
    // plan then marks the pool overcommitted).
    let mut restoring = p.db.clone();
    let _ = restoring
        .apply(&[Change::set(
            Class::Vm,
            vms[2],
            "ha_always_run",
            Value::Bool(true),
        )])
        .unwrap();
    let start = [Value::Ref(vms[2]), Value::Bool(false), Value::Bool(false)];
    let e = call(&restoring, &caller(998, h2), "VM.start", &start).unwrap_err();
    assert_eq!(e.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN");
    let out = crate::api::vm_power::ha_restart(&restoring, &caller(997, h2), vms[2], h2).unwrap();
    assert_eq!(out.effects.len(), 1);
    // With ha_allow_overcommit the start goes through (the effect is the
    // server's) and the plan follows.
    p.call(
        "pool.set_ha_allow_overcommit",
        &[Value::Ref(pool), Value::Bool(true)],
    )
    .unwrap();
    let c = caller(999, h2);
    let out = call(
        &p.db,
        &c,
        "VM.start",
        &[Value::Ref(vms[2]), Value::Bool(false), Value::Bool(false)],
    )
    .unwrap();
    assert_eq!(out.effects.len(), 1);
}

#[test]
fn unprotected_starts_pass_and_protecting_a_running_vm_is_checked() {
    let mut p = Pool::new(2, 1);
    let a = p.vm("a", 10, "restart");
    let x = p.vm("x", 6, "");
    p.run(a, p.hosts[0]);
    p.run(x, p.hosts[0]);
    // An unprotected VM takes room but is never planned: h1 keeps 12 GiB,
    // enough for a.
    let b = p.vm("b", 4, "");
    let h1 = p.hosts[1];
    let out = call(
        &p.db,
        &caller(5, h1),
        "VM.start",
        &[Value::Ref(b), Value::Bool(false), Value::Bool(false)],
    );
    assert!(out.is_ok(), "{out:?}");
    p.run(b, h1);
    // Protecting it while it runs would break the plan (h0 is full)...
    let e = p
        .call(
            "VM.set_ha_restart_priority",
            &[Value::Ref(b), Value::String("restart".into())],
        )
        .unwrap_err();
    assert_eq!(e.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN");
    let e = p
        .call("VM.set_ha_always_run", &[Value::Ref(b), Value::Bool(true)])
        .unwrap_err();
    assert_eq!(e.code, "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN");
    // ...best-effort does not, and neither does protecting a halted VM.
    p.call(
        "VM.set_ha_restart_priority",
        &[Value::Ref(b), Value::String("best-effort".into())],
    )
    .unwrap();
    let y = p.vm("y", 10, "");
    p.call(
        "VM.set_ha_restart_priority",
        &[Value::Ref(y), Value::String("restart".into())],
    )
    .unwrap();
}

#[test]
fn planning_calls_answer_on_the_live_pool() {
    let mut p = Pool::new(3, 1);
    let a = p.vm("a", 10, "restart");
    let b = p.vm("b", 10, "restart");
    let c = p.vm("c", 4, "");
    p.run(a, p.hosts[0]);
    p.run(b, p.hosts[1]);
    p.run(c, p.hosts[2]);
    // One failure: a or b goes to h2 (12 GiB free); two: not both.
    let max = live_plan::compute(&p.db).max_host_failures;
    assert_eq!(max, 1);
    assert_eq!(
        p.call("pool.ha_compute_max_host_failures_to_tolerate", &[]),
        Ok(int(max))
    );
    assert_eq!(
        p.call("pool.ha_failover_plan_exists", &[int(max)]),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        p.call("pool.ha_failover_plan_exists", &[int(max + 1)]),
        Ok(Value::Bool(false))
    );
    // Hypothetically protecting only a: one failure is fine.
    let conf = Value::Map(vec![
        (Key::Ref(a), Value::String("restart".into())),
        (Key::Ref(b), Value::String("".into())),
    ]);
    assert_eq!(
        p.call(
            "pool.ha_compute_hypothetical_max_host_failures_to_tolerate",
            &[conf]
        ),
        Ok(int(1))
    );
    let bad = Value::Map(vec![(Key::Ref(a), Value::String("always".into()))]);
    let e = p
        .call(
            "pool.ha_compute_hypothetical_max_host_failures_to_tolerate",
            &[bad],
        )
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        (
            "INVALID_VALUE",
            vec!["ha_restart_priority".into(), "always".into()]
        )
    );
    // The plan for host 0 failing: a goes somewhere with room, or nowhere.
    let plan = p
        .call(
            "pool.ha_compute_vm_failover_plan",
            &[Value::Set(vec![Value::Ref(p.hosts[0])]), Value::Set(vec![])],
        )
        .unwrap();
    let Value::Map(entries) = plan else {
        panic!("a map")
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, Key::Ref(a));
    let answer = &entries[0].1;
    let Value::Map(fields) = answer else {
        panic!("a map")
    };
    assert_eq!(fields.len(), 1);
    let key = fields[0].0.to_wire();
    assert!(key == "host" || key == "error_code", "{answer:?}");
}

#[test]
fn prevent_restarts_for_stores_the_instant() {
    let mut p = Pool::new(1, 0);
    p.call("pool.ha_prevent_restarts_for", &[int(60)]).unwrap();
    let pool = pool_ref(&p.db).unwrap();
    let until = p.db.field(Class::Pool, pool, "ha_restarts_prevented_until");
    assert!(
        matches!(until, Some(Value::DateTime(d)) if d.unix_seconds == 1_742_357_784 + 60),
        "{until:?}"
    );
    let e = p.call(
        "pool.ha_prevent_restarts_for",
        &[Value::String("soon".into())],
    );
    assert_eq!(e.unwrap_err().code, "FIELD_TYPE_ERROR");
}

#[test]
fn nothing_is_maintained_while_ha_is_off() {
    let mut p = Pool::new(2, 1);
    let pool = pool_ref(&p.db).unwrap();
    let _ =
        p.db.apply(&[Change::set(
            Class::Pool,
            pool,
            "ha_enabled",
            Value::Bool(false),
        )])
        .unwrap();
    let a = p.vm("a", 20, "restart");
    p.run(a, p.hosts[0]);
    assert!(!p.pool_bool("ha_overcommitted"));
    assert!(p.messages("HA_POOL_OVERCOMMITTED").is_empty());
    // And the overcommit check lets everything through.
    p.call(
        "pool.set_ha_host_failures_to_tolerate",
        &[Value::Ref(pool), int(5)],
    )
    .unwrap();
}

/// The engine over a real database: its actions committed through
/// `shell::changes_for_all`, its start performed by the real `VM.start`
/// handler on the target host, its state readable in `VM.ha_state`.
#[test]
fn the_engine_drives_a_real_database_through_the_shell() {
    use super::engine::{Action, Engine, Input};
    use super::shell;
    use std::time::Duration;

    let mut p = Pool::new(2, 1);
    let db_vm = p.vm("db", 4, "restart");
    let scratch = p.vm("scratch", 2, "");
    p.run(db_vm, p.hosts[0]);
    p.run(scratch, p.hosts[0]);
    let uuid = |p: &Pool, class, r| Uuid::parse_str(p.db.get(class, r).unwrap().uuid()).unwrap();
    let (h0, h1) = (
        uuid(&p, Class::Host, p.hosts[0]),
        uuid(&p, Class::Host, p.hosts[1]),
    );
    let vm = uuid(&p, Class::Vm, db_vm);

    let mut engine = Engine::new(super::PoolView::from_db(&p.db), Duration::ZERO);
    let commit = |p: &mut Pool, actions: &[Action]| {
        let changes = shell::changes_for_all(&p.db, &caller(500, Ref::NULL), actions);
        let _ = p.db.apply(&changes).expect("engine changes apply");
        // What the server does after every commit.
        if live_plan::affects_plan(&changes) {
            let follow = live_plan::follow_up(&p.db, &caller(501, Ref::NULL));
            let _ = p.db.apply(&follow).expect("plan changes apply");
        }
        p.db.check_invariants().unwrap();
    };
    let first: Vec<Action> = std::iter::from_fn(|| engine.poll_action()).collect();
    commit(&mut p, &first);
    let state = |p: &Pool, r| p.db.field(Class::Vm, r, "ha_state").unwrap();
    assert_eq!(state(&p, db_vm), Value::String("started".into()));
    assert_eq!(state(&p, scratch), Value::String("ignored".into()));

    // host 0 is proven fenced.
    let actions = engine.step(
        Duration::from_secs(10),
        Input::Liveset {
            live: vec![h1],
            fenced: vec![h0],
        },
    );
    assert!(
        actions.contains(&Action::StartVm { vm, host: h1 }),
        "{actions:?}"
    );
    commit(&mut p, &actions);
    let metrics =
        p.db.field(Class::Host, p.hosts[0], "metrics")
            .unwrap()
            .as_ref()
            .unwrap();
    assert_eq!(
        p.db.field(Class::HostMetrics, metrics, "live"),
        Some(Value::Bool(false))
    );
    assert_eq!(p.messages("HA_HOST_FAILED"), ["Server 'h0' has failed"]);
    assert_eq!(
        p.db.field(Class::Vm, scratch, "power_state"),
        Some(Value::Enum("Halted".into()))
    );
    assert_eq!(state(&p, db_vm), Value::String("starting".into()));

    // The engine's start path (the start checks without the overcommit
    // check: a plain VM.start of it would break the plan now).
    let out = crate::api::vm_power::ha_restart(&p.db, &caller(502, p.hosts[1]), db_vm, p.hosts[1])
        .expect("the start the engine asked for");
    let _ = p.db.apply(&out.changes).expect("start changes apply");
    let follow = live_plan::follow_up(&p.db, &caller(503, Ref::NULL));
    let _ = p.db.apply(&follow).expect("plan changes apply");
    let actions = engine.step(Duration::from_secs(12), Input::VmStarted { vm, host: h1 });
    commit(&mut p, &actions);
    assert_eq!(state(&p, db_vm), Value::String("started".into()));
    assert_eq!(
        p.db.field(Class::Vm, scratch, "ha_state"),
        Some(Value::String("ignored".into()))
    );
    assert_eq!(engine.poll_timeout(), None, "nothing left to do");
}

#[test]
fn configuration_changes_become_engine_inputs() {
    use super::PoolView;
    use super::engine::Input;
    use super::shell::config_inputs;

    let mut p = Pool::new(2, 1);
    let a = p.vm("a", 4, "");
    let before = PoolView::from_db(&p.db);
    p.call(
        "VM.set_ha_restart_priority",
        &[Value::Ref(a), Value::String("restart".into())],
    )
    .unwrap();
    p.call("VM.set_order", &[Value::Ref(a), int(3)]).unwrap();
    p.call(
        "host.add_to_other_config",
        &[
            Value::Ref(p.hosts[1]),
            Value::String(super::view::MAINTENANCE_KEY.into()),
            Value::String("true".into()),
        ],
    )
    .unwrap();
    let after = PoolView::from_db(&p.db);
    let inputs = config_inputs(&before, &after);
    let vm = Uuid::parse_str(p.db.get(Class::Vm, a).unwrap().uuid()).unwrap();
    assert!(
        inputs.iter().any(|i| matches!(i,
            Input::VmConfig { vm: v, order: 3, .. } if *v == vm)),
        "{inputs:?}"
    );
    assert!(
        inputs
            .iter()
            .any(|i| matches!(i, Input::HostMaintenance { on: true, .. })),
        "{inputs:?}"
    );
    assert_eq!(config_inputs(&after, &after), []);
}
