//! The example pool files in `docs/examples/` parse; TOML and JSON describe
//! the same pool; units and derived UUIDs come out as documented.

use std::path::PathBuf;

use uuid::Uuid;
use xapi_ha::model::{PowerState, RestartPriority};
use xapi_ha::pool_file::{
    Format, UUID_NAMESPACE, host_uuid_from_name, load_pool_file, parse_pool, vm_uuid_from_name,
};

const GIB: u64 = 1 << 30;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name)
}

#[test]
fn every_example_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if Format::from_path(&path).is_some() {
            let pool = load_pool_file(&path)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            assert!(!pool.hosts.is_empty());
            count += 1;
        }
    }
    assert!(
        count >= 5,
        "expected at least five example files, found {count}"
    );
}

#[test]
fn toml_and_json_give_the_same_pool() {
    let toml = load_pool_file(&example("small-healthy.toml")).unwrap();
    let json = load_pool_file(&example("small-healthy.json")).unwrap();
    assert_eq!(toml, json);
}

#[test]
fn small_healthy_fields() {
    let pool = load_pool_file(&example("small-healthy.toml")).unwrap();
    assert_eq!(pool.ha_host_failures_to_tolerate, 1);
    assert_eq!(pool.hosts.len(), 3);
    let h1 = &pool.hosts[0];
    assert_eq!(h1.name, "h1");
    assert_eq!(h1.uuid, host_uuid_from_name("h1"));
    assert_eq!((h1.memory_total, h1.memory_overhead), (64 * GIB, 4 * GIB));
    assert!(h1.enabled && h1.live);
    let web3 = pool.vms.iter().find(|v| v.name == "web3").unwrap();
    assert_eq!(web3.uuid, vm_uuid_from_name("web3"));
    assert_eq!(web3.memory, 8 * GIB);
    assert_eq!(web3.priority, RestartPriority::Restart);
    assert_eq!(web3.order, 1);
    assert_eq!(web3.power_state, PowerState::Running);
    assert_eq!(web3.resident_on, Some(host_uuid_from_name("h2")));
    assert!(web3.agile);
    let scratch = pool.vms.iter().find(|v| v.name == "scratch").unwrap();
    assert_eq!(scratch.priority, RestartPriority::Unprotected);
    assert_eq!(scratch.power_state, PowerState::Halted);
    assert_eq!(scratch.resident_on, None);
}

#[test]
fn overcommitted_uses_explicit_uuids_and_byte_counts() {
    let pool = load_pool_file(&example("overcommitted.json")).unwrap();
    assert_eq!(pool.ha_host_failures_to_tolerate, 2);
    let xs2 = &pool.hosts[1];
    assert_eq!(
        xs2.uuid,
        Uuid::parse_str("a1c6b2e0-5d3f-4c1a-9b7e-000000000002").unwrap()
    );
    assert_eq!(xs2.memory_total, 32 * GIB);
    let report = pool.vms.iter().find(|v| v.name == "report").unwrap();
    assert_eq!(report.memory_overhead, 64 << 20);
    assert_eq!(report.affinity, Some(xs2.uuid));
    assert_eq!(report.priority, RestartPriority::BestEffort);
}

#[test]
fn non_agile_and_disabled() {
    let pool = load_pool_file(&example("non-agile-disabled.toml")).unwrap();
    assert!(!pool.hosts[2].enabled);
    let local1 = pool.vms.iter().find(|v| v.name == "local1").unwrap();
    assert!(!local1.agile);
}

#[test]
fn derived_uuids_are_v5_under_the_documented_namespace() {
    // Checked against Python: uuid.uuid5(uuid.UUID("5c1e7a4e-2b0d-4f3a-9e61-08d4c3b2a197"), "host:h1")
    assert_eq!(
        UUID_NAMESPACE.to_string(),
        "5c1e7a4e-2b0d-4f3a-9e61-08d4c3b2a197"
    );
    assert_eq!(
        host_uuid_from_name("h1").to_string(),
        "1cd96b74-1bb4-5d7d-a116-4bb341f7414c"
    );
    assert_eq!(host_uuid_from_name("h1").get_version_num(), 5);
    assert_ne!(host_uuid_from_name("x"), vm_uuid_from_name("x"));
    assert_eq!(host_uuid_from_name("h1"), host_uuid_from_name("h1"));
}

#[test]
fn hosts_referenced_by_uuid_and_memory_units() {
    let text = r#"
        [[host]]
        name = "a"
        uuid = "0f8e2d1c-3b4a-4958-8776-655443322110"
        memory-total = "1TiB"
        memory-overhead = "1.5GiB"
        live = false

        [[vm]]
        name = "v"
        memory = "512MiB"
        memory-overhead = "4000KB"
        resident-on = "0f8e2d1c-3b4a-4958-8776-655443322110"
        affinity = "a"
        order = -3
    "#;
    let pool = parse_pool(text, Format::Toml).unwrap();
    let host = &pool.hosts[0];
    assert_eq!(host.memory_total, 1 << 40);
    assert_eq!(host.memory_overhead, 3 << 29);
    assert!(!host.live);
    let vm = &pool.vms[0];
    assert_eq!(vm.memory, 512 << 20);
    assert_eq!(vm.memory_overhead, 4_000_000);
    assert_eq!(vm.resident_on, Some(host.uuid));
    assert_eq!(vm.affinity, Some(host.uuid));
    assert_eq!(vm.order, -3);
    assert_eq!(vm.power_state, PowerState::Running);
}

#[test]
fn byte_order_mark_is_ignored() {
    let text = "\u{feff}[[host]]\nname = \"a\"\nmemory-total = 1\n";
    assert_eq!(parse_pool(text, Format::Toml).unwrap().hosts.len(), 1);
    let text = "\u{feff}{\"host\": [{\"name\": \"a\", \"memory-total\": 1}]}";
    assert_eq!(parse_pool(text, Format::Json).unwrap().hosts.len(), 1);
}
