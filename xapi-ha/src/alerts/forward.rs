//! Messages raised on a member reach the master (docs/alerts.md): a
//! member's database is the master's copy, so it never records a message
//! itself; it sends the alerts with `host.peer_raise_messages`
//! (`pool::peer::RAISE_MSGS`) and the master records them, where the
//! mailer sees them. Each alert travels with a uuid chosen by the member, so
//! an alert sent twice (a lost answer, a retry after a restart) is recorded
//! once. Pure: the encoding and the master's decision.

use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::catalog::{self, Alert, CATALOG};
use crate::api::ApiError;
use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref};

/// The alerts as the call's `messages` parameter (a JSON array).
#[must_use]
pub fn encode(items: &[(Uuid, Alert)]) -> String {
    let v: Vec<Json> = items
        .iter()
        .map(|(u, a)| {
            json!({
                "uuid": u.hyphenated().to_string(),
                "name": a.name,
                "priority": a.priority,
                "cls": a.cls,
                "obj_uuid": a.obj_uuid,
                "body": a.body,
            })
        })
        .collect();
    Json::Array(v).to_string()
}

fn field<'a>(o: &'a Json, name: &str) -> Result<&'a Json, ApiError> {
    o.get(name)
        .ok_or_else(|| ApiError::invalid_value(&format!("messages.{name}"), "missing"))
}

fn string(o: &Json, name: &str) -> Result<String, ApiError> {
    field(o, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ApiError::field_type_error(&format!("messages.{name}")))
}

/// Reads the `messages` parameter; a bad one is an error naming the field.
pub fn decode(text: &str) -> Result<Vec<(Uuid, Alert)>, ApiError> {
    let v: Json = serde_json::from_str(text)
        .map_err(|e| ApiError::invalid_value("messages", &e.to_string()))?;
    let Json::Array(items) = v else {
        return Err(ApiError::invalid_value("messages", "not a JSON array"));
    };
    items
        .iter()
        .map(|o| {
            let uuid_text = string(o, "uuid")?;
            let uuid = Uuid::parse_str(&uuid_text)
                .map_err(|_| ApiError::invalid_value("messages.uuid", &uuid_text))?;
            let priority = field(o, "priority")?
                .as_i64()
                .ok_or_else(|| ApiError::field_type_error("messages.priority"))?;
            Ok((
                uuid,
                Alert {
                    name: string(o, "name")?,
                    priority,
                    cls: string(o, "cls")?,
                    obj_uuid: string(o, "obj_uuid")?,
                    body: string(o, "body")?,
                },
            ))
        })
        .collect()
}

fn class_of_cls(cls: &str) -> Option<Class> {
    match cls {
        "VM" => Some(Class::Vm),
        "Host" => Some(Class::Host),
        "SR" => Some(Class::Sr),
        "Pool" => Some(Class::Pool),
        "VDI" => Some(Class::Vdi),
        _ => None,
    }
}

