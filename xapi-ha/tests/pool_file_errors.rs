//! Every schema error gives a precise message naming the entry and the field,
//! in TOML and in JSON alike.

use xapi_ha::pool_file::{Format, PoolFileError, parse_pool};

/// A valid pool; cases append to it or replace parts of it.
const BASE: &str = r#"
[[host]]
name = "h1"
memory-total = "64GiB"

[[host]]
name = "h2"
memory-total = "64GiB"
"#;

fn toml_error(text: &str) -> String {
    match parse_pool(text, Format::Toml) {
        Ok(pool) => panic!("expected an error, parsed {pool:?}"),
        Err(e) => e.to_string(),
    }
}

fn json_error(text: &str) -> String {
    match parse_pool(text, Format::Json) {
        Ok(pool) => panic!("expected an error, parsed {pool:?}"),
        Err(e) => e.to_string(),
    }
}

fn with_vm(vm: &str) -> String {
    format!("{BASE}\n[[vm]]\n{vm}\n")
}

#[test]
fn base_is_valid() {
    let pool = parse_pool(BASE, Format::Toml).unwrap();
    assert_eq!(pool.hosts.len(), 2);
    assert!(pool.vms.is_empty());
    assert_eq!(pool.ha_host_failures_to_tolerate, 0);
}

#[test]
fn bad_priority_message_is_the_documented_one() {
    let e = toml_error(&with_vm(
        "name = \"db1\"\nmemory = \"16GiB\"\nha-restart-priority = \"always\"",
    ));
    assert_eq!(
        e,
        r#"vm "db1": ha-restart-priority must be restart, best-effort or empty, got "always""#
    );
    let e = toml_error(&with_vm(
        "name = \"db1\"\nmemory = \"16GiB\"\nha-restart-priority = 1",
    ));
    assert_eq!(
        e,
        r#"vm "db1": ha-restart-priority must be restart, best-effort or empty, got 1"#
    );
}

#[test]
fn schema_errors_name_entry_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "name = \"db1\"\nmemroy = \"16GiB\"",
            r#"vm "db1": unknown key "memroy" (did you mean "memory"?)"#,
        ),
        (
            "name = \"db1\"\nmemory = \"16GiB\"\ncolour = \"red\"",
            r#"vm "db1": unknown key "colour" (known keys: name, uuid, memory, memory-overhead, ha-restart-priority, order, power-state, resident-on, agile, affinity)"#,
        ),
        (
            "memory = \"16GiB\"",
            r#"vm #1: missing required key "name""#,
        ),
        (
            "name = \"db1\"",
            r#"vm "db1": missing required key "memory""#,
        ),
        (
            "name = \"\"\nmemory = \"1GiB\"",
            "vm #1: name must not be empty",
        ),
        (
            "name = 7\nmemory = \"1GiB\"",
            "vm #1: name must be a string, got 7",
        ),
        (
            "name = \"db1\"\nmemory = \"16Gb\"",
            r#"vm "db1": memory has unknown unit "Gb" (units: B, KiB, MiB, GiB, TiB, PiB, KB, MB, GB, TB, PB), got "16Gb""#,
        ),
        (
            "name = \"db1\"\nmemory = -5",
            r#"vm "db1": memory must not be negative, got -5"#,
        ),
        (
            "name = \"db1\"\nmemory = \"-5GiB\"",
            r#"vm "db1": memory must not be negative, got "-5GiB""#,
        ),
        (
            "name = \"db1\"\nmemory = \"0.5B\"",
            r#"vm "db1": memory is not a whole number of bytes, got "0.5B""#,
        ),
        (
            "name = \"db1\"\nmemory = 1.5",
            r#"vm "db1": memory must be an integer number of bytes or a string with a unit (like "16GiB"), got 1.5"#,
        ),
        (
            "name = \"db1\"\nmemory = \"20000PiB\"",
            r#"vm "db1": memory is too large (more than 2^64 - 1 bytes), got "20000PiB""#,
        ),
        (
            "name = \"db1\"\nmemory = 0",
            r#"vm "db1": memory must be greater than 0, got 0"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\nuuid = \"not-a-uuid\"",
            r#"vm "db1": uuid must be a UUID (like 7b3e1c2a-0d4f-4e8b-9a6c-5f2d1e0b3a47), got "not-a-uuid""#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\npower-state = \"paused\"",
            r#"vm "db1": power-state must be running or halted, got "paused""#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\npower-state = \"running\"",
            r#"vm "db1": power-state is running but resident-on is not set"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\npower-state = \"halted\"\nresident-on = \"h1\"",
            r#"vm "db1": power-state is halted but resident-on is set to "h1" (a halted VM resides nowhere; use affinity for a preferred host)"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\nresident-on = \"h9\"",
            r#"vm "db1": resident-on "h9" is not the name or uuid of any host"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\naffinity = \"h9\"",
            r#"vm "db1": affinity "h9" is not the name or uuid of any host"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\nagile = \"yes\"",
            r#"vm "db1": agile must be true or false, got "yes""#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\norder = \"first\"",
            r#"vm "db1": order must be an integer, got "first""#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\norder = 1.0",
            r#"vm "db1": order must be an integer, got 1.0"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\nresident-on = 3",
            r#"vm "db1": resident-on must be a string, got 3"#,
        ),
        (
            "name = \"db1\"\nmemory = \"1GiB\"\nmemory-overhead = 1979-05-27",
            r#"vm "db1": memory-overhead must be an integer number of bytes or a string with a unit (like "16GiB"), got the datetime 1979-05-27"#,
        ),
        (
            "name = \"db1\"\nmemory = \"65GiB\"\nresident-on = \"h2\"",
            r#"host "h2": its running VMs need 65 GiB but only 64 GiB is available (memory-total - memory-overhead)"#,
        ),
    ];
    for (vm, expected) in cases {
        assert_eq!(&toml_error(&with_vm(vm)), expected, "for vm entry:\n{vm}");
    }
}

