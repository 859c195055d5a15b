//! The checks of `pool.enable_ha` / `pool.disable_ha` and the changes they
//! record, on a database built like the agent's.

use uuid::Uuid;

use super::*;
use crate::api::bootstrap::{HostInfo, add_host, new_pool};
use crate::api::{Caller, call};
use crate::value::DateTime;

fn caller(n: u128) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: Ref::NULL,
    }
}

fn info(uuid: &str) -> HostInfo {
    HostInfo {
        uuid: uuid.into(),
        name_label: "h".into(),
        address: "10.0.0.1".into(),
        hostname: "h".into(),
        memory_total: 8 << 30,
        memory_overhead: 0,
        vm_drivers: vec![],
    }
}

struct Fixture {
    db: Database,
    host: Ref,
    shared: Ref,
    local: Ref,
    block: Ref,
}

fn sr(db: &mut Database, n: u128, host: Ref, ty: &str, shared: bool) -> Ref {
    let key = if ty == "file" { "path" } else { "device" };
    let args = [
        Value::Ref(host),
        Value::string_map([(key, format!("/srv/sr{n}"))]),
        Value::Int(0),
        Value::String(format!("sr{n}")),
        Value::String(String::new()),
        Value::String(ty.into()),
        Value::String(String::new()),
        Value::Bool(shared),
        Value::Map(Vec::new()),
    ];
    let out = call(db, &caller(n), "SR.create", &args).unwrap();
    let _ = db.apply(&out.changes).unwrap();
    out.result.as_ref().unwrap()
}

