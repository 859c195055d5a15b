//! Every invariant of the database (listed in `database.rs`), recomputed
//! from scratch. `apply` keeps them incrementally; this check is what tests
//! assert after every step and what a decoded snapshot must pass before it
//! is used.

use std::collections::{BTreeSet, HashMap};

use super::database::{Database, is_canonical_uuid};
use super::schema::{Access, Class, Ty};
use crate::value::{Ref, Value};

/// An invariant that does not hold, described.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("database invariant broken: {0}")]
pub struct InvariantError(pub String);

fn broken(s: String) -> Result<(), InvariantError> {
    Err(InvariantError(s))
}

impl Database {
    /// Checks every invariant, recomputing the indexes.
    pub fn check_invariants(&self) -> Result<(), InvariantError> {
        let mut uuids: HashMap<&str, Ref> = HashMap::new();
        let mut where_is: HashMap<Ref, Class> = HashMap::new();
        let mut refs_to: HashMap<Ref, BTreeSet<(Class, Ref, u16)>> = HashMap::new();
        for class in Class::ALL {
            for (r, obj) in self.objects(class) {
                let name = class.name();
                if r.is_null() {
                    return broken(format!("{name} stored under the null reference"));
                }
                if where_is.insert(r, class).is_some() {
                    return broken(format!("{r} names two objects"));
                }
                if obj.fields.len() != class.fields().len() {
                    return broken(format!("{name} {r} has {} fields", obj.fields.len()));
                }
                if obj.created > obj.modified || obj.modified > self.generation {
                    return broken(format!(
                        "{name} {r}: created {} modified {} database {}",
                        obj.created, obj.modified, self.generation
                    ));
                }
                for (idx, (f, v)) in class.fields().iter().zip(&obj.fields).enumerate() {
                    if !f.stored() {
                        if *v != Value::Void {
                            return broken(format!("{name}.{} is derived but stored", f.name));
                        }
                        continue;
                    }
                    if !f.accepts(v) {
                        return broken(format!("{name} {r}: {} = {v:?} is invalid", f.name));
                    }
                    if let Value::Ref(t) = v
                        && !t.is_null()
                    {
                        refs_to
                            .entry(*t)
                            .or_default()
                            .insert((class, r, idx as u16));
                    }
                }
                let uuid = obj.uuid();
                if !is_canonical_uuid(uuid) {
                    return broken(format!("{name} {r}: uuid {uuid:?}"));
                }
                if uuids.insert(uuid, r).is_some() {
                    return broken(format!("uuid {uuid} used twice"));
                }
            }
        }
        self.check_refs(&where_is, &refs_to)?;
        if where_is != self.where_is {
            return broken("the reference index is stale".into());
        }
        let stored: HashMap<&str, Ref> = self.uuids.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        if uuids != stored {
            return broken("the uuid index is stale".into());
        }
        if refs_to != self.refs_to {
            return broken("the reverse reference index is stale".into());
        }
        let gens: Vec<u64> = self.tombstones.iter().map(|t| t.generation).collect();
        if gens.windows(2).any(|w| w[0] >= w[1])
            || gens.last().is_some_and(|&g| g > self.generation)
        {
            return broken(format!("tombstone generations out of order: {gens:?}"));
        }
        if self.message_generation > self.generation || self.events_lost_through > self.generation {
            return broken("message or lost-events generation ahead of the database".into());
        }
        Ok(())
    }

    /// Every reference names an existing object of its field's class.
    fn check_refs(
        &self,
        where_is: &HashMap<Ref, Class>,
        refs_to: &HashMap<Ref, BTreeSet<(Class, Ref, u16)>>,
    ) -> Result<(), InvariantError> {
        for (target, sources) in refs_to {
            for (class, r, idx) in sources {
                let f = &class.fields()[usize::from(*idx)];
                let Ty::Ref(want) = f.ty else {
                    return broken(format!("{}.{} is not a reference", class.name(), f.name));
                };
                if where_is.get(target) != Some(&want) {
                    return broken(format!(
                        "{} {r}: {} = {target} names no {}",
                        class.name(),
                        f.name,
                        want.name()
                    ));
                }
                debug_assert!(!matches!(f.access, Access::Derived(..)));
            }
        }
        Ok(())
    }
}