#[test]
fn host_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"\nmemory-overhead = \"9GiB\"",
            r#"host "h1": memory-overhead (9 GiB) exceeds memory-total (8 GiB)"#,
        ),
        (
            "[[host]]\nname = \"h1\"",
            r#"host "h1": missing required key "memory-total""#,
        ),
        (
            "[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"\nenabled = 1",
            r#"host "h1": enabled must be true or false, got 1"#,
        ),
        (
            "[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"\nlve = false",
            r#"host "h1": unknown key "lve" (did you mean "live"?)"#,
        ),
        (
            "[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"\n[[host]]\nname = \"h1\"\nmemory-total = \"8GiB\"",
            r#"host name "h1" is used by entries #1 and #2"#,
        ),
        (
            "[[host]]\nname = \"h1\"\nuuid = \"2a0e4b8c-1111-4c1a-9b7e-000000000001\"\nmemory-total = \"8GiB\"\n\
             [[host]]\nname = \"h2\"\nuuid = \"2a0e4b8c-1111-4c1a-9b7e-000000000001\"\nmemory-total = \"8GiB\"",
            r#"host "h2": uuid 2a0e4b8c-1111-4c1a-9b7e-000000000001 is already used by host "h1""#,
        ),
        (
            "[pool]\nha-host-failures-to-tolerate = -1\n[[host]]\nname = \"h1\"\nmemory-total = 1",
            "[pool]: ha-host-failures-to-tolerate must be a non-negative integer below 2^32, got -1",
        ),
        (
            "[pool]\nha-host-failures = 1\n[[host]]\nname = \"h1\"\nmemory-total = 1",
            r#"[pool]: unknown key "ha-host-failures" (known keys: ha-host-failures-to-tolerate)"#,
        ),
        (
            "[[hosts]]\nname = \"h1\"\nmemory-total = 1",
            r#"top level: unknown key "hosts" (did you mean "host"?)"#,
        ),
        (
            "[pool]\nha-host-failures-to-tolerate = 1",
            "the pool has no hosts (at least one [[host]] entry is required)",
        ),
        (
            "host = 3",
            "top level: host must be an array of tables, got 3",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&toml_error(text), expected, "for file:\n{text}");
    }
}

