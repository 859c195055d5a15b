//! The pure halves of the shell around the engine: the database changes
//! that perform an engine action, and the engine inputs that follow from a
//! committed change of the pool's configuration. The I/O (asking a host's
//! agent to start a VM, watching `xhad`) is the shell's own; see
//! `docs/restart-engine.md`, "Wiring".

use uuid::Uuid;

use crate::api::Caller;
use crate::api::ids::Fresh;
use crate::db::{Change, Class, Database};
use crate::value::{Ref, Value};

use super::engine::{Action, Input};
use super::view::PoolView;

fn by_uuid(db: &Database, class: Class, uuid: Uuid) -> Option<Ref> {
    match db.by_uuid(&uuid.hyphenated().to_string()) {
        Some((c, r)) if c == class => Some(r),
        _ => None,
    }
}

/// The changes that record `action` in the database (none for a start,
/// which the target host's agent commits when the VM runs, and for the
/// log-only actions). Objects that no longer exist are skipped.
#[must_use]
pub fn changes_for(
    db: &Database,
    caller: &Caller,
    fresh: &mut Fresh,
    action: &Action,
) -> Vec<Change> {
    match action {
        Action::MarkHostDead { host } => by_uuid(db, Class::Host, *host)
            .and_then(|h| db.field(Class::Host, h, "metrics")?.as_ref())
            .filter(|m| db.get(Class::HostMetrics, *m).is_some())
            .map(|m| Change::set(Class::HostMetrics, m, "live", Value::Bool(false)))
            .into_iter()
            .collect(),
        Action::ForceHalted { vm, .. } => by_uuid(db, Class::Vm, *vm)
            .map(|v| Change::Modify {
                class: Class::Vm,
                r#ref: v,
                fields: vec![
                    ("power_state".into(), Value::Enum("Halted".into())),
                    ("resident_on".into(), Value::Ref(Ref::NULL)),
                    ("scheduled_to_be_resident_on".into(), Value::Ref(Ref::NULL)),
                    ("domid".into(), Value::Int(-1)),
                ],
            })
            .into_iter()
            .collect(),
        Action::ClearAlwaysRun { vm } => by_uuid(db, Class::Vm, *vm)
            .map(|v| Change::set(Class::Vm, v, "ha_always_run", Value::Bool(false)))
            .into_iter()
            .collect(),
        Action::SetHaState { vm, state } => by_uuid(db, Class::Vm, *vm)
            .map(|v| {
                Change::set(
                    Class::Vm,
                    v,
                    "ha_state",
                    Value::String(state.as_str().into()),
                )
            })
            .into_iter()
            .collect(),
        Action::Message(m) => vec![m.to_change(caller, fresh)],
        Action::StartVm { .. }
        | Action::Failback { .. }
        | Action::ScheduleRetry { .. }
        | Action::Note(_) => Vec::new(),
    }
}

/// The changes for a batch of actions, as one commit.
#[must_use]
pub fn changes_for_all(db: &Database, caller: &Caller, actions: &[Action]) -> Vec<Change> {
    let mut fresh = Fresh::new(db, caller);
    actions
        .iter()
        .flat_map(|a| changes_for(db, caller, &mut fresh, a))
        .collect()
}

/// The engine inputs that a committed change of configuration means:
/// protection, order and delay of VMs, host enabled and maintenance, the
/// pool's HA settings. Power and liveness events are not guessed from the
/// database: the shell reports them from where it learns them (the VM
/// drivers, the API's shutdown path, `xhad`).
#[must_use]
pub fn config_inputs(before: &PoolView, after: &PoolView) -> Vec<Input> {
    let mut out = Vec::new();
    if (
        before.ha_enabled,
        before.reboot_on_internal_shutdown,
        before.plan_exists_for,
    ) != (
        after.ha_enabled,
        after.reboot_on_internal_shutdown,
        after.plan_exists_for,
    ) {
        out.push(Input::PoolConfig {
            ha_enabled: after.ha_enabled,
            reboot_on_internal_shutdown: after.reboot_on_internal_shutdown,
            plan_exists_for: after.plan_exists_for,
        });
    }
    for h in &after.hosts {
        let Some(b) = before.host(h.uuid) else {
            continue;
        };
        if b.enabled != h.enabled {
            out.push(Input::HostEnabled {
                host: h.uuid,
                enabled: h.enabled,
            });
        }
        if b.maintenance != h.maintenance {
            out.push(Input::HostMaintenance {
                host: h.uuid,
                on: h.maintenance,
            });
        }
    }
    for v in &after.vms {
        let Some(b) = before.vm(v.uuid) else {
            continue;
        };
        if (b.affinity, b.failback) != (v.affinity, v.failback) {
            out.push(Input::VmFailback {
                vm: v.uuid,
                affinity: v.affinity,
                failback: v.failback,
            });
        }
        if (b.priority, b.always_run, b.order, b.start_delay_s)
            != (v.priority, v.always_run, v.order, v.start_delay_s)
        {
            out.push(Input::VmConfig {
                vm: v.uuid,
                priority: v.priority,
                always_run: v.always_run,
                order: v.order,
                start_delay_s: v.start_delay_s,
            });
        }
    }
    out
}
