//! The database on disk and on the wire between hosts: a snapshot (the
//! whole database) and a delta (one committed batch of changes), both JSON
//! documents with a format version. They are the opaque payloads of the
//! `sr_heartbeat::metadata` redo log, and a snapshot is also the copy the
//! master pushes to members.
//!
//! Decoding is strict: a wrong version, an unknown class or field, a value
//! of the wrong type or a database whose invariants do not hold is an
//! error naming it, never a partial database. Fields the document leaves
//! out get their defaults (a newer build may add fields). Both decoders are
//! fuzzed (`xapi-ha/fuzz`).

use serde::{Deserialize, Serialize};

use super::change::{Change, ChangeError};
use super::database::{Database, Object, Tombstone};
use super::invariants::InvariantError;
use super::schema::Class;
use crate::value::{Ref, Value};

/// The version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a snapshot or delta did not decode.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON of the expected shape.
    #[error("{what}: not a valid document: {reason}")]
    Malformed { what: &'static str, reason: String },
    /// Written by another format version.
    #[error("{what}: format version {found}, this build reads {FORMAT_VERSION}")]
    Version { what: &'static str, found: u32 },
    /// An object that cannot be in the database.
    #[error("snapshot: {class} {object}: {reason}")]
    BadObject {
        class: &'static str,
        object: Ref,
        reason: String,
    },
    /// The decoded database breaks an invariant.
    #[error("snapshot: {0}")]
    Invariant(#[from] InvariantError),
}

#[derive(Serialize, Deserialize)]
struct ObjectDoc {
    class: Class,
    r#ref: Ref,
    created: u64,
    modified: u64,
    /// Stored fields only.
    fields: Vec<(String, Value)>,
}

#[derive(Serialize, Deserialize)]
struct TombstoneDoc {
    generation: u64,
    class: Class,
    r#ref: Ref,
    created: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotDoc {
    format: u32,
    generation: u64,
    message_generation: u64,
    events_lost_through: u64,
    objects: Vec<ObjectDoc>,
    tombstones: Vec<TombstoneDoc>,
}

#[derive(Serialize)]
struct DeltaOut<'a> {
    format: u32,
    first_generation: u64,
    changes: &'a [Change],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaDoc {
    format: u32,
    first_generation: u64,
    changes: Vec<Change>,
}

/// One committed batch as the log holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Delta {
    /// The generation of its first change (the database's before it, + 1).
    pub first_generation: u64,
    pub changes: Vec<Change>,
}

/// Only the version, read before the rest so that a future format gets a
/// version error rather than a shape error.
#[derive(Deserialize)]
struct VersionOnly {
    format: u32,
}

fn check_version(what: &'static str, bytes: &[u8]) -> Result<(), DecodeError> {
    let v: VersionOnly = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
    })?;
    if v.format != FORMAT_VERSION {
        return Err(DecodeError::Version {
            what,
            found: v.format,
        });
    }
    Ok(())
}

/// The whole database as bytes.
#[must_use]
pub fn encode_snapshot(db: &Database) -> Vec<u8> {
    let objects = Class::ALL
        .into_iter()
        .flat_map(|class| {
            db.objects(class).map(move |(r, o)| ObjectDoc {
                class,
                r#ref: r,
                created: o.created,
                modified: o.modified,
                fields: class
                    .fields()
                    .iter()
                    .zip(&o.fields)
                    .filter(|(f, _)| f.stored())
                    .map(|(f, v)| (f.name.to_owned(), v.clone()))
                    .collect(),
            })
        })
        .collect();
    let doc = SnapshotDoc {
        format: FORMAT_VERSION,
        generation: db.generation,
        message_generation: db.message_generation,
        events_lost_through: db.events_lost_through,
        objects,
        tombstones: db
            .tombstones
            .iter()
            .map(|t| TombstoneDoc {
                generation: t.generation,
                class: t.class,
                r#ref: t.r#ref,
                created: t.created,
            })
            .collect(),
    };
    // Plain data (no maps with non-string keys; floats are finite, which
    // apply checks) always serialises; an empty snapshot would read back as
    // an empty database, so a failure here must stop, not go on.
    serde_json::to_vec(&doc).expect("a database always serialises")
}

