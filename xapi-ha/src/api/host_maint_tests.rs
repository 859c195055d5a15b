//! Host maintenance on a real database, through `api::call` and
//! `Database::apply` as the server does (with the live plan's follow-up
//! after every commit).

use uuid::Uuid;

use super::*;
use crate::api::bootstrap::{HostInfo, add_host, new_pool};
use crate::api::{Caller, call};
use crate::ha::live_plan;
use crate::ha::view::pool_ref;
use crate::value::DateTime;

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

fn info(i: usize, drivers: &[&str]) -> HostInfo {
    HostInfo {
        uuid: Uuid::from_u128(0x2000 + i as u128).hyphenated().to_string(),
        name_label: format!("h{i}"),
        address: format!("10.0.0.{i}"),
        hostname: format!("h{i}"),
        memory_total: 16 * GIB,
        memory_overhead: 0,
        vm_drivers: drivers.iter().map(|d| (*d).to_owned()).collect(),
    }
}

impl Pool {
    /// Hosts of 16 GiB offering `process` (and `qemu` on the first).
    fn new(hosts: usize) -> Pool {
        let mut db = Database::new();
        let (h0, changes) = new_pool(&db, &caller(0, Ref::NULL), &info(0, &["process", "qemu"]));
        let _ = db.apply(&changes).unwrap();
        let mut refs = vec![h0];
        for i in 1..hosts {
            let (h, changes) = add_host(&db, &caller(i as u128, Ref::NULL), &info(i, &["process"]));
            let _ = db.apply(&changes).unwrap();
            refs.push(h);
        }
        Pool {
            db,
            hosts: refs,
            n: 100,
        }
    }

    fn ha(&mut self, ntol: i64) {
        let pool = pool_ref(&self.db).unwrap();
        let _ = self
            .db
            .apply(&[Change::Modify {
                class: Class::Pool,
                r#ref: pool,
                fields: vec![
                    ("ha_enabled".into(), Value::Bool(true)),
                    ("ha_host_failures_to_tolerate".into(), Value::Int(ntol)),
                ],
            }])
            .unwrap();
        let follow = live_plan::follow_up(&self.db, &caller(9, Ref::NULL));
        let _ = self.db.apply(&follow).unwrap();
    }

    fn outcome(&mut self, method: &str, args: &[Value]) -> Result<Outcome, ApiError> {
        self.n += 1;
        let c = caller(self.n, self.hosts[0]);
        let out = call(&self.db, &c, method, args)?;
        let _ = self.db.apply(&out.changes).expect("changes apply");
        if live_plan::affects_plan(&out.changes) {
            let follow = live_plan::follow_up(&self.db, &c);
            let _ = self.db.apply(&follow).expect("plan changes apply");
        }
        self.db.check_invariants().unwrap();
        Ok(out)
    }

    fn call(&mut self, method: &str, host: Ref) -> Result<Value, ApiError> {
        self.outcome(method, &[Value::Ref(host)]).map(|o| o.result)
    }

    /// A VM of `gib` GiB running on `host` (as a committed start leaves it).
    fn running(&mut self, name: &str, gib: i64, host: Ref, extra: &[(&str, Value)]) -> Ref {
        let mut fields = vec![
            ("name_label", Value::String(name.into())),
            ("memory_static_max", Value::Int(gib * GIB)),
            ("driver", Value::String("process".into())),
        ];
        fields.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        fields.extend(extra.iter().cloned());
        let rec = Value::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Key::String(k.into()), v))
                .collect(),
        );
        let vm = self
            .outcome("VM.create", &[rec])
            .unwrap()
            .result
            .as_ref()
            .unwrap();
        let protected = extra
            .iter()
            .any(|(k, v)| *k == "ha_restart_priority" && *v == Value::String("restart".into()));
        let _ = self
            .db
            .apply(&[Change::Modify {
                class: Class::Vm,
                r#ref: vm,
                fields: vec![
                    ("power_state".into(), Value::Enum("Running".into())),
                    ("resident_on".into(), Value::Ref(host)),
                    ("ha_always_run".into(), Value::Bool(protected)),
                ],
            }])
            .unwrap();
        let follow = live_plan::follow_up(&self.db, &caller(8, host));
        let _ = self.db.apply(&follow).unwrap();
        vm
    }

    fn pool_bool(&self, name: &str) -> bool {
        let p = pool_ref(&self.db).unwrap();
        self.db
            .field(Class::Pool, p, name)
            .unwrap()
            .as_bool()
            .unwrap()
    }

    fn messages(&self, name: &str) -> usize {
        self.db
            .objects(Class::Message)
            .filter(|(r, _)| {
                self.db.field(Class::Message, *r, "name") == Some(Value::String(name.into()))
            })
            .count()
    }
}

fn code(e: &ApiError) -> (&str, Vec<&str>) {
    (
        e.code.as_str(),
        e.params.iter().map(String::as_str).collect(),
    )
}

