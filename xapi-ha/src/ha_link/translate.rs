//! `xhad`'s `watch` reports as database changes: a pure function of the
//! database and one report, so the agent commits exactly what changed the
//! moment the daemon reports it (it never polls), and the same report
//! twice changes nothing.
//!
//! What is written (docs/ha-enable.md, "Following xhad"):
//! - `host_metrics.live` of every host the report names (in this host's
//!   liveset or not), with `last_updated`, and `host_metrics.other_config`
//!   key [`EXCLUDED_KEY`] once a host excluded itself (`set-excluded`: a
//!   clean shutdown or reboot), kept while it is out of the liveset (HA
//!   does not count that as a failure) until it is live again without the
//!   flag, joined (its next incarnation starts without it);
//! - `host.ha_statefiles`: the pool's statefiles when the host reports
//!   reaching them, else empty; `host.ha_network_peers` of this host: the
//!   hosts it hears;
//! - `pool.ha_master` (the master-lock holder) and `pool.ha_master_epoch`;
//! - `pool.ha_warnings`: one `kind: message` line per current warning;
//! - this host's latencies in `host_metrics.ha_statefile_latency_ms` and
//!   `ha_heartbeat_latency_ms` (last measured; written with the other
//!   changes: `xhad` sends no event for a latency alone);
//! - `HA_STATEFILE_LOST` (priority 2, class Host, xapi's body) once, when
//!   every live host has lost the statefile; `pool.ha_statefile_lost`
//!   remembers it, so a restarted agent does not raise it again, and it is
//!   raised again after the statefile came back and was lost anew.

use uuid::Uuid;
use xha_control::LivesetReport;

use crate::api::ha_enable::STATEFILE_LOST_BODY;
use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Key, Ref, Value};

/// `host_metrics.other_config` key (ours): `true` from when the host
/// excluded itself before a clean shutdown or reboot until it is a joined
/// member of the liveset again (live, not starting, not excluded). `ha::view` reads it for a host out of the
/// liveset: such a host is lost, not failed (no
/// `HA_HOST_FAILED`, nothing restarted from it; its VMs were shut down
/// first).
pub const EXCLUDED_KEY: &str = "ha-excluded";

/// `other_config` of `metrics` with [`EXCLUDED_KEY`] set or removed.
fn excluded_config(db: &Database, metrics: Ref, excluded: bool) -> Value {
    let mut pairs: Vec<(Key, Value)> = match db.field(Class::HostMetrics, metrics, "other_config") {
        Some(Value::Map(pairs)) => pairs
            .into_iter()
            .filter(|(k, _)| k.to_wire() != EXCLUDED_KEY)
            .collect(),
        _ => Vec::new(),
    };
    if excluded {
        pairs.push((
            Key::String(EXCLUDED_KEY.into()),
            Value::String("true".into()),
        ));
    }
    Value::Map(pairs)
}

/// Whether host metrics `metrics` carry the [`EXCLUDED_KEY`] mark (what
/// this module writes and `ha::view` reads).
#[must_use]
pub fn is_excluded(db: &Database, metrics: Ref) -> bool {
    crate::ha::view::other_config_flag(db, Class::HostMetrics, metrics, EXCLUDED_KEY)
}

/// Priority of `HA_STATEFILE_LOST` (xapi's).
pub const STATEFILE_LOST_PRIORITY: i64 = 2;
/// The message name.
pub const STATEFILE_LOST: &str = "HA_STATEFILE_LOST";

fn host_ref(db: &Database, uuid: Uuid) -> Option<Ref> {
    match db.by_uuid(&uuid.hyphenated().to_string()) {
        Some((Class::Host, r)) => Some(r),
        _ => None,
    }
}

/// Appends `Change::set` when the stored value differs.
fn set_if(db: &Database, out: &mut Vec<Change>, class: Class, r: Ref, field: &str, v: Value) {
    if db.field(class, r, field).as_ref() != Some(&v) {
        out.push(Change::set(class, r, field, v));
    }
}

fn latency(v: Option<f64>) -> Value {
    Value::Float(v.filter(|x| x.is_finite()).unwrap_or(0.0))
}

/// Whether every live host has lost the statefile (and one is live).
#[must_use]
pub fn statefile_lost_everywhere(report: &LivesetReport) -> bool {
    let mut live = report.hosts.iter().filter(|h| h.live).peekable();
    live.peek().is_some() && live.all(|h| !h.statefile_access)
}

