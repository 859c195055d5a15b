//! Random pools written as pool files, in TOML and JSON, with every way of
//! writing memory and references, parse back to exactly the pool that was
//! written; and mangled files never panic and always give a one-line error.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use xapi_ha::model::{Host, Pool, PowerState, RestartPriority, Vm};
use xapi_ha::pool_file::{Format, host_uuid_from_name, parse_pool, vm_uuid_from_name};

const GIB: u64 = 1 << 30;

/// One of the accepted spellings of a memory size.
fn memory_value(rng: &mut ChaCha8Rng, bytes: u64) -> Value {
    let mut options = vec![
        json!(bytes),
        json!(bytes.to_string()),
        json!(format!("{bytes} B")),
    ];
    for (unit, size) in [("KiB", 1u64 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)] {
        if bytes.is_multiple_of(size) {
            options.push(json!(format!("{}{unit}", bytes / size)));
        } else if bytes.is_multiple_of(size / 2) {
            options.push(json!(format!("{}.5{unit}", bytes / size)));
        }
    }
    if bytes.is_multiple_of(1000) {
        options.push(json!(format!("{} KB", bytes / 1000)));
    }
    options.swap_remove(rng.gen_range(0..options.len()))
}

fn random_size(rng: &mut ChaCha8Rng, max_gib: u64) -> u64 {
    match rng.gen_range(0..3) {
        0 => rng.gen_range(1..=max_gib) * GIB,
        1 => rng.gen_range(1..=max_gib * 2) * (GIB / 2),
        _ => rng.gen_range(1..=max_gib * GIB),
    }
}

fn name(rng: &mut ChaCha8Rng, prefix: &str, i: usize) -> String {
    match rng.gen_range(0..3) {
        0 => format!("{prefix}{i}"),
        1 => format!("{prefix} number {i}"),
        _ => format!("{prefix}-é{i}"),
    }
}