#[test]
fn a_disabled_host_takes_no_new_vm_until_enabled() {
    let mut p = Pool::new(2);
    let (h0, h1) = (p.hosts[0], p.hosts[1]);
    p.call("host.disable", h1).unwrap();
    assert!(!is_enabled(&p.db, h1));
    let vm = p.running("v", 1, h0, &[]);
    let _ =
        p.db.apply(&[Change::set(
            Class::Vm,
            vm,
            "power_state",
            Value::Enum("Halted".into()),
        )])
        .unwrap();
    let _ =
        p.db.apply(&[Change::set(
            Class::Vm,
            vm,
            "resident_on",
            Value::Ref(Ref::NULL),
        )])
        .unwrap();
    let start_on = |p: &mut Pool, h: Ref| {
        p.outcome(
            "VM.start_on",
            &[
                Value::Ref(vm),
                Value::Ref(h),
                Value::Bool(false),
                Value::Bool(false),
            ],
        )
    };
    let e = start_on(&mut p, h1).unwrap_err();
    assert_eq!(code(&e), ("HOST_DISABLED", vec![h1.to_string().as_str()]));
    // VM.start skips the disabled host; with every host disabled there is none.
    p.call("host.disable", h0).unwrap();
    let e = p
        .outcome(
            "VM.start",
            &[Value::Ref(vm), Value::Bool(false), Value::Bool(false)],
        )
        .unwrap_err();
    assert_eq!(code(&e), ("NO_HOSTS_AVAILABLE", vec![]));
    p.call("host.enable", h1).unwrap();
    let out = p
        .outcome(
            "VM.start",
            &[Value::Ref(vm), Value::Bool(false), Value::Bool(false)],
        )
        .unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::OnHost { host, .. }] if *host == h1),
        "{:?}",
        out.effects
    );
}

#[test]
fn the_evacuation_plan_honours_order_affinity_and_room() {
    let mut p = Pool::new(3);
    let (h0, h1, h2) = (p.hosts[0], p.hosts[1], p.hosts[2]);
    let late = p.running("late", 2, h0, &[("order", Value::Int(-1))]);
    let second = p.running("second", 2, h0, &[("order", Value::Int(2))]);
    let first = p.running("first", 2, h0, &[("order", Value::Int(1))]);
    let pinned = p.running(
        "pinned",
        2,
        h0,
        &[("order", Value::Int(3)), ("affinity", Value::Ref(h2))],
    );
    p.running("elsewhere", 12, h1, &[]);
    let (moves, problems) = plan(&p.db, h0);
    assert_eq!(problems.len(), 0, "{problems:?}");
    let order: Vec<Ref> = moves.iter().map(|m| m.vm).collect();
    assert_eq!(
        order,
        [first, second, pinned, late],
        "ascending order, negative last"
    );
    // h2 has 16 GiB free, h1 4: the most free memory first; the pinned VM
    // goes to its affinity.
    assert!(moves.iter().all(|m| m.target == h2 || m.target == h1));
    assert_eq!(moves[2].target, h2);
    let out = p.outcome("host.evacuate", &[Value::Ref(h0)]).unwrap();
    assert_eq!(out.effects, [Effect::Evacuate { host: h0, moves }]);
    assert!(out.changes.is_empty(), "each move commits on its own");
}

