//! The pool database: a value with one transition, [`Database::apply`].
//!
//! Invariants (checked by `apply` before it changes anything, and all
//! recomputed from scratch by [`Database::check_invariants`]):
//! - every stored field holds a valid value of its type (schema `accepts`);
//! - every object's `uuid` is a uuid and unique across the database, and
//!   every reference names at most one object;
//! - every reference field is `OpaqueRef:NULL` or names an existing object
//!   of its class, so an object is deleted only when nothing references it;
//! - derived fields (`host.resident_VMs`, `SR.VDIs`, `task.subtasks`) are
//!   exactly the objects whose reference field names this object: they are
//!   computed from the reverse index `refs_to`, which `apply` maintains and
//!   `check_invariants` recomputes;
//! - every change gets the next generation; an object records when it was
//!   created and last changed (a change of a reference also changes the
//!   objects whose derived field it moves in or out of), and a delete
//!   leaves a tombstone, so `event.from` can answer from any token.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::schema::{Access, Class};
use crate::value::{Ref, Value};

/// How many deletions the database remembers for `event.from`. A token
/// older than the oldest forgotten one gets `EVENTS_LOST`.
pub const MAX_TOMBSTONES: usize = 16_384;

/// One object: its stored fields in schema order (derived positions hold
/// `Value::Void`) and its generations.
#[derive(Clone, Debug, PartialEq)]
pub struct Object {
    pub(crate) fields: Vec<Value>,
    pub(crate) created: u64,
    pub(crate) modified: u64,
}

impl Object {
    /// The stored value at `index` (`Void` for a derived field: use
    /// [`Database::value`] to compute those).
    #[must_use]
    pub fn stored(&self, index: usize) -> &Value {
        &self.fields[index]
    }

    /// The object's `uuid`.
    #[must_use]
    pub fn uuid(&self) -> &str {
        self.fields[0].as_str().unwrap_or_default()
    }

    /// Generation of the change that created it.
    #[must_use]
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Generation of its last change.
    #[must_use]
    pub fn modified(&self) -> u64 {
        self.modified
    }
}

/// A deleted object, remembered for `event.from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tombstone {
    pub generation: u64,
    pub class: Class,
    pub r#ref: Ref,
    /// When the object was created (a client that never saw it gets no
    /// `del` event).
    pub created: u64,
}

/// Incoming reference: (source class, source object, field index).
type Incoming = (Class, Ref, u16);

/// The pool database.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Database {
    pub(crate) generation: u64,
    /// Generation of the last change of a message (the second half of an
    /// `event.from` token).
    pub(crate) message_generation: u64,
    pub(crate) tables: [BTreeMap<Ref, Object>; Class::ALL.len()],
    pub(crate) where_is: HashMap<Ref, Class>,
    pub(crate) uuids: HashMap<String, Ref>,
    pub(crate) refs_to: HashMap<Ref, BTreeSet<Incoming>>,
    pub(crate) tombstones: VecDeque<Tombstone>,
    /// Tokens at or before this generation may have missed a deletion.
    pub(crate) events_lost_through: u64,
}

/// Whether `s` is a uuid in its canonical (lower-case, hyphenated) form.
#[must_use]
pub fn is_canonical_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

impl Database {
    /// An empty database at generation 0.
    #[must_use]
    pub fn new() -> Database {
        Database::default()
    }

    /// Generation of the last committed change.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Generation of the last change of a message.
    #[must_use]
    pub fn message_generation(&self) -> u64 {
        self.message_generation
    }

    /// The object `r` of `class`.
    #[must_use]
    pub fn get(&self, class: Class, r: Ref) -> Option<&Object> {
        self.tables[class.index()].get(&r)
    }

    /// Which class `r` names an object of.
    #[must_use]
    pub fn class_of(&self, r: Ref) -> Option<Class> {
        self.where_is.get(&r).copied()
    }

    /// The object with this `uuid`, of any class.
    #[must_use]
    pub fn by_uuid(&self, uuid: &str) -> Option<(Class, Ref)> {
        let r = *self.uuids.get(uuid)?;
        Some((self.class_of(r)?, r))
    }

    /// Objects of `class`, in reference order.
    pub fn objects(&self, class: Class) -> impl Iterator<Item = (Ref, &Object)> {
        self.tables[class.index()].iter().map(|(r, o)| (*r, o))
    }

    /// How many objects of `class` there are.
    #[must_use]
    pub fn count(&self, class: Class) -> usize {
        self.tables[class.index()].len()
    }

    /// Deletions still remembered, oldest first.
    pub fn tombstones(&self) -> impl Iterator<Item = &Tombstone> {
        self.tombstones.iter()
    }

    /// Tokens at or before this generation may have missed a deletion.
    #[must_use]
    pub fn events_lost_through(&self) -> u64 {
        self.events_lost_through
    }

    /// The value of field `index` of `obj` (`r` of `class`), derived fields
    /// computed.
    #[must_use]
    pub fn value(&self, class: Class, r: Ref, obj: &Object, index: usize) -> Value {
        match class.fields()[index].access {
            Access::Derived(src, field) => Value::Set(self.derived(r, src, field)),
            _ => obj.fields[index].clone(),
        }
    }

    /// The objects of class `src` whose field `field` names `target`.
    fn derived(&self, target: Ref, src: Class, field: &str) -> Vec<Value> {
        let Some(idx) = src.field_index(field) else {
            return Vec::new();
        };
        self.refs_to
            .get(&target)
            .into_iter()
            .flatten()
            .filter(|(c, _, i)| *c == src && usize::from(*i) == idx)
            .map(|(_, r, _)| Value::Ref(*r))
            .collect()
    }

    /// The field `name` of object `r` of `class`, derived fields computed.
    #[must_use]
    pub fn field(&self, class: Class, r: Ref, name: &str) -> Option<Value> {
        let obj = self.get(class, r)?;
        Some(self.value(class, r, obj, class.field_index(name)?))
    }

    /// The whole record of `r` (what `get_record` returns).
    #[must_use]
    pub fn record(&self, class: Class, r: Ref) -> Option<Value> {
        let obj = self.get(class, r)?;
        Some(self.record_of(class, r, obj))
    }

    /// The record of `obj`, which is `r` of `class`.
    #[must_use]
    pub fn record_of(&self, class: Class, r: Ref, obj: &Object) -> Value {
        Value::Record(
            class
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.to_owned(), self.value(class, r, obj, i)))
                .collect(),
        )
    }
}