/// A random pool and its description as a JSON value in the file schema.
fn random_pool(rng: &mut ChaCha8Rng) -> (Pool, Value) {
    let mut pool = Pool {
        ha_host_failures_to_tolerate: rng.gen_range(0..4),
        ..Pool::default()
    };
    let mut host_docs = Vec::new();
    let mut free = Vec::new();
    for i in 0..rng.gen_range(1..6) {
        let host_name = name(rng, "h", i);
        let explicit_uuid = rng.gen_bool(0.5);
        let uuid = if explicit_uuid {
            Uuid::from_u128(rng.r#gen())
        } else {
            host_uuid_from_name(&host_name)
        };
        let memory_total = random_size(rng, 512);
        let memory_overhead = if rng.gen_bool(0.5) {
            rng.gen_range(0..=memory_total / 4)
        } else {
            0
        };
        let host = Host {
            uuid,
            name: host_name.clone(),
            memory_total,
            memory_overhead,
            enabled: rng.gen_bool(0.8),
            live: rng.gen_bool(0.8),
        };
        let mut doc = Map::new();
        doc.insert("name".into(), json!(host_name));
        if explicit_uuid {
            doc.insert("uuid".into(), json!(uuid.to_string()));
        }
        doc.insert("memory-total".into(), memory_value(rng, memory_total));
        if memory_overhead > 0 || rng.gen_bool(0.3) {
            doc.insert("memory-overhead".into(), memory_value(rng, memory_overhead));
        }
        if !host.enabled || rng.gen_bool(0.3) {
            doc.insert("enabled".into(), json!(host.enabled));
        }
        if !host.live || rng.gen_bool(0.3) {
            doc.insert("live".into(), json!(host.live));
        }
        free.push(memory_total - memory_overhead);
        pool.hosts.push(host);
        host_docs.push(Value::Object(doc));
    }
    let mut vm_docs = Vec::new();
    for i in 0..rng.gen_range(0..12) {
        let vm_name = name(rng, "vm", i);
        let explicit_uuid = rng.gen_bool(0.5);
        let uuid = if explicit_uuid {
            Uuid::from_u128(rng.r#gen())
        } else {
            vm_uuid_from_name(&vm_name)
        };
        let memory = random_size(rng, 32);
        let memory_overhead = if rng.gen_bool(0.3) {
            rng.gen_range(0..GIB)
        } else {
            0
        };
        let footprint = memory + memory_overhead;
        let host_ref = |rng: &mut ChaCha8Rng, h: usize| -> Value {
            if rng.gen_bool(0.5) {
                json!(pool.hosts[h].name)
            } else {
                json!(pool.hosts[h].uuid.to_string())
            }
        };
        let home = rng.gen_range(0..pool.hosts.len());
        let resident = (rng.gen_bool(0.7) && free[home] >= footprint).then_some(home);
        let affinity = rng
            .gen_bool(0.3)
            .then(|| rng.gen_range(0..pool.hosts.len()));
        let priority = match rng.gen_range(0..3) {
            0 => RestartPriority::Restart,
            1 => RestartPriority::BestEffort,
            _ => RestartPriority::Unprotected,
        };
        let order = if rng.gen_bool(0.5) {
            rng.gen_range(-3..5)
        } else {
            0
        };
        let agile = rng.gen_bool(0.8);

        let mut doc = Map::new();
        doc.insert("name".into(), json!(vm_name));
        if explicit_uuid {
            doc.insert("uuid".into(), json!(uuid.to_string()));
        }
        doc.insert("memory".into(), memory_value(rng, memory));
        if memory_overhead > 0 {
            doc.insert("memory-overhead".into(), memory_value(rng, memory_overhead));
        }
        let priority_text = match priority {
            RestartPriority::Restart => "restart",
            RestartPriority::BestEffort => "best-effort",
            RestartPriority::Unprotected => "",
        };
        if priority != RestartPriority::Unprotected || rng.gen_bool(0.3) {
            doc.insert("ha-restart-priority".into(), json!(priority_text));
        }
        if order != 0 || rng.gen_bool(0.2) {
            doc.insert("order".into(), json!(order));
        }
        if let Some(h) = resident {
            free[h] -= footprint;
            doc.insert("resident-on".into(), host_ref(rng, h));
        }
        if rng.gen_bool(0.4) {
            let state = if resident.is_some() {
                "running"
            } else {
                "halted"
            };
            doc.insert("power-state".into(), json!(state));
        }
        if !agile || rng.gen_bool(0.2) {
            doc.insert("agile".into(), json!(agile));
        }
        if let Some(h) = affinity {
            doc.insert("affinity".into(), host_ref(rng, h));
        }
        pool.vms.push(Vm {
            uuid,
            name: vm_name,
            memory,
            memory_overhead,
            priority,
            order,
            power_state: if resident.is_some() {
                PowerState::Running
            } else {
                PowerState::Halted
            },
            resident_on: resident.map(|h| pool.hosts[h].uuid),
            agile,
            affinity: affinity.map(|h| pool.hosts[h].uuid),
        });
        vm_docs.push(Value::Object(doc));
    }
    let mut doc = Map::new();
    if pool.ha_host_failures_to_tolerate > 0 || rng.gen_bool(0.5) {
        doc.insert(
            "pool".into(),
            json!({"ha-host-failures-to-tolerate": pool.ha_host_failures_to_tolerate}),
        );
    }
    doc.insert("host".into(), Value::Array(host_docs));
    if !vm_docs.is_empty() || rng.gen_bool(0.5) {
        doc.insert("vm".into(), Value::Array(vm_docs));
    }
    (pool, Value::Object(doc))
}

#[test]
fn random_pools_round_trip_through_toml_and_json() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0001);
    for case in 0..500 {
        let (pool, doc) = random_pool(&mut rng);
        let json_text = serde_json::to_string_pretty(&doc).unwrap();
        let toml_text = toml::to_string(&doc).unwrap();
        let from_json = parse_pool(&json_text, Format::Json)
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{json_text}"));
        let from_toml = parse_pool(&toml_text, Format::Toml)
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{toml_text}"));
        assert_eq!(from_json, pool, "case {case}:\n{json_text}");
        assert_eq!(from_toml, pool, "case {case}:\n{toml_text}");
    }
}

/// Mangles text: deletes, duplicates or replaces a random span, or inserts
/// random characters, a few times.
fn mangle(rng: &mut ChaCha8Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    const NOISE: &[char] = &[
        '"', '=', '[', ']', '{', '}', ',', '-', '.', '0', '9', 'G', 'i', 'B', '\n', ' ', 'é', ':',
        '#', '\\',
    ];
    for _ in 0..rng.gen_range(1..4) {
        if chars.is_empty() {
            break;
        }
        let at = rng.gen_range(0..chars.len());
        let len = rng.gen_range(0..8).min(chars.len() - at);
        match rng.gen_range(0..4) {
            0 => {
                chars.drain(at..at + len);
            }
            1 => {
                let span: Vec<char> = chars[at..at + len].to_vec();
                chars.splice(at..at, span);
            }
            2 => {
                for c in &mut chars[at..at + len] {
                    *c = NOISE[rng.gen_range(0..NOISE.len())];
                }
            }
            _ => chars.insert(at, NOISE[rng.gen_range(0..NOISE.len())]),
        }
    }
    chars.into_iter().collect()
}

#[test]
fn mangled_files_never_panic_and_errors_are_one_line() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0002);
    let mut errors = 0;
    for case in 0..3000 {
        let (_, doc) = random_pool(&mut rng);
        let (format, text) = if case % 2 == 0 {
            (Format::Json, serde_json::to_string_pretty(&doc).unwrap())
        } else {
            (Format::Toml, toml::to_string(&doc).unwrap())
        };
        let mangled = mangle(&mut rng, &text);
        if let Err(e) = parse_pool(&mangled, format) {
            errors += 1;
            let message = e.to_string();
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
        }
    }
    // Most mangled files are invalid; the check above ran on them.
    assert!(
        errors > 1000,
        "only {errors} of 3000 mangled files were rejected"
    );
}
