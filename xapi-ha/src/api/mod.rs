//! The pure call handlers: `call(db, caller, method, args)` answers one
//! XenAPI call from the database as it is, and says what to change.
//!
//! Contract with the server (`agentapi`: HTTP, codecs, sessions):
//! - The server decodes the request, checks the session and **strips the
//!   session argument**: `args` are the call's parameters after the session
//!   (parameter counts in errors exclude it, as xapi counts them). Calls
//!   without a session (`session.login_with_password`, ...) and the other
//!   `session.*` calls are the server's; it answers them before `call`.
//!   [`SESSION_METHODS`] names them for `system.listMethods`.
//! - `call` reads the database and returns an [`Outcome`]: the result value,
//!   the [`Change`]s to commit and the [`Effect`]s to perform. It never
//!   writes. With `Err`, nothing is to be changed.
//! - The server then performs the effects (I/O such as preparing an SR's
//!   volume; if one fails it answers that error and commits nothing), then
//!   commits the changes as one batch (`db::store::Store::commit`, durable
//!   before it returns) and only then replies with `result`.
//! - `event.from`: when no event is pending, `Outcome::wait` is set. The
//!   server then waits (until the database generation passes
//!   `wait.generation` or the timeout elapses) and asks again with
//!   [`poll_events`], which returns the batch, empty after the timeout.
//! - Time and fresh identities come from [`Caller`] (`now` and `seed`), so a
//!   handler is a deterministic function of its inputs.

pub mod bootstrap;
pub mod coerce;
pub mod error;
mod generic;
mod ha;
pub mod ha_enable;
pub mod host_maint; // maint: host.disable/enable/evacuate/shutdown/reboot
pub(crate) mod ids;
mod message;
pub mod methods;
pub mod migrate; // migrate: VM.pool_migrate
mod misc;
pub mod pool;
mod sr;
pub mod start_order;
// vmlife: VM disks and agility.
pub mod diagnostics;
#[cfg(test)]
mod disk_tests;
pub mod pool_import; // blocksr: a joiner's halted VMs are kept
pub mod task;
pub mod vbd;
pub mod vdi;
pub mod vdi_region; // blocksr: VDIs as regions of a block SR
mod vm;
pub mod vm_power;

pub use error::ApiError;
pub use misc::poll as poll_events;
pub use sr::SR_TYPES;

use uuid::Uuid;

use crate::db::{Change, Database};
use crate::value::{DateTime, Ref, Value};
use methods::Method;

/// Who is calling, and the inputs a pure handler cannot make itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The server's clock at the call (host.get_servertime, timestamps).
    pub now: DateTime,
    /// Entropy for the identities this call creates: new references and
    /// uuids are derived from it (uuid v5 under this namespace), so the
    /// same seed gives the same identities. The server passes a random one
    /// per call.
    pub seed: Uuid,
    /// The host this agent runs on (`OpaqueRef:NULL` before it is in the
    /// database).
    pub this_host: Ref,
}

