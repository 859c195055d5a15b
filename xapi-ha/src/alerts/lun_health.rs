//! `METADATA_LUN_BROKEN` / `METADATA_LUN_HEALTHY` (xapi's
//! `redo_log_alert.ml`; docs/alerts.md): the master's writes of the pool
//! database's redo log (on the metadata volume while HA is on) failing,
//! then working again. Pure: the edge (`Agent::commit`) tells the watch
//! each write's outcome and raises what it answers.
//!
//! xapi keeps its database in memory and on local disk, so it records
//! `METADATA_LUN_BROKEN` at once. Ours is on the volume that failed:
//! nothing can be committed until a write works again. So the watch
//! remembers the first failure, and the first write that works brings both
//! messages, `METADATA_LUN_BROKEN` stamped with the time of the first
//! failure and `METADATA_LUN_HEALTHY` with the time of the recovery: once
//! per broken period, however many writes failed in it.

use crate::alerts::catalog::{self, Alert};
use crate::db::Database;
use crate::value::DateTime;

/// The redo log's name in the messages' body (`Redo log [<name>]`).
pub const LOG_NAME: &str = "metadata";

/// The state between two writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LunWatch {
    /// When the current broken period began (the first failed write).
    broken_since: Option<DateTime>,
}

/// A broken period that just ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub broken_at: DateTime,
    pub healthy_at: DateTime,
}

impl LunWatch {
    /// A write failed at `now`: `true` when this begins a broken period
    /// (the edge logs it).
    pub fn write_failed(&mut self, now: DateTime) -> bool {
        if self.broken_since.is_some() {
            return false;
        }
        self.broken_since = Some(now);
        true
    }

    /// A write worked at `now`: the broken period it ends, if any.
    pub fn write_worked(&mut self, now: DateTime) -> Option<Recovered> {
        self.broken_since.take().map(|broken_at| Recovered {
            broken_at,
            healthy_at: now,
        })
    }

    /// Whether writes are failing now.
    #[must_use]
    pub fn broken(&self) -> bool {
        self.broken_since.is_some()
    }
}

/// The messages of a recovery, each with its time: none unless the pool
/// asks for them (`other_config:metadata_lun_alerts=true`, as xapi).
#[must_use]
pub fn alerts(db: &Database, r: Recovered) -> Vec<(DateTime, Alert)> {
    if !catalog::metadata_lun_alerts_on(db) {
        return Vec::new();
    }
    vec![
        (r.broken_at, catalog::metadata_lun(db, false, LOG_NAME)),
        (r.healthy_at, catalog::metadata_lun(db, true, LOG_NAME)),
    ]
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::api::Caller;
    use crate::api::bootstrap::{HostInfo, new_pool};
    use crate::db::{Change, Class};
    use crate::value::{Key, Ref, Value};

    fn t(s: i64) -> DateTime {
        DateTime::from_unix(1_742_357_784 + s)
    }

    #[test]
    fn one_broken_period_one_recovery_whatever_the_failures() {
        let mut w = LunWatch::default();
        assert_eq!(w.write_worked(t(0)), None, "healthy: nothing");
        assert!(w.write_failed(t(1)), "the edge");
        assert!(!w.write_failed(t(2)), "still broken: no new edge");
        assert!(!w.write_failed(t(3)));
        assert!(w.broken());
        assert_eq!(
            w.write_worked(t(4)),
            Some(Recovered {
                broken_at: t(1),
                healthy_at: t(4)
            })
        );
        assert!(!w.broken());
        assert_eq!(w.write_worked(t(5)), None, "once per period");
        assert!(w.write_failed(t(6)), "a new period");
        assert_eq!(w.write_worked(t(7)).map(|r| r.broken_at), Some(t(6)));
    }

    #[test]
    fn messages_only_when_the_pool_asks_for_them() {
        let mut db = Database::new();
        let caller = Caller {
            now: t(0),
            seed: Uuid::from_u128(3),
            this_host: Ref::NULL,
        };
        let info = HostInfo {
            uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d01".into(),
            name_label: "h1".into(),
            address: "10.0.0.1".into(),
            hostname: "h1".into(),
            memory_total: 8 << 30,
            memory_overhead: 0,
            vm_drivers: vec![],
        };
        let (_, changes) = new_pool(&db, &caller, &info);
        let _ = db.apply(&changes).unwrap();
        let r = Recovered {
            broken_at: t(1),
            healthy_at: t(9),
        };
        assert!(alerts(&db, r).is_empty(), "off by default, as xapi");
        let (pool, _) = db.objects(Class::Pool).next().unwrap();
        let _ = db
            .apply(&[Change::set(
                Class::Pool,
                pool,
                "other_config",
                Value::Map(vec![(
                    Key::String("metadata_lun_alerts".into()),
                    Value::String("true".into()),
                )]),
            )])
            .unwrap();
        let got = alerts(&db, r);
        let summary: Vec<(DateTime, &str, i64, &str)> = got
            .iter()
            .map(|(at, a)| (*at, a.name.as_str(), a.priority, a.body.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (t(1), "METADATA_LUN_BROKEN", 3, "Redo log [metadata]"),
                (t(9), "METADATA_LUN_HEALTHY", 4, "Redo log [metadata]"),
            ]
        );
        assert!(got.iter().all(|(_, a)| a.cls == "Pool"));
    }
}
