//! The state series, computed at scrape time from the pool database (as
//! this agent's copy has it) and the last report of this host's `xhad`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use xha_control::LivesetReport;

use crate::db::schema::Ty;
use crate::db::{Class, Database};
use crate::ha::view::pool_ref;
use crate::value::{Ref, Value};

/// Labels of the per-host series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The host's UUID.
    pub host: String,
    /// The host's `name_label`.
    pub name: String,
}

/// Labels of `xha_vms`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PowerLabels {
    /// `Running`, `Halted`, ...
    pub power_state: String,
}

/// Labels of `xha_dropped_packets_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// The drop counter's name in `xhad`'s report (`bad-magic`, ...).
    pub reason: String,
}

/// A field of an object, `Void` if absent.
pub fn field(db: &Database, class: Class, r: Ref, name: &str) -> Value {
    db.field(class, r, name).unwrap_or(Value::Void)
}

/// An integer field (0 if absent).
pub fn int(db: &Database, class: Class, r: Ref, name: &str) -> i64 {
    match field(db, class, r, name) {
        Value::Int(i) => i,
        _ => 0,
    }
}

/// A boolean field (false if absent).
pub fn boolean(db: &Database, class: Class, r: Ref, name: &str) -> bool {
    matches!(field(db, class, r, name), Value::Bool(true))
}

/// A string or enum field ("" if absent).
pub fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    match field(db, class, r, name) {
        Value::String(s) | Value::Enum(s) => s,
        _ => String::new(),
    }
}

/// A float field, if set (the latencies are absent until measured).
pub fn float(db: &Database, class: Class, r: Ref, name: &str) -> Option<f64> {
    match field(db, class, r, name) {
        Value::Float(f) => Some(f),
        Value::Int(i) => Some(i as f64),
        _ => None,
    }
}

/// A reference field (NULL if absent).
pub fn reference(db: &Database, class: Class, r: Ref, name: &str) -> Ref {
    match field(db, class, r, name) {
        Value::Ref(x) => x,
        _ => Ref::NULL,
    }
}

/// A host's metrics object, if it has one.
pub fn host_metrics(db: &Database, host: Ref) -> Option<Ref> {
    let m = reference(db, Class::Host, host, "metrics");
    db.get(Class::HostMetrics, m).map(|_| m)
}

fn gauge_i64(registry: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64>::default();
    g.set(v);
    registry.register(name, help, g);
}

