//! Reporting a fence on the fenced host's next boot (docs/alerts.md): the
//! fence records `xhad` leaves in its state directory (`fenced`, and
//! `fenced.earlier` once a later boot's daemon started; format in
//! docs/daemon.md, `xha::daemon::fence_record`), which of them are newer
//! than the last one this agent reported, and the messages that report one
//! (`HA_HOST_WAS_FENCED`, xapi's, and our `HA_HOST_FENCE_REASON` with the
//! record's reason). Pure: reading the files and raising the messages are
//! `server::fence_alerts`'.

use uuid::Uuid;

use crate::alerts::catalog::{self, Alert};
use crate::db::{Class, Database};

/// `xhad`'s record of the current boot (its `fence_record::FILE_NAME`).
pub const RECORD_FILE: &str = "fenced";
/// `xhad`'s record of an earlier boot (`fence_record::EARLIER_FILE_NAME`).
pub const EARLIER_RECORD_FILE: &str = "fenced.earlier";
/// `xhad`'s state directory when its configuration names none.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/xhad";
/// In the agent's data directory: the key of the last record reported.
pub const REPORTED_FILE: &str = "fence-reported";

/// One fence record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceRecord {
    pub boot_id: String,
    /// Which rule fired and what the host saw (one line).
    pub reason: String,
    /// When the decision was taken (Unix ms); records written before the
    /// daemon wrote the time have none.
    pub at_ms: Option<u64>,
}

/// Why a record could not be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a fence record (expected `boot <id>`, `reason <text>`, optionally `at <ms>`)")]
pub struct NotARecord;

/// Parses a record's text.
pub fn parse(text: &str) -> Result<FenceRecord, NotARecord> {
    let mut lines = text.lines();
    let boot_id = lines
        .next()
        .and_then(|l| l.strip_prefix("boot "))
        .ok_or(NotARecord)?
        .trim()
        .to_owned();
    let reason = lines
        .next()
        .and_then(|l| l.strip_prefix("reason "))
        .ok_or(NotARecord)?
        .trim()
        .to_owned();
    let at_ms = match lines.next() {
        None => None,
        Some(l) => Some(
            l.strip_prefix("at ")
                .and_then(|ms| ms.trim().parse().ok())
                .ok_or(NotARecord)?,
        ),
    };
    if boot_id.is_empty() {
        return Err(NotARecord);
    }
    Ok(FenceRecord {
        boot_id,
        reason,
        at_ms,
    })
}

impl FenceRecord {
    /// What identifies the record (kept in [`REPORTED_FILE`]): the boot and
    /// the time, or the boot and the reason for a record without a time.
    #[must_use]
    pub fn key(&self) -> String {
        match self.at_ms {
            Some(ms) => format!("{} at {ms}", self.boot_id),
            None => format!("{} reason {}", self.boot_id, self.reason),
        }
    }

    /// A stable uuid for message `name` reporting this record on host
    /// `host_uuid`: the master creates a message only once per uuid, so a
    /// report sent twice (a lost answer, a restart) is recorded once.
    #[must_use]
    pub fn message_uuid(&self, host_uuid: &str, name: &str) -> Uuid {
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_OID, b"xha-rs fence report");
        Uuid::new_v5(
            &ns,
            format!("{host_uuid}\n{}\n{name}", self.key()).as_bytes(),
        )
    }
}

fn at_of_key(key: &str) -> Option<u64> {
    let (_, ms) = key.rsplit_once(" at ")?;
    ms.trim().parse().ok()
}

/// The records to report, oldest first: those newer than the one whose key
/// is `last_reported` (by time when both have one, else every record not
/// that one), each once.
#[must_use]
pub fn to_report(mut records: Vec<FenceRecord>, last_reported: Option<&str>) -> Vec<FenceRecord> {
    records.sort_by_key(|r| r.at_ms.unwrap_or(0));
    records.dedup_by(|a, b| a.key() == b.key());
    let last = last_reported.map(str::trim).filter(|k| !k.is_empty());
    records.retain(|r| match last {
        None => true,
        Some(k) => match (r.at_ms, at_of_key(k)) {
            (Some(at), Some(last_at)) => at > last_at,
            _ => r.key() != k,
        },
    });
    records
}

/// The messages reporting `record` about `host` (of `db`):
/// `HA_HOST_WAS_FENCED` then `HA_HOST_FENCE_REASON`, each with its stable
/// uuid ([`FenceRecord::message_uuid`]). `None` when `db` has no such host.
#[must_use]
pub fn alerts(db: &Database, host_uuid: &str, record: &FenceRecord) -> Option<Vec<(Uuid, Alert)>> {
    let Some((Class::Host, host)) = db.by_uuid(host_uuid) else {
        return None;
    };
    let reason = match record.at_ms {
        Some(ms) => format!(
            "{} (decided at {}, boot {})",
            record.reason,
            format_ms(ms),
            record.boot_id
        ),
        None => format!("{} (boot {})", record.reason, record.boot_id),
    };
    Some(
        [
            catalog::host_was_fenced(db, host),
            catalog::host_fence_reason(db, host, &reason),
        ]
        .into_iter()
        .map(|a| (record.message_uuid(host_uuid, &a.name), a))
        .collect(),
    )
}

