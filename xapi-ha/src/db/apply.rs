//! The one transition of the database: [`Database::apply`] of a batch of
//! changes, atomic, with [`Database::rollback`] to take an applied batch
//! back. Every check happens before anything changes (the invariants are
//! listed in `database.rs`); the reverse index of references, the uuid
//! index and the generations are kept here and restored exactly by undo.

use super::change::{Change, ChangeError};
use super::database::{Database, MAX_TOMBSTONES, Object, Tombstone, is_canonical_uuid};
use super::schema::{Access, Class, FieldDef, Ty};
use crate::value::{Ref, Value};

/// Whether a reference enters or leaves the reverse index.
#[derive(Debug, Clone, Copy)]
enum Index {
    Add,
    Remove,
}

/// What one applied change needs to be taken back.
#[derive(Debug)]
enum Undo {
    Created {
        class: Class,
        r#ref: Ref,
        touched: Vec<(Ref, u64)>,
    },
    Modified {
        class: Class,
        r#ref: Ref,
        old: Vec<(usize, Value)>,
        old_modified: u64,
        touched: Vec<(Ref, u64)>,
    },
    Deleted {
        class: Class,
        r#ref: Ref,
        object: Object,
        touched: Vec<(Ref, u64)>,
    },
}

/// A batch applied to the database. Keep it (the batch stands) or give it
/// to [`Database::rollback`] (as if it never was), e.g. when it could not
/// be made durable.
#[derive(Debug)]
#[must_use = "an applied batch is either kept or rolled back"]
pub struct Applied {
    undo: Vec<Undo>,
    generation_before: u64,
    message_generation_before: u64,
}

impl Applied {
    /// Generation before the batch; its changes got the next ones.
    #[must_use]
    pub fn generation_before(&self) -> u64 {
        self.generation_before
    }
}

fn bad_value(class: Class, f: &FieldDef, v: &Value) -> ChangeError {
    let mut found = format!("{v:?}");
    if found.len() > 200 {
        found.truncate(200);
        found.push_str("...");
    }
    ChangeError::BadValue {
        class: class.name(),
        field: f.name,
        expected: f.ty.describe(),
        found,
    }
}

impl Database {
    /// Applies a batch atomically: every change gets the next generation;
    /// on the first refused change, the ones before it are taken back and
    /// the error is returned (the database is then exactly as before).
    pub fn apply(&mut self, changes: &[Change]) -> Result<Applied, ChangeError> {
        self.trim_tombstones();
        let mut applied = Applied {
            undo: Vec::with_capacity(changes.len()),
            generation_before: self.generation,
            message_generation_before: self.message_generation,
        };
        for change in changes {
            let generation = self.generation + 1;
            match self.apply_one(change, generation) {
                Ok(undo) => {
                    applied.undo.push(undo);
                    self.generation = generation;
                    if change.target().0 == Class::Message {
                        self.message_generation = generation;
                    }
                }
                Err(e) => {
                    self.rollback(applied);
                    return Err(e);
                }
            }
        }
        Ok(applied)
    }

    /// Takes an applied batch back, newest change first.
    pub fn rollback(&mut self, applied: Applied) {
        for undo in applied.undo.into_iter().rev() {
            self.undo(undo);
        }
        self.generation = applied.generation_before;
        self.message_generation = applied.message_generation_before;
    }

    fn trim_tombstones(&mut self) {
        while self.tombstones.len() > MAX_TOMBSTONES {
            if let Some(t) = self.tombstones.pop_front() {
                self.events_lost_through = self.events_lost_through.max(t.generation);
            }
        }
    }