/// Registers the state series of `db` and `report` in `registry`.
pub fn register(registry: &mut Registry, db: &Database, report: Option<&LivesetReport>) {
    let pool = pool_ref(db);
    let pool_int = |name: &str| pool.map_or(0, |p| int(db, Class::Pool, p, name));
    let pool_bool = |name: &str| pool.is_some_and(|p| boolean(db, Class::Pool, p, name));

    let live = Family::<HostLabels, Gauge>::default();
    let enabled = Family::<HostLabels, Gauge>::default();
    let hb = Family::<HostLabels, Gauge<f64, AtomicU64>>::default();
    let sf = Family::<HostLabels, Gauge<f64, AtomicU64>>::default();
    let mut liveset = 0;
    for (h, _) in db.objects(Class::Host) {
        let labels = HostLabels {
            host: text(db, Class::Host, h, "uuid"),
            name: text(db, Class::Host, h, "name_label"),
        };
        let m = host_metrics(db, h);
        let is_live = m.is_some_and(|m| boolean(db, Class::HostMetrics, m, "live"));
        liveset += i64::from(is_live);
        live.get_or_create(&labels).set(i64::from(is_live));
        enabled
            .get_or_create(&labels)
            .set(i64::from(boolean(db, Class::Host, h, "enabled")));
        if let Some(m) = m {
            if let Some(ms) = float(db, Class::HostMetrics, m, "ha_heartbeat_latency_ms") {
                hb.get_or_create(&labels).set(ms / 1000.0);
            }
            if let Some(ms) = float(db, Class::HostMetrics, m, "ha_statefile_latency_ms") {
                sf.get_or_create(&labels).set(ms / 1000.0);
            }
        }
    }
    gauge_i64(
        registry,
        "ha_enabled",
        "1 if HA is enabled on the pool",
        i64::from(pool_bool("ha_enabled")),
    );
    gauge_i64(
        registry,
        "liveset_size",
        "Hosts whose host_metrics.live is true",
        liveset,
    );
    gauge_i64(
        registry,
        "hosts",
        "Hosts in the pool",
        i64::try_from(db.count(Class::Host)).unwrap_or(i64::MAX),
    );
    registry.register("host_live", "1 if the host is live", live);
    registry.register("host_enabled", "1 if the host is enabled", enabled);
    registry.register_with_unit(
        "host_heartbeat_latency",
        "The host's last heartbeat latency (host_metrics)",
        Unit::Seconds,
        hb,
    );
    registry.register_with_unit(
        "host_statefile_latency",
        "The host's last statefile latency (host_metrics)",
        Unit::Seconds,
        sf,
    );
    gauge_i64(
        registry,
        "master_epoch",
        "The HA master's epoch (pool.ha_master_epoch)",
        pool_int("ha_master_epoch"),
    );
    gauge_i64(
        registry,
        "ha_plan_exists_for",
        "Host failures the current plan survives",
        pool_int("ha_plan_exists_for"),
    );
    gauge_i64(
        registry,
        "ha_host_failures_to_tolerate",
        "The pool's target of host failures to tolerate",
        pool_int("ha_host_failures_to_tolerate"),
    );
    gauge_i64(
        registry,
        "ha_overcommitted",
        "1 if the target exceeds what the pool tolerates",
        i64::from(pool_bool("ha_overcommitted")),
    );

    let vms = Family::<PowerLabels, Gauge>::default();
    // Every power state, 0 included: a series does not vanish when its
    // last VM changes state.
    if let Some(Ty::Enum(states)) = Class::Vm.field("power_state").map(|f| f.ty) {
        for state in states {
            let _ = vms.get_or_create(&PowerLabels {
                power_state: (*state).to_owned(),
            });
        }
    }
    for (v, _) in db.objects(Class::Vm) {
        if boolean(db, Class::Vm, v, "is_a_template")
            || boolean(db, Class::Vm, v, "is_control_domain")
        {
            continue;
        }
        vms.get_or_create(&PowerLabels {
            power_state: text(db, Class::Vm, v, "power_state"),
        })
        .inc();
    }
    registry.register("vms", "VMs (not templates) by power state", vms);

    let queued = db
        .objects(Class::Mail)
        .filter(|(m, _)| text(db, Class::Mail, *m, "state") == "queued")
        .count();
    gauge_i64(
        registry,
        "mail_queue_length",
        "Alert mails queued and not yet sent",
        i64::try_from(queued).unwrap_or(i64::MAX),
    );

    if let Some(r) = report {
        let drops = Family::<DropLabels, Counter>::default();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(r.dropped_packets) {
            for (reason, n) in map {
                if reason == "floors-lowered" {
                    continue;
                }
                drops
                    .get_or_create(&DropLabels { reason })
                    .inc_by(n.as_u64().unwrap_or(0));
            }
        }
        registry.register(
            "dropped_packets",
            "Heartbeat packets dropped by this host's xhad, by reason",
            drops,
        );
        let floors = Counter::<u64>::default();
        floors.inc_by(r.dropped_packets.floors_lowered);
        registry.register(
            "replay_floors_lowered",
            "Replay floors lowered by this host's xhad on statefile evidence",
            floors,
        );
        gauge_i64(
            registry,
            "xhad_liveset_size",
            "Hosts in the liveset this host's xhad reports",
            i64::try_from(r.liveset.len()).unwrap_or(i64::MAX),
        );
        gauge_i64(
            registry,
            "xhad_master_epoch",
            "The master epoch this host's xhad reports",
            i64::try_from(r.master_epoch).unwrap_or(i64::MAX),
        );
        gauge_i64(
            registry,
            "xhad_fencing_armed",
            "1 if this host's xhad has fencing armed",
            i64::from(r.fencing_armed),
        );
    }
}
