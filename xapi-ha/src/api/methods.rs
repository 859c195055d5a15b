//! Every method `call` answers, built once from the schema (the generic
//! calls of every class) plus the specific ones. The same table resolves a
//! method name, gives its parameter names (arity, error names) and lists
//! the methods for `system.listMethods`.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::db::Class;
use crate::db::schema::{Access, Ty};

/// One method of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    GetAll(Class),
    GetAllRecords(Class),
    GetRecord(Class),
    GetByUuid(Class),
    GetByNameLabel(Class),
    /// `get_<field>` (field index).
    Get(Class, usize),
    /// `set_<field>` of an RW field.
    Set(Class, usize),
    /// `add_to_<map>` of an RW map.
    AddToMap(Class, usize),
    /// `remove_from_<map>` of an RW map.
    RemoveFromMap(Class, usize),
    /// `add_<set>` of an RW set.
    AddToSet(Class, usize),
    /// `remove_<set>` of an RW set.
    RemoveFromSet(Class, usize),
    VmCreate,
    VmDestroy,
    VmStart,
    VmStartOn,
    VmCleanShutdown,
    VmHardShutdown,
    VmCleanReboot,
    VmHardReboot,
    SrCreate,
    SrForget,
    HostGetServertime,
    MessageGetSince,
    MessageGet,
    // mail
    MessageCreate,
    MessageDestroy,
    PoolSendTestEmail,
    EventFrom,
    EventGetCurrentId,
    ListMethods,
    // pool: pools of several agents (api/pool.rs)
    PoolJoin,
    PoolAdmit,
    PoolEject,
    PoolDesignateNewMaster,
    // vmlife
    VdiCreate,
    VdiDestroy,
    VbdCreate,
    VbdDestroy,
    VmAssertAgile,
    VmGetAgilityProblems,
    VmGetPossibleHosts,
    // HA planning on the live pool (area `engine`, api/ha.rs).
    PoolHaFailoverPlanExists,
    PoolHaComputeMaxHostFailuresToTolerate,
    PoolHaComputeHypotheticalMaxHostFailuresToTolerate,
    PoolHaComputeVmFailoverPlan,
    PoolHaPreventRestartsFor,
    PoolHaGetPlanningPool,
    // haenable
    PoolEnableHa,
    PoolDisableHa,
    // migrate: VM.pool_migrate (api/migrate.rs)
    VmPoolMigrate,
    // maint: host maintenance (api/host_maint.rs)
    HostDisable,
    HostDisableForced,
    HostEnable,
    HostEvacuate,
    HostEvacuateForced,
    HostGetVmsWhichPreventEvacuation,
    HostShutdown,
    HostReboot,
}

const SELF: &[&str] = &["self"];
const SELF_VALUE: &[&str] = &["self", "value"];
const SELF_KEY: &[&str] = &["self", "key"];
const SELF_KEY_VALUE: &[&str] = &["self", "key", "value"];
const NONE: &[&str] = &[];
const SR_CREATE: &[&str] = &[
    "host",
    "device_config",
    "physical_size",
    "name_label",
    "name_description",
    "type",
    "content_type",
    "shared",
    "sm_config",
];

