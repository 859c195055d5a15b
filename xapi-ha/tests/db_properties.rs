//! Properties of the database and the handlers, over random sequences:
//! - any sequence of calls through `api::call` (every method of the table,
//!   arguments mostly well-typed, some not, some of the wrong arity) keeps
//!   every invariant; an accepted call's changes always apply (handlers
//!   check everything `apply` checks), and a refused call changes nothing
//!   (it returns no changes);
//! - any sequence of raw changes: `apply` either refuses and leaves the
//!   database exactly as it was, or accepts and the invariants hold;
//! - after every step, a snapshot round-trips to the same database.
//!
//! Each operation is driven by one u64 (a ChaCha seed), so proptest can
//! shrink a failing sequence by dropping operations.

use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;
use xapi_ha::api::bootstrap::{HostInfo, new_pool};
use xapi_ha::api::{self, Caller, methods};
use xapi_ha::db::encode::{decode_snapshot, encode_snapshot};
use xapi_ha::db::schema::Ty;
use xapi_ha::db::{Change, Class, Database};
use xapi_ha::value::{DateTime, Key, Ref, Value};

fn caller(seed: u64) -> Caller {
    Caller {
        now: DateTime::from_unix(1_700_000_000 + seed as i64 % 1000),
        seed: Uuid::from_u64_pair(seed, !seed),
        this_host: Ref::NULL,
    }
}

fn pool() -> Database {
    let mut db = Database::new();
    let info = HostInfo {
        uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e".into(),
        name_label: "h1".into(),
        address: "10.0.0.1".into(),
        hostname: "h1".into(),
        memory_total: 8 << 30,
        memory_overhead: 0,
        vm_drivers: vec![],
    };
    let (_, changes) = new_pool(&db, &caller(0), &info);
    let _ = db.apply(&changes).expect("bootstrap applies");
    db
}

