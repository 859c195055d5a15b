use super::*;

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