impl Method {
    /// The full name, `Class.call`.
    #[must_use]
    pub fn name(self) -> String {
        let field = |c: Class, i: usize| c.fields()[i].name;
        match self {
            Method::GetAll(c) => format!("{}.get_all", c.name()),
            Method::GetAllRecords(c) => format!("{}.get_all_records", c.name()),
            Method::GetRecord(c) => format!("{}.get_record", c.name()),
            Method::GetByUuid(c) => format!("{}.get_by_uuid", c.name()),
            Method::GetByNameLabel(c) => format!("{}.get_by_name_label", c.name()),
            Method::Get(c, i) => format!("{}.get_{}", c.name(), field(c, i)),
            Method::Set(c, i) => format!("{}.set_{}", c.name(), field(c, i)),
            Method::AddToMap(c, i) => format!("{}.add_to_{}", c.name(), field(c, i)),
            Method::RemoveFromMap(c, i) => format!("{}.remove_from_{}", c.name(), field(c, i)),
            Method::AddToSet(c, i) => format!("{}.add_{}", c.name(), field(c, i)),
            Method::RemoveFromSet(c, i) => format!("{}.remove_{}", c.name(), field(c, i)),
            Method::VmCreate => "VM.create".into(),
            Method::VmDestroy => "VM.destroy".into(),
            Method::VmStart => "VM.start".into(),
            Method::VmStartOn => "VM.start_on".into(),
            Method::VmCleanShutdown => "VM.clean_shutdown".into(),
            Method::VmHardShutdown => "VM.hard_shutdown".into(),
            Method::VmCleanReboot => "VM.clean_reboot".into(),
            Method::VmHardReboot => "VM.hard_reboot".into(),
            Method::SrCreate => "SR.create".into(),
            Method::SrForget => "SR.forget".into(),
            Method::HostGetServertime => "host.get_servertime".into(),
            Method::MessageGetSince => "message.get_since".into(),
            Method::MessageGet => "message.get".into(),
            Method::MessageCreate => "message.create".into(),
            Method::MessageDestroy => "message.destroy".into(),
            Method::PoolSendTestEmail => crate::alerts::TEST_MAIL_METHOD.into(),
            Method::EventFrom => "event.from".into(),
            Method::EventGetCurrentId => "event.get_current_id".into(),
            Method::ListMethods => "system.listMethods".into(),
            Method::PoolJoin => "pool.join".into(),
            Method::PoolAdmit => "pool.admit".into(),
            Method::PoolEject => "pool.eject".into(),
            Method::PoolDesignateNewMaster => "pool.designate_new_master".into(),
            Method::VdiCreate => "VDI.create".into(),
            Method::VdiDestroy => "VDI.destroy".into(),
            Method::VbdCreate => "VBD.create".into(),
            Method::VbdDestroy => "VBD.destroy".into(),
            Method::VmAssertAgile => "VM.assert_agile".into(),
            Method::VmGetAgilityProblems => "VM.get_agility_problems".into(),
            Method::VmGetPossibleHosts => "VM.get_possible_hosts".into(),
            Method::PoolHaFailoverPlanExists => "pool.ha_failover_plan_exists".into(),
            Method::PoolHaComputeMaxHostFailuresToTolerate => {
                "pool.ha_compute_max_host_failures_to_tolerate".into()
            }
            Method::PoolHaComputeHypotheticalMaxHostFailuresToTolerate => {
                "pool.ha_compute_hypothetical_max_host_failures_to_tolerate".into()
            }
            Method::PoolHaComputeVmFailoverPlan => "pool.ha_compute_vm_failover_plan".into(),
            Method::PoolHaPreventRestartsFor => "pool.ha_prevent_restarts_for".into(),
            Method::PoolHaGetPlanningPool => "pool.ha_get_planning_pool".into(),
            Method::PoolEnableHa => "pool.enable_ha".into(),
            Method::PoolDisableHa => "pool.disable_ha".into(),
            Method::VmPoolMigrate => "VM.pool_migrate".into(),
            Method::HostDisable => "host.disable".into(),
            Method::HostDisableForced => "host.disable_forced".into(),
            Method::HostEnable => "host.enable".into(),
            Method::HostEvacuate => "host.evacuate".into(),
            Method::HostEvacuateForced => "host.evacuate_forced".into(),
            Method::HostGetVmsWhichPreventEvacuation => {
                "host.get_vms_which_prevent_evacuation".into()
            }
            Method::HostShutdown => "host.shutdown".into(),
            Method::HostReboot => "host.reboot".into(),
        }
    }

    /// Parameter names after the session argument.
    #[must_use]
    pub fn params(self) -> &'static [&'static str] {
        match self {
            Method::GetAll(_)
            | Method::GetAllRecords(_)
            | Method::EventGetCurrentId
            | Method::PoolSendTestEmail
            | Method::PoolDisableHa
            | Method::ListMethods => NONE,
            Method::GetRecord(_)
            | Method::Get(..)
            | Method::VmDestroy
            | Method::SrForget
            | Method::MessageDestroy => SELF,
            Method::MessageCreate => &["name", "priority", "cls", "obj_uuid", "body"],
            Method::PoolEnableHa => &["heartbeat_srs", "configuration"],
            Method::VmCleanShutdown
            | Method::VmHardShutdown
            | Method::VmCleanReboot
            | Method::VmHardReboot => &["vm"],
            Method::VmStart => &["vm", "start_paused", "force"],
            Method::VmStartOn => &["vm", "host", "start_paused", "force"],
            Method::GetByUuid(_) => &["uuid"],
            Method::GetByNameLabel(_) => &["label"],
            Method::Set(..) | Method::AddToSet(..) | Method::RemoveFromSet(..) => SELF_VALUE,
            Method::AddToMap(..) => SELF_KEY_VALUE,
            Method::RemoveFromMap(..) => SELF_KEY,
            Method::VmCreate => &["args"],
            Method::SrCreate => SR_CREATE,
            Method::HostGetServertime => &["host"],
            Method::MessageGetSince => &["since"],
            Method::MessageGet => &["cls", "obj_uuid", "since"],
            Method::EventFrom => &["classes", "token", "timeout"],
            Method::PoolJoin => &["master_address", "master_username", "master_password"],
            Method::PoolAdmit => &["host_record"],
            Method::PoolEject | Method::PoolDesignateNewMaster => &["host"],
            Method::VdiCreate | Method::VbdCreate => &["args"],
            Method::VdiDestroy => SELF,
            Method::VbdDestroy | Method::VmAssertAgile | Method::VmGetAgilityProblems => SELF,
            Method::VmGetPossibleHosts => &["vm"],
            Method::PoolHaComputeMaxHostFailuresToTolerate | Method::PoolHaGetPlanningPool => NONE,
            Method::PoolHaFailoverPlanExists => &["n"],
            Method::PoolHaComputeHypotheticalMaxHostFailuresToTolerate => &["configuration"],
            Method::PoolHaComputeVmFailoverPlan => &["failed_hosts", "failed_vms"],
            Method::PoolHaPreventRestartsFor => &["seconds"],
            Method::VmPoolMigrate => &["vm", "host", "options"],
            Method::HostDisable
            | Method::HostDisableForced
            | Method::HostEnable
            | Method::HostEvacuate
            | Method::HostEvacuateForced
            | Method::HostShutdown
            | Method::HostReboot => &["host"],
            Method::HostGetVmsWhichPreventEvacuation => SELF,
        }
    }
}