/// The changes that make the database say what `report` says. `now` and
/// `seed` stamp and name a message, if one is raised.
#[must_use]
pub fn changes(db: &Database, report: &LivesetReport, now: DateTime, seed: Uuid) -> Vec<Change> {
    let mut out = Vec::new();
    let Some((pool, _)) = db.objects(Class::Pool).next() else {
        return out;
    };
    let statefiles = match db.field(Class::Pool, pool, "ha_statefiles") {
        Some(v @ Value::Set(_)) => v,
        _ => Value::Set(Vec::new()),
    };
    let local = host_ref(db, report.local_host);
    for h in &report.hosts {
        let Some(host) = host_ref(db, h.uuid) else {
            continue;
        };
        let access = if h.statefile_access {
            statefiles.clone()
        } else {
            Value::Set(Vec::new())
        };
        set_if(db, &mut out, Class::Host, host, "ha_statefiles", access);
        let Some(Value::Ref(metrics)) = db.field(Class::Host, host, "metrics") else {
            continue;
        };
        if db.get(Class::HostMetrics, metrics).is_none() {
            continue;
        }
        let before = out.len();
        set_if(
            db,
            &mut out,
            Class::HostMetrics,
            metrics,
            "live",
            Value::Bool(h.live),
        );
        // Marked from the moment the host excludes itself (it stays in the
        // liveset, not waited for, until its next incarnation starts)
        // until it is a joined member again: when the new incarnation's
        // `xhad` starts, its heartbeats say starting, not excluded, while
        // the old incarnation is still in the liveset; then the survivors
        // drop the old one, and that is no failure (it raised
        // HA_HOST_FAILED for a host back from maintenance).
        let excluded = h.excluded || (is_excluded(db, metrics) && (!h.live || h.starting));
        let config = excluded_config(db, metrics, excluded);
        set_if(
            db,
            &mut out,
            Class::HostMetrics,
            metrics,
            "other_config",
            config,
        );
        if Some(host) == local {
            let sf = latency(report.statefile_latency.last_ms);
            let hb = latency(report.heartbeat_latency.last_ms);
            set_if(
                db,
                &mut out,
                Class::HostMetrics,
                metrics,
                "ha_statefile_latency_ms",
                sf,
            );
            set_if(
                db,
                &mut out,
                Class::HostMetrics,
                metrics,
                "ha_heartbeat_latency_ms",
                hb,
            );
        }
        if out.len() > before {
            out.push(Change::set(
                Class::HostMetrics,
                metrics,
                "last_updated",
                Value::DateTime(now),
            ));
        }
    }
    if let Some(host) = local {
        let peers = Value::string_set(
            report
                .hosts
                .iter()
                .filter(|h| h.heard || h.uuid == report.local_host)
                .map(|h| h.uuid.hyphenated().to_string()),
        );
        set_if(db, &mut out, Class::Host, host, "ha_network_peers", peers);
    }
    let master = report
        .master
        .and_then(|m| host_ref(db, m))
        .unwrap_or(Ref::NULL);
    set_if(
        db,
        &mut out,
        Class::Pool,
        pool,
        "ha_master",
        Value::Ref(master),
    );
    let epoch = i64::try_from(report.master_epoch).unwrap_or(i64::MAX);
    set_if(
        db,
        &mut out,
        Class::Pool,
        pool,
        "ha_master_epoch",
        Value::Int(epoch),
    );
    let warnings = Value::string_set(report.warnings.iter().map(|w| {
        let kind = serde_json::to_value(w.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        format!("{kind}: {}", w.message)
    }));
    set_if(db, &mut out, Class::Pool, pool, "ha_warnings", warnings);
    let lost = statefile_lost_everywhere(report);
    let was_lost = db.field(Class::Pool, pool, "ha_statefile_lost") == Some(Value::Bool(true));
    if lost && !was_lost {
        let id = |n: &[u8]| Ref::from_uuid(Uuid::new_v5(&seed, n));
        out.push(Change::Create {
            class: Class::Message,
            r#ref: id(b"message"),
            fields: vec![
                (
                    "uuid".into(),
                    Value::String(Uuid::new_v5(&seed, b"uuid").to_string()),
                ),
                ("name".into(), Value::String(STATEFILE_LOST.into())),
                ("priority".into(), Value::Int(STATEFILE_LOST_PRIORITY)),
                ("cls".into(), Value::Enum("Host".into())),
                (
                    "obj_uuid".into(),
                    Value::String(report.local_host.hyphenated().to_string()),
                ),
                ("timestamp".into(), Value::DateTime(now)),
                ("body".into(), Value::String(STATEFILE_LOST_BODY.into())),
            ],
        });
    }
    set_if(
        db,
        &mut out,
        Class::Pool,
        pool,
        "ha_statefile_lost",
        Value::Bool(lost),
    );
    out
}

#[cfg(test)]
mod tests;
