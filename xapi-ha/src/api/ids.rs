//! Fresh identities for the objects a call creates, derived from the
//! caller's seed (uuid v5 under the seed as namespace), so a handler stays a
//! deterministic function of its inputs. The reference and the `uuid` of
//! one object are different uuids, as in xapi.

use uuid::Uuid;

use crate::db::Database;
use crate::value::Ref;

use super::Caller;

/// Hands out fresh identities for one call.
pub struct Fresh<'a> {
    db: &'a Database,
    seed: Uuid,
    counter: u64,
    given: Vec<Uuid>,
}

impl<'a> Fresh<'a> {
    #[must_use]
    pub fn new(db: &'a Database, caller: &Caller) -> Fresh<'a> {
        Fresh {
            db,
            seed: caller.seed,
            counter: 0,
            given: Vec::new(),
        }
    }

    /// A uuid not used in the database nor handed out before in this call.
    fn next(&mut self) -> Uuid {
        loop {
            self.counter += 1;
            let id = Uuid::new_v5(&self.seed, &self.counter.to_le_bytes());
            let r = Ref::from_uuid(id);
            let used = self.given.contains(&id)
                || self.db.class_of(r).is_some()
                || self.db.by_uuid(&id.hyphenated().to_string()).is_some();
            if !used {
                self.given.push(id);
                return id;
            }
        }
    }

    /// A new reference.
    pub fn r#ref(&mut self) -> Ref {
        Ref::from_uuid(self.next())
    }

    /// A new `uuid` field value.
    pub fn uuid(&mut self) -> String {
        self.next().hyphenated().to_string()
    }
}
