//! `pool.enable_ha` and `pool.disable_ha`: the pure part (docs/ha-enable.md).
//!
//! [`enable`] and [`disable`] check the call against the database and
//! return the checked request as an [`Effect`]; nothing is changed by a
//! refused call. The agent then does the I/O (`ha_link`, `server::ha_ops`)
//! and commits [`enabled_changes`] / [`disabled_changes`], which are pure
//! functions of the database, the request and what the I/O created.
//!
//! Checks of `enable`, in order: `HA_IS_ENABLED []`; every host live
//! (`HOST_OFFLINE [host]`); at least one heartbeat SR
//! (`CANNOT_CREATE_STATE_FILE []`), at most `MAX_STATEFILES`; each one a
//! known SR (`HANDLE_INVALID`), shared
//! (`HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED [sr]`) and of type `file` or
//! `block` (`CANNOT_CREATE_STATE_FILE []` for another type; on a block SR
//! the statefile and metadata volume are regions of the device); `configuration` holds only `timeout`, a whole number of
//! seconds within xha's range (`INVALID_VALUE ["configuration:timeout";
//! v]`). The timeout defaults to `pool.other_config:default_ha_timeout`,
//! then to 60 s (xapi's default). Whether the SRs are reachable is checked
//! by the agent before it creates anything.

use std::path::PathBuf;

use uuid::Uuid;

use crate::db::schema::STRING_MAP;
use crate::db::{Change, Class, Database};
use crate::value::{Key, Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::{ApiError, Caller, Effect, Outcome};

/// xapi's default HA timeout, when neither the call nor the pool names one.
pub const DEFAULT_TIMEOUT_S: u64 = 60;
/// The `configuration` keys `enable_ha` accepts.
pub const CONFIGURATION_KEYS: &[&str] = &["timeout"];
/// The cluster stack recorded in `pool.ha_cluster_stack`.
pub const CLUSTER_STACK: &str = "xhad";
/// Most heartbeat SRs (xhad's limit on statefiles).
pub const MAX_STATEFILES: usize = xha_core::node::MAX_STATEFILES;
/// The body of the pool-wide `HA_STATEFILE_LOST` message (xapi's).
pub const STATEFILE_LOST_BODY: &str = "All live servers have lost access to the HA statefile";

/// One heartbeat SR of a checked enable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatSr {
    pub sr: Ref,
    pub uuid: String,
    /// `device_config:path` of the `file` SR, or `device_config:device`
    /// of the `block` SR.
    pub path: PathBuf,
    /// blocksr: a `block` SR: the statefile and the metadata volume are
    /// regions of the device `path` (`ha_link::regions`).
    pub block: bool,
}

/// One host of the pool, as the enable needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaHost {
    pub host: Ref,
    pub uuid: Uuid,
    /// `host.address`.
    pub address: String,
}

/// A checked `pool.enable_ha`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnableRequest {
    pub pool: Ref,
    /// In the order given; the first also holds the metadata volume.
    pub srs: Vec<HeartbeatSr>,
    /// The base timeout T, seconds.
    pub timeout_s: u64,
    /// Every host, sorted by UUID (xhad's index order).
    pub hosts: Vec<HaHost>,
}

/// A checked `pool.disable_ha`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisableRequest {
    pub pool: Ref,
}

/// The files an enable created, as recorded in the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedFiles {
    pub generation: Uuid,
    /// Per heartbeat SR, the statefile's path (in the order of the request).
    pub statefiles: Vec<PathBuf>,
    /// The metadata volume on the first SR.
    pub metadata: PathBuf,
    pub statefile_bytes: i64,
    pub metadata_bytes: i64,
    /// blocksr: per statefile (same index), its region `(offset, size)`
    /// when it is a volume of a block SR; missing entries are files.
    pub statefile_regions: Vec<Option<(u64, u64)>>,
    /// blocksr: the metadata volume's region, on a block SR.
    pub metadata_region: Option<(u64, u64)>,
}