    fn apply_one(&mut self, change: &Change, generation: u64) -> Result<Undo, ChangeError> {
        match change {
            Change::Create {
                class,
                r#ref,
                fields,
            } => self.create(*class, *r#ref, fields, generation),
            Change::Modify {
                class,
                r#ref,
                fields,
            } => self.modify(*class, *r#ref, fields, generation),
            Change::Delete { class, r#ref } => self.delete(*class, *r#ref, generation),
        }
    }

    /// Resolves and checks the named values of a change: known stored
    /// fields, each once, valid values, references to existing objects of
    /// the right class. Changes nothing.
    fn resolve(
        &self,
        class: Class,
        fields: &[(String, Value)],
    ) -> Result<Vec<(usize, Value)>, ChangeError> {
        let mut out: Vec<(usize, Value)> = Vec::with_capacity(fields.len());
        for (name, v) in fields {
            let idx = class
                .field_index(name)
                .filter(|&i| class.fields()[i].stored())
                .ok_or_else(|| ChangeError::UnknownField {
                    class: class.name(),
                    field: name.clone(),
                })?;
            if out.iter().any(|(i, _)| *i == idx) {
                return Err(ChangeError::DuplicateField {
                    class: class.name(),
                    field: name.clone(),
                });
            }
            let f = &class.fields()[idx];
            if !f.accepts(v) {
                return Err(bad_value(class, f, v));
            }
            if let (Ty::Ref(target_class), Value::Ref(target)) = (f.ty, v)
                && !target.is_null()
                && self.get(target_class, *target).is_none()
            {
                return Err(ChangeError::DanglingRef {
                    class: class.name(),
                    field: f.name,
                    target: *target,
                    target_class: target_class.name(),
                });
            }
            out.push((idx, v.clone()));
        }
        Ok(out)
    }

    fn create(
        &mut self,
        class: Class,
        r: Ref,
        fields: &[(String, Value)],
        generation: u64,
    ) -> Result<Undo, ChangeError> {
        if r.is_null() {
            return Err(ChangeError::NullRef {
                class: class.name(),
            });
        }
        if self.where_is.contains_key(&r) {
            return Err(ChangeError::RefInUse {
                class: class.name(),
                object: r,
            });
        }
        let given = self.resolve(class, fields)?;
        let mut values: Vec<Value> = class
            .fields()
            .iter()
            .map(|f| {
                if f.stored() {
                    f.default_value()
                } else {
                    Value::Void
                }
            })
            .collect();
        let mut has_uuid = false;
        for (idx, v) in given {
            has_uuid |= idx == 0;
            values[idx] = v;
        }
        let uuid = values[0].as_str().unwrap_or_default().to_owned();
        let reason = if !has_uuid {
            Some("missing")
        } else if !is_canonical_uuid(&uuid) {
            Some("not a uuid in canonical form")
        } else if self.uuids.contains_key(&uuid) {
            Some("already used by another object")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ChangeError::BadUuid {
                class: class.name(),
                uuid,
                reason,
            });
        }
        let obj = Object {
            fields: values,
            created: generation,
            modified: generation,
        };
        let mut touched = Vec::new();
        self.insert_object(class, r, obj, generation, &mut touched);
        Ok(Undo::Created {
            class,
            r#ref: r,
            touched,
        })
    }

    fn modify(
        &mut self,
        class: Class,
        r: Ref,
        fields: &[(String, Value)],
        generation: u64,
    ) -> Result<Undo, ChangeError> {
        if self.get(class, r).is_none() {
            return Err(ChangeError::NoSuchObject {
                class: class.name(),
                object: r,
            });
        }
        let given = self.resolve(class, fields)?;
        if given.iter().any(|(i, _)| *i == 0) {
            return Err(ChangeError::UuidImmutable {
                class: class.name(),
            });
        }
        let mut touched = Vec::new();
        let mut old = Vec::with_capacity(given.len());
        for (idx, v) in given {
            self.set_field(class, r, idx, v, generation, &mut touched, &mut old);
        }
        let obj = self.tables[class.index()]
            .get_mut(&r)
            .expect("checked above");
        let old_modified = std::mem::replace(&mut obj.modified, generation);
        Ok(Undo::Modified {
            class,
            r#ref: r,
            old,
            old_modified,
            touched,
        })
    }

    /// Sets one field of an existing object, keeping the reverse index.
    #[allow(clippy::too_many_arguments)]
    fn set_field(
        &mut self,
        class: Class,
        r: Ref,
        idx: usize,
        v: Value,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
        old: &mut Vec<(usize, Value)>,
    ) {
        let obj = self.tables[class.index()].get_mut(&r).expect("exists");
        let prev = std::mem::replace(&mut obj.fields[idx], v.clone());
        if let (Value::Ref(before), Value::Ref(after)) = (&prev, &v)
            && before != after
        {
            self.index_ref(Index::Remove, (class, r, idx), *before, generation, touched);
            self.index_ref(Index::Add, (class, r, idx), *after, generation, touched);
        }
        old.push((idx, prev));
    }

    fn delete(&mut self, class: Class, r: Ref, generation: u64) -> Result<Undo, ChangeError> {
        let Some(obj) = self.get(class, r) else {
            return Err(ChangeError::NoSuchObject {
                class: class.name(),
                object: r,
            });
        };
        if let Some(&(by_class, by_ref, field)) = self.refs_to.get(&r).and_then(|s| s.first()) {
            return Err(ChangeError::StillReferenced {
                class: class.name(),
                object: r,
                by_class: by_class.name(),
                by_ref,
                field: by_class.fields()[usize::from(field)].name,
            });
        }
        let created = obj.created;
        let mut touched = Vec::new();
        let obj = self.remove_object(class, r, generation, &mut touched);
        self.tombstones.push_back(Tombstone {
            generation,
            class,
            r#ref: r,
            created,
        });
        Ok(Undo::Deleted {
            class,
            r#ref: r,
            object: obj,
            touched,
        })
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Created {
                class,
                r#ref,
                touched,
            } => {
                self.remove_object(class, r#ref, 0, &mut Vec::new());
                self.restore_touched(touched);
            }
            Undo::Modified {
                class,
                r#ref,
                old,
                old_modified,
                touched,
            } => {
                for (idx, v) in old.into_iter().rev() {
                    self.set_field(class, r#ref, idx, v, 0, &mut Vec::new(), &mut Vec::new());
                }
                if let Some(obj) = self.tables[class.index()].get_mut(&r#ref) {
                    obj.modified = old_modified;
                }
                self.restore_touched(touched);
            }
            Undo::Deleted {
                class,
                r#ref,
                object,
                touched,
            } => {
                self.tombstones.pop_back();
                self.insert_object(class, r#ref, object, 0, &mut Vec::new());
                self.restore_touched(touched);
            }
        }
    }

    fn restore_touched(&mut self, touched: Vec<(Ref, u64)>) {
        for (r, before) in touched.into_iter().rev() {
            if let Some(class) = self.class_of(r)
                && let Some(o) = self.tables[class.index()].get_mut(&r)
            {
                o.modified = before;
            }
        }
    }

    /// Puts `obj` into its table and every index (uuid, class, the
    /// reverse index of its references): a create, or the undo of a delete.
    fn insert_object(
        &mut self,
        class: Class,
        r: Ref,
        obj: Object,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
    ) {
        self.index_refs(Index::Add, class, r, &obj, generation, touched);
        self.uuids.insert(obj.uuid().to_owned(), r);
        self.where_is.insert(r, class);
        self.tables[class.index()].insert(r, obj);
    }

    /// Takes the object out of its table and every index: a delete, or the
    /// undo of a create. The caller has checked that it exists.
    fn remove_object(
        &mut self,
        class: Class,
        r: Ref,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
    ) -> Object {
        let obj = self.tables[class.index()]
            .remove(&r)
            .expect("remove_object: the caller checked the object exists");
        self.index_refs(Index::Remove, class, r, &obj, generation, touched);
        self.uuids.remove(obj.uuid());
        self.where_is.remove(&r);
        obj
    }

    /// Adds or removes every outgoing reference of `obj` in the reverse index.
    fn index_refs(
        &mut self,
        how: Index,
        class: Class,
        r: Ref,
        obj: &Object,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
    ) {
        for (idx, v) in obj.fields.iter().enumerate() {
            if let Value::Ref(target) = v {
                self.index_ref(how, (class, r, idx), *target, generation, touched);
            }
        }
    }

    /// The one update of the reverse index: `(class, r)`'s field `idx`
    /// refers (`Add`) or no longer refers (`Remove`) to `target`.
    fn index_ref(
        &mut self,
        how: Index,
        (class, r, idx): (Class, Ref, usize),
        target: Ref,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
    ) {
        if target.is_null() {
            return;
        }
        let entry = (class, r, idx as u16);
        match how {
            Index::Add => {
                self.refs_to.entry(target).or_default().insert(entry);
            }
            Index::Remove => {
                if let Some(set) = self.refs_to.get_mut(&target) {
                    set.remove(&entry);
                    if set.is_empty() {
                        self.refs_to.remove(&target);
                    }
                }
            }
        }
        self.touch_derived(class, idx, target, generation, touched);
    }

    /// A reference of `class`'s field `idx` to `target` moved: when the
    /// target's class shows it in a derived field, the target changed too.
    /// Generation 0 means "undoing": generations are restored separately.
    fn touch_derived(
        &mut self,
        class: Class,
        idx: usize,
        target: Ref,
        generation: u64,
        touched: &mut Vec<(Ref, u64)>,
    ) {
        if generation == 0 {
            return;
        }
        let Some(target_class) = self.class_of(target) else {
            return;
        };
        let field = class.fields()[idx].name;
        let shown = target_class
            .fields()
            .iter()
            .any(|f| f.access == Access::Derived(class, field));
        if !shown {
            return;
        }
        if let Some(o) = self.tables[target_class.index()].get_mut(&target) {
            touched.push((target, o.modified));
            o.modified = generation;
        }
    }
}