fn fixture() -> Fixture {
    let mut db = Database::new();
    let (host, changes) = new_pool(
        &db,
        &caller(1),
        &info("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    let _ = db.apply(&changes).unwrap();
    let shared = sr(&mut db, 2, host, "file", true);
    let local = sr(&mut db, 3, host, "file", false);
    let block = sr(&mut db, 4, host, "block", true);
    Fixture {
        db,
        host,
        shared,
        local,
        block,
    }
}

fn enable_args(srs: &[Ref], config: &[(&str, &str)]) -> Vec<Value> {
    vec![
        Value::Set(srs.iter().map(|r| Value::Ref(*r)).collect()),
        Value::string_map(config.iter().copied()),
    ]
}

fn code(r: Result<EnableRequest, ApiError>) -> Vec<String> {
    let e = r.unwrap_err();
    let mut v = vec![e.code];
    v.extend(e.params);
    v
}

#[test]
fn a_good_enable_is_an_effect_with_no_changes() {
    let f = fixture();
    let out = call(
        &f.db,
        &caller(9),
        "pool.enable_ha",
        &enable_args(&[f.shared], &[("timeout", "10")]),
    )
    .unwrap();
    assert!(out.changes.is_empty());
    let [Effect::EnableHa(req)] = &out.effects[..] else {
        panic!("{:?}", out.effects);
    };
    assert_eq!(req.timeout_s, 10);
    assert_eq!(req.srs.len(), 1);
    assert_eq!(req.srs[0].path, PathBuf::from("/srv/sr2"));
    assert_eq!(req.hosts.len(), 1);
    assert_eq!(req.hosts[0].host, f.host);
}

#[test]
fn each_check_names_its_error() {
    let f = fixture();
    let c = |srs: &[Ref], cfg: &[(&str, &str)]| code(check_enable(&f.db, &enable_args(srs, cfg)));
    assert_eq!(
        c(&[f.local], &[]),
        vec![
            "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED".to_owned(),
            f.local.to_string()
        ]
    );
    assert_eq!(c(&[], &[]), vec!["CANNOT_CREATE_STATE_FILE"]);
    // blocksr: a shared block SR is accepted; its device is the path.
    let b = check_enable(&f.db, &enable_args(&[f.block], &[])).unwrap();
    assert!(b.srs[0].block);
    assert_eq!(b.srs[0].path, PathBuf::from("/srv/sr4"));
    assert_eq!(
        c(&[f.shared], &[("timeout", "9")]),
        vec!["INVALID_VALUE", "configuration:timeout", "9"]
    );
    assert_eq!(
        c(&[f.shared], &[("timeout", "ten")]),
        vec!["INVALID_VALUE", "configuration:timeout", "ten"]
    );
    assert_eq!(
        c(&[f.shared], &[("colour", "red")]),
        vec!["INVALID_VALUE", "configuration:colour", "red"]
    );
    assert_eq!(
        c(&[f.shared, f.shared], &[]),
        vec![
            "INVALID_VALUE".to_owned(),
            "heartbeat_srs".to_owned(),
            f.shared.to_string()
        ]
    );
    assert_eq!(
        code(check_enable(&f.db, &[Value::Int(1), Value::Map(vec![])]))[0],
        "FIELD_TYPE_ERROR"
    );
    // The timeout defaults to the pool's default_ha_timeout, then 60.
    let req = check_enable(&f.db, &enable_args(&[f.shared], &[])).unwrap();
    assert_eq!(req.timeout_s, DEFAULT_TIMEOUT_S);
    let mut db = f.db.clone();
    let pool = the_pool(&db).unwrap();
    let _ = db
        .apply(&[Change::set(
            Class::Pool,
            pool,
            "other_config",
            Value::string_map([("default_ha_timeout", "45")]),
        )])
        .unwrap();
    assert_eq!(
        check_enable(&db, &enable_args(&[f.shared], &[]))
            .unwrap()
            .timeout_s,
        45
    );
}

#[test]
fn a_host_that_is_not_live_is_offline() {
    let f = fixture();
    let mut db = f.db.clone();
    let (other, changes) = add_host(
        &db,
        &caller(20),
        &info("00000000-0000-4000-8000-000000000001"),
    );
    let _ = db.apply(&changes).unwrap();
    let req = check_enable(&db, &enable_args(&[f.shared], &[])).unwrap();
    // Sorted by UUID, as xhad indexes them.
    assert_eq!(req.hosts[0].host, other);
    let Some(Value::Ref(m)) = db.field(Class::Host, other, "metrics") else {
        panic!()
    };
    let _ = db
        .apply(&[Change::set(
            Class::HostMetrics,
            m,
            "live",
            Value::Bool(false),
        )])
        .unwrap();
    assert_eq!(
        code(check_enable(&db, &enable_args(&[f.shared], &[]))),
        vec!["HOST_OFFLINE".to_owned(), other.to_string()]
    );
}

#[test]
fn enabled_then_disabled_records_and_errors() {
    let f = fixture();
    let mut db = f.db.clone();
    assert_eq!(check_disable(&db).unwrap_err().code, "HA_NOT_ENABLED");
    let req = check_enable(&db, &enable_args(&[f.shared], &[("timeout", "10")])).unwrap();
    let g = Uuid::from_u128(77);
    let files = CreatedFiles {
        generation: g,
        statefiles: vec![PathBuf::from("/srv/sr2/ha-statefile")],
        metadata: PathBuf::from("/srv/sr2/ha-metadata"),
        statefile_bytes: 4 << 20,
        metadata_bytes: 256 << 20,
        statefile_regions: Vec::new(),
        metadata_region: None,
    };
    let changes = enabled_changes(&db, &caller(30), &req, &files);
    assert_eq!(
        changes,
        enabled_changes(&db, &caller(30), &req, &files),
        "pure"
    );
    let _ = db.apply(&changes).unwrap();
    db.check_invariants().unwrap();
    assert!(is_enabled(&db, req.pool));
    assert_eq!(
        code(check_enable(&db, &enable_args(&[f.shared], &[]))),
        vec!["HA_IS_ENABLED"]
    );
    let vdis = ha_vdis(&db, req.pool);
    assert_eq!(vdis.len(), 2);
    let types: Vec<Value> = vdis
        .iter()
        .filter_map(|v| db.field(Class::Vdi, *v, "type"))
        .collect();
    assert!(types.contains(&Value::Enum("ha_statefile".into())));
    assert!(types.contains(&Value::Enum("redo_log".into())));
    let Some(Value::Set(sf)) = db.field(Class::Pool, req.pool, "ha_statefiles") else {
        panic!()
    };
    assert_eq!(sf.len(), 1);
    // SR.forget refuses while a statefile lives on it.
    let forget = call(&db, &caller(31), "SR.forget", &[Value::Ref(f.shared)]);
    assert_eq!(forget.unwrap_err().code, "HA_IS_ENABLED");

    let dreq = check_disable(&db).unwrap();
    let _ = db.apply(&disabled_changes(&db, &dreq)).unwrap();
    db.check_invariants().unwrap();
    assert!(!is_enabled(&db, req.pool));
    assert!(ha_vdis(&db, req.pool).is_empty());
    assert_eq!(db.count(Class::Vdi), 0);
    assert_eq!(
        db.field(Class::Pool, req.pool, "ha_statefiles"),
        Some(Value::Set(vec![]))
    );
    assert_eq!(check_disable(&db).unwrap_err().code, "HA_NOT_ENABLED");
}
