//! Live migration of a QEMU VM through the agents (`VM.pool_migrate`,
//! docs/vm-drivers.md "Live migration"). The master runs the steps of
//! `xapi_vm::qemu`'s migration (xapi-ha/vm/src/qemu/migrate.rs) on the
//! source and target hosts, each here or by a host-to-host call
//! ([`peer::MIGRATE`]):
//!
//! 1. target `Receive`: QEMU with the VM's spec (same disk paths: shared
//!    SR), paused, `-incoming defer`, listening on the target's address;
//!    answers `HOST:PORT`.
//! 2. source `Send`: QMP `migrate` to it until `completed`; the source is
//!    then paused. Failed: the source runs on (resumed), the target's QEMU
//!    is killed, the call fails.
//! 3. target `Resume`: `cont` once the state is loaded; the VM runs there.
//!    Failed: the target's QEMU is killed, the source resumed.
//! 4. source `Commit`: the source's QEMU quits.
//!
//! The VM record (`resident_on` = target) commits after step 4, so it
//! changes only once the target runs the VM; at no point do both run.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::agent::Agent;
use super::membership::{self, internal, lock};
use super::vms::{VmHost, VmHostError};
use crate::api::ApiError;
use crate::db::Class;
use crate::pool::peer;
use crate::rpc::{Failure, Rpc};
use crate::value::Ref;

/// How long the transfer (step 2) and the target's load (step 3) may take;
/// below the host-to-host call timeout (`peers::CALL_TIMEOUT`, 90 s).
const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// One step of a live migration on one host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Target: start QEMU waiting for the VM on `listen_host`.
    Receive {
        spec: xapi_vm::VmSpec,
        listen_host: String,
    },
    /// Source: send the VM to `to` (`HOST:PORT`).
    Send { vm: Uuid, to: String },
    /// Target: run the received VM.
    Resume { vm: Uuid },
    /// Target: kill the QEMU of a migration that failed.
    AbortIncoming { vm: Uuid },
    /// Source: quit, the VM runs on the target.
    Commit { vm: Uuid },
    /// Source: run the VM again (the target failed after the transfer).
    Abort { vm: Uuid },
}

impl Step {
    fn vm(&self) -> Uuid {
        match self {
            Step::Receive { spec, .. } => spec.uuid,
            Step::Send { vm, .. }
            | Step::Resume { vm }
            | Step::AbortIncoming { vm }
            | Step::Commit { vm }
            | Step::Abort { vm } => *vm,
        }
    }

    /// Whether the VM's end on this host after the step is ours (not a
    /// stop by itself to report).
    fn ends_the_vm_here(&self) -> bool {
        matches!(self, Step::AbortIncoming { .. } | Step::Commit { .. })
    }
}

/// Performs `step` on this host's QEMU driver; the target's listen address
/// for `Receive`, "" otherwise.
pub fn local(vms: &mut VmHost, step: &Step) -> Result<String, VmHostError> {
    let q = vms.qemu()?;
    match step {
        Step::Receive { spec, listen_host } => Ok(q.start_incoming(spec, listen_host)?),
        Step::Send { vm, to } => q
            .migrate_send(*vm, to, STEP_TIMEOUT)
            .map(|()| String::new()),
        Step::Resume { vm } => q.resume_incoming(*vm, STEP_TIMEOUT).map(|()| String::new()),
        Step::AbortIncoming { vm } => q.abort_incoming(*vm).map(|()| String::new()),
        Step::Commit { vm } => q.migrate_commit(*vm).map(|()| String::new()),
        Step::Abort { vm } => q.migrate_abort(*vm).map(|()| String::new()),
    }
    .map_err(VmHostError::from)
}

/// Answers [`peer::MIGRATE`] on the source or target host.
pub fn peer_step(agent: &Agent, args: &[Rpc]) -> Result<Rpc, Failure> {
    let Some(Rpc::Str(text)) = args.first() else {
        return Err(ApiError::field_type_error("step").into());
    };
    let step: Step = serde_json::from_str(text)
        .map_err(|e| Failure::from(ApiError::invalid_value("step", &e.to_string())))?;
    if matches!(step, Step::Receive { .. }) {
        super::start_guard::check(agent)?;
    }
    let vms = agent
        .vm_host()
        .ok_or_else(|| internal("this agent runs no VM drivers"))?;
    let mut vms = lock(vms);
    if step.ends_the_vm_here() {
        lock(&agent.pool.requested_stops).insert(step.vm());
    }
    let out = local(&mut vms, &step).map_err(|e| {
        tracing::warn!(vm = %step.vm(), error = %e, "live migration step failed");
        internal(e)
    })?;
    tracing::info!(vm = %step.vm(), ?step, "live migration step done at the master's request");
    Ok(Rpc::Str(out))
}

