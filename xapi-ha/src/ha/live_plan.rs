//! The failover plan of the live pool: a pure function of the database,
//! and the pool fields and messages that follow from it.
//!
//! The server calls [`follow_up`] after every commit that [`affects_plan`]
//! (VM start, stop, move, priority, memory; host enable, join, leave,
//! liveness; the target), never on a timer, so `ha_plan_exists_for` and
//! `ha_overcommitted` are current the moment the change is. xapi recomputes
//! on its 20 s monitor tick when it marked the plan out of date, and every
//! 30 minutes regardless.

use uuid::Uuid;

use crate::api::Caller;
use crate::api::ids::Fresh;
use crate::db::{Change, Class, Database};
use crate::planner;
use crate::value::Value;

use super::messages;
use super::view::{PoolView, pool_ref};

/// What the planner says of the live pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePlan {
    /// The most host failures every protected VM survives (-1: not even
    /// none, some protected VM has no place at all).
    pub max_host_failures: i64,
    /// Whether `max_host_failures` is proven exact (else a lower bound).
    pub exact: bool,
    /// `min(target, max_host_failures)`, at least 0: `ha_plan_exists_for`.
    pub plan_exists_for: i64,
    /// The target exceeds what the pool tolerates: `ha_overcommitted`.
    pub overcommitted: bool,
    /// A failure set one larger than tolerated that has no placement.
    pub limiting_failure_set: Vec<Uuid>,
}

/// The plan of a view (`PoolView::live_pool`).
#[must_use]
pub fn of_view(view: &PoolView) -> LivePlan {
    let result = planner::max_host_failures(&view.live_pool());
    let target = view.failures_to_tolerate;
    LivePlan {
        max_host_failures: result.max_host_failures,
        exact: result.exact,
        plan_exists_for: target.min(result.max_host_failures).max(0),
        overcommitted: target > result.max_host_failures,
        limiting_failure_set: result.limiting_failure_set,
    }
}

/// The plan of the database as it is.
#[must_use]
pub fn compute(db: &Database) -> LivePlan {
    of_view(&PoolView::from_db(db))
}

/// Fields whose change can move the plan, per class.
const PLAN_FIELDS: &[(Class, &[&str])] = &[
    (
        Class::Vm,
        &[
            "power_state",
            "resident_on",
            "ha_restart_priority",
            "ha_always_run",
            "memory_static_max",
            "memory_overhead",
            "affinity",
            "is_a_template",
        ],
    ),
    (
        Class::Host,
        &["enabled", "memory_overhead", "other_config", "metrics"],
    ),
    (Class::HostMetrics, &["live", "memory_total"]),
    (Class::Pool, &["ha_enabled", "ha_host_failures_to_tolerate"]),
];

/// Whether a committed batch can change the plan.
#[must_use]
pub fn affects_plan(changes: &[Change]) -> bool {
    changes.iter().any(|c| match c {
        Change::Create { class, .. } | Change::Delete { class, .. } => {
            matches!(class, Class::Vm | Class::Host | Class::HostMetrics)
        }
        Change::Modify { class, fields, .. } => PLAN_FIELDS.iter().any(|(c, names)| {
            c == class && fields.iter().any(|(f, _)| names.contains(&f.as_str()))
        }),
    })
}

/// The changes that bring the pool's plan fields up to date after a
/// commit, with xapi's messages: `HA_POOL_OVERCOMMITTED` on the
/// false-to-true edge of `ha_overcommitted`, `HA_POOL_DROP_IN_PLAN_EXISTS_FOR`
/// when `ha_plan_exists_for` drops. Nothing while HA is off.
#[must_use]
pub fn follow_up(db: &Database, caller: &Caller) -> Vec<Change> {
    let view = PoolView::from_db(db);
    if !view.ha_enabled {
        return Vec::new();
    }
    pool_changes(db, caller, &of_view(&view))
}

/// The pool field changes and messages that store `plan`.
#[must_use]
pub fn pool_changes(db: &Database, caller: &Caller, plan: &LivePlan) -> Vec<Change> {
    let Some(pool) = pool_ref(db) else {
        return Vec::new();
    };
    let was_for = db
        .field(Class::Pool, pool, "ha_plan_exists_for")
        .and_then(|v| v.as_int())
        .unwrap_or(0);
    let was_over = db
        .field(Class::Pool, pool, "ha_overcommitted")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let text = |name| {
        db.field(Class::Pool, pool, name)
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let mut fields = Vec::new();
    let mut out = Vec::new();
    let mut fresh = Fresh::new(db, caller);
    if plan.plan_exists_for != was_for {
        fields.push((
            "ha_plan_exists_for".to_owned(),
            Value::Int(plan.plan_exists_for),
        ));
        if plan.plan_exists_for < was_for {
            let m = messages::pool_drop_in_plan_exists_for(&text("uuid"), plan.plan_exists_for);
            out.push(m.to_change(caller, &mut fresh));
        }
    }
    if plan.overcommitted != was_over {
        fields.push((
            "ha_overcommitted".to_owned(),
            Value::Bool(plan.overcommitted),
        ));
        if plan.overcommitted {
            let m = messages::pool_overcommitted(&text("uuid"), &text("name_label"));
            out.push(m.to_change(caller, &mut fresh));
        }
    }
    if !fields.is_empty() {
        out.insert(
            0,
            Change::Modify {
                class: Class::Pool,
                r#ref: pool,
                fields,
            },
        );
    }
    out
}