/// Every method, in a stable order: per class the generic calls, then the
/// specific ones.
#[must_use]
pub fn all() -> Vec<Method> {
    let mut out = Vec::new();
    for c in Class::ALL {
        out.extend([
            Method::GetAll(c),
            Method::GetAllRecords(c),
            Method::GetRecord(c),
            Method::GetByUuid(c),
        ]);
        if c.field("name_label").is_some() {
            out.push(Method::GetByNameLabel(c));
        }
        for (i, f) in c.fields().iter().enumerate() {
            out.push(Method::Get(c, i));
            if f.access != Access::Rw {
                continue;
            }
            out.push(Method::Set(c, i));
            match f.ty {
                Ty::Map(..) => out.extend([Method::AddToMap(c, i), Method::RemoveFromMap(c, i)]),
                Ty::Set(_) => out.extend([Method::AddToSet(c, i), Method::RemoveFromSet(c, i)]),
                _ => {}
            }
        }
    }
    out.extend([
        Method::VmCreate,
        Method::VmDestroy,
        Method::VmStart,
        Method::VmStartOn,
        Method::VmCleanShutdown,
        Method::VmHardShutdown,
        Method::VmCleanReboot,
        Method::VmHardReboot,
        Method::SrCreate,
        Method::SrForget,
        Method::HostGetServertime,
        Method::MessageGetSince,
        Method::MessageGet,
        Method::MessageCreate,
        Method::MessageDestroy,
        Method::PoolSendTestEmail,
        Method::EventFrom,
        Method::EventGetCurrentId,
        Method::ListMethods,
        Method::PoolJoin,
        Method::PoolAdmit,
        Method::PoolEject,
        Method::PoolDesignateNewMaster,
        Method::VdiCreate,
        Method::VdiDestroy,
        Method::VbdCreate,
        Method::VbdDestroy,
        Method::VmAssertAgile,
        Method::VmGetAgilityProblems,
        Method::VmGetPossibleHosts,
        Method::PoolHaFailoverPlanExists,
        Method::PoolHaComputeMaxHostFailuresToTolerate,
        Method::PoolHaComputeHypotheticalMaxHostFailuresToTolerate,
        Method::PoolHaComputeVmFailoverPlan,
        Method::PoolHaPreventRestartsFor,
        Method::PoolHaGetPlanningPool,
        Method::PoolEnableHa,
        Method::PoolDisableHa,
        Method::VmPoolMigrate,
        Method::HostDisable,
        Method::HostDisableForced,
        Method::HostEnable,
        Method::HostEvacuate,
        Method::HostEvacuateForced,
        Method::HostGetVmsWhichPreventEvacuation,
        Method::HostShutdown,
        Method::HostReboot,
    ]);
    out
}

static BY_NAME: LazyLock<HashMap<String, Method>> =
    LazyLock::new(|| all().into_iter().map(|m| (m.name(), m)).collect());

/// The method called `name`.
#[must_use]
pub fn resolve(name: &str) -> Option<Method> {
    BY_NAME.get(name).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_resolve_to_themselves() {
        let all = all();
        assert_eq!(BY_NAME.len(), all.len(), "two methods share a name");
        for m in all {
            assert_eq!(resolve(&m.name()), Some(m));
        }
        assert_eq!(
            resolve("VM.set_power_state"),
            None,
            "RO fields have no setter"
        );
        assert!(resolve("VM.set_ha_restart_priority").is_some());
        assert!(resolve("pool.add_to_other_config").is_some());
        assert!(resolve("host.get_resident_VMs").is_some());
        assert!(resolve("message.get_by_name_label").is_none());
    }
}