/// What the server does before committing (I/O at the edge).
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// `SR.create`: prepare the SR's storage (a directory for `type=file`,
    /// a label on the device for `type=block`) before the record is
    /// committed. The record is in the outcome's changes.
    CreateSr {
        sr: Ref,
        /// The new SR's uuid (a block SR's label names it).
        uuid: String,
        sr_type: String,
        device_config: Vec<(String, String)>,
        shared: bool,
        /// Overwrite a device holding someone else's data (`type=block`).
        force: bool,
    },
    /// Start the VM on this host (`VM.start`, `VM.start_on`, a reboot's
    /// second half); the record's changes commit once it runs.
    StartVm { vm: Ref, spec: xapi_vm::VmSpec },
    /// Stop the VM on this host, cleanly (with the agent's timeout) or hard,
    /// and wait until it is gone.
    StopVm { vm: Ref, uuid: Uuid, hard: bool },
    /// `VDI.create` on a `file` SR: a sparse file of `size` bytes at
    /// `path` (refused if it exists).
    CreateVdi { path: std::path::PathBuf, size: u64 },
    /// blocksr: `VDI.create` on a `block` SR: write `volume` (decided by
    /// `vdi_region::place`) into the label's volume table on `device`,
    /// exactly there (refused if the label disagrees).
    CreateRegion {
        device: std::path::PathBuf,
        volume: sr_heartbeat::srlabel::Volume,
    },
    /// blocksr: `VDI.destroy`: delete the volume's file at `path`, or, with
    /// `region` (the volume's uuid), free that region in the label of the
    /// device at `path`. A volume already gone is not an error.
    DeleteVolume {
        path: std::path::PathBuf,
        region: Option<Uuid>,
    },
    /// Forwarding (docs/pool.md): perform `effect` (a `StartVm` or
    /// `StopVm`) on the agent of `host`, another host of the pool, through
    /// the host-to-host client; the changes commit here once it succeeded.
    OnHost { host: Ref, effect: Box<Effect> },
    /// `VM.pool_migrate` of a process VM (docs/vm-drivers.md, "Migration"):
    /// stop it on `source` (cleanly, or hard with `hard`), then start it on
    /// `target`, each here or forwarded; if the start on `target` fails it
    /// is started on `source` again and the call fails with the target's
    /// error. The changes (resident_on = target) commit once it runs there.
    MigrateVm {
        vm: Ref,
        spec: xapi_vm::VmSpec,
        source: Ref,
        target: Ref,
        hard: bool,
    },
    /// `pool.join` on the joining host: log in to the master, be admitted
    /// (`pool.admit`), take the pool secret and the database copy, and
    /// become a member.
    JoinPool {
        master_address: String,
        username: String,
        password: String,
    },
    /// `pool.eject`: tell `host` to forget the pool before its records go.
    EjectHost { host: Ref },
    /// `pool.designate_new_master`: hand the database (with this call's
    /// changes) and the master role to `host`.
    HandOverMaster { host: Ref },
    /// `pool.enable_ha`, checked: the agent creates the heartbeat files,
    /// starts `xhad`, waits for the liveset and moves the database
    /// (`ha_link`, docs/ha-enable.md). The outcome has no changes: they
    /// commit onto the metadata volume ([`ha_enable::enabled_changes`]).
    EnableHa(ha_enable::EnableRequest),
    /// `pool.disable_ha`, checked: the agent stops `xhad` and moves the
    /// database back ([`ha_enable::disabled_changes`]).
    DisableHa(ha_enable::DisableRequest),
    /// maint: `host.evacuate`, checked: the server moves each VM with its
    /// own `VM.pool_migrate` call, in order (`server::maintenance`).
    Evacuate {
        host: Ref,
        moves: Vec<host_maint::Move>,
    },
    /// maint: `host.shutdown` / `host.reboot`, checked: shut `vms` down
    /// cleanly, then `host` marks itself excluded in `xhad` and its agent
    /// stops or starts again (`server::maintenance`).
    ShutdownHost {
        host: Ref,
        reboot: bool,
        vms: Vec<Ref>,
    },
}

impl Effect {
    /// `effect`, forwarded to `host` unless `host` is `this_host`.
    #[must_use]
    pub fn on(host: Ref, this_host: Ref, effect: Effect) -> Effect {
        if host == this_host {
            effect
        } else {
            Effect::OnHost {
                host,
                effect: Box::new(effect),
            }
        }
    }
}

/// An `event.from` that found nothing yet: wait for a generation newer than
/// `generation`, or until `timeout_seconds` pass, then [`poll_events`].
#[derive(Clone, Debug, PartialEq)]
pub struct EventWait {
    pub query: crate::db::events::EventQuery,
    pub generation: u64,
    pub timeout_seconds: f64,
}

/// The answer to one call.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The call's result (`Value::Void` for void calls).
    pub result: Value,
    /// Changes to commit, as one atomic batch, before replying.
    pub changes: Vec<Change>,
    /// I/O to perform before committing.
    pub effects: Vec<Effect>,
    /// Set by `event.from` when no event is pending yet.
    pub wait: Option<EventWait>,
}

impl Outcome {
    /// A read-only answer.
    #[must_use]
    pub fn value(result: Value) -> Outcome {
        Outcome {
            result,
            changes: Vec::new(),
            effects: Vec::new(),
            wait: None,
        }
    }
}

