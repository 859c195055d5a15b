//! `VM.pool_migrate(vm, host, options)`: move a running VM to another host
//! of the pool (docs/api.md, "The VM lifecycle"; docs/vm-drivers.md,
//! "Migration").
//!
//! The checks are pure and change nothing when they refuse: the VM runs
//! (`VM_BAD_POWER_STATE [vm; running; actual]`), the target is a host of
//! the pool and not the one the VM runs on (`OPERATION_NOT_ALLOWED`:
//! xapi would do a "localhost migration", which means nothing here), the
//! target offers the VM's driver and has room for it
//! (`HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]`), and the move keeps
//! the HA failover plan (`HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN`, through
//! [`crate::ha::overcommit::check`] with `VmArriving`).
//!
//! A VM moves by [`Effect::MigrateVm`]. A process VM is stopped on its
//! host, then started on the target; the server starts it on the source
//! again if the target's start fails. A QEMU VM moves live (QMP `migrate`
//! to a QEMU started with `-incoming` on the target,
//! `server::live_migration`); its disks must be on shared SRs
//! (`HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED [sr]`, the target opens the same
//! files). On success the VM is Running with `resident_on` = target; no
//! message (xapi raises none for a migration).

use crate::db::{Change, Class, Database};
use crate::ha::overcommit::{self, Operation};
use crate::value::{Key, Value};

use super::coerce;
use super::vm_power::{check_room, expect_state, host_label, resident_host, vm_spec};
use super::{ApiError, Effect, Outcome};

/// The options `VM.pool_migrate` reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    /// `live`: accepted (`xe vm-migrate live=`); a process VM is always
    /// stopped and started.
    live: bool,
    /// `force`: stop the VM on the source hard instead of cleanly.
    force: bool,
}

fn bool_option(name: &str, v: &Value) -> Result<bool, ApiError> {
    let text = coerce::to_text(v);
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ApiError::invalid_value(&format!("options:{name}"), &text)),
    }
}

/// Reads the options map; unknown keys are ignored (as xapi does).
fn options(v: &Value) -> Result<Options, ApiError> {
    let pairs: &[(Key, Value)] = match v {
        Value::Map(pairs) => pairs,
        _ => return Err(ApiError::field_type_error("options")),
    };
    let mut out = Options::default();
    for (k, v) in pairs {
        match k.to_wire().as_str() {
            "live" => out.live = bool_option("live", v)?,
            "force" => out.force = bool_option("force", v)?,
            _ => {}
        }
    }
    Ok(out)
}

/// `VM.pool_migrate(vm, host, options)` (see the module documentation).
pub fn pool_migrate(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", &args[0])?;
    let target = coerce::object(db, Class::Host, "host", &args[1])?;
    let opts = options(&args[2])?;
    expect_state(db, vm, "Running")?;
    let source = resident_host(db, vm)?;
    if source == target {
        return Err(ApiError::operation_not_allowed(&format!(
            "the VM already runs on host {}",
            host_label(db, target)
        )));
    }
    check_room(db, vm, target)?;
    overcommit::check(db, &Operation::VmArriving { vm, host: target })?;
    let spec = vm_spec(db, vm)?;
    if spec.driver == xapi_vm::qemu::NAME
        && let Some(p) = super::diagnostics::problems(db, vm)
            .into_iter()
            .find(|p| matches!(p, super::diagnostics::Problem::SrNotShared { .. }))
    {
        return Err(p.error(db));
    }
    Ok(Outcome {
        effects: vec![Effect::MigrateVm {
            vm,
            spec,
            source,
            target,
            hard: opts.force,
        }],
        changes: vec![
            Change::set(Class::Vm, vm, "power_state", Value::Enum("Running".into())),
            Change::set(Class::Vm, vm, "resident_on", Value::Ref(target)),
        ],
        ..Outcome::value(Value::Void)
    })
}

#[cfg(test)]
mod tests;