/// The one pool.
pub fn the_pool(db: &Database) -> Result<Ref, ApiError> {
    db.objects(Class::Pool)
        .map(|(r, _)| r)
        .next()
        .ok_or_else(|| ApiError::internal("the database holds no pool"))
}

fn text(db: &Database, class: Class, r: Ref, field: &str) -> String {
    match db.field(class, r, field) {
        Some(Value::String(s)) => s,
        _ => String::new(),
    }
}

fn map_get(db: &Database, class: Class, r: Ref, field: &str, key: &str) -> Option<String> {
    match db.field(class, r, field) {
        Some(Value::Map(m)) => m.iter().find_map(|(k, v)| match (k, v) {
            (Key::String(k), Value::String(v)) if k == key => Some(v.clone()),
            _ => None,
        }),
        _ => None,
    }
}

/// Whether HA is enabled on the pool.
#[must_use]
pub fn is_enabled(db: &Database, pool: Ref) -> bool {
    db.field(Class::Pool, pool, "ha_enabled") == Some(Value::Bool(true))
}

fn parse_timeout(field: &str, v: &str) -> Result<u64, ApiError> {
    let min = xha_core::timeouts::MIN_BASE.as_secs();
    let max = xha_core::timeouts::MAX_BASE.as_secs();
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|t| (min..=max).contains(t))
        .ok_or_else(|| ApiError::invalid_value(field, v))
}

/// Every host with its liveness; `HOST_OFFLINE [host]` for the first one
/// not live.
fn live_hosts(db: &Database) -> Result<Vec<HaHost>, ApiError> {
    let mut hosts = Vec::new();
    for (host, _) in db.objects(Class::Host) {
        let metrics = db
            .field(Class::Host, host, "metrics")
            .and_then(|v| v.as_ref())
            .unwrap_or(Ref::NULL);
        let live = db.field(Class::HostMetrics, metrics, "live") == Some(Value::Bool(true));
        if !live {
            return Err(ApiError::new("HOST_OFFLINE", [host.to_string()]));
        }
        let uuid_text = text(db, Class::Host, host, "uuid");
        let uuid = Uuid::parse_str(&uuid_text)
            .map_err(|_| ApiError::internal(&format!("host {host} has uuid {uuid_text:?}")))?;
        hosts.push(HaHost {
            host,
            uuid,
            address: text(db, Class::Host, host, "address"),
        });
    }
    hosts.sort_by_key(|h| h.uuid);
    Ok(hosts)
}

/// Checks `pool.enable_ha(heartbeat_srs, configuration)`.
pub fn enable(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let request = check_enable(db, args)?;
    Ok(Outcome {
        effects: vec![Effect::EnableHa(request)],
        ..Outcome::value(Value::Void)
    })
}