/// The `session.*` calls the server answers itself (listed by
/// `system.listMethods`).
pub const SESSION_METHODS: &[&str] = &[
    "session.login_with_password",
    "session.logout",
    "session.slave_local_login_with_password",
    "session.local_logout",
    "session.change_password",
];

/// Answers one call (see the module documentation for the contract).
pub fn call(
    db: &Database,
    caller: &Caller,
    method: &str,
    args: &[Value],
) -> Result<Outcome, ApiError> {
    let m = methods::resolve(method).ok_or_else(|| ApiError::method_unknown(method))?;
    let expected = m.params().len();
    if args.len() != expected {
        return Err(ApiError::parameter_count_mismatch(
            method,
            expected,
            args.len(),
        ));
    }
    ha::guard(db, m, args)?;
    if let Some(answer) = ha::call(db, caller, m, args) {
        return answer;
    }
    if let Some(answer) = generic::call(db, m, args) {
        return answer;
    }
    match m {
        Method::VmCreate => vm::create(db, caller, &args[0]),
        Method::VmDestroy => vm::destroy(db, &args[0]),
        Method::VmStart => vm_power::start(db, caller, args),
        Method::VmStartOn => vm_power::start_on(db, caller, args),
        Method::VmCleanShutdown => vm_power::shutdown(db, caller, &args[0], false),
        Method::VmHardShutdown => vm_power::shutdown(db, caller, &args[0], true),
        Method::VmCleanReboot => vm_power::reboot(db, caller, &args[0], false),
        Method::VmHardReboot => vm_power::reboot(db, caller, &args[0], true),
        Method::SrCreate => sr::create(db, caller, args),
        Method::SrForget => sr::forget(db, &args[0]),
        Method::HostGetServertime => misc::get_servertime(db, caller, &args[0]),
        Method::MessageGetSince => misc::message_get_since(db, &args[0]),
        Method::MessageGet => misc::message_get(db, args),
        Method::MessageCreate => message::create(db, caller, args),
        Method::MessageDestroy => message::destroy(db, &args[0]),
        // The agent sends the mail (I/O): `server::mailer::send_test`.
        Method::PoolSendTestEmail => Err(ApiError::internal(
            "pool.send_test_email is answered by the agent",
        )),
        Method::EventFrom => misc::event_from(db, args),
        Method::EventGetCurrentId => Ok(misc::event_get_current_id(db)),
        Method::ListMethods => Ok(Outcome::value(misc::list_methods())),
        Method::PoolJoin => pool::join(db, args),
        Method::PoolAdmit => pool::admit(db, caller, &args[0]),
        Method::PoolEject => pool::eject(db, &args[0]),
        Method::PoolDesignateNewMaster => pool::designate_new_master(db, &args[0]),
        Method::VdiCreate => vdi::create(db, caller, &args[0]),
        Method::VdiDestroy => vdi::destroy(db, &args[0]),
        Method::VbdCreate => vbd::create(db, caller, &args[0]),
        Method::VbdDestroy => vbd::destroy(db, &args[0]),
        Method::VmAssertAgile => diagnostics::assert_agile(db, &args[0]),
        Method::VmGetAgilityProblems => diagnostics::get_agility_problems(db, &args[0]),
        Method::VmGetPossibleHosts => diagnostics::get_possible_hosts(db, &args[0]),
        Method::PoolEnableHa => ha_enable::enable(db, args),
        Method::PoolDisableHa => ha_enable::disable(db),
        Method::VmPoolMigrate => migrate::pool_migrate(db, args),
        // maint: host maintenance (api/host_maint.rs)
        Method::HostDisable => host_maint::disable(db, &args[0], false),
        Method::HostDisableForced => host_maint::disable(db, &args[0], true),
        Method::HostEnable => host_maint::enable(db, &args[0]),
        Method::HostEvacuate => host_maint::evacuate(db, &args[0], false),
        Method::HostEvacuateForced => host_maint::evacuate(db, &args[0], true),
        Method::HostGetVmsWhichPreventEvacuation => {
            host_maint::vms_which_prevent_evacuation(db, &args[0])
        }
        Method::HostShutdown => host_maint::shutdown(db, &args[0], false),
        Method::HostReboot => host_maint::shutdown(db, &args[0], true),
        _ => Err(ApiError::internal("generic method not handled")),
    }
}

#[cfg(test)]
mod tests;
