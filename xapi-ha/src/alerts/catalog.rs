//! Every message the pool raises, with xapi's name, priority, class and
//! body (`../shared/reference/xenapi.md` §4.3, §4.4, §4.8, §4.10), plus
//! ours. Other parts of the agent raise messages only through here:
//! build an [`Alert`] with one of the functions below and turn it into the
//! database change with [`raise`] (pure: the time and the identity seed are
//! the caller's).

use uuid::Uuid;

use crate::api::Caller;
use crate::api::ids::Fresh;
use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref, Value};

/// One message to raise: what `message.create` takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub name: String,
    /// 1 = most severe ... 5 = informational.
    pub priority: i64,
    /// The class of the object the message is about (`Host`, `VM`, `Pool`).
    pub cls: String,
    pub obj_uuid: String,
    pub body: String,
}

/// Message names (xapi's `api_messages.ml`, and ours at the end).
pub mod names {
    pub const HA_HOST_FAILED: &str = "HA_HOST_FAILED";
    pub const HA_HOST_WAS_FENCED: &str = "HA_HOST_WAS_FENCED";
    pub const HA_PROTECTED_VM_RESTART_FAILED: &str = "HA_PROTECTED_VM_RESTART_FAILED";
    pub const HA_POOL_OVERCOMMITTED: &str = "HA_POOL_OVERCOMMITTED";
    pub const HA_POOL_DROP_IN_PLAN_EXISTS_FOR: &str = "HA_POOL_DROP_IN_PLAN_EXISTS_FOR";
    pub const HA_STATEFILE_LOST: &str = "HA_STATEFILE_LOST";
    pub const HA_NETWORK_BONDING_ERROR: &str = "HA_NETWORK_BONDING_ERROR";
    pub const POOL_MASTER_TRANSITION: &str = "POOL_MASTER_TRANSITION";
    pub const METADATA_LUN_BROKEN: &str = "METADATA_LUN_BROKEN";
    pub const METADATA_LUN_HEALTHY: &str = "METADATA_LUN_HEALTHY";
    pub const VM_STARTED: &str = "VM_STARTED";
    pub const VM_SHUTDOWN: &str = "VM_SHUTDOWN";
    /// Ours: why a host fenced itself, from `xhad`'s fence record.
    pub const HA_HOST_FENCE_REASON: &str = "HA_HOST_FENCE_REASON";
    /// Ours: a mail the SMTP server refused for good (5xx) was dropped.
    pub const MAIL_DELIVERY_FAILED: &str = "MAIL_DELIVERY_FAILED";
    /// Ours: the message `pool.send_test_email` sends.
    pub const MAIL_TEST: &str = "MAIL_TEST";
}

/// Priorities and classes by name: `(name, priority, class)`.
pub const CATALOG: &[(&str, i64, &str)] = &[
    (names::HA_HOST_FAILED, 3, "Host"),
    (names::HA_HOST_WAS_FENCED, 4, "Host"),
    (names::HA_PROTECTED_VM_RESTART_FAILED, 2, "VM"),
    (names::HA_POOL_OVERCOMMITTED, 3, "Pool"),
    (names::HA_POOL_DROP_IN_PLAN_EXISTS_FOR, 3, "Pool"),
    (names::HA_STATEFILE_LOST, 2, "Host"),
    (names::HA_NETWORK_BONDING_ERROR, 3, "Host"),
    (names::POOL_MASTER_TRANSITION, 4, "Host"),
    (names::METADATA_LUN_BROKEN, 3, "Pool"),
    (names::METADATA_LUN_HEALTHY, 4, "Pool"),
    (names::VM_STARTED, 5, "VM"),
    (names::VM_SHUTDOWN, 5, "VM"),
    (names::HA_HOST_FENCE_REASON, 3, "Host"),
    (names::MAIL_DELIVERY_FAILED, 3, "Pool"),
    (names::MAIL_TEST, 5, "Pool"),
];

/// Messages that are never mailed: mailing them could loop (a refused
/// mail's report would be refused again).
pub const NOT_MAILED: &[&str] = &[names::MAIL_DELIVERY_FAILED];

fn alert(name: &'static str, obj_uuid: String, body: String) -> Alert {
    let (_, priority, cls) = CATALOG
        .iter()
        .find(|(n, ..)| *n == name)
        .copied()
        .unwrap_or((name, 5, "Pool"));
    Alert {
        name: name.to_owned(),
        priority,
        cls: cls.to_owned(),
        obj_uuid,
        body,
    }
}