/// The checks of [`enable`] (the agent runs them again just before it
/// commits: the database may have changed while `xhad` started).
pub fn check_enable(db: &Database, args: &[Value]) -> Result<EnableRequest, ApiError> {
    let pool = the_pool(db)?;
    if is_enabled(db, pool) {
        return Err(ApiError::ha_is_enabled());
    }
    let hosts = live_hosts(db)?;
    let srs = match &args[0] {
        Value::Set(items) => items.clone(),
        _ => return Err(ApiError::field_type_error("heartbeat_srs")),
    };
    if srs.is_empty() {
        return Err(ApiError::new(
            "CANNOT_CREATE_STATE_FILE",
            Vec::<String>::new(),
        ));
    }
    if srs.len() > MAX_STATEFILES {
        return Err(ApiError::invalid_value(
            "heartbeat_srs",
            &format!("{} SRs (at most {MAX_STATEFILES})", srs.len()),
        ));
    }
    let mut checked: Vec<HeartbeatSr> = Vec::new();
    for item in &srs {
        let sr = coerce::object(db, Class::Sr, "heartbeat_srs", item)?;
        if checked.iter().any(|s| s.sr == sr) {
            return Err(ApiError::invalid_value("heartbeat_srs", &sr.to_string()));
        }
        if db.field(Class::Sr, sr, "shared") != Some(Value::Bool(true)) {
            return Err(ApiError::new(
                "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED",
                [sr.to_string()],
            ));
        }
        let block = text(db, Class::Sr, sr, "type") == "block";
        let key = if block { "device" } else { "path" };
        let path = map_get(db, Class::Sr, sr, "device_config", key);
        let sr_type = text(db, Class::Sr, sr, "type");
        let (true, Some(path)) = (sr_type == "file" || block, path) else {
            return Err(ApiError::new(
                "CANNOT_CREATE_STATE_FILE",
                Vec::<String>::new(),
            ));
        };
        checked.push(HeartbeatSr {
            sr,
            uuid: text(db, Class::Sr, sr, "uuid"),
            path: PathBuf::from(path),
            block,
        });
    }
    let configuration = coerce::coerce(&STRING_MAP, "configuration", &args[1])?;
    let mut timeout_s = None;
    if let Value::Map(pairs) = &configuration {
        for (k, v) in pairs {
            let key = k.to_wire();
            if !CONFIGURATION_KEYS.contains(&key.as_str()) {
                return Err(ApiError::invalid_value(
                    &format!("configuration:{key}"),
                    &to_text(v),
                ));
            }
            timeout_s = Some(parse_timeout("configuration:timeout", &to_text(v))?);
        }
    }
    let timeout_s = match timeout_s {
        Some(t) => t,
        None => match map_get(db, Class::Pool, pool, "other_config", "default_ha_timeout") {
            Some(v) => parse_timeout("other_config:default_ha_timeout", &v)?,
            None => DEFAULT_TIMEOUT_S,
        },
    };
    Ok(EnableRequest {
        pool,
        srs: checked,
        timeout_s,
        hosts,
    })
}

/// What an enable records: a VDI per statefile (`ha_statefile`) and one for
/// the metadata volume (`redo_log`), and the pool's HA fields.
#[must_use]
pub fn enabled_changes(
    db: &Database,
    caller: &Caller,
    req: &EnableRequest,
    files: &CreatedFiles,
) -> Vec<Change> {
    let mut fresh = Fresh::new(db, caller);
    let mut changes = Vec::new();
    let generation = files.generation.hyphenated().to_string();
    let mut vdi =
        |sr: Ref, ty: &str, label: &str, path: &PathBuf, size: i64, region: Option<(u64, u64)>| {
            let r = fresh.r#ref();
            // blocksr: a region records where it is, as a block SR's VDIs do.
            let sm_config = match region {
                Some((offset, len)) => Value::string_map([
                    (super::vdi_region::REGION_OFFSET_KEY, offset.to_string()),
                    (super::vdi_region::REGION_SIZE_KEY, len.to_string()),
                ]),
                None => Value::Map(Vec::new()),
            };
            changes.push(Change::Create {
                class: Class::Vdi,
                r#ref: r,
                fields: vec![
                    ("uuid".into(), Value::String(fresh.uuid())),
                    ("name_label".into(), Value::String(label.into())),
                    ("SR".into(), Value::Ref(sr)),
                    ("virtual_size".into(), Value::Int(size)),
                    ("physical_utilisation".into(), Value::Int(size)),
                    ("type".into(), Value::Enum(ty.into())),
                    ("sharable".into(), Value::Bool(true)),
                    ("location".into(), Value::String(path.display().to_string())),
                    (
                        "other_config".into(),
                        Value::string_map([("ha_generation", generation.as_str())]),
                    ),
                    ("sm_config".into(), sm_config),
                ],
            });
            r
        };
    let statefiles: Vec<Ref> = req
        .srs
        .iter()
        .zip(&files.statefiles)
        .enumerate()
        .map(|(i, (sr, path))| {
            vdi(
                sr.sr,
                "ha_statefile",
                "Statefile for HA",
                path,
                files.statefile_bytes,
                files.statefile_regions.get(i).copied().flatten(),
            )
        })
        .collect();
    if let Some(first) = req.srs.first() {
        vdi(
            first.sr,
            "redo_log",
            "Metadata for HA",
            &files.metadata,
            files.metadata_bytes,
            files.metadata_region,
        );
    }
    let statefile_set = Value::string_set(statefiles.iter().map(ToString::to_string));
    let set = |f: &str, v: Value| Change::set(Class::Pool, req.pool, f, v);
    changes.extend([
        set("ha_enabled", Value::Bool(true)),
        set("ha_statefiles", statefile_set),
        set(
            "ha_configuration",
            Value::string_map([("timeout", req.timeout_s.to_string())]),
        ),
        set("ha_cluster_stack", Value::String(CLUSTER_STACK.into())),
        set("ha_plan_exists_for", Value::Int(0)),
        set("ha_generation", Value::String(generation)),
    ]);
    changes
}