#[test]
fn vm_cross_checks() {
    let two_vms =
        format!("{BASE}\n[[vm]]\nname = \"a\"\nmemory = 1\n[[vm]]\nname = \"a\"\nmemory = 1\n");
    assert_eq!(
        toml_error(&two_vms),
        r#"vm name "a" is used by entries #1 and #2"#
    );

    // A VM may not take a host's UUID either: UUIDs are global.
    let h1 = xapi_ha::pool_file::host_uuid_from_name("h1");
    let clash = with_vm(&format!("name = \"a\"\nmemory = 1\nuuid = \"{h1}\""));
    assert_eq!(
        toml_error(&clash),
        format!(r#"vm "a": uuid {h1} is already used by host "h1""#)
    );

    // A reference that is one host's name and another host's UUID.
    let h2 = xapi_ha::pool_file::host_uuid_from_name("h2");
    let ambiguous = format!(
        "[[host]]\nname = \"{h2}\"\nmemory-total = 1\n[[host]]\nname = \"h2\"\nmemory-total = 1\n\
         [[vm]]\nname = \"a\"\nmemory = 1\naffinity = \"{h2}\"\n"
    );
    assert_eq!(
        toml_error(&ambiguous),
        format!(
            r#"vm "a": affinity "{h2}" is ambiguous: it is the name of one host and the uuid of host "h2""#
        )
    );
}

#[test]
fn json_errors_match_toml_and_catch_duplicate_keys() {
    let e =
        json_error(r#"{"host": [{"name": "h1", "memory-total": "1GiB", "memory-total": "2GiB"}]}"#);
    assert_eq!(e, r#"host "h1": key "memory-total" given more than once"#);
    let e = json_error(
        r#"{"host": [{"name": "h1", "memory-total": "1GiB"}],
            "vm": [{"name": "db1", "memory": "1GiB", "ha-restart-priority": "always"}]}"#,
    );
    assert_eq!(
        e,
        r#"vm "db1": ha-restart-priority must be restart, best-effort or empty, got "always""#
    );
    let e = json_error(r#"{"host": [{"name": "h1", "memory-total": 1.5e9}]}"#);
    assert_eq!(
        e,
        r#"host "h1": memory-total must be an integer number of bytes or a string with a unit (like "16GiB"), got 1500000000.0"#
    );
    let e = json_error(r#"{"host": [{"name": "h1", "memory-total": null}]}"#);
    assert_eq!(
        e,
        r#"host "h1": memory-total must be an integer number of bytes or a string with a unit (like "16GiB"), got null"#
    );
    let e = json_error(r#"{"host": {"name": "h1", "memory-total": 1}}"#);
    assert_eq!(e, "top level: host must be an array of tables, got a table");
    let e = json_error(r#"[1, 2]"#);
    assert_eq!(
        e,
        "top level: the document must be a table (a JSON object), got an array"
    );
    let e = json_error(r#"{"host": [{"name": "h1", "memory-total": 18446744073709551616}]}"#);
    assert!(
        e.starts_with(r#"host "h1": memory-total must be an integer number of bytes"#),
        "{e}"
    );
}

#[test]
fn syntax_errors_give_line_and_column_on_one_line() {
    let e = toml_error("[[host]]\nname = \"h1\"\nmemory-total = \n");
    assert!(e.starts_with("invalid TOML at line 3, column "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let e = json_error("{\n  \"host\": [\n    {\"name\": \"h1\",}\n  ]\n}");
    assert!(e.starts_with("invalid JSON at line 3, column "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // TOML itself refuses duplicate keys.
    let e = toml_error("[[host]]\nname = \"h1\"\nname = \"h2\"\nmemory-total = 1\n");
    assert!(e.starts_with("invalid TOML at line 3"), "{e}");
}

#[test]
fn file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("pool.yaml");
    std::fs::write(&yaml, "host: []").unwrap();
    let e = xapi_ha::pool_file::load_pool_file(&yaml).unwrap_err();
    assert!(matches!(e, PoolFileError::UnsupportedExtension { .. }));
    assert_eq!(
        e.to_string(),
        format!(
            "{}: unsupported file extension (expected .toml or .json)",
            yaml.display()
        )
    );
    let missing = dir.path().join("missing.toml");
    let e = xapi_ha::pool_file::load_pool_file(&missing).unwrap_err();
    assert!(matches!(e, PoolFileError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display()))
    );
    let binary = dir.path().join("binary.json");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let e = xapi_ha::pool_file::load_pool_file(&binary).unwrap_err();
    assert!(matches!(e, PoolFileError::Read { .. }), "{e}");
}

/// Three running VMs of (2^64 - 1) / 2 bytes on a host of 2^64 - 1 bytes:
/// the sum overflows u64. Before, it was clamped and the error said "need
/// 18446744073709551615 B but only 18446744073709551615 B is available".
#[test]
fn overfull_host_reports_a_sum_beyond_u64_exactly() {
    let half = u64::MAX / 2;
    // Sizes as strings: TOML integers stop at 2^63 - 1.
    let mut text = format!(
        "[[host]]\nname = \"big\"\nmemory-total = \"{} B\"\n",
        u64::MAX
    );
    for i in 0..3 {
        text.push_str(&format!(
            "[[vm]]\nname = \"v{i}\"\nmemory = \"{half} B\"\nresident-on = \"big\"\n"
        ));
    }
    let need = 3 * u128::from(half);
    assert_eq!(
        toml_error(&text),
        format!(
            "host \"big\": its running VMs need {need} B but only {} B is available (memory-total - memory-overhead)",
            u64::MAX
        )
    );
    assert_eq!(need.to_string(), "27670116110564327421");
}
