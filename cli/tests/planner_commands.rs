//! The offline planner commands on the example pool files, with answers
//! worked out by hand in each example's header comment.

mod common;

use common::{example, json, ok, xe};

const MAX: &str = "pool-ha-compute-max-host-failures-to-tolerate";
const HYPO: &str = "pool-ha-compute-hypothetical-max-host-failures-to-tolerate";
const PLAN: &str = "pool-ha-compute-vm-failover-plan";

#[test]
fn max_failures_plain_prints_only_the_number() {
    for (file, expected) in [
        ("small-healthy.toml", "1\n"),
        ("small-healthy.json", "1\n"),
        ("overcommitted.json", "1\n"),
        ("big-vm.toml", "7\n"),
        ("non-agile-disabled.toml", "1\n"),
    ] {
        assert_eq!(ok(&[MAX, &example(file)]), expected, "{file}");
        assert_eq!(ok(&[MAX, &example(file), "--minimal"]), expected, "{file}");
    }
}

#[test]
fn max_failures_json_has_the_documented_keys() {
    let v = json(&ok(&[MAX, &example("non-agile-disabled.toml"), "--json"]));
    assert_eq!(v["max_host_failures"], 1);
    assert_eq!(v["exact"], true);
    assert_eq!(
        v["limiting_failure_set_names"],
        serde_json::json!(["h1", "h2"])
    );
    assert_eq!(v["limiting_failure_set"].as_array().unwrap().len(), 2);
    // db1 and app1 have only the disabled h3 left.
    let mut unplaced: Vec<&str> = v["unplaced_vm_names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    unplaced.sort_unstable();
    assert_eq!(unplaced, ["app1", "db1"]);
    assert_eq!(v["unplaced_vms"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["excluded_non_agile_vm_names"],
        serde_json::json!(["local1"])
    );
    assert_eq!(
        v["excluded_non_agile_vms"],
        serde_json::json!([xapi_ha::pool_file::vm_uuid_from_name("local1")])
    );
    assert_eq!(v["overcommitted"], false);
}

#[test]
fn overcommitted_pool_is_reported() {
    let v = json(&ok(&[MAX, &example("overcommitted.json"), "--json"]));
    assert_eq!(v["max_host_failures"], 1);
    assert_eq!(v["ha_host_failures_to_tolerate"], 2);
    assert_eq!(v["overcommitted"], true);
    let text = ok(&[MAX, &example("overcommitted.json"), "--explain"]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(
        text.contains("overcommitted (the pool tolerates only 1)"),
        "{text}"
    );
    assert!(text.contains("limiting failure set: "), "{text}");
}

#[test]
fn big_vm_beats_the_xenserver_approximation() {
    // Answer 7, exact (see the file's header); XenServer's own planner, run
    // on the same pool, reports less (3).
    let v = json(&ok(&[MAX, &example("big-vm.toml"), "--json"]));
    assert_eq!(v["max_host_failures"], 7);
    assert_eq!(v["exact"], true);
    assert_eq!(v["limiting_failure_set"].as_array().unwrap().len(), 8);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/big-vm.toml");
    let pool = xapi_ha::pool_file::load_pool_file(&path).unwrap();
    assert!(xapi_ha::planner::xenserver::max_host_failures(&pool) < 7);
}

#[test]
fn hypothetical_changes_priorities_in_pairs() {
    let file = example("overcommitted.json");
    // Only erp1 stays protected: losing any two hosts leaves room for it.
    let args = [
        HYPO,
        &file,
        "vm-uuid=erp2",
        "restart-priority=best-effort",
        "vm-uuid=erp3",
        "restart-priority=",
        "vm-uuid=b2d7c3f1-6e4a-4d2b-8c8f-000000000004",
        "restart-priority=",
        "vm-uuid=erp5",
        "restart-priority=best-effort",
        "vm-uuid=erp6",
        "restart-priority=",
    ];
    assert_eq!(ok(&args), "2\n");
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let v = json(&ok(&with_json));
    assert_eq!(v["max_host_failures"], 2);
    assert_eq!(v["overcommitted"], false);
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 5);
    assert_eq!(changes[0]["vm_name"], "erp2");
    assert_eq!(changes[0]["restart_priority"], "best-effort");
    assert_eq!(changes[2]["vm_name"], "erp4");
    assert_eq!(changes[2]["restart_priority"], "");
    for key in [
        "exact",
        "limiting_failure_set",
        "unplaced_vms",
        "excluded_non_agile_vms",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    // Protecting a halted VM changes nothing it does not need.
    assert_eq!(
        ok(&[HYPO, &file, "vm-uuid=report", "restart-priority=restart"]),
        "1\n"
    );
    // Pairs may be given in either order within the pair.
    assert_eq!(
        ok(&[HYPO, &file, "restart-priority=restart", "vm-uuid=erp1"]),
        "1\n"
    );
}

#[test]
fn failover_plan_table() {
    let text = ok(&[PLAN, &example("small-healthy.toml"), "host-uuids=h1"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("VM "), "{text}");
    for column in ["VM-UUID", "PRIORITY", "ORDER", "DESTINATION", "HOST-UUID"] {
        assert!(lines[0].contains(column), "{text}");
    }
    // h1's three protected VMs and its best-effort VM, all placed.
    assert_eq!(lines.len(), 5, "{text}");
    for name in ["web1", "web2", "db1", "cache1"] {
        let line = lines.iter().find(|l| l.starts_with(name)).unwrap();
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert!(columns[4] == "h2" || columns[4] == "h3", "{line}");
    }
    // Protected before best-effort.
    assert!(lines[4].starts_with("cache1"), "{text}");
}

#[test]
fn failover_plan_reasons_json_and_minimal() {
    let file = example("non-agile-disabled.toml");
    let text = ok(&[PLAN, &file, "host-uuids=h1,h2"]);
    assert!(text.contains("(no room)"), "{text}");
    assert!(text.contains("(not agile)"), "{text}");

    let h1 = xapi_ha::pool_file::host_uuid_from_name("h1").to_string();
    let v = json(&ok(&[PLAN, &file, &format!("host-uuids={h1}"), "--json"]));
    assert_eq!(v["failed_host_names"], serde_json::json!(["h1"]));
    let entries = v["entries"].as_array().unwrap();
    let db1 = entries.iter().find(|e| e["vm_name"] == "db1").unwrap();
    // Affinity: db1 prefers h2, which has room.
    assert_eq!(db1["destination_name"], "h2");
    assert_eq!(db1["reason"], serde_json::Value::Null);
    let local1 = entries.iter().find(|e| e["vm_name"] == "local1").unwrap();
    assert_eq!(local1["destination"], serde_json::Value::Null);
    assert_eq!(local1["reason"], "not_agile");

    // --minimal: the VMs left without a destination, comma-separated.
    let minimal = ok(&[PLAN, &file, "host-uuids=h1", "--minimal"]);
    assert_eq!(
        minimal,
        format!("{}\n", xapi_ha::pool_file::vm_uuid_from_name("local1"))
    );
    assert_eq!(
        ok(&[
            PLAN,
            &example("small-healthy.toml"),
            "host-uuids=h1",
            "--minimal"
        ]),
        "\n"
    );
}

#[test]
fn empty_failure_set_plans_nothing_here() {
    let text = ok(&[PLAN, &example("small-healthy.toml"), "host-uuids="]);
    assert_eq!(text.lines().count(), 1, "only the header: {text}");
}

#[test]
fn help_lists_commands_and_parameters() {
    let text = ok(&["help"]);
    for name in [MAX, HYPO, PLAN] {
        assert!(text.contains(name), "{text}");
    }
    let text = ok(&["help", HYPO]);
    assert!(
        text.contains("reqd params     : vm-uuid, restart-priority")
            && text.contains("optional params : pool-file"),
        "{text}"
    );
    assert!(text.contains("--json"), "{text}");
    assert_eq!(ok(&[PLAN, "--help"]), ok(&["help", PLAN]));
    let out = xe(&["--help"]);
    assert_eq!(out.code, 0);
    assert_eq!(out.stdout, text_of_help());
}

fn text_of_help() -> String {
    ok(&["help"])
}

fn write_pool(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    format!("pool-file={}", path.display())
}

#[test]
fn no_plan_even_without_failures_is_minus_one() {
    // huge (6 GiB, protected) runs on the dead host b; a has 8 - 4 = 4 GiB
    // free: no room, so not even zero failures are tolerated.
    let dir = tempfile::tempdir().unwrap();
    let file = write_pool(
        &dir,
        "neg.toml",
        r#"
        [[host]]
        name = "a"
        memory-total = "8GiB"
        [[host]]
        name = "b"
        memory-total = "8GiB"
        live = false
        [[vm]]
        name = "filler"
        memory = "4GiB"
        ha-restart-priority = "best-effort"
        resident-on = "a"
        [[vm]]
        name = "huge"
        memory = "6GiB"
        ha-restart-priority = "restart"
        resident-on = "b"
        [[vm]]
        name = "u"
        memory = "1GiB"
        resident-on = "b"
        "#,
    );
    assert_eq!(ok(&[MAX, &file]), "-1\n");
    let v = json(&ok(&[MAX, &file, "--json"]));
    assert_eq!(v["max_host_failures"], -1);
    assert_eq!(v["unplaced_vm_names"], serde_json::json!(["huge"]));
    assert_eq!(v["limiting_failure_set"], serde_json::json!([]));
    assert_eq!(v["overcommitted"], true);
    let text = ok(&[MAX, &file, "--explain"]);
    assert!(
        text.contains("even with no host failure, no room for: huge"),
        "{text}"
    );
    // The empty failure set plans the VMs whose host is not live.
    let plan = ok(&[PLAN, &file, "host-uuids="]);
    assert!(
        plan.lines()
            .any(|l| l.starts_with("huge ") && l.contains("(no room)")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("u ") && l.contains("(unprotected)")),
        "{plan}"
    );
}

#[test]
fn no_protected_vms_tolerates_every_live_host() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pool(
        &dir,
        "none.json",
        r#"{"host": [{"name": "a", "memory-total": "8GiB"}, {"name": "b", "memory-total": "8GiB"}],
            "vm": [{"name": "u", "memory": "1GiB", "resident-on": "a"}]}"#,
    );
    assert_eq!(ok(&[MAX, &file]), "2\n");
    let text = ok(&[MAX, &file, "--explain"]);
    assert!(text.contains("limiting failure set: none"), "{text}");
}

/// Names from a pool file holding `ESC [ 2 J` and a newline are printed
/// escaped in tables, explanations and errors: raw, they cleared the
/// terminal and forged lines of output. JSON keeps the exact names.
#[test]
fn control_characters_in_names_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_pool(
        &dir,
        "evil.toml",
        r#"
        [[host]]
        name = "a"
        memory-total = "8GiB"
        [[host]]
        name = "b\u001b[2J\nh"
        memory-total = "8GiB"
        live = false
        [[vm]]
        name = "v\u001b[2J\nforged"
        memory = "6GiB"
        ha-restart-priority = "restart"
        resident-on = "b\u001b[2J\nh"
        [[vm]]
        name = "filler"
        memory = "4GiB"
        ha-restart-priority = "best-effort"
        resident-on = "a"
        "#,
    );
    let plan = ok(&[PLAN, &file, "host-uuids="]);
    assert!(!plan.contains('\u{1b}'), "{plan:?}");
    assert!(plan.contains("v\\x1b[2J\\nforged"), "{plan}");
    assert!(!plan.lines().any(|l| l.starts_with("forged")), "{plan}");
    let text = ok(&[MAX, &file, "--explain"]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(text.contains("no room for: v\\x1b[2J\\nforged"), "{text}");
    let v = json(&ok(&[MAX, &file, "--json"]));
    assert_eq!(
        v["unplaced_vm_names"],
        serde_json::json!(["v\u{1b}[2J\nforged"])
    );
}
