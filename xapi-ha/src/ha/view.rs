//! The part of the pool database HA reads: hosts (liveness, enabled,
//! maintenance, memory) and VMs (power, residence, protection, order,
//! memory). The engine keeps one up to date from its inputs; the live plan
//! and the overcommit check build one from the database.
//!
//! [`PoolView::planning_pool`] turns a view into the planner's
//! [`Pool`](crate::model::Pool), so every HA decision uses the one planner.

use uuid::Uuid;

use crate::db::{Class, Database};
use crate::model::{self, PowerState, RestartPriority};
use crate::value::{Ref, Value};

use super::{HaState, is_protected};

/// The `host.other_config` key XenCenter sets on a host in maintenance
/// mode; HA freezes the VMs of such a host (no failover).
pub const MAINTENANCE_KEY: &str = "MAINTENANCE_MODE";

/// The `VM.other_config` key (ours; off unless `true`) that asks HA to move
/// a VM back to its `affinity` host once that host is back.
pub const FAILBACK_KEY: &str = "ha-failback";

/// What HA knows of a host's liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// In the liveset.
    Live,
    /// Out of the liveset but not yet proven fenced: its VMs may still run.
    Lost,
    /// Out of the liveset and proven fenced: its VMs are gone.
    Fenced,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostView {
    pub uuid: Uuid,
    pub name: String,
    /// Bytes.
    pub memory_total: u64,
    /// Bytes reserved for the host itself.
    pub memory_overhead: u64,
    /// `host.enabled`: accepts VMs.
    pub enabled: bool,
    /// In maintenance (see [`MAINTENANCE_KEY`]): accepts no restarts and its
    /// VMs are frozen.
    pub maintenance: bool,
    pub liveness: Liveness,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmView {
    pub uuid: Uuid,
    pub name: String,
    /// Bytes a host needs for it (static max plus overhead).
    pub memory: u64,
    pub priority: RestartPriority,
    /// `ha_always_run`.
    pub always_run: bool,
    pub order: i64,
    /// Seconds the next order group waits after this VM started.
    pub start_delay_s: u64,
    /// Running (or paused) rather than halted (or suspended).
    pub running: bool,
    /// The host it runs on, when running.
    pub resident_on: Option<Uuid>,
    /// Preferred host for a restart.
    pub affinity: Option<Uuid>,
    /// `other_config:ha-failback=true` ([`FAILBACK_KEY`]): moves back to
    /// `affinity` when that host is back (`engine::failback`).
    pub failback: bool,
    /// `VM.scheduled_to_be_resident_on` of a halted VM: a start in flight
    /// there (a new master's engine waits for its answer).
    pub scheduled_on: Option<Uuid>,
    /// `VM.ha_state` as last stored: a new master's engine resumes from it
    /// (which VMs HA was restoring, which it gave up on, which are frozen).
    pub ha_state: Option<HaState>,
}

impl VmView {
    /// Protected: `ha_always_run` and priority `restart`.
    #[must_use]
    pub fn protected(&self) -> bool {
        is_protected(self.priority, self.always_run)
    }
}

/// The pool as HA sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolView {
    /// `pool.ha_enabled`.
    pub ha_enabled: bool,
    /// `pool.ha_reboot_vm_on_internal_shutdown`.
    pub reboot_on_internal_shutdown: bool,
    /// `pool.ha_host_failures_to_tolerate`.
    pub failures_to_tolerate: i64,
    /// `pool.ha_plan_exists_for`.
    pub plan_exists_for: i64,
    pub hosts: Vec<HostView>,
    pub vms: Vec<VmView>,
}

fn uuid_of(db: &Database, class: Class, r: Ref) -> Option<Uuid> {
    Uuid::parse_str(db.get(class, r)?.uuid()).ok()
}

fn field(db: &Database, class: Class, r: Ref, name: &str) -> Value {
    db.field(class, r, name).unwrap_or(Value::Void)
}

fn int(db: &Database, class: Class, r: Ref, name: &str) -> i64 {
    field(db, class, r, name).as_int().unwrap_or(0)
}

