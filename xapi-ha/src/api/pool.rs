//! The pool calls (docs/pool.md): `pool.join` on the joining host,
//! `pool.admit` (ours) on the master for a joining host, `pool.eject`,
//! `pool.designate_new_master`. Pure: each checks the database and returns
//! the changes and the [`Effect`] the server performs over the network
//! (`server::membership`), with xapi's error names (`xapi_pool.ml`):
//!
//! | check | error |
//! | --- | --- |
//! | HA is on (this pool, or the pool to join) | `HA_IS_ENABLED []` |
//! | the joiner knows other hosts | `JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS []` |
//! | the joiner has a VM that is not Halted | `JOINING_HOST_CANNOT_HAVE_RUNNING_VMS []` |
//! | the joiner has a shared SR | `JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS []` |
//! | the joiner is the master itself | `OPERATION_NOT_ALLOWED ["Host cannot become slave of itself"]` |
//! | the joiner's uuid is in the pool already | `UUID_ALREADY_EXISTS [host; uuid]` |
//! | another agent version | `HOSTS_NOT_HOMOGENEOUS ["software version differs"]` |
//! | eject the master | `OPERATION_NOT_ALLOWED ["Cannot eject the pool master"]` |
//! | eject a host with a VM not Halted on it | `OPERATION_NOT_ALLOWED ["VM resident on host"]` |

use crate::db::schema::{Access, Ty};
use crate::db::{Change, Class, Database};
use crate::value::{Key, Ref, Value};

use super::bootstrap::{HostInfo, add_host};
use super::coerce::{self, to_text};
use super::{ApiError, Caller, Effect, Outcome};

/// The agent's version: hosts of one pool run the same one.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `host.other_config` key that holds the host's TLS certificate
/// SHA-256 fingerprint (written at every start; clients and the other hosts
/// of the pool pin it; docs/api.md, docs/pool.md).
pub const TLS_FINGERPRINT_KEY: &str = "tls_fingerprint";

/// The pool object (there is one).
#[must_use]
pub fn the_pool(db: &Database) -> Option<Ref> {
    db.objects(Class::Pool).map(|(r, _)| r).next()
}

/// The pool's master host.
#[must_use]
pub fn master(db: &Database) -> Option<Ref> {
    the_pool(db)
        .and_then(|p| db.field(Class::Pool, p, "master"))
        .and_then(|v| v.as_ref())
        .filter(|r| !r.is_null())
}