/// Checks `pool.disable_ha()`: `HA_NOT_ENABLED []` when off.
pub fn disable(db: &Database) -> Result<Outcome, ApiError> {
    let request = check_disable(db)?;
    Ok(Outcome {
        effects: vec![Effect::DisableHa(request)],
        ..Outcome::value(Value::Void)
    })
}

/// The check of [`disable`].
pub fn check_disable(db: &Database) -> Result<DisableRequest, ApiError> {
    let pool = the_pool(db)?;
    if !is_enabled(db, pool) {
        return Err(ApiError::new("HA_NOT_ENABLED", Vec::<String>::new()));
    }
    Ok(DisableRequest { pool })
}

/// The VDIs an enable created: those whose `other_config:ha_generation` is
/// the pool's HA generation.
#[must_use]
pub fn ha_vdis(db: &Database, pool: Ref) -> Vec<Ref> {
    let generation = text(db, Class::Pool, pool, "ha_generation");
    if generation.is_empty() {
        return Vec::new();
    }
    db.objects(Class::Vdi)
        .map(|(r, _)| r)
        .filter(|&r| {
            map_get(db, Class::Vdi, r, "other_config", "ha_generation").as_deref()
                == Some(generation.as_str())
        })
        .collect()
}

/// What a disable records: HA off, its VDIs gone, every field `xhad` fed
/// back to its default, and every host live (without HA the agent does not
/// judge liveness).
#[must_use]
pub fn disabled_changes(db: &Database, req: &DisableRequest) -> Vec<Change> {
    let set = |f: &str, v: Value| Change::set(Class::Pool, req.pool, f, v);
    let mut changes: Vec<Change> = ha_vdis(db, req.pool)
        .into_iter()
        .map(|r| Change::Delete {
            class: Class::Vdi,
            r#ref: r,
        })
        .collect();
    changes.extend([
        set("ha_enabled", Value::Bool(false)),
        set("ha_statefiles", Value::Set(Vec::new())),
        set("ha_configuration", Value::Map(Vec::new())),
        set("ha_cluster_stack", Value::String(String::new())),
        set("ha_plan_exists_for", Value::Int(0)),
        set("ha_generation", Value::String(String::new())),
        set("ha_master", Value::Ref(Ref::NULL)),
        set("ha_master_epoch", Value::Int(0)),
        set("ha_warnings", Value::Set(Vec::new())),
        set("ha_statefile_lost", Value::Bool(false)),
    ]);
    for (host, _) in db.objects(Class::Host) {
        changes.push(Change::set(
            Class::Host,
            host,
            "ha_statefiles",
            Value::Set(Vec::new()),
        ));
        changes.push(Change::set(
            Class::Host,
            host,
            "ha_network_peers",
            Value::Set(Vec::new()),
        ));
        if let Some(Value::Ref(m)) = db.field(Class::Host, host, "metrics")
            && db.get(Class::HostMetrics, m).is_some()
        {
            changes.push(Change::set(
                Class::HostMetrics,
                m,
                "live",
                Value::Bool(true),
            ));
        }
    }
    changes
}

#[cfg(test)]
mod tests;