/// `step` on `host`: here on `vms`, or by a host-to-host call.
fn on(
    agent: &Agent,
    here: Ref,
    vms: Option<&mut VmHost>,
    host: Ref,
    step: &Step,
) -> Result<String, Failure> {
    if host == here {
        if matches!(step, Step::Receive { .. }) {
            super::start_guard::check(agent)?;
        }
        let vms = vms.ok_or_else(|| internal("this agent runs no VM drivers"))?;
        return local(vms, step).map_err(internal);
    }
    let json = serde_json::to_string(step).map_err(internal)?;
    match membership::call_host(agent, host, peer::MIGRATE, vec![Rpc::Str(json)])? {
        Rpc::Str(s) => Ok(s),
        other => Err(internal(format!("unexpected answer {other:?}"))),
    }
}

/// The route of a migration: the VM, what it runs, and from where to where.
pub struct Route<'a> {
    pub vm: &'a Ref,
    pub spec: &'a xapi_vm::VmSpec,
    pub source: &'a Ref,
    pub target: &'a Ref,
}

/// Performs the `MigrateVm` effect of a QEMU VM (module documentation);
/// `super::migration` takes the effect apart.
pub fn perform(
    agent: &Agent,
    here: Ref,
    mut vms: Option<&mut VmHost>,
    route: Route<'_>,
) -> Result<(), Failure> {
    let Route {
        vm,
        spec,
        source,
        target,
    } = route;
    let uuid = spec.uuid;
    let failed = |why: &Failure| {
        Failure::new(
            "VM_MIGRATE_FAILED",
            [
                vm.to_string(),
                source.to_string(),
                target.to_string(),
                format!("{} {}", why.code, why.params.join(" ")),
            ],
        )
    };
    let listen_host = membership::text(agent.store().database(), Class::Host, *target, "address");
    let started = std::time::Instant::now();
    let receive = Step::Receive {
        spec: spec.clone(),
        listen_host,
    };
    let to = on(agent, here, vms.as_deref_mut(), *target, &receive).map_err(|e| failed(&e))?;
    tracing::info!(vm = %uuid, %target, %to, "live migration: the target waits");
    let abort_incoming = |vms: Option<&mut VmHost>| {
        if let Err(e) = on(agent, here, vms, *target, &Step::AbortIncoming { vm: uuid }) {
            tracing::error!(vm = %uuid, %target, error = ?e, "killing the target's QEMU failed");
        }
    };
    if let Err(e) = on(
        agent,
        here,
        vms.as_deref_mut(),
        *source,
        &Step::Send { vm: uuid, to },
    ) {
        tracing::warn!(vm = %uuid, error = ?e, "live migration: the transfer failed; the VM runs on the source");
        abort_incoming(vms.as_deref_mut());
        return Err(failed(&e));
    }
    if let Err(e) = on(
        agent,
        here,
        vms.as_deref_mut(),
        *target,
        &Step::Resume { vm: uuid },
    ) {
        tracing::warn!(vm = %uuid, error = ?e, "live migration: the target does not run it; resuming the source");
        abort_incoming(vms.as_deref_mut());
        if let Err(back) = on(agent, here, vms, *source, &Step::Abort { vm: uuid }) {
            tracing::error!(vm = %uuid, error = ?back, "resuming the source failed too: the VM is down");
        }
        return Err(failed(&e));
    }
    // The VM runs on the target: the paused source must go whatever happens.
    if let Err(e) = on(agent, here, vms, *source, &Step::Commit { vm: uuid }) {
        tracing::error!(vm = %uuid, %source, error = ?e, "live migration: quitting the paused source failed");
    }
    tracing::info!(vm = %uuid, %target, ms = started.elapsed().as_millis() as u64, "live migration done");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_travel_as_json_and_name_their_vm() {
        let vm = Uuid::new_v4();
        for step in [
            Step::Send {
                vm,
                to: "127.0.0.2:4444".into(),
            },
            Step::Resume { vm },
            Step::AbortIncoming { vm },
            Step::Commit { vm },
            Step::Abort { vm },
        ] {
            let text = serde_json::to_string(&step).expect("encode");
            assert_eq!(serde_json::from_str::<Step>(&text).expect("decode"), step);
            assert_eq!(step.vm(), vm);
        }
        let e = serde_json::from_str::<Step>(r#"{"step":"explode","vm":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        assert!(Step::Commit { vm }.ends_the_vm_here());
        assert!(
            !Step::Send {
                vm,
                to: String::new()
            }
            .ends_the_vm_here()
        );
    }
}