fn object_from_doc(doc: &ObjectDoc) -> Result<Object, DecodeError> {
    let bad = |reason: String| DecodeError::BadObject {
        class: doc.class.name(),
        object: doc.r#ref,
        reason,
    };
    let class = doc.class;
    let mut fields: Vec<Option<Value>> = vec![None; class.fields().len()];
    for (name, v) in &doc.fields {
        let idx = class
            .field_index(name)
            .filter(|&i| class.fields()[i].stored())
            .ok_or_else(|| bad(format!("no stored field {name:?}")))?;
        if fields[idx].replace(v.clone()).is_some() {
            return Err(bad(format!("field {name} twice")));
        }
    }
    let fields = class
        .fields()
        .iter()
        .zip(fields)
        .map(|(f, v)| match v {
            Some(v) if f.accepts(&v) => Ok(v),
            Some(v) => Err(bad(format!(
                "{} = {v:?} is not a valid {}",
                f.name,
                f.ty.describe()
            ))),
            None if f.stored() => Ok(f.default_value()),
            None => Ok(Value::Void),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if doc.created > doc.modified {
        return Err(bad("created after its last change".into()));
    }
    Ok(Object {
        fields,
        created: doc.created,
        modified: doc.modified,
    })
}

/// A database from snapshot bytes, checked against every invariant.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Database, DecodeError> {
    const WHAT: &str = "snapshot";
    check_version(WHAT, bytes)?;
    let doc: SnapshotDoc = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what: WHAT,
        reason: e.to_string(),
    })?;
    let mut db = Database {
        generation: doc.generation,
        message_generation: doc.message_generation,
        events_lost_through: doc.events_lost_through,
        ..Database::default()
    };
    for o in &doc.objects {
        let obj = object_from_doc(o)?;
        if o.r#ref.is_null() || db.where_is.insert(o.r#ref, o.class).is_some() {
            return Err(DecodeError::BadObject {
                class: o.class.name(),
                object: o.r#ref,
                reason: "reference null or used twice".into(),
            });
        }
        db.uuids.insert(obj.uuid().to_owned(), o.r#ref);
        for (idx, v) in obj.fields.iter().enumerate() {
            if let Value::Ref(t) = v
                && !t.is_null()
            {
                db.refs_to
                    .entry(*t)
                    .or_default()
                    .insert((o.class, o.r#ref, idx as u16));
            }
        }
        db.tables[o.class.index()].insert(o.r#ref, obj);
    }
    db.tombstones = doc
        .tombstones
        .iter()
        .map(|t| Tombstone {
            generation: t.generation,
            class: t.class,
            r#ref: t.r#ref,
            created: t.created,
        })
        .collect();
    db.check_invariants()?;
    Ok(db)
}

/// One batch as bytes.
#[must_use]
pub fn encode_delta(first_generation: u64, changes: &[Change]) -> Vec<u8> {
    serde_json::to_vec(&DeltaOut {
        format: FORMAT_VERSION,
        first_generation,
        changes,
    })
    .expect("changes always serialise")
}

/// One batch from bytes (its changes are checked when applied).
pub fn decode_delta(bytes: &[u8]) -> Result<Delta, DecodeError> {
    const WHAT: &str = "delta";
    check_version(WHAT, bytes)?;
    let doc: DeltaDoc = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed {
        what: WHAT,
        reason: e.to_string(),
    })?;
    if doc.format != FORMAT_VERSION {
        return Err(DecodeError::Version {
            what: WHAT,
            found: doc.format,
        });
    }
    Ok(Delta {
        first_generation: doc.first_generation,
        changes: doc.changes,
    })
}

/// Why a decoded delta cannot follow the database.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReplayError {
    #[error("delta starts at generation {found}, the database is at {at}")]
    Gap { at: u64, found: u64 },
    #[error("delta at generation {generation} refused: {source}")]
    Refused {
        generation: u64,
        #[source]
        source: ChangeError,
    },
}

impl Database {
    /// Applies a logged batch: it must start right after this database's
    /// generation, and apply whole.
    pub fn replay(&mut self, delta: &Delta) -> Result<(), ReplayError> {
        if delta.first_generation != self.generation + 1 {
            return Err(ReplayError::Gap {
                at: self.generation,
                found: delta.first_generation,
            });
        }
        match self.apply(&delta.changes) {
            Ok(_kept) => Ok(()),
            Err(source) => Err(ReplayError::Refused {
                generation: delta.first_generation,
                source,
            }),
        }
    }
}