fn ha_enabled(db: &Database) -> bool {
    the_pool(db)
        .and_then(|p| db.field(Class::Pool, p, "ha_enabled"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    db.field(class, r, name)
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

fn not_halted(db: &Database, vm: Ref) -> bool {
    text(db, Class::Vm, vm, "power_state") != "Halted"
}

/// A host's TLS fingerprint as recorded in its `other_config`.
#[must_use]
pub fn host_fingerprint(db: &Database, host: Ref) -> Option<String> {
    match db.field(Class::Host, host, "other_config") {
        Some(Value::Map(m)) => m
            .iter()
            .find_map(|(k, v)| (*k == Key::String(TLS_FINGERPRINT_KEY.into())).then(|| to_text(v))),
        _ => None,
    }
}

/// `pool.join(master_address, master_username, master_password)` on the
/// joining host: its own checks, then [`Effect::JoinPool`].
pub fn join(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let master_address = coerce::string("master_address", &args[0])?;
    let username = coerce::string("master_username", &args[1])?;
    let password = coerce::string("master_password", &args[2])?;
    if master_address.trim().is_empty() || master_address.contains(char::is_whitespace) {
        return Err(ApiError::invalid_value("master_address", &master_address));
    }
    if ha_enabled(db) {
        return Err(ApiError::ha_is_enabled());
    }
    if db.count(Class::Host) > 1 {
        return Err(ApiError::new(
            "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS",
            Vec::<String>::new(),
        ));
    }
    if db.objects(Class::Vm).any(|(vm, _)| not_halted(db, vm)) {
        return Err(ApiError::new(
            "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS",
            Vec::<String>::new(),
        ));
    }
    let shared = db.objects(Class::Sr).any(|(sr, _)| {
        db.field(Class::Sr, sr, "shared")
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    });
    if shared {
        return Err(ApiError::new(
            "JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS",
            Vec::<String>::new(),
        ));
    }
    Ok(Outcome {
        effects: vec![Effect::JoinPool {
            master_address,
            username,
            password,
        }],
        ..Outcome::value(Value::Void)
    })
}

/// The record a joining host sends with `pool.admit`.
#[must_use]
pub fn admit_record(info: &HostInfo, tls_fingerprint: &str) -> Value {
    let s = |v: &str| Value::String(v.to_owned());
    Value::Map(vec![
        (Key::String("address".into()), s(&info.address)),
        (Key::String("hostname".into()), s(&info.hostname)),
        (
            Key::String("memory_overhead".into()),
            Value::Int(info.memory_overhead),
        ),
        (
            Key::String("memory_total".into()),
            Value::Int(info.memory_total),
        ),
        (Key::String("name_label".into()), s(&info.name_label)),
        (Key::String("software_version".into()), s(SOFTWARE_VERSION)),
        (Key::String("tls_fingerprint".into()), s(tls_fingerprint)),
        (Key::String("uuid".into()), s(&info.uuid)),
        (
            Key::String("vm_drivers".into()),
            Value::string_set(info.vm_drivers.clone()),
        ),
    ])
}

fn member<'a>(record: &'a [(Key, Value)], name: &str) -> Result<&'a Value, ApiError> {
    record
        .iter()
        .find_map(|(k, v)| (*k == Key::String(name.into())).then_some(v))
        .ok_or_else(|| ApiError::invalid_value(name, "missing from the host record"))
}

/// `pool.admit(host_record)` on the master (ours; a joining host calls it
/// with an administrator's session): checks the joiner and adds its host
/// and metrics records. The server adds the pool secret and the database
/// copy to the reply.
pub fn admit(db: &Database, caller: &Caller, arg: &Value) -> Result<Outcome, ApiError> {
    let Value::Map(record) = arg else {
        return Err(ApiError::field_type_error("host_record"));
    };
    let string = |name: &str| coerce::string(name, member(record, name)?);
    let int = |name: &str| match coerce::coerce(&Ty::Int, name, member(record, name)?)? {
        Value::Int(i) if i >= 0 => Ok(i),
        other => Err(ApiError::invalid_value(name, &to_text(&other))),
    };
    let uuid = string("uuid")?;
    if !crate::db::database::is_canonical_uuid(&uuid) {
        return Err(ApiError::invalid_value("uuid", &uuid));
    }
    let info = HostInfo {
        uuid: uuid.clone(),
        name_label: string("name_label")?,
        address: string("address")?,
        hostname: string("hostname")?,
        memory_total: int("memory_total")?,
        memory_overhead: int("memory_overhead")?,
        vm_drivers: coerce::strings("vm_drivers", member(record, "vm_drivers")?)?,
    };
    let fingerprint = string("tls_fingerprint")?;
    let version = string("software_version")?;
    if ha_enabled(db) {
        return Err(ApiError::ha_is_enabled());
    }
    if master(db).is_some_and(|m| text(db, Class::Host, m, "uuid") == uuid) {
        return Err(ApiError::operation_not_allowed(
            "Host cannot become slave of itself",
        ));
    }
    if db.by_uuid(&uuid).is_some() {
        return Err(ApiError::new(
            "UUID_ALREADY_EXISTS",
            ["host", uuid.as_str()],
        ));
    }
    if version != SOFTWARE_VERSION {
        return Err(ApiError::new(
            "HOSTS_NOT_HOMOGENEOUS",
            ["software version differs"],
        ));
    }
    if info.address.trim().is_empty() {
        return Err(ApiError::invalid_value("address", &info.address));
    }
    let (host, mut changes) = add_host(db, caller, &info);
    changes.push(Change::set(
        Class::Host,
        host,
        "other_config",
        Value::Map(vec![(
            Key::String(TLS_FINGERPRINT_KEY.into()),
            Value::String(fingerprint),
        )]),
    ));
    // blocksr: the joiner's own halted VMs are kept (api::pool_import).
    let imported = super::pool_import::import_vms(db, caller, record, &changes)?;
    changes.extend(imported);
    Ok(Outcome {
        changes,
        ..Outcome::value(Value::Ref(host))
    })
}

/// The changes that remove `host` from the database: every stored
/// reference to it (a VM's `affinity`, a task's `resident_on`, ...) is
/// cleared, then the host and its metrics are deleted.
fn forget_host(db: &Database, host: Ref) -> Vec<Change> {
    let mut changes = Vec::new();
    for class in Class::ALL {
        for f in class.fields() {
            if f.ty != Ty::Ref(Class::Host) || matches!(f.access, Access::Derived(..)) {
                continue;
            }
            for (r, _) in db.objects(class) {
                if db.field(class, r, f.name).and_then(|v| v.as_ref()) == Some(host) {
                    changes.push(Change::set(class, r, f.name, Value::Ref(Ref::NULL)));
                }
            }
        }
    }
    let metrics = db
        .field(Class::Host, host, "metrics")
        .and_then(|v| v.as_ref())
        .filter(|r| !r.is_null());
    changes.push(Change::Delete {
        class: Class::Host,
        r#ref: host,
    });
    if let Some(m) = metrics {
        changes.push(Change::Delete {
            class: Class::HostMetrics,
            r#ref: m,
        });
    }
    changes
}

/// `pool.eject(host)` on the master: refused while HA is on, for the
/// master, and while a VM that is not Halted is resident on the host; the
/// host is told to forget the pool ([`Effect::EjectHost`]), then its
/// records go.
pub fn eject(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let host = coerce::object(db, Class::Host, "host", arg)?;
    if ha_enabled(db) {
        return Err(ApiError::ha_is_enabled());
    }
    if master(db) == Some(host) {
        return Err(ApiError::operation_not_allowed(
            "Cannot eject the pool master",
        ));
    }
    let resident = db.objects(Class::Vm).any(|(vm, _)| {
        db.field(Class::Vm, vm, "resident_on")
            .and_then(|v| v.as_ref())
            == Some(host)
            && not_halted(db, vm)
    });
    if resident {
        return Err(ApiError::operation_not_allowed("VM resident on host"));
    }
    Ok(Outcome {
        changes: forget_host(db, host),
        effects: vec![Effect::EjectHost { host }],
        ..Outcome::value(Value::Void)
    })
}

/// `pool.designate_new_master(host)` on the master: refused while HA is on;
/// the current master is a no-op; otherwise `pool.master` becomes `host`
/// and [`Effect::HandOverMaster`] hands the database over.
pub fn designate_new_master(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let host = coerce::object(db, Class::Host, "host", arg)?;
    if ha_enabled(db) {
        return Err(ApiError::ha_is_enabled());
    }
    if master(db) == Some(host) {
        return Ok(Outcome::value(Value::Void));
    }
    let pool = the_pool(db).ok_or_else(|| ApiError::internal("the database holds no pool"))?;
    Ok(Outcome {
        changes: vec![Change::set(Class::Pool, pool, "master", Value::Ref(host))],
        effects: vec![Effect::HandOverMaster { host }],
        ..Outcome::value(Value::Void)
    })
}

#[cfg(test)]
mod tests;
