//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and a few
//! hundred deterministic mutations of valid snapshots and deltas through
//! the same checks the cargo-fuzz targets run (`fuzz/src/checks.rs`), so CI
//! checks the pool database's decoders for panics and broken properties
//! even without cargo-fuzz. The harness is sr_heartbeat's
//! (`sr-heartbeat/tests/fuzz_harness/`).
//!
//! `REGENERATE_FUZZ_SEEDS=1 cargo test -p xapi_ha --test fuzz_corpus_replay
//! committed_seeds` rewrites the `seed-*` files of the corpora from [`seeds`].

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

#[path = "../../sr-heartbeat/tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

use std::path::PathBuf;

use uuid::Uuid;
use xapi_ha::api::{self, Caller};
use xapi_ha::db::encode::{decode_delta, decode_snapshot, encode_delta, encode_snapshot};
use xapi_ha::db::{Change, Class, Database};
use xapi_ha::value::{DateTime, Key, Ref, Value};

use checks::{TARGETS, fuzz_database};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn caller(n: u128) -> Caller {
    Caller {
        now: DateTime::from_unix(1_763_000_100),
        seed: Uuid::from_u128(n),
        this_host: Ref::NULL,
    }
}

/// Calls on the fuzz pool that make every kind of change; returns the
/// database and the batches.
fn populated() -> (Database, Vec<(u64, Vec<Change>)>) {
    let mut db = fuzz_database();
    let host = db
        .objects(Class::Host)
        .next()
        .map(|(r, _)| r)
        .expect("host");
    let mut batches = Vec::new();
    let mut run = |db: &mut Database, n: u128, method: &str, args: Vec<Value>| -> Value {
        let out = api::call(db, &caller(n), method, &args).expect(method);
        let first = db.generation() + 1;
        let _kept = db.apply(&out.changes).expect("applies");
        batches.push((first, out.changes));
        out.result
    };
    let rec = Value::Map(vec![
        (Key::String("name_label".into()), "web \u{e9}\"1\"".into()),
        (Key::String("memory_static_max".into()), Value::Int(1 << 30)),
        (Key::String("ha_restart_priority".into()), "restart".into()),
        (
            Key::String("other_config".into()),
            Value::string_map([("k", "v")]),
        ),
        (Key::String("driver".into()), "process".into()),
    ]);
    let vm = run(&mut db, 1, "VM.create", vec![rec]);
    run(
        &mut db,
        2,
        "VM.set_affinity",
        vec![vm.clone(), Value::Ref(host)],
    );
    run(&mut db, 3, "VM.add_tags", vec![vm.clone(), "t".into()]);
    let sr = run(
        &mut db,
        4,
        "SR.create",
        vec![
            Value::Ref(host),
            Value::string_map([("path", "/srv/sr")]),
            Value::Int(1 << 30),
            "sr".into(),
            "".into(),
            "file".into(),
            "user".into(),
            Value::Bool(true),
            Value::Map(vec![]),
        ],
    );
    let other = run(&mut db, 5, "VM.create", vec![Value::Map(vec![])]);
    run(&mut db, 6, "VM.destroy", vec![other]);
    run(&mut db, 7, "SR.forget", vec![sr]);
    (db, batches)
}

fn snapshot_seeds() -> Vec<Vec<u8>> {
    let (db, _) = populated();
    vec![encode_snapshot(&fuzz_database()), encode_snapshot(&db)]
}

fn delta_seeds() -> Vec<Vec<u8>> {
    // The first batch applies to the fuzz database as it is.
    let (_, batches) = populated();
    batches
        .iter()
        .map(|(first, changes)| encode_delta(*first, changes))
        .collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "snapshot" => snapshot_seeds(),
        "delta" => delta_seeds(),
        "ha_state" => ha_state_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

/// haenable: the local HA record, as the agent writes it.
fn ha_state_seeds() -> Vec<Vec<u8>> {
    let state = xapi_ha::ha_link::state::HaState {
        generation: Uuid::from_u128(0x5eed),
        timeout_s: 30,
        metadata: PathBuf::from("/srv/ha/ha-metadata-x"),
        epoch: 4,
        statefiles: vec![
            PathBuf::from("/srv/ha/ha-statefile-x"),
            PathBuf::from("/srv/ha2/ha-statefile-x"),
        ],
        control_socket: PathBuf::from("/run/xhad/control.sock"),
        metadata_region: None,
        statefile_regions: Vec::new(),
    };
    vec![state.to_text().expect("seed").into_bytes()]
}

/// The common mutations, plus inserting a token that matters to JSON or to
/// the documents' names.
fn mutate(rng: &mut fuzz_harness::Rng, input: &[u8]) -> Vec<u8> {
    fn insert_token(rng: &mut fuzz_harness::Rng, v: &mut Vec<u8>) {
        const TOKENS: [&[u8]; 12] = [
            b"\"",
            b"{",
            b"}",
            b"null",
            b"-1",
            b"1e999",
            b"99999999999999999999",
            b"[",
            b"OpaqueRef:NULL",
            b"\"Delete\"",
            b"\"VM\"",
            b"\\u0000",
        ];
        let i = rng.below(v.len() + 1);
        let t = TOKENS[rng.below(TOKENS.len())];
        v.splice(i..i, t.iter().copied());
    }
    let m = fuzz_harness::Mutations {
        interesting: [
            0,
            1,
            u64::from(u32::MAX),
            u64::MAX,
            0x3030_3030,
            0x2c31_3131,
        ],
        max_extend: 600,
        special: insert_token,
    };
    fuzz_harness::mutate_with(&m, rng, input)
}

#[test]
fn committed_corpora_replay() {
    fuzz_harness::replay_corpora(TARGETS, &corpus_root());
}

#[test]
fn committed_seeds() {
    fuzz_harness::check_seed_files(TARGETS, &corpus_root(), seeds);
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    fuzz_harness::mutations_never_panic(TARGETS, seeds, mutate);
}

#[test]
fn seeds_are_accepted_by_their_decoder() {
    // The seeds must get past the decoders, or fuzzing starts from nothing;
    // and the first delta must apply to the fuzz database.
    for s in snapshot_seeds() {
        assert!(decode_snapshot(&s).is_ok());
    }
    let deltas = delta_seeds();
    assert!(deltas.len() >= 7);
    let mut db = fuzz_database();
    for s in &deltas {
        db.replay(&decode_delta(s).expect("delta seed decodes"))
            .expect("delta seeds apply in order");
    }
    assert_eq!(db, populated().0);
}
