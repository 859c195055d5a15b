//! The wiring's pure parts: report -> inputs, committed change -> inputs,
//! action -> changes (over a real database), prevent-restarts -> input.

use uuid::Uuid;

use super::*;
use crate::ha::engine::{Action, Engine};
use crate::ha::view::{HostView, Liveness, VmView};
use crate::ha::{HaState, shell};
use crate::model::RestartPriority;

fn host(n: u128) -> HostView {
    HostView {
        uuid: Uuid::from_u128(n),
        name: format!("h{n}"),
        memory_total: 16 << 30,
        memory_overhead: 0,
        enabled: true,
        maintenance: false,
        liveness: Liveness::Live,
    }
}

fn vm(n: u128, on: Option<u128>) -> VmView {
    VmView {
        uuid: Uuid::from_u128(n),
        name: format!("v{n}"),
        memory: 1 << 30,
        priority: RestartPriority::Restart,
        always_run: true,
        order: 0,
        start_delay_s: 0,
        running: on.is_some(),
        resident_on: on.map(Uuid::from_u128),
        affinity: None,
        failback: false,
        scheduled_on: None,
        ha_state: None,
    }
}

fn pool(vms: Vec<VmView>) -> PoolView {
    PoolView {
        ha_enabled: true,
        reboot_on_internal_shutdown: true,
        failures_to_tolerate: 0,
        plan_exists_for: 0,
        hosts: vec![host(1), host(2)],
        vms,
    }
}

#[test]
fn a_host_out_of_the_liveset_is_fenced_and_its_vms_are_restored() {
    let view = pool(vec![vm(10, Some(2))]);
    let input = liveset_input(&[Uuid::from_u128(1)], &view);
    assert_eq!(
        input,
        Input::Liveset {
            live: vec![Uuid::from_u128(1)],
            fenced: vec![Uuid::from_u128(2)],
        }
    );
    let mut e = Engine::new(view, std::time::Duration::ZERO);
    let actions = e.step(std::time::Duration::ZERO, input);
    assert!(actions.contains(&Action::MarkHostDead {
        host: Uuid::from_u128(2)
    }));
    assert!(actions.contains(&Action::StartVm {
        vm: Uuid::from_u128(10),
        host: Uuid::from_u128(1)
    }));
}

#[test]
fn power_changes_become_started_stopped_by_itself_or_by_the_api() {
    let before = pool(vec![
        vm(10, None),
        vm(11, Some(1)),
        vm(12, Some(1)),
        vm(13, Some(1)),
    ]);
    let mut after = before.clone();
    // 10 started on h2; 11 stopped from inside; 12 stopped through the API
    // (ha_always_run cleared in the same commit); 13 moved to h2.
    after.vms[0].running = true;
    after.vms[0].resident_on = Some(Uuid::from_u128(2));
    after.vms[1].running = false;
    after.vms[1].resident_on = None;
    after.vms[2].running = false;
    after.vms[2].resident_on = None;
    after.vms[2].always_run = false;
    after.vms[3].resident_on = Some(Uuid::from_u128(2));
    let inputs = committed_inputs(&before, &after);
    let (h2, v) = (Uuid::from_u128(2), Uuid::from_u128);
    assert_eq!(
        inputs,
        vec![
            Input::VmStarted {
                vm: v(10),
                host: h2
            },
            Input::VmStoppedByItself { vm: v(11) },
            Input::VmStoppedByApi { vm: v(12) },
            Input::VmStarted {
                vm: v(13),
                host: h2
            },
            Input::VmConfig {
                vm: v(12),
                priority: RestartPriority::Restart,
                always_run: false,
                order: 0,
                start_delay_s: 0,
            },
        ]
    );
    assert!(committed_inputs(&after, &after).is_empty());
    // h2's metrics say it is no longer live: it left xhad's liveset.
    let mut fenced = after.clone();
    fenced.hosts[1].liveness = Liveness::Fenced;
    assert_eq!(
        committed_inputs(&after, &fenced),
        vec![Input::Liveset {
            live: vec![Uuid::from_u128(1)],
            fenced: vec![h2],
        }]
    );
    assert!(!needs_rebuild(&before, &after));
    let mut fewer = after.clone();
    fewer.vms.pop();
    assert!(needs_rebuild(&after, &fewer));
}

#[test]
fn prevent_restarts_until_becomes_the_seconds_left() {
    let now = DateTime::from_unix(1000);
    assert_eq!(prevent_input(Some(5), Some(5), now), None);
    assert_eq!(
        prevent_input(None, Some(1030), now),
        Some(Input::PreventRestartsFor { seconds: 30 })
    );
    assert_eq!(
        prevent_input(Some(1030), Some(1000), now),
        Some(Input::PreventRestartsFor { seconds: 0 })
    );
    assert_eq!(
        prevent_input(Some(1030), Some(900), now),
        Some(Input::PreventRestartsFor { seconds: 0 })
    );
}

#[test]
fn actions_become_database_changes_on_a_real_database() {
    use crate::api::bootstrap::{HostInfo, new_pool};
    use crate::api::{Caller, call};
    use crate::db::Database;
    use crate::value::{Key, Ref};
    let caller = Caller {
        now: DateTime::from_unix(100),
        seed: Uuid::from_u128(7),
        this_host: Ref::NULL,
    };
    let info = HostInfo {
        uuid: Uuid::from_u128(1).hyphenated().to_string(),
        name_label: "h1".into(),
        address: "10.0.0.1".into(),
        hostname: "h1".into(),
        memory_total: 16 << 30,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    };
    let mut db = Database::new();
    let (_, changes) = new_pool(&db, &caller, &info);
    let _ = db.apply(&changes).unwrap_or_else(|e| panic!("{e}"));
    let rec = Value::Map(vec![
        (Key::String("name_label".into()), Value::String("v".into())),
        (Key::String("ha_always_run".into()), Value::Bool(true)),
    ]);
    let out = call(&db, &caller, "VM.create", &[rec]).unwrap_or_else(|e| panic!("{e:?}"));
    let _ = db.apply(&out.changes).unwrap_or_else(|e| panic!("{e}"));
    let vm_ref = out.result.as_ref().unwrap_or(Ref::NULL);
    let vm_uuid = db
        .get(Class::Vm, vm_ref)
        .and_then(|o| Uuid::parse_str(o.uuid()).ok())
        .unwrap_or_default();
    let actions = [
        Action::SetHaState {
            vm: vm_uuid,
            state: HaState::Queued,
        },
        Action::ClearAlwaysRun { vm: vm_uuid },
        Action::StartVm {
            vm: vm_uuid,
            host: Uuid::from_u128(1),
        },
        Action::Message(crate::ha::messages::protected_vm_restart_failed(
            &vm_uuid.to_string(),
        )),
    ];
    let changes = shell::changes_for_all(&db, &caller, &actions);
    assert_eq!(changes.len(), 3, "a start changes nothing by itself");
    let _ = db.apply(&changes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        db.field(Class::Vm, vm_ref, "ha_state"),
        Some(Value::String("queued".into()))
    );
    assert_eq!(
        db.field(Class::Vm, vm_ref, "ha_always_run"),
        Some(Value::Bool(false))
    );
    let names: Vec<String> = db
        .objects(Class::Message)
        .filter_map(|(m, _)| {
            db.field(Class::Message, m, "name")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(names, ["HA_PROTECTED_VM_RESTART_FAILED"]);
}