/// Unix ms as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn format_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let millis = ms % 1000;
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("{ms} ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(boot: &str, at: Option<u64>) -> FenceRecord {
        FenceRecord {
            boot_id: boot.into(),
            reason: "the lease ran out".into(),
            at_ms: at,
        }
    }

    #[test]
    fn parses_xhads_records_with_and_without_time() {
        let r = parse("boot b1\nreason host 2 is in the surviving partition\nat 1700000000123\n")
            .unwrap();
        assert_eq!(r.boot_id, "b1");
        assert_eq!(r.reason, "host 2 is in the surviving partition");
        assert_eq!(r.at_ms, Some(1_700_000_000_123));
        assert_eq!(r.key(), "b1 at 1700000000123");
        let old = parse("boot b0\nreason x\n").unwrap();
        assert_eq!(old.at_ms, None);
        assert_eq!(old.key(), "b0 reason x");
        for bad in [
            "",
            "garbage",
            "boot b\n",
            "boot b\nwhy x\n",
            "boot b\nreason x\nat soon\n",
            "boot \nreason x\n",
        ] {
            assert_eq!(parse(bad), Err(NotARecord), "{bad:?}");
        }
    }

    #[test]
    fn reports_only_records_newer_than_the_last_reported() {
        let a = rec("b1", Some(100));
        let b = rec("b2", Some(200));
        // Nothing reported yet: both, oldest first, each once.
        assert_eq!(
            to_report(vec![b.clone(), a.clone(), a.clone()], None),
            [a.clone(), b.clone()]
        );
        // `a` reported: only `b`; `b` reported: nothing (a restart).
        assert_eq!(
            to_report(vec![a.clone(), b.clone()], Some(&a.key())),
            std::slice::from_ref(&b)
        );
        assert!(to_report(vec![a.clone(), b.clone()], Some(&b.key())).is_empty());
        // The reported record is gone (replaced by a later boot's): the
        // newer one is still reported, an older one is not.
        assert_eq!(to_report(vec![b.clone()], Some("b0 at 50")), [b]);
        assert!(to_report(vec![a.clone()], Some("b9 at 150")).is_empty());
        // Records without a time: by identity.
        let old = rec("b0", None);
        assert_eq!(
            to_report(vec![old.clone()], Some(&a.key())),
            std::slice::from_ref(&old)
        );
        assert!(to_report(vec![old.clone()], Some(&old.key())).is_empty());
        assert!(to_report(Vec::new(), None).is_empty());
    }

    #[test]
    fn the_messages_of_a_record() {
        use crate::api::Caller;
        use crate::api::bootstrap::{HostInfo, new_pool};
        use crate::value::{DateTime, Ref};
        let mut db = Database::new();
        let caller = Caller {
            now: DateTime::from_unix(1_742_357_784),
            seed: Uuid::from_u128(5),
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
        let r = rec("b1", Some(1_700_000_000_123));
        let got = alerts(&db, &info.uuid, &r).unwrap();
        let summary: Vec<(&str, i64, &str, &str)> = got
            .iter()
            .map(|(_, a)| (a.name.as_str(), a.priority, a.cls.as_str(), a.body.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("HA_HOST_WAS_FENCED", 4, "Host", ""),
                (
                    "HA_HOST_FENCE_REASON",
                    3,
                    "Host",
                    "Server 'h1' fenced itself: the lease ran out (decided at 2023-11-14T22:13:20.123Z, boot b1)"
                ),
            ]
        );
        assert!(got.iter().all(|(_, a)| a.obj_uuid == info.uuid));
        assert_eq!(got[0].0, r.message_uuid(&info.uuid, "HA_HOST_WAS_FENCED"));
        let old = rec("b0", None);
        let got = alerts(&db, &info.uuid, &old).unwrap();
        assert_eq!(
            got[1].1.body,
            "Server 'h1' fenced itself: the lease ran out (boot b0)"
        );
        assert!(alerts(&db, "00000000-0000-0000-0000-000000000009", &r).is_none());
    }

    #[test]
    fn message_uuids_are_stable_per_host_record_and_name() {
        let a = rec("b1", Some(100));
        let u = a.message_uuid("h1", "HA_HOST_WAS_FENCED");
        assert_eq!(u, a.message_uuid("h1", "HA_HOST_WAS_FENCED"));
        assert_ne!(u, a.message_uuid("h2", "HA_HOST_WAS_FENCED"));
        assert_ne!(u, a.message_uuid("h1", "HA_HOST_FENCE_REASON"));
        assert_ne!(
            u,
            rec("b1", Some(101)).message_uuid("h1", "HA_HOST_WAS_FENCED")
        );
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
