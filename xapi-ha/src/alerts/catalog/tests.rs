//! The audit of docs/alerts.md, "Where each message is raised": the
//! messages other parts build themselves (`ha::messages`, the statefile
//! edge of `ha_link::translate`) agree with the catalogue in name,
//! priority, class and body, and every catalogue entry has xapi's priority
//! and class (../shared/reference/xenapi.md §4.10).

use uuid::Uuid;

use super::*;
use crate::api::bootstrap::{HostInfo, new_pool};
use crate::ha::messages as ha_messages;

fn pool_of_one() -> (Database, Ref) {
    let mut db = Database::new();
    let caller = Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(11),
        this_host: Ref::NULL,
    };
    let info = HostInfo {
        uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d01".into(),
        name_label: "h1".into(),
        address: "10.0.0.1".into(),
        hostname: "h1".into(),
        memory_total: 8 << 30,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    };
    let (host, changes) = new_pool(&db, &caller, &info);
    let _ = db.apply(&changes).unwrap();
    let p = pool(&db).unwrap();
    let _ = db
        .apply(&[Change::set(
            Class::Pool,
            p,
            "name_label",
            Value::String("pool0".into()),
        )])
        .unwrap();
    (db, host)
}

fn same(a: &Alert, m: &ha_messages::HaMessage) {
    assert_eq!(a.name, m.name);
    assert_eq!(a.priority, m.priority, "{}", a.name);
    assert_eq!(a.cls, m.cls, "{}", a.name);
    assert_eq!(a.obj_uuid, m.obj_uuid, "{}", a.name);
    assert_eq!(a.body, m.body, "{}", a.name);
}

#[test]
fn the_ha_messages_built_elsewhere_agree_with_the_catalogue() {
    let (db, host) = pool_of_one();
    let host_uuid = uuid_of(&db, Class::Host, host);
    same(
        &host_failed(&db, host),
        &ha_messages::host_failed(&host_uuid, "h1"),
    );
    let p = pool_uuid(&db);
    same(
        &pool_overcommitted(&db),
        &ha_messages::pool_overcommitted(&p, "pool0"),
    );
    same(
        &pool_drop_in_plan_exists_for(&db, 0),
        &ha_messages::pool_drop_in_plan_exists_for(&p, 0),
    );
    let lost = statefile_lost(&db, host);
    assert_eq!(lost.name, crate::ha_link::translate::STATEFILE_LOST);
    assert_eq!(
        lost.priority,
        crate::ha_link::translate::STATEFILE_LOST_PRIORITY
    );
    assert_eq!(lost.body, crate::api::ha_enable::STATEFILE_LOST_BODY);
    assert_eq!(lost.cls, "Host");
}

#[test]
fn priorities_and_classes_are_xapis() {
    // xenapi.md §4.3, §4.4, §4.8, §4.10, VM.start / VM.clean_shutdown.
    let xapi: &[(&str, i64, &str)] = &[
        ("HA_HOST_FAILED", 3, "Host"),
        ("HA_HOST_WAS_FENCED", 4, "Host"),
        ("HA_PROTECTED_VM_RESTART_FAILED", 2, "VM"),
        ("HA_POOL_OVERCOMMITTED", 3, "Pool"),
        ("HA_POOL_DROP_IN_PLAN_EXISTS_FOR", 3, "Pool"),
        ("HA_STATEFILE_LOST", 2, "Host"),
        ("HA_NETWORK_BONDING_ERROR", 3, "Host"),
        ("POOL_MASTER_TRANSITION", 4, "Host"),
        ("METADATA_LUN_BROKEN", 3, "Pool"),
        ("METADATA_LUN_HEALTHY", 4, "Pool"),
        ("VM_STARTED", 5, "VM"),
        ("VM_SHUTDOWN", 5, "VM"),
    ];
    for (name, priority, cls) in xapi {
        let entry = CATALOG.iter().find(|(n, ..)| n == name);
        assert_eq!(entry, Some(&(*name, *priority, *cls)), "{name}");
    }
    let (db, host) = pool_of_one();
    assert_eq!(host_was_fenced(&db, host).body, "");
    assert_eq!(
        host_fence_reason(&db, host, " the lease ran out\n").body,
        "Server 'h1' fenced itself: the lease ran out"
    );
    let broken = metadata_lun(&db, false, "metadata");
    assert_eq!(
        (broken.name.as_str(), broken.priority, broken.body.as_str()),
        ("METADATA_LUN_BROKEN", 3, "Redo log [metadata]")
    );
    let healthy = metadata_lun(&db, true, "metadata");
    assert_eq!(
        (healthy.name.as_str(), healthy.priority),
        ("METADATA_LUN_HEALTHY", 4)
    );
}