fn flag(db: &Database, class: Class, r: Ref, name: &str) -> bool {
    field(db, class, r, name).as_bool().unwrap_or(false)
}

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    field(db, class, r, name)
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn bytes(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn host_ref_uuid(db: &Database, class: Class, r: Ref, name: &str) -> Option<Uuid> {
    let h = field(db, class, r, name).as_ref()?;
    uuid_of(db, Class::Host, h)
}

/// The pool object (the database has one).
#[must_use]
pub fn pool_ref(db: &Database) -> Option<Ref> {
    db.objects(Class::Pool).map(|(r, _)| r).next()
}

fn in_maintenance(db: &Database, host: Ref) -> bool {
    other_config_flag(db, Class::Host, host, MAINTENANCE_KEY)
}

/// `other_config:<key>` is `true`.
pub(crate) fn other_config_flag(db: &Database, class: Class, r: Ref, key: &str) -> bool {
    match field(db, class, r, "other_config") {
        Value::Map(pairs) => pairs
            .iter()
            .any(|(k, v)| k.to_wire() == key && v.as_str() == Some("true")),
        _ => false,
    }
}

/// The priority stored in `VM.ha_restart_priority`.
#[must_use]
pub fn priority_of(text: &str) -> RestartPriority {
    match text {
        "restart" => RestartPriority::Restart,
        "best-effort" => RestartPriority::BestEffort,
        _ => RestartPriority::Unprotected,
    }
}

impl PoolView {
    /// The view of the database as it is. A host whose metrics say it is
    /// not live is taken as fenced (the agent marks a host dead only once
    /// `xhad` proved it fenced), unless it excluded itself (a clean
    /// shutdown or reboot, `translate::EXCLUDED_KEY`): then it is lost, not
    /// failed.
    #[must_use]
    pub fn from_db(db: &Database) -> PoolView {
        let pool = pool_ref(db).unwrap_or(Ref::NULL);
        let hosts = db
            .objects(Class::Host)
            .filter_map(|(h, _)| {
                let metrics = field(db, Class::Host, h, "metrics")
                    .as_ref()
                    .unwrap_or(Ref::NULL);
                let live = db.get(Class::HostMetrics, metrics).is_none()
                    || flag(db, Class::HostMetrics, metrics, "live");
                let excluded = crate::ha_link::translate::is_excluded(db, metrics);
                Some(HostView {
                    uuid: uuid_of(db, Class::Host, h)?,
                    name: text(db, Class::Host, h, "name_label"),
                    memory_total: bytes(int(db, Class::HostMetrics, metrics, "memory_total")),
                    memory_overhead: bytes(int(db, Class::Host, h, "memory_overhead")),
                    enabled: flag(db, Class::Host, h, "enabled"),
                    maintenance: in_maintenance(db, h),
                    liveness: if live {
                        Liveness::Live
                    } else if excluded {
                        Liveness::Lost
                    } else {
                        Liveness::Fenced
                    },
                })
            })
            .collect();
        let vms = db
            .objects(Class::Vm)
            .filter(|(v, _)| {
                !flag(db, Class::Vm, *v, "is_a_template")
                    && !flag(db, Class::Vm, *v, "is_a_snapshot")
                    && !flag(db, Class::Vm, *v, "is_control_domain")
            })
            .filter_map(|(v, _)| {
                let power = text(db, Class::Vm, v, "power_state");
                let running = power == "Running" || power == "Paused";
                Some(VmView {
                    uuid: uuid_of(db, Class::Vm, v)?,
                    name: text(db, Class::Vm, v, "name_label"),
                    memory: bytes(int(db, Class::Vm, v, "memory_static_max"))
                        .saturating_add(bytes(int(db, Class::Vm, v, "memory_overhead"))),
                    priority: priority_of(&text(db, Class::Vm, v, "ha_restart_priority")),
                    always_run: flag(db, Class::Vm, v, "ha_always_run"),
                    order: int(db, Class::Vm, v, "order"),
                    start_delay_s: bytes(int(db, Class::Vm, v, "start_delay")),
                    running,
                    resident_on: running
                        .then(|| host_ref_uuid(db, Class::Vm, v, "resident_on"))
                        .flatten(),
                    affinity: host_ref_uuid(db, Class::Vm, v, "affinity"),
                    failback: other_config_flag(db, Class::Vm, v, FAILBACK_KEY),
                    scheduled_on: (!running)
                        .then(|| host_ref_uuid(db, Class::Vm, v, "scheduled_to_be_resident_on"))
                        .flatten(),
                    ha_state: HaState::parse(&text(db, Class::Vm, v, "ha_state")),
                })
            })
            .collect();
        PoolView {
            ha_enabled: flag(db, Class::Pool, pool, "ha_enabled"),
            reboot_on_internal_shutdown: db
                .field(Class::Pool, pool, "ha_reboot_vm_on_internal_shutdown")
                .and_then(|v| v.as_bool())
                .unwrap_or(true),
            failures_to_tolerate: int(db, Class::Pool, pool, "ha_host_failures_to_tolerate"),
            plan_exists_for: int(db, Class::Pool, pool, "ha_plan_exists_for"),
            hosts,
            vms,
        }
    }

    #[must_use]
    pub fn host(&self, uuid: Uuid) -> Option<&HostView> {
        self.hosts.iter().find(|h| h.uuid == uuid)
    }

    pub fn host_mut(&mut self, uuid: Uuid) -> Option<&mut HostView> {
        self.hosts.iter_mut().find(|h| h.uuid == uuid)
    }

    #[must_use]
    pub fn vm(&self, uuid: Uuid) -> Option<&VmView> {
        self.vms.iter().find(|v| v.uuid == uuid)
    }

    pub fn vm_mut(&mut self, uuid: Uuid) -> Option<&mut VmView> {
        self.vms.iter_mut().find(|v| v.uuid == uuid)
    }

    /// The planner's pool. `placed_on` says where a VM counts as running for
    /// planning (`Some(Some(h))`: on `h`; `Some(None)`: running nowhere, so
    /// the plan must place it; `None`: not running); the default is the
    /// view's own power state and residence.
    ///
    /// A lost (not yet fenced) host stays live for the planner but takes
    /// no restarts: its VMs may still run, so they must not be placed
    /// elsewhere. A host in maintenance takes no restarts either.
    #[must_use]
    pub fn planning_pool(
        &self,
        placed_on: impl Fn(&VmView) -> Option<Option<Uuid>>,
        priority: impl Fn(&VmView) -> RestartPriority,
    ) -> model::Pool {
        model::Pool {
            ha_host_failures_to_tolerate: u32::try_from(self.failures_to_tolerate).unwrap_or(0),
            hosts: self
                .hosts
                .iter()
                .map(|h| model::Host {
                    uuid: h.uuid,
                    name: h.name.clone(),
                    memory_total: h.memory_total,
                    memory_overhead: h.memory_overhead,
                    enabled: h.enabled && !h.maintenance && h.liveness == Liveness::Live,
                    live: h.liveness != Liveness::Fenced,
                })
                .collect(),
            vms: self
                .vms
                .iter()
                .map(|v| {
                    let placed = placed_on(v);
                    model::Vm {
                        uuid: v.uuid,
                        name: v.name.clone(),
                        memory: v.memory,
                        memory_overhead: 0,
                        priority: priority(v),
                        order: v.order,
                        power_state: if placed.is_some() {
                            PowerState::Running
                        } else {
                            PowerState::Halted
                        },
                        resident_on: placed.flatten(),
                        agile: true,
                        affinity: v.affinity,
                    }
                })
                .collect(),
        }
    }

    /// The planner's pool as the database stands: running VMs where they
    /// run; protected VMs (`ha_always_run` and `restart`) as `restart`,
    /// best-effort as `best-effort`, the rest unprotected.
    #[must_use]
    pub fn live_pool(&self) -> model::Pool {
        self.planning_pool(
            |v| v.running.then_some(v.resident_on),
            |v| match v.priority {
                RestartPriority::Restart if !v.always_run => RestartPriority::Unprotected,
                p => p,
            },
        )
    }
}
