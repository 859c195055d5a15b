//! Performs [`Effect::MigrateVm`] (`VM.pool_migrate`, docs/vm-drivers.md
//! "Migration"). A QEMU VM moves live ([`super::live_migration`]). A
//! process VM is stopped on its host and started on the target, each on
//! this host's drivers or forwarded to the host's agent (docs/pool.md); if
//! the target's start fails, it is started on the source again and the
//! call fails with the target's error, so the VM keeps running.

use super::agent::{self, Agent};
use super::membership;
use super::vms::VmHost;
use crate::api::{ApiError, Effect};
use crate::rpc::Failure;
use crate::value::Ref;

/// `effect` on `host`: here on `vms`, or forwarded.
fn on(
    agent: &Agent,
    here: Ref,
    vms: Option<&mut VmHost>,
    host: Ref,
    effect: &Effect,
) -> Result<(), Failure> {
    if host == here {
        if matches!(effect, Effect::StartVm { .. }) {
            super::start_guard::check(agent)?;
        }
        agent::perform(vms, effect)
    } else {
        membership::forward(agent, host, effect)
    }
}

/// Performs a `MigrateVm` effect (any other effect is an internal error).
pub fn perform(
    agent: &Agent,
    here: Ref,
    mut vms: Option<&mut VmHost>,
    effect: &Effect,
) -> Result<(), Failure> {
    let Effect::MigrateVm {
        vm,
        spec,
        source,
        target,
        hard,
    } = effect
    else {
        return Err(ApiError::internal(&format!("not a migration: {effect:?}")).into());
    };
    if spec.driver == xapi_vm::qemu::NAME {
        let route = super::live_migration::Route {
            vm,
            spec,
            source,
            target,
        };
        return super::live_migration::perform(agent, here, vms, route);
    }
    let stop = Effect::StopVm {
        vm: *vm,
        uuid: spec.uuid,
        hard: *hard,
    };
    let start = Effect::StartVm {
        vm: *vm,
        spec: spec.clone(),
    };
    on(agent, here, vms.as_deref_mut(), *source, &stop)?;
    tracing::info!(vm = %spec.uuid, %source, %target, "migration: stopped on the source");
    if let Err(e) = on(agent, here, vms.as_deref_mut(), *target, &start) {
        tracing::warn!(vm = %spec.uuid, %target, error = ?e, "migration: the start on the target failed: starting it on the source again");
        if let Err(back) = on(agent, here, vms, *source, &start) {
            tracing::error!(vm = %spec.uuid, %source, error = ?back, "migration: the start on the source failed too: the VM is down");
        }
        return Err(e);
    }
    tracing::info!(vm = %spec.uuid, %target, "migration: running on the target");
    Ok(())
}
