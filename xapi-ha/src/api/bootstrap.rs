//! The changes that put hosts into a database: a fresh agent makes itself
//! the master of a pool of one ([`new_pool`]); the master adds a joining
//! host ([`add_host`]). Pure, like the handlers: the server commits them.

use crate::db::{Change, Class, Database};
use crate::value::{Ref, Value};

use super::Caller;
use super::ids::Fresh;

/// What the agent knows about a host from its configuration and `/proc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// The host's configured uuid.
    pub uuid: String,
    pub name_label: String,
    /// The address other hosts and clients use.
    pub address: String,
    pub hostname: String,
    /// Bytes.
    pub memory_total: i64,
    /// Bytes reserved for the host itself.
    pub memory_overhead: i64,
    /// The VM drivers the agent offers (`qemu`, `process`).
    pub vm_drivers: Vec<String>,
}

/// Adds a host and its metrics (live, all memory free). Returns the host's
/// reference and the changes.
pub fn add_host(db: &Database, caller: &Caller, info: &HostInfo) -> (Ref, Vec<Change>) {
    let mut fresh = Fresh::new(db, caller);
    let metrics = fresh.r#ref();
    let host = fresh.r#ref();
    let changes = vec![
        Change::Create {
            class: Class::HostMetrics,
            r#ref: metrics,
            fields: vec![
                ("uuid".into(), Value::String(fresh.uuid())),
                ("memory_total".into(), Value::Int(info.memory_total)),
                (
                    "memory_free".into(),
                    Value::Int(info.memory_total.saturating_sub(info.memory_overhead)),
                ),
                ("live".into(), Value::Bool(true)),
                ("last_updated".into(), Value::DateTime(caller.now)),
            ],
        },
        Change::Create {
            class: Class::Host,
            r#ref: host,
            fields: vec![
                ("uuid".into(), Value::String(info.uuid.clone())),
                ("name_label".into(), Value::String(info.name_label.clone())),
                ("address".into(), Value::String(info.address.clone())),
                ("hostname".into(), Value::String(info.hostname.clone())),
                ("memory_overhead".into(), Value::Int(info.memory_overhead)),
                ("metrics".into(), Value::Ref(metrics)),
                (
                    "vm_drivers".into(),
                    Value::string_set(info.vm_drivers.clone()),
                ),
            ],
        },
    ];
    (host, changes)
}

/// A pool of one: the host, its metrics and the pool with the host as
/// master. Returns the host's reference and the changes.
pub fn new_pool(db: &Database, caller: &Caller, info: &HostInfo) -> (Ref, Vec<Change>) {
    let (host, mut changes) = add_host(db, caller, info);
    // Distinct seed space from add_host's identities: derive from the host.
    let pool_caller = Caller {
        seed: uuid::Uuid::new_v5(&caller.seed, b"pool"),
        ..caller.clone()
    };
    let mut fresh = Fresh::new(db, &pool_caller);
    changes.push(Change::Create {
        class: Class::Pool,
        r#ref: fresh.r#ref(),
        fields: vec![
            ("uuid".into(), Value::String(fresh.uuid())),
            ("master".into(), Value::Ref(host)),
        ],
    });
    (host, changes)
}