fn text(db: &Database, class: Class, r: Ref, field: &str) -> String {
    db.field(class, r, field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn uuid_of(db: &Database, class: Class, r: Ref) -> String {
    text(db, class, r, "uuid")
}

/// The pool object (the first; a pool has one).
fn pool(db: &Database) -> Option<Ref> {
    db.objects(Class::Pool).map(|(r, _)| r).next()
}

/// The pool's name: its `name_label`, else the master's (as mail-alarm).
#[must_use]
pub fn pool_name(db: &Database) -> String {
    let Some(p) = pool(db) else {
        return String::new();
    };
    let label = text(db, Class::Pool, p, "name_label");
    if !label.is_empty() {
        return label;
    }
    match db.field(Class::Pool, p, "master") {
        Some(Value::Ref(m)) => text(db, Class::Host, m, "name_label"),
        _ => String::new(),
    }
}

fn pool_uuid(db: &Database) -> String {
    pool(db).map_or_else(String::new, |p| uuid_of(db, Class::Pool, p))
}

/// `HA_HOST_FAILED`: the live→dead transition of `host` (§4.3).
#[must_use]
pub fn host_failed(db: &Database, host: Ref) -> Alert {
    let body = format!(
        "Server '{}' has failed",
        text(db, Class::Host, host, "name_label")
    );
    alert(names::HA_HOST_FAILED, uuid_of(db, Class::Host, host), body)
}

/// `HA_HOST_WAS_FENCED`: on the first boot after a fence (body empty).
#[must_use]
pub fn host_was_fenced(db: &Database, host: Ref) -> Alert {
    alert(
        names::HA_HOST_WAS_FENCED,
        uuid_of(db, Class::Host, host),
        String::new(),
    )
}

/// Ours, `HA_HOST_FENCE_REASON`: which rule fenced `host` and what it saw,
/// from `xhad`'s fence record (`reason` is the record's reason line).
#[must_use]
pub fn host_fence_reason(db: &Database, host: Ref, reason: &str) -> Alert {
    let body = format!(
        "Server '{}' fenced itself: {}",
        text(db, Class::Host, host, "name_label"),
        reason.trim()
    );
    alert(
        names::HA_HOST_FENCE_REASON,
        uuid_of(db, Class::Host, host),
        body,
    )
}

/// `HA_PROTECTED_VM_RESTART_FAILED` (body empty, §4.3 step 8).
#[must_use]
pub fn protected_vm_restart_failed(db: &Database, vm: Ref) -> Alert {
    alert(
        names::HA_PROTECTED_VM_RESTART_FAILED,
        uuid_of(db, Class::Vm, vm),
        String::new(),
    )
}

/// `HA_POOL_OVERCOMMITTED` on the false→true transition (§4.4).
#[must_use]
pub fn pool_overcommitted(db: &Database) -> Alert {
    let label = pool(db).map_or_else(String::new, |p| text(db, Class::Pool, p, "name_label"));
    let body = format!(
        "The failover tolerance for pool '{label}' has dropped and the initially specified number of host failures to tolerate can no longer be guaranteed"
    );
    alert(names::HA_POOL_OVERCOMMITTED, pool_uuid(db), body)
}

/// `HA_POOL_DROP_IN_PLAN_EXISTS_FOR`: the body is the new number (§4.4).
#[must_use]
pub fn pool_drop_in_plan_exists_for(db: &Database, n: i64) -> Alert {
    alert(
        names::HA_POOL_DROP_IN_PLAN_EXISTS_FOR,
        pool_uuid(db),
        n.to_string(),
    )
}

/// `HA_STATEFILE_LOST`: every live host lost the statefile; raised by the
/// master about itself (§4.10).
#[must_use]
pub fn statefile_lost(db: &Database, master: Ref) -> Alert {
    alert(
        names::HA_STATEFILE_LOST,
        uuid_of(db, Class::Host, master),
        "All live servers have lost access to the HA statefile".into(),
    )
}

/// `HA_NETWORK_BONDING_ERROR` about `host`'s heartbeat bond (§4.10).
#[must_use]
pub fn network_bonding_error(db: &Database, host: Ref) -> Alert {
    let uuid = uuid_of(db, Class::Host, host);
    let body = format!(
        "The network bond used for transmitting HA heartbeat messages on host '{uuid}' has failed"
    );
    alert(names::HA_NETWORK_BONDING_ERROR, uuid, body)
}

/// `POOL_MASTER_TRANSITION`: `new_master` took over (body empty, §4.8).
#[must_use]
pub fn master_transition(db: &Database, new_master: Ref) -> Alert {
    alert(
        names::POOL_MASTER_TRANSITION,
        uuid_of(db, Class::Host, new_master),
        String::new(),
    )
}

/// `METADATA_LUN_BROKEN` / `METADATA_LUN_HEALTHY` for the redo log named
/// `log` (only raised when pool `other_config:metadata_lun_alerts=true`,
/// see [`metadata_lun_alerts_on`]).
#[must_use]
pub fn metadata_lun(db: &Database, healthy: bool, log: &str) -> Alert {
    let name = if healthy {
        names::METADATA_LUN_HEALTHY
    } else {
        names::METADATA_LUN_BROKEN
    };
    alert(name, pool_uuid(db), format!("Redo log [{log}]"))
}

/// Whether the pool asks for the metadata-LUN alerts.
#[must_use]
pub fn metadata_lun_alerts_on(db: &Database) -> bool {
    crate::alerts::settings::pool_other_config(db)
        .iter()
        .any(|(k, v)| k == "metadata_lun_alerts" && v == "true")
}

/// `VM_STARTED` (as `VM.start` raises it; xenapi.md, VM.start):
/// `VM '<name>' (uuid: <uuid>) started on host: <host name> (uuid: <host uuid>)`.
#[must_use]
pub fn vm_started(db: &Database, vm: Ref, host: Ref) -> Alert {
    let body = format!(
        "VM '{}' (uuid: {}) started on host: {} (uuid: {})",
        text(db, Class::Vm, vm, "name_label"),
        uuid_of(db, Class::Vm, vm),
        text(db, Class::Host, host, "name_label"),
        uuid_of(db, Class::Host, host)
    );
    alert(names::VM_STARTED, uuid_of(db, Class::Vm, vm), body)
}

/// `VM_SHUTDOWN` (xenapi.md, VM.clean_shutdown): `VM '<name>' (uuid:
/// <uuid>) shutdown`.
#[must_use]
pub fn vm_shutdown(db: &Database, vm: Ref) -> Alert {
    let body = format!(
        "VM '{}' (uuid: {}) shutdown",
        text(db, Class::Vm, vm, "name_label"),
        uuid_of(db, Class::Vm, vm)
    );
    alert(names::VM_SHUTDOWN, uuid_of(db, Class::Vm, vm), body)
}

/// Ours, `MAIL_DELIVERY_FAILED`: the server refused a mail for good.
#[must_use]
pub fn mail_delivery_failed(db: &Database, subject: &str, to: &str, answer: &str) -> Alert {
    let body = format!(
        "The mail server refused the mail '{subject}' to {to} permanently and it was dropped: {answer}"
    );
    alert(names::MAIL_DELIVERY_FAILED, pool_uuid(db), body)
}

/// Ours, `MAIL_TEST`: what `pool.send_test_email` sends.
#[must_use]
pub fn mail_test(db: &Database) -> Alert {
    alert(
        names::MAIL_TEST,
        pool_uuid(db),
        "This is a test of the pool's email alerts.".into(),
    )
}

/// The change that creates the message for `alert` at `now`, its
/// reference and uuid derived from `seed` (fresh in `db`).
#[must_use]
pub fn raise(db: &Database, now: DateTime, seed: Uuid, alert: &Alert) -> Change {
    let caller = Caller {
        now,
        seed,
        this_host: Ref::NULL,
    };
    let mut fresh = Fresh::new(db, &caller);
    let r = fresh.r#ref();
    raise_as(r, fresh.uuid(), now, alert)
}

/// [`raise`] with the identities given (`message.create`, batches that
/// make several objects with one [`Fresh`]).
#[must_use]
pub fn raise_as(r: Ref, uuid: String, now: DateTime, alert: &Alert) -> Change {
    Change::Create {
        class: Class::Message,
        r#ref: r,
        fields: vec![
            ("uuid".into(), Value::String(uuid)),
            ("name".into(), Value::String(alert.name.clone())),
            ("priority".into(), Value::Int(alert.priority)),
            ("cls".into(), Value::Enum(alert.cls.clone())),
            ("obj_uuid".into(), Value::String(alert.obj_uuid.clone())),
            ("timestamp".into(), Value::DateTime(now)),
            ("body".into(), Value::String(alert.body.clone())),
        ],
    }
}

#[cfg(test)]
mod tests;
