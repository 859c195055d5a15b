use super::*;
use crate::value::Value;

#[test]
fn every_class_starts_with_uuid_and_names_are_unique() {
    for c in Class::ALL {
        assert_eq!(c.def().class, c);
        assert_eq!(c.fields()[0].name, "uuid");
        let names: Vec<_> = c.fields().iter().map(|f| f.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{}.{n} twice", c.name());
        }
    }
}

#[test]
fn defaults_are_valid_values() {
    for c in Class::ALL {
        for f in c.fields().iter().filter(|f| f.stored()) {
            assert!(f.accepts(&f.default_value()), "{}.{}", c.name(), f.name);
        }
    }
}

#[test]
fn derived_fields_name_a_ref_field_back_to_their_class() {
    for c in Class::ALL {
        for f in c.fields() {
            match f.access {
                Access::Derived(src, field) => {
                    let back = src.field(field).expect("derived source field exists");
                    assert_eq!(back.ty, Ty::Ref(c), "{}.{}", c.name(), f.name);
                    assert!(matches!(f.ty, Ty::Set(Ty::Ref(c)) if *c == src));
                }
                _ => {
                    // Stored refs are plain refs; ref sets are only derived.
                    if let Ty::Set(t) = f.ty {
                        assert!(!matches!(t, Ty::Ref(_)), "{}.{}", c.name(), f.name);
                    }
                }
            }
        }
    }
}

#[test]
fn every_field_issue_11_names_is_there() {
    // The fields the HA features read or write (issue 11, "Pool database").
    let want: &[(Class, &[&str])] = &[
        (
            Class::Pool,
            &[
                "ha_enabled",
                "ha_configuration",
                "ha_statefiles",
                "ha_host_failures_to_tolerate",
                "ha_plan_exists_for",
                "ha_allow_overcommit",
                "ha_overcommitted",
                "ha_reboot_vm_on_internal_shutdown",
                "master",
                "other_config",
            ],
        ),
        (
            Class::Host,
            &[
                "address",
                "enabled",
                "memory_overhead",
                "metrics",
                "resident_VMs",
                "ha_statefiles",
                "ha_network_peers",
            ],
        ),
        (Class::HostMetrics, &["memory_total", "memory_free", "live"]),
        (
            Class::Vm,
            &[
                "power_state",
                "resident_on",
                "affinity",
                "ha_restart_priority",
                "ha_always_run",
                "order",
                "start_delay",
                "memory_static_max",
                "memory_overhead",
                "other_config",
                "driver",
                "driver_config",
            ],
        ),
    ];
    for (class, fields) in want {
        for f in *fields {
            assert!(class.field(f).is_some(), "{}.{f} missing", class.name());
        }
    }
    // XenAPI's qualifiers where clients depend on them.
    assert_eq!(
        Class::Vm.field("power_state").unwrap().access.qualifier(),
        "RO"
    );
    assert_eq!(
        Class::Pool.field("ha_allow_overcommit").unwrap().access,
        Access::Rw
    );
    assert_eq!(
        Class::Pool
            .field("ha_reboot_vm_on_internal_shutdown")
            .unwrap()
            .default_value(),
        Value::Bool(true)
    );
}
