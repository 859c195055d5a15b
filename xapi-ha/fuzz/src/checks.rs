//! The property every decoder of the pool database must have, one function
//! per fuzz target: decoding arbitrary bytes never panics; a decoded
//! snapshot satisfies every invariant and encodes back to itself; a decoded
//! delta encodes back to itself and, replayed onto a database, either
//! applies whole (invariants hold) or changes nothing.
//!
//! Shared word for word by the cargo-fuzz targets (`fuzz_targets/*.rs`) and
//! by `xapi-ha/tests/fuzz_corpus_replay.rs`, which replays the committed
//! corpora in ordinary CI without cargo-fuzz. Depends only on `xapi_ha`.

use xapi_ha::api::Caller;
use xapi_ha::api::bootstrap::{HostInfo, new_pool};
use xapi_ha::db::Database;
use xapi_ha::db::encode::{decode_delta, decode_snapshot, encode_delta, encode_snapshot};
use xapi_ha::value::{DateTime, Ref};

/// Largest input a check looks at.
pub const MAX_INPUT_BYTES: usize = 256 * 1024;

fn bounded(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT_BYTES)]
}

/// The database deltas are replayed onto: a pool of one host, made the same
/// way every time (the committed seeds refer to its objects).
pub fn fuzz_database() -> Database {
    let caller = Caller {
        now: DateTime::from_unix(1_763_000_000),
        seed: uuid::Uuid::from_u128(0x5eed),
        this_host: Ref::NULL,
    };
    let info = HostInfo {
        uuid: "0a0b0c0d-0e0f-4000-8000-000000000001".into(),
        name_label: "fuzz".into(),
        address: "127.0.0.1".into(),
        hostname: "fuzz".into(),
        memory_total: 1 << 33,
        memory_overhead: 1 << 28,
        vm_drivers: vec!["process".into()],
    };
    let mut db = Database::new();
    let (_, changes) = new_pool(&db, &caller, &info);
    let _kept = db.apply(&changes).expect("the fuzz pool applies");
    db
}

pub fn check_snapshot(data: &[u8]) {
    if let Ok(db) = decode_snapshot(bounded(data)) {
        db.check_invariants()
            .expect("a decoded snapshot satisfies the invariants");
        let again = decode_snapshot(&encode_snapshot(&db)).expect("re-encoded snapshot decodes");
        assert_eq!(again, db, "snapshot pair");
    }
}

pub fn check_delta(data: &[u8]) {
    let Ok(delta) = decode_delta(bounded(data)) else {
        return;
    };
    let again = decode_delta(&encode_delta(delta.first_generation, &delta.changes))
        .expect("re-encoded delta decodes");
    assert_eq!(again, delta, "delta pair");
    let mut db = fuzz_database();
    let before = db.clone();
    match db.replay(&delta) {
        Ok(()) => db
            .check_invariants()
            .expect("a replayed delta keeps the invariants"),
        Err(_) => assert_eq!(db, before, "a refused delta changed the database"),
    }
}

/// haenable: the local HA record (`<data.dir>/ha-state.toml`): an accepted
/// record writes back to text that parses to the same record.
pub fn check_ha_state(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(bounded(data)) else {
        return;
    };
    let Ok(state) = xapi_ha::ha_link::state::HaState::parse(text) else {
        return;
    };
    let again = state.to_text().expect("an accepted record writes back");
    assert_eq!(
        xapi_ha::ha_link::state::HaState::parse(&again).expect("written record parses"),
        state,
        "ha_state pair"
    );
}

/// A check: panics when a property of a decoder is broken.
pub type Check = fn(&[u8]);

/// Every target: name and check.
pub const TARGETS: &[(&str, Check)] = &[
    ("snapshot", check_snapshot),
    ("delta", check_delta),
    ("ha_state", check_ha_state),
];
