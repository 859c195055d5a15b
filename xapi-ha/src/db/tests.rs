//! Unit tests of `apply`, its invariants, events and the encodings.

use uuid::Uuid;

use super::encode::{decode_delta, decode_snapshot, encode_delta, encode_snapshot};
use super::events::{EventQuery, Operation};
use super::*;
use crate::value::{Ref, Value};

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x1000_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn r(n: u128) -> Ref {
    Ref::from_uuid(id(n))
}

fn uuid(n: u128) -> Value {
    Value::String(id(n + 500).hyphenated().to_string())
}

fn create(class: Class, n: u128, fields: Vec<(&str, Value)>) -> Change {
    let mut fields: Vec<(String, Value)> =
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    fields.push(("uuid".into(), uuid(n)));
    Change::Create {
        class,
        r#ref: r(n),
        fields,
    }
}

/// A host (1) with a VM (2) resident on it and a halted VM (3).
fn small() -> Database {
    let mut db = Database::new();
    let _ = db
        .apply(&[
            create(Class::Host, 1, vec![("name_label", "h1".into())]),
            create(
                Class::Vm,
                2,
                vec![
                    ("power_state", Value::Enum("Running".into())),
                    ("resident_on", Value::Ref(r(1))),
                ],
            ),
            create(Class::Vm, 3, vec![]),
        ])
        .unwrap();
    db.check_invariants().unwrap();
    db
}

#[test]
fn apply_numbers_changes_and_fills_defaults() {
    let db = small();
    assert_eq!(db.generation(), 3);
    let vm = db.get(Class::Vm, r(3)).unwrap();
    assert_eq!((vm.created(), vm.modified()), (3, 3));
    assert_eq!(
        db.field(Class::Vm, r(3), "power_state"),
        Some(Value::Enum("Halted".into()))
    );
    assert_eq!(
        db.field(Class::Vm, r(3), "memory_static_max"),
        Some(Value::Int(256 << 20))
    );
    assert_eq!(
        db.field(Class::Host, r(1), "resident_VMs"),
        Some(Value::Set(vec![Value::Ref(r(2))]))
    );
    assert_eq!(
        db.by_uuid(uuid(2).as_str().unwrap()),
        Some((Class::Vm, r(2)))
    );
}

#[test]
fn moving_a_reference_changes_both_hosts_derived_fields() {
    let mut db = small();
    let _ = db.apply(&[create(Class::Host, 4, vec![])]).unwrap();
    let _ = db
        .apply(&[Change::set(
            Class::Vm,
            r(2),
            "resident_on",
            Value::Ref(r(4)),
        )])
        .unwrap();
    assert_eq!(db.generation(), 5);
    assert_eq!(db.get(Class::Host, r(1)).unwrap().modified(), 5);
    assert_eq!(db.get(Class::Host, r(4)).unwrap().modified(), 5);
    assert_eq!(
        db.field(Class::Host, r(1), "resident_VMs"),
        Some(Value::Set(vec![]))
    );
    assert_eq!(
        db.field(Class::Host, r(4), "resident_VMs"),
        Some(Value::Set(vec![Value::Ref(r(2))]))
    );
    db.check_invariants().unwrap();
}

#[test]
fn a_refused_batch_changes_nothing() {
    let mut db = small();
    let before = db.clone();
    let batch = [
        Change::set(Class::Vm, r(3), "name_label", "x".into()),
        Change::set(Class::Vm, r(2), "resident_on", Value::Ref(Ref::NULL)),
        Change::Delete {
            class: Class::Vm,
            r#ref: r(3),
        },
        create(Class::Host, 9, vec![]),
        // Refused: `order` is an int.
        Change::set(Class::Vm, r(2), "order", "first".into()),
    ];
    let e = db.apply(&batch).unwrap_err();
    assert!(
        matches!(e, ChangeError::BadValue { field: "order", .. }),
        "{e}"
    );
    assert_eq!(db, before);
    db.check_invariants().unwrap();
}