#[test]
fn vms_that_cannot_move_are_named_with_xapis_codes() {
    let mut p = Pool::new(2);
    let (h0, h1) = (p.hosts[0], p.hosts[1]);
    let big = p.running("big", 20, h0, &[]);
    let qemu = p.running("q", 1, h0, &[("driver", Value::String("qemu".into()))]);
    let fine = p.running("fine", 1, h0, &[]);
    let r = p.call("host.get_vms_which_prevent_evacuation", h0).unwrap();
    let mut want = vec![
        (
            Key::Ref(big),
            Value::Set(vec![
                Value::String("HOST_NOT_ENOUGH_FREE_MEMORY".into()),
                Value::String(big.to_string()),
            ]),
        ),
        (
            Key::Ref(qemu),
            Value::Set(vec![
                Value::String("NO_HOSTS_AVAILABLE".into()),
                Value::String(qemu.to_string()),
            ]),
        ),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(r, Value::Map(want));
    let e = p.call("host.evacuate", h0).unwrap_err();
    assert!(
        ["HOST_NOT_ENOUGH_FREE_MEMORY", "NO_HOSTS_AVAILABLE"].contains(&e.code.as_str()),
        "{e:?}"
    );
    // Nothing changed: all still on h0.
    for vm in [big, qemu, fine] {
        assert_eq!(
            p.db.field(Class::Vm, vm, "resident_on"),
            Some(Value::Ref(h0))
        );
    }
    // The other host disabled: no host at all for any of them.
    p.call("host.disable", h1).unwrap();
    let (_, problems) = plan(&p.db, h0);
    assert!(problems.iter().all(|(_, e)| e.code == "NO_HOSTS_AVAILABLE"));
    assert_eq!(problems.len(), 3);
}

#[test]
fn a_two_host_pool_is_overcommitted_while_a_host_is_away_by_force() {
    // Target 1: each host can hold every protected VM alone.
    let mut p = Pool::new(2);
    let (h0, h1) = (p.hosts[0], p.hosts[1]);
    let restart = [("ha_restart_priority", Value::String("restart".into()))];
    p.running("a", 4, h0, &restart);
    p.running("b", 4, h1, &restart);
    p.ha(1);
    assert!(!p.pool_bool("ha_overcommitted"));
    for m in ["host.disable", "host.evacuate"] {
        let e = p.call(m, h1).unwrap_err();
        assert_eq!(code(&e), ("HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN", vec![]));
    }
    assert!(is_enabled(&p.db, h1), "a refusal changes nothing");
    p.call("host.disable_forced", h1).unwrap();
    assert!(p.pool_bool("ha_overcommitted"));
    assert_eq!(p.messages("HA_POOL_OVERCOMMITTED"), 1);
    let out = p
        .outcome("host.evacuate_forced", &[Value::Ref(h1)])
        .unwrap();
    assert!(
        matches!(&out.effects[..], [Effect::Evacuate { moves, .. }] if moves.len() == 1 && moves[0].target == h0)
    );
    p.call("host.enable", h1).unwrap();
    assert!(!p.pool_bool("ha_overcommitted"), "the plan recovered");
    assert_eq!(p.messages("HA_POOL_OVERCOMMITTED"), 1, "raised once");
}

#[test]
fn shutdown_and_reboot_need_a_disabled_host_and_stop_its_vms_first() {
    let mut p = Pool::new(2);
    let h1 = p.hosts[1];
    let vm = p.running("v", 1, h1, &[]);
    for m in ["host.shutdown", "host.reboot"] {
        let e = p.call(m, h1).unwrap_err();
        assert_eq!(code(&e), ("HOST_NOT_DISABLED", vec![]));
    }
    p.call("host.disable", h1).unwrap();
    let out = p.outcome("host.reboot", &[Value::Ref(h1)]).unwrap();
    assert_eq!(
        out.effects,
        [Effect::ShutdownHost {
            host: h1,
            reboot: true,
            vms: vec![vm]
        }]
    );
}

#[test]
fn vms_on_a_host_in_maintenance_freeze_and_enable_thaws_them() {
    use crate::ha::engine::{Engine, Input};
    use crate::ha::{PoolView, shell};
    use std::time::Duration;

    let mut p = Pool::new(2);
    let (h0, h1) = (p.hosts[0], p.hosts[1]);
    let restart = [("ha_restart_priority", Value::String("restart".into()))];
    let vm = p.running("a", 4, h1, &restart);
    p.ha(1);
    // XenCenter's maintenance mode: disabled, and the other_config key.
    p.call("host.disable_forced", h1).unwrap();
    let before = PoolView::from_db(&p.db);
    p.outcome(
        "host.add_to_other_config",
        &[
            Value::Ref(h1),
            Value::String(crate::ha::view::MAINTENANCE_KEY.into()),
            Value::String("true".into()),
        ],
    )
    .unwrap();
    let mut engine = Engine::new(before.clone(), Duration::ZERO);
    let _: Vec<_> = std::iter::from_fn(|| engine.poll_action()).collect();
    let mut actions = Vec::new();
    for i in shell::config_inputs(&before, &PoolView::from_db(&p.db)) {
        actions.extend(engine.step(Duration::from_secs(1), i));
    }
    let changes = shell::changes_for_all(&p.db, &caller(600, Ref::NULL), &actions);
    let _ = p.db.apply(&changes).unwrap();
    assert_eq!(
        p.db.field(Class::Vm, vm, "ha_state"),
        Some(Value::String("freeze".into()))
    );
    // The host leaves the liveset: no failover for a frozen VM.
    let uuid = |r: Ref| Uuid::parse_str(p.db.get(Class::Host, r).unwrap().uuid()).unwrap();
    let actions = engine.step(
        Duration::from_secs(2),
        Input::Liveset {
            live: vec![uuid(h0)],
            fenced: vec![uuid(h1)],
        },
    );
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, crate::ha::engine::Action::StartVm { .. })),
        "{actions:?}"
    );
    // host.enable leaves maintenance mode.
    let before = PoolView::from_db(&p.db);
    p.call("host.enable", h1).unwrap();
    let inputs = shell::config_inputs(&before, &PoolView::from_db(&p.db));
    assert!(
        inputs
            .iter()
            .any(|i| matches!(i, Input::HostMaintenance { on: false, .. })),
        "{inputs:?}"
    );
}