/// The master's changes for the forwarded alerts: a message per alert not
/// yet recorded (by its uuid). Every alert is checked first, and one that
/// is not a message of the catalogue with its priority and class, or whose
/// object does not exist, refuses the whole call (nothing recorded).
pub fn changes(
    db: &Database,
    now: DateTime,
    items: &[(Uuid, Alert)],
) -> Result<Vec<Change>, ApiError> {
    for (_, a) in items {
        let Some((_, priority, cls)) = CATALOG.iter().find(|(n, ..)| *n == a.name) else {
            return Err(ApiError::invalid_value("messages.name", &a.name));
        };
        if a.priority != *priority {
            return Err(ApiError::invalid_value(
                "messages.priority",
                &a.priority.to_string(),
            ));
        }
        if a.cls != *cls {
            return Err(ApiError::invalid_value("messages.cls", &a.cls));
        }
        let exists = class_of_cls(&a.cls)
            .is_some_and(|c| matches!(db.by_uuid(&a.obj_uuid), Some((found, _)) if found == c));
        if !exists {
            return Err(ApiError::uuid_invalid(&a.cls, &a.obj_uuid));
        }
    }
    let mut out = Vec::new();
    for (u, a) in items {
        let uuid = u.hyphenated().to_string();
        let r = Ref::from_uuid(Uuid::new_v5(u, b"message ref"));
        let recorded = db.by_uuid(&uuid).is_some() || db.class_of(r).is_some();
        let twice = out
            .iter()
            .any(|c| matches!(c, Change::Create { r#ref, .. } if *r#ref == r));
        if !recorded && !twice {
            out.push(catalog::raise_as(r, uuid, now, a));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Caller;
    use crate::api::bootstrap::{HostInfo, new_pool};

    const HOST: &str = "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d01";

    fn pool_of_one() -> (Database, Ref) {
        let mut db = Database::new();
        let caller = Caller {
            now: DateTime::from_unix(1_742_357_784),
            seed: Uuid::from_u128(7),
            this_host: Ref::NULL,
        };
        let info = HostInfo {
            uuid: HOST.into(),
            name_label: "h1".into(),
            address: "10.0.0.1".into(),
            hostname: "h1".into(),
            memory_total: 8 << 30,
            memory_overhead: 0,
            vm_drivers: vec!["process".into()],
        };
        let (host, changes) = new_pool(&db, &caller, &info);
        let _ = db.apply(&changes).unwrap();
        (db, host)
    }

    #[test]
    fn round_trip_and_recorded_once_by_uuid() {
        let (mut db, host) = pool_of_one();
        let items = vec![
            (Uuid::from_u128(1), catalog::host_was_fenced(&db, host)),
            (
                Uuid::from_u128(2),
                catalog::host_fence_reason(&db, host, "the lease ran out"),
            ),
        ];
        let decoded = decode(&encode(&items)).unwrap();
        assert_eq!(decoded, items);
        let now = DateTime::from_unix(1_742_357_800);
        let first = changes(&db, now, &decoded).unwrap();
        assert_eq!(first.len(), 2);
        let _ = db.apply(&first).unwrap();
        let names: Vec<String> = db
            .objects(Class::Message)
            .filter_map(|(r, _)| {
                db.field(Class::Message, r, "name")?
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        assert!(
            names.contains(&"HA_HOST_WAS_FENCED".to_owned()),
            "{names:?}"
        );
        assert!(
            names.contains(&"HA_HOST_FENCE_REASON".to_owned()),
            "{names:?}"
        );
        // The same alerts again (a retry): nothing more.
        assert!(changes(&db, now, &decoded).unwrap().is_empty());
        // One alert twice in one call: once.
        let dup = vec![items[0].clone(), items[0].clone()];
        let (db2, _) = pool_of_one();
        assert_eq!(changes(&db2, now, &dup).unwrap().len(), 1);
    }

    #[test]
    fn bad_alerts_refuse_the_whole_call_naming_the_field() {
        let (db, host) = pool_of_one();
        let good = (Uuid::from_u128(1), catalog::host_was_fenced(&db, host));
        let now = DateTime::from_unix(1);
        let with = |f: &dyn Fn(&mut Alert)| {
            let mut bad = good.1.clone();
            f(&mut bad);
            changes(&db, now, &[good.clone(), (Uuid::from_u128(3), bad)]).unwrap_err()
        };
        assert_eq!(
            with(&|a| a.name = "NOT_A_MESSAGE".into()).code,
            "INVALID_VALUE"
        );
        let e = with(&|a| a.priority = 1);
        assert_eq!(e.params[0], "messages.priority");
        let e = with(&|a| a.cls = "VM".into());
        assert_eq!(e.params[0], "messages.cls");
        let e = with(&|a| a.obj_uuid = Uuid::from_u128(9).to_string());
        assert_eq!(e.code, "UUID_INVALID");
        for (text, field) in [
            ("{}", "messages"),
            ("not json", "messages"),
            (r#"[{"uuid":"x"}]"#, "messages.uuid"),
            (
                r#"[{"uuid":"00000000-0000-0000-0000-000000000001","name":"N","priority":"high"}]"#,
                "messages.priority",
            ),
        ] {
            let e = decode(text).unwrap_err();
            assert_eq!(e.params[0], field, "{text}");
        }
    }
}
