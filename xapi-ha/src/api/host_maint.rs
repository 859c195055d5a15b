//! Maintenance of a host (docs/operations.md, "Maintenance"; docs/api.md,
//! "Host maintenance"): `host.disable`, `host.enable`, `host.evacuate`,
//! `host.get_vms_which_prevent_evacuation`, `host.shutdown`, `host.reboot`,
//! and ours `host.disable_forced` / `host.evacuate_forced` (`xe
//! host-disable --force`, `xe host-evacuate --force`: the same without the
//! failover-plan check).
//!
//! Pure, as every handler: the checks, the evacuation plan and the
//! changes; the server performs the evacuation (one `VM.pool_migrate` per
//! VM, through the ordinary call path, so each move commits on its own)
//! and the shutdown (`server::maintenance`).
//!
//! - A disabled host (`host.enabled = false`) takes no new VM: `VM.start`
//!   places nothing there, `VM.start_on` and `VM.pool_migrate` to it are
//!   refused with `HOST_DISABLED [host]` (`vm_power::check_room`).
//! - With HA on, disabling and evacuating are checked against the failover
//!   plan (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN []`, as xapi), unless
//!   `pool.ha_allow_overcommit` or the forced calls; the live plan then
//!   follows (`ha::live_plan`): `ha_overcommitted` and the
//!   `HA_POOL_OVERCOMMITTED` message while the host is away, cleared when
//!   `host.enable` gives the plan its room back.
//! - The evacuation plan moves every running VM of the host, by ascending
//!   `order` (a negative order last, `api::start_order`), each to its
//!   affinity host if that can take it, else to the enabled live host with
//!   the most free memory left that offers its driver. A VM with no other
//!   enabled live host offering its driver gets `NO_HOSTS_AVAILABLE [vm]`,
//!   one that fits nowhere `HOST_NOT_ENOUGH_FREE_MEMORY [vm]` (xapi's
//!   codes and parameters). Unlike current xapi, an unprotected VM is
//!   moved too while HA is on (xapi answers
//!   `HOST_EVACUATE_VM_NOT_HA_PROTECTED [vm]` for it).
//! - `host.shutdown` / `host.reboot` need a disabled host
//!   (`HOST_NOT_DISABLED []`); VMs still running there are shut down
//!   cleanly first (as xapi's `prepare_for_poweroff`), then the host marks
//!   itself excluded in `xhad` and its agent stops (shutdown) or starts
//!   again (reboot).

use crate::db::{Change, Class, Database};
use crate::ha::overcommit::{self, Operation};
use crate::value::{Key, Ref, Value};

use super::coerce::{self, to_text};
use super::diagnostics::host_drivers;
use super::start_order::effective_order;
use super::vm_power::{host_free_memory, vm_footprint};
use super::{ApiError, Effect, Outcome};

/// One VM of an evacuation and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub vm: Ref,
    pub target: Ref,
}

/// `HOST_DISABLED [host]`.
#[must_use]
pub fn host_disabled(host: Ref) -> ApiError {
    ApiError::new("HOST_DISABLED", [host.to_string()])
}

