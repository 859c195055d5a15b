//! A change to the database: create, modify or delete one object. Changes
//! are plain values: handlers return them, the store logs them, replay and
//! member copies apply them with the same function (`Database::apply`).

use serde::{Deserialize, Serialize};

use super::schema::Class;
use crate::value::{Ref, Value};

/// One change of one object. Field values must already be of the field's
/// type in canonical form (see `schema::Ty::holds`); `apply` refuses
/// anything else.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// A new object. Fields left out get their schema default; `uuid` must
    /// be given.
    Create {
        class: Class,
        r#ref: Ref,
        fields: Vec<(String, Value)>,
    },
    /// New values for some stored fields of an existing object (not `uuid`).
    Modify {
        class: Class,
        r#ref: Ref,
        fields: Vec<(String, Value)>,
    },
    /// Removes an object that nothing references any more.
    Delete { class: Class, r#ref: Ref },
}

impl Change {
    /// Modifies one field.
    #[must_use]
    pub fn set(class: Class, r: Ref, field: &str, value: Value) -> Change {
        Change::Modify {
            class,
            r#ref: r,
            fields: vec![(field.to_owned(), value)],
        }
    }

    /// The object this change is about.
    #[must_use]
    pub fn target(&self) -> (Class, Ref) {
        match self {
            Change::Create { class, r#ref, .. }
            | Change::Modify { class, r#ref, .. }
            | Change::Delete { class, r#ref } => (*class, *r#ref),
        }
    }
}

/// Why a change was refused. `apply` checks before it changes anything, so
/// a refused batch leaves the database as it was.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ChangeError {
    /// The reference is `OpaqueRef:NULL` where an object is needed.
    #[error("{class}: the null reference names no object")]
    NullRef { class: &'static str },
    /// No object of this class has this reference.
    #[error("{class} {object} does not exist")]
    NoSuchObject { class: &'static str, object: Ref },
    /// Create of a reference that is already in use.
    #[error("{class} {object}: the reference is already in use")]
    RefInUse { class: &'static str, object: Ref },
    /// The class has no such field (or it is derived, so not stored).
    #[error("{class} has no stored field {field:?}")]
    UnknownField { class: &'static str, field: String },
    /// The same field twice in one change.
    #[error("{class}.{field} given twice in one change")]
    DuplicateField { class: &'static str, field: String },
    /// A value of the wrong type, or one its field's check refuses.
    #[error("{class}.{field}: {found} is not a valid {expected}")]
    BadValue {
        class: &'static str,
        field: &'static str,
        expected: String,
        found: String,
    },
    /// `uuid` missing, not a uuid, or already used by another object.
    #[error("{class}.uuid {uuid:?}: {reason}")]
    BadUuid {
        class: &'static str,
        uuid: String,
        reason: &'static str,
    },
    /// A modify that tries to change `uuid`.
    #[error("{class}.uuid cannot change")]
    UuidImmutable { class: &'static str },
    /// A reference field names no object of the class it must name.
    #[error("{class}.{field} = {target}: no such {target_class}")]
    DanglingRef {
        class: &'static str,
        field: &'static str,
        target: Ref,
        target_class: &'static str,
    },
    /// Delete of an object that another still references.
    #[error("{class} {object} is still referenced by {by_class} {by_ref}.{field}")]
    StillReferenced {
        class: &'static str,
        object: Ref,
        by_class: &'static str,
        by_ref: Ref,
        field: &'static str,
    },
}

impl Serialize for Class {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Class {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Class, D::Error> {
        let s = String::deserialize(d)?;
        Class::from_name(&s).ok_or_else(|| serde::de::Error::custom(format!("no class {s:?}")))
    }
}