#[test]
fn rollback_restores_exactly() {
    let mut db = small();
    let before = db.clone();
    let applied = db
        .apply(&[
            Change::set(Class::Vm, r(2), "resident_on", Value::Ref(Ref::NULL)),
            Change::Delete {
                class: Class::Host,
                r#ref: r(1),
            },
            create(Class::Host, 7, vec![]),
        ])
        .unwrap();
    assert_eq!(db.generation(), 6);
    db.rollback(applied);
    assert_eq!(db, before);
}

#[test]
fn each_invariant_is_enforced() {
    let mut db = small();
    let refused = |db: &mut Database, c: Change| {
        let before = db.clone();
        let e = db.apply(&[c]).unwrap_err();
        assert_eq!(*db, before);
        e
    };
    let e = refused(
        &mut db,
        Change::Delete {
            class: Class::Host,
            r#ref: r(1),
        },
    );
    assert!(
        matches!(
            e,
            ChangeError::StillReferenced {
                field: "resident_on",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(
        &mut db,
        Change::set(Class::Vm, r(3), "affinity", Value::Ref(r(3))),
    );
    assert!(matches!(e, ChangeError::DanglingRef { .. }), "{e}");
    let e = refused(&mut db, create(Class::Vm, 2, vec![]));
    assert!(matches!(e, ChangeError::RefInUse { .. }), "{e}");
    let dup_uuid = Change::Create {
        class: Class::Vm,
        r#ref: r(20),
        fields: vec![("uuid".into(), uuid(2))],
    };
    let e = refused(&mut db, dup_uuid);
    assert!(matches!(e, ChangeError::BadUuid { .. }), "{e}");
    let e = refused(&mut db, Change::set(Class::Vm, r(3), "uuid", uuid(30)));
    assert!(matches!(e, ChangeError::UuidImmutable { .. }), "{e}");
    let e = refused(
        &mut db,
        Change::set(Class::Host, r(1), "resident_VMs", Value::Set(vec![])),
    );
    assert!(matches!(e, ChangeError::UnknownField { .. }), "{e}");
    let e = refused(
        &mut db,
        Change::set(Class::Vm, r(3), "ha_restart_priority", "always".into()),
    );
    assert!(matches!(e, ChangeError::BadValue { .. }), "{e}");
    let e = refused(
        &mut db,
        Change::set(Class::Vm, r(99), "name_label", "x".into()),
    );
    assert!(matches!(e, ChangeError::NoSuchObject { .. }), "{e}");
    let unsorted = Value::Map(vec![
        (crate::value::Key::String("b".into()), "1".into()),
        (crate::value::Key::String("a".into()), "1".into()),
    ]);
    let e = refused(
        &mut db,
        Change::set(Class::Vm, r(3), "other_config", unsorted),
    );
    assert!(matches!(e, ChangeError::BadValue { .. }), "{e}");
}

#[test]
fn events_from_a_token() {
    let mut db = small();
    let all = EventQuery::parse(&["*".into()], "").unwrap();
    let batch = db.events(&all).unwrap();
    assert_eq!(batch.events.len(), 3);
    assert!(batch.events.iter().all(|e| e.operation == Operation::Add));
    let token = batch.token.to_string();
    assert_eq!(token, "00000000000000000003,00000000000000000000");
    let vms = EventQuery::parse(&["vm".into()], &token).unwrap();
    assert!(db.events(&vms).unwrap().events.is_empty());
    let _ = db
        .apply(&[
            Change::set(Class::Vm, r(3), "name_label", "renamed".into()),
            create(Class::Vm, 5, vec![]),
            Change::Delete {
                class: Class::Vm,
                r#ref: r(5),
            },
            Change::set(Class::Vm, r(2), "resident_on", Value::Ref(Ref::NULL)),
            Change::set(Class::Vm, r(2), "power_state", Value::Enum("Halted".into())),
            Change::Delete {
                class: Class::Vm,
                r#ref: r(2),
            },
        ])
        .unwrap();
    let got: Vec<_> = db
        .events(&vms)
        .unwrap()
        .events
        .iter()
        .map(|e| (e.id, e.operation, e.r#ref))
        .collect();
    // VM 5 was created and deleted since the token: nothing; VM 2's changes
    // coalesce into its deletion.
    assert_eq!(got, [(4, Operation::Mod, r(3)), (9, Operation::Del, r(2))]);
    let hosts = EventQuery::parse(&["host".into()], &token).unwrap();
    let got: Vec<_> = db
        .events(&hosts)
        .unwrap()
        .events
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(got, [7], "the host's resident_VMs changed with VM 2");
    let one = EventQuery::parse(&[format!("vm/{}", r(3))], &token).unwrap();
    assert_eq!(db.events(&one).unwrap().events.len(), 1);
}

#[test]
fn bad_tokens_and_subscriptions() {
    let db = small();
    for bad in ["x", "1", "1,", ",1", "a,b", "1,2,3"] {
        let e = EventQuery::parse(&["vm".into()], bad).unwrap_err();
        assert_eq!(e.code, "EVENT_FROM_TOKEN_PARSE_FAILURE", "{bad}");
    }
    for bad in ["vms", "vm/x", "vm/OpaqueRef:NULL", ""] {
        let e = EventQuery::parse(&[bad.into()], "").unwrap_err();
        assert_eq!(e.code, "EVENT_SUBSCRIPTION_PARSE_FAILURE", "{bad}");
    }
    let future = EventQuery::parse(&["vm".into()], "99,0").unwrap();
    assert_eq!(db.events(&future).unwrap_err().code, "EVENTS_LOST");
}

#[test]
fn forgotten_deletions_lose_old_tokens() {
    let mut db = Database::new();
    let n = database::MAX_TOMBSTONES as u128 + 3;
    for i in 0..n {
        let _ = db.apply(&[create(Class::Task, 1000 + i, vec![])]).unwrap();
        let _ = db
            .apply(&[Change::Delete {
                class: Class::Task,
                r#ref: r(1000 + i),
            }])
            .unwrap();
    }
    let _ = db.apply(&[create(Class::Vm, 1, vec![])]).unwrap();
    assert_eq!(db.tombstones().count(), database::MAX_TOMBSTONES);
    let old = EventQuery::parse(&["task".into()], "00000000000000000001,0").unwrap();
    assert_eq!(db.events(&old).unwrap_err().code, "EVENTS_LOST");
    let recent =
        EventQuery::parse(&["task".into()], &format!("{},0", db.generation() - 4)).unwrap();
    assert_eq!(db.events(&recent).unwrap().events.len(), 1);
    db.check_invariants().unwrap();
}

#[test]
fn snapshot_and_delta_round_trip() {
    let mut db = small();
    let _ = db
        .apply(&[Change::Delete {
            class: Class::Vm,
            r#ref: r(3),
        }])
        .unwrap();
    let bytes = encode_snapshot(&db);
    assert_eq!(decode_snapshot(&bytes).unwrap(), db);
    let changes = vec![create(Class::Vm, 8, vec![("name_label", "n".into())])];
    let delta = decode_delta(&encode_delta(5, &changes)).unwrap();
    assert_eq!(delta.changes, changes);
    let mut copy = db.clone();
    copy.replay(&delta).unwrap();
    assert_eq!(copy.generation(), 5);
    assert!(
        db.clone()
            .replay(&decode_delta(&encode_delta(7, &changes)).unwrap())
            .is_err()
    );
}

#[test]
fn snapshot_decoder_refuses_what_cannot_be() {
    let db = small();
    let good = String::from_utf8(encode_snapshot(&db)).unwrap();
    let host = r(1).to_string();
    let cases = [
        good.replacen("\"format\":1", "\"format\":2", 1),
        good.replacen(&host, &r(77).to_string(), 1),
        good.replacen("\"name_label\"", "\"no_such_field\"", 1),
        good.replacen("\"Running\"", "\"Flying\"", 1),
        "{}".to_owned(),
        "[]".to_owned(),
        String::new(),
    ];
    for bad in cases {
        assert!(decode_snapshot(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(decode_delta(b"{\"format\":1,\"first_generation\":1}").is_err());
}