/// Whether `host` takes new VMs (`host.enabled`; a host without the field
/// counts as enabled, the schema's default).
#[must_use]
pub fn is_enabled(db: &Database, host: Ref) -> bool {
    db.field(Class::Host, host, "enabled")
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

fn is_live(db: &Database, host: Ref) -> bool {
    let metrics = db
        .field(Class::Host, host, "metrics")
        .and_then(|v| v.as_ref())
        .unwrap_or(Ref::NULL);
    db.get(Class::HostMetrics, metrics).is_none()
        || db
            .field(Class::HostMetrics, metrics, "live")
            .and_then(|v| v.as_bool())
            .unwrap_or(true)
}

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    db.field(class, r, name)
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

/// The running VMs of `host`, in evacuation order: ascending effective
/// `order`, then by uuid (a function of the database).
#[must_use]
pub fn running_vms(db: &Database, host: Ref) -> Vec<Ref> {
    let mut vms: Vec<(i64, String, Ref)> = db
        .objects(Class::Vm)
        .map(|(r, o)| (r, o.uuid().to_owned()))
        .filter(|(r, _)| {
            db.field(Class::Vm, *r, "resident_on")
                .and_then(|v| v.as_ref())
                == Some(host)
                && text(db, Class::Vm, *r, "power_state") == "Running"
                && db
                    .field(Class::Vm, *r, "is_control_domain")
                    .and_then(|v| v.as_bool())
                    != Some(true)
        })
        .map(|(r, uuid)| {
            let order = db
                .field(Class::Vm, r, "order")
                .and_then(|v| v.as_int())
                .unwrap_or(0);
            (effective_order(order), uuid, r)
        })
        .collect();
    vms.sort();
    vms.into_iter().map(|(_, _, r)| r).collect()
}

/// The evacuation plan of `host`: the moves, and the VMs that cannot move
/// with their error (see the module documentation).
#[must_use]
pub fn plan(db: &Database, host: Ref) -> (Vec<Move>, Vec<(Ref, ApiError)>) {
    let mut targets: Vec<(Ref, i64)> = db
        .objects(Class::Host)
        .map(|(h, _)| h)
        .filter(|h| *h != host && is_enabled(db, *h) && is_live(db, *h))
        .map(|h| (h, host_free_memory(db, h)))
        .collect();
    targets.sort_by_key(|(h, _)| *h);
    let mut moves = Vec::new();
    let mut problems = Vec::new();
    for vm in running_vms(db, host) {
        let driver = text(db, Class::Vm, vm, "driver");
        let need = vm_footprint(db, vm);
        let offer: Vec<usize> = (0..targets.len())
            .filter(|i| host_drivers(db, targets[*i].0).contains(&driver))
            .collect();
        if offer.is_empty() {
            problems.push((vm, ApiError::new("NO_HOSTS_AVAILABLE", [vm.to_string()])));
            continue;
        }
        let affinity = db.field(Class::Vm, vm, "affinity").and_then(|v| v.as_ref());
        let fits = |i: &usize| targets[*i].1 >= need;
        let chosen = offer
            .iter()
            .copied()
            .find(|i| Some(targets[*i].0) == affinity && fits(i))
            .or_else(|| {
                // Most free memory left; ties by reference (sorted above).
                offer
                    .iter()
                    .copied()
                    .filter(fits)
                    .max_by(|a, b| targets[*a].1.cmp(&targets[*b].1).then(b.cmp(a)))
            });
        match chosen {
            Some(i) => {
                targets[i].1 -= need;
                moves.push(Move {
                    vm,
                    target: targets[i].0,
                });
            }
            None => problems.push((
                vm,
                ApiError::new("HOST_NOT_ENOUGH_FREE_MEMORY", [vm.to_string()]),
            )),
        }
    }
    (moves, problems)
}

fn host_arg(db: &Database, v: &Value) -> Result<Ref, ApiError> {
    coerce::object(db, Class::Host, "host", v)
}

/// `host.disable(host)`; `forced`: `host.disable_forced` (no plan check).
pub fn disable(db: &Database, arg: &Value, forced: bool) -> Result<Outcome, ApiError> {
    let host = host_arg(db, arg)?;
    if !forced && is_enabled(db, host) {
        overcommit::check(db, &Operation::HostsDisabled { hosts: vec![host] })?;
    }
    Ok(Outcome {
        changes: vec![Change::set(
            Class::Host,
            host,
            "enabled",
            Value::Bool(false),
        )],
        ..Outcome::value(Value::Void)
    })
}

/// `host.enable(host)`: takes VMs again; also leaves XenCenter's
/// maintenance mode (`other_config:MAINTENANCE_MODE`), so HA no longer
/// freezes its VMs.
pub fn enable(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let host = host_arg(db, arg)?;
    let mut changes = vec![Change::set(Class::Host, host, "enabled", Value::Bool(true))];
    if let Some(Value::Map(pairs)) = db.field(Class::Host, host, "other_config")
        && pairs
            .iter()
            .any(|(k, _)| k.to_wire() == crate::ha::view::MAINTENANCE_KEY)
    {
        let kept: Vec<(Key, Value)> = pairs
            .into_iter()
            .filter(|(k, _)| k.to_wire() != crate::ha::view::MAINTENANCE_KEY)
            .collect();
        changes.push(Change::set(
            Class::Host,
            host,
            "other_config",
            Value::Map(kept),
        ));
    }
    Ok(Outcome {
        changes,
        ..Outcome::value(Value::Void)
    })
}

/// `host.evacuate(host)`; `forced`: `host.evacuate_forced` (no plan check).
/// Fails with the first VM's error (in evacuation order) when one cannot
/// move; else the server moves them in order ([`Effect::Evacuate`]).
pub fn evacuate(db: &Database, arg: &Value, forced: bool) -> Result<Outcome, ApiError> {
    let host = host_arg(db, arg)?;
    if !forced && is_enabled(db, host) {
        overcommit::check(db, &Operation::HostsDisabled { hosts: vec![host] })?;
    }
    let (moves, mut problems) = plan(db, host);
    if !problems.is_empty() {
        return Err(problems.swap_remove(0).1);
    }
    Ok(Outcome {
        effects: vec![Effect::Evacuate { host, moves }],
        ..Outcome::value(Value::Void)
    })
}

/// `host.get_vms_which_prevent_evacuation(self)`: VM → `[CODE, params…]`.
pub fn vms_which_prevent_evacuation(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let host = coerce::object(db, Class::Host, "self", arg)?;
    let (_, problems) = plan(db, host);
    let mut out: Vec<(Key, Value)> = problems
        .into_iter()
        .map(|(vm, e)| {
            let mut items = vec![Value::String(e.code.clone())];
            items.extend(e.params.iter().cloned().map(Value::String));
            (Key::Ref(vm), Value::Set(items))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Outcome::value(Value::Map(out)))
}

/// `host.shutdown(host)` / `host.reboot(host)`: `HOST_NOT_DISABLED []`
/// unless disabled; then [`Effect::ShutdownHost`] with the VMs still
/// running there (shut down cleanly first).
pub fn shutdown(db: &Database, arg: &Value, reboot: bool) -> Result<Outcome, ApiError> {
    let host = host_arg(db, arg)?;
    if is_enabled(db, host) {
        return Err(ApiError::new("HOST_NOT_DISABLED", Vec::<String>::new()));
    }
    Ok(Outcome {
        effects: vec![Effect::ShutdownHost {
            host,
            reboot,
            vms: running_vms(db, host),
        }],
        ..Outcome::value(Value::Void)
    })
}

#[cfg(test)]
#[path = "host_maint_tests.rs"]
mod tests;