/// Some existing object's reference (any class), or garbage.
fn some_ref(rng: &mut ChaCha8Rng, db: &Database) -> Value {
    let all: Vec<Ref> = Class::ALL
        .into_iter()
        .flat_map(|c| db.objects(c).map(|(r, _)| r).collect::<Vec<_>>())
        .collect();
    match rng.gen_range(0..10) {
        0 => Value::String("OpaqueRef:NULL".into()),
        1 => Value::String(format!("OpaqueRef:{}", Uuid::from_u128(rng.r#gen()))),
        2 => Value::String("not a ref".into()),
        _ if all.is_empty() => Value::Ref(Ref::NULL),
        _ => Value::String(all[rng.gen_range(0..all.len())].to_string()),
    }
}

fn word(rng: &mut ChaCha8Rng) -> String {
    [
        "",
        "a",
        "b",
        "restart",
        "best-effort",
        "Halted",
        "Running",
        "file",
        "/srv",
        "x y",
    ][rng.gen_range(0..10)]
    .to_owned()
}

/// A value of type `ty`, usually valid, sometimes not.
fn value_of(ty: &Ty, rng: &mut ChaCha8Rng, db: &Database) -> Value {
    if rng.gen_range(0..8) == 0 {
        return garbage(rng);
    }
    match ty {
        Ty::String => Value::String(word(rng)),
        Ty::Int => Value::Int(rng.gen_range(-3..1 << 31)),
        Ty::Float => Value::Float(rng.gen_range(-1.0..1e6)),
        Ty::Bool => Value::Bool(rng.r#gen()),
        Ty::DateTime => {
            Value::String(DateTime::from_unix(rng.gen_range(0..2_000_000_000)).to_string())
        }
        Ty::Ref(_) => some_ref(rng, db),
        Ty::Enum(names) => Value::String(names[rng.gen_range(0..names.len())].to_owned()),
        Ty::Set(t) => Value::Set(
            (0..rng.gen_range(0..3))
                .map(|_| value_of(t, rng, db))
                .collect(),
        ),
        Ty::Map(_, t) => Value::Map(
            (0..rng.gen_range(0..3))
                .map(|_| (Key::String(word(rng)), value_of(t, rng, db)))
                .collect(),
        ),
    }
}

fn garbage(rng: &mut ChaCha8Rng) -> Value {
    match rng.gen_range(0..6) {
        0 => Value::Void,
        1 => Value::Int(rng.r#gen()),
        2 => Value::Float(f64::NAN),
        3 => Value::Set(vec![Value::Bool(true)]),
        4 => Value::Map(vec![(Key::String("k".into()), Value::Int(1))]),
        _ => Value::String("\u{1F600}garbage".into()),
    }
}

/// Arguments for `m`, by parameter name.
fn args_for(m: methods::Method, rng: &mut ChaCha8Rng, db: &Database) -> Vec<Value> {
    let field_ty = match m {
        methods::Method::Set(c, i) => Some(c.fields()[i].ty),
        methods::Method::AddToSet(c, i) | methods::Method::RemoveFromSet(c, i) => {
            match c.fields()[i].ty {
                Ty::Set(t) => Some(*t),
                _ => None,
            }
        }
        _ => None,
    };
    let mut args: Vec<Value> = m
        .params()
        .iter()
        .map(|p| match *p {
            "host" if rng.gen_bool(0.7) => {
                Value::Ref(db.objects(Class::Host).next().map_or(Ref::NULL, |(r, _)| r))
            }
            "type" => Value::String(["file", "block", "lvm"][rng.gen_range(0..3)].into()),
            "self" | "host" | "sr" => some_ref(rng, db),
            "value" => match field_ty {
                Some(t) => value_of(&t, rng, db),
                None => Value::String(word(rng)),
            },
            "uuid" => {
                let uuids: Vec<String> = db
                    .objects(Class::Vm)
                    .map(|(_, o)| o.uuid().to_owned())
                    .collect();
                if uuids.is_empty() || rng.gen_bool(0.3) {
                    Value::String(word(rng))
                } else {
                    Value::String(uuids[rng.gen_range(0..uuids.len())].clone())
                }
            }
            "args" => Value::Map(
                (0..rng.gen_range(0..6))
                    .map(|_| {
                        let f = &Class::Vm.fields()[rng.gen_range(0..Class::Vm.fields().len())];
                        (Key::String(f.name.to_owned()), value_of(&f.ty, rng, db))
                    })
                    .collect(),
            ),
            "device_config" => Value::Map(vec![(
                Key::String(["path", "device", "x"][rng.gen_range(0..3)].into()),
                Value::String("/dev/sdb".into()),
            )]),
            "classes" => Value::Set(
                (0..rng.gen_range(0..3))
                    .map(|_| {
                        Value::String(
                            ["vm", "*", "host", "pool", "bad"][rng.gen_range(0..5)].into(),
                        )
                    })
                    .collect(),
            ),
            "token" => Value::String(if rng.gen_bool(0.7) {
                db.token().to_string()
            } else {
                word(rng)
            }),
            "timeout" => Value::Float(0.0),
            "physical_size" => Value::Int(rng.gen_range(-1..1 << 30)),
            "shared" => Value::Bool(rng.r#gen()),
            "sm_config" => Value::Map(vec![]),
            "since" => Value::String("19700101T00:00:00Z".into()),
            _ => Value::String(word(rng)),
        })
        .collect();
    match rng.gen_range(0..20) {
        0 => {
            args.pop();
        }
        1 => args.push(Value::Void),
        _ => {}
    }
    args
}

fn snapshot_round_trips(db: &Database) {
    assert_eq!(
        &decode_snapshot(&encode_snapshot(db)).expect("snapshot decodes"),
        db
    );
}

fn run_calls(seeds: &[u64]) {
    let all = methods::all();
    let mut db = pool();
    let mut accepted = 0;
    for &seed in seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Mostly VM calls, so that objects accumulate.
        // The creating calls are drawn often on purpose: drawn uniformly
        // from a method list that grows with every feature, SR.create (whose
        // arguments are valid about one draw in twelve) could be drawn too
        // rarely to be accepted at all.
        let m = match rng.gen_range(0..20) {
            0..5 => methods::Method::VmCreate,
            5..7 => methods::Method::SrCreate,
            _ => all[rng.gen_range(0..all.len())],
        };
        let args = args_for(m, &mut rng, &db);
        match api::call(&db, &caller(seed), &m.name(), &args) {
            Ok(out) => {
                let _ = db.apply(&out.changes).unwrap_or_else(|e| {
                    panic!("{} {args:?}: its changes do not apply: {e}", m.name())
                });
                accepted += 1;
            }
            Err(e) => assert!(!e.code.is_empty()),
        }
        db.check_invariants()
            .unwrap_or_else(|e| panic!("after {} {args:?}: {e}", m.name()));
    }
    snapshot_round_trips(&db);
    let _ = accepted;
}

/// A raw change of some object, valid or not.
fn raw_change(rng: &mut ChaCha8Rng, db: &Database) -> Change {
    let class = Class::ALL[rng.gen_range(0..Class::ALL.len())];
    let existing: Vec<Ref> = db.objects(class).map(|(r, _)| r).collect();
    let target = if existing.is_empty() || rng.gen_bool(0.2) {
        Ref::from_uuid(Uuid::from_u128(rng.r#gen()))
    } else {
        existing[rng.gen_range(0..existing.len())]
    };
    let typed = |rng: &mut ChaCha8Rng, db: &Database| -> Vec<(String, Value)> {
        (0..rng.gen_range(0..3))
            .map(|_| {
                let f = &class.fields()[rng.gen_range(1..class.fields().len())];
                let v = value_of(&f.ty, rng, db);
                // Raw changes carry typed values: coerce what the generator
                // made as wire values, or keep the garbage.
                let v = api::coerce::coerce(&f.ty, f.name, &v).unwrap_or(v);
                (f.name.to_owned(), v)
            })
            .collect()
    };
    match rng.gen_range(0..3) {
        0 => {
            let mut fields = typed(rng, db);
            fields.push((
                "uuid".into(),
                Value::String(Uuid::from_u128(rng.r#gen()).to_string()),
            ));
            Change::Create {
                class,
                r#ref: Ref::from_uuid(Uuid::from_u128(rng.r#gen())),
                fields,
            }
        }
        1 => Change::Modify {
            class,
            r#ref: target,
            fields: typed(rng, db),
        },
        _ => Change::Delete {
            class,
            r#ref: target,
        },
    }
}

fn run_changes(seeds: &[u64]) {
    let mut db = pool();
    for &seed in seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let batch: Vec<Change> = (0..rng.gen_range(1..4))
            .map(|_| raw_change(&mut rng, &db))
            .collect();
        let before = db.clone();
        match db.apply(&batch) {
            Ok(_) => {
                assert_eq!(db.generation(), before.generation() + batch.len() as u64);
                db.check_invariants()
                    .unwrap_or_else(|e| panic!("after {batch:?}: {e}"));
            }
            Err(_) => assert_eq!(
                db, before,
                "a refused batch changed the database: {batch:?}"
            ),
        }
    }
    snapshot_round_trips(&db);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn calls_keep_the_invariants(seeds in prop::collection::vec(any::<u64>(), 1..80)) {
        run_calls(&seeds);
    }

    #[test]
    fn raw_changes_apply_whole_or_not_at_all(seeds in prop::collection::vec(any::<u64>(), 1..80)) {
        run_changes(&seeds);
    }
}

/// The property runs produce real work: a long fixed run accepts many calls
/// of many kinds and grows the database.
#[test]
fn a_long_fixed_run_accepts_calls_and_grows_the_database() {
    let all = methods::all();
    let mut db = pool();
    let mut accepted = std::collections::BTreeSet::new();
    for seed in 0..5000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // The creating calls are drawn often on purpose: drawn uniformly
        // from a method list that grows with every feature, SR.create (whose
        // arguments are valid about one draw in twelve) could be drawn too
        // rarely to be accepted at all.
        let m = match rng.gen_range(0..20) {
            0..5 => methods::Method::VmCreate,
            5..7 => methods::Method::SrCreate,
            _ => all[rng.gen_range(0..all.len())],
        };
        let args = args_for(m, &mut rng, &db);
        if let Ok(out) = api::call(&db, &caller(seed), &m.name(), &args) {
            let _ = db.apply(&out.changes).expect("changes apply");
            accepted.insert(m.name());
        }
    }
    db.check_invariants().unwrap();
    assert!(db.count(Class::Vm) > 100, "{} VMs", db.count(Class::Vm));
    assert!(
        accepted.len() > all.len() / 3,
        "{} of {} methods ever accepted",
        accepted.len(),
        all.len()
    );
    for must in [
        "VM.create",
        "VM.destroy",
        "VM.set_order",
        "VM.add_to_other_config",
        "SR.create",
    ] {
        assert!(accepted.contains(must), "{must} never accepted");
    }
}
