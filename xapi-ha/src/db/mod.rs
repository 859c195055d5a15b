//! The pool database: a value ([`Database`]) with one pure transition
//! ([`Database::apply`] of a batch of [`Change`]s), its schema, the
//! `event.from` query, and the durable store (snapshot + delta redo log of
//! `sr_heartbeat::metadata`).
//!
//! - [`schema`]: classes, fields, types, access, defaults (one table).
//! - [`change`]: what a change is and why one is refused.
//! - [`database`]: the database, its reads and its invariants.
//! - `apply`: the one transition, `Database::apply`, and `rollback`.
//! - [`events`]: `event.from` as a pure query.
//! - [`invariants`]: every invariant recomputed (tests, decoded snapshots).
//! - [`encode`]: snapshot and delta documents (the log's payloads, and the
//!   copy a member installs).
//! - [`store`]: the durable store on the redo log.

mod apply;
pub mod change;
pub mod database;
pub mod encode;
pub mod events;
pub mod invariants;
pub mod schema;
pub mod store;

pub use apply::Applied;
pub use change::{Change, ChangeError};
pub use database::{Database, Object, Tombstone};
pub use invariants::InvariantError;
pub use schema::Class;
pub use store::{OpenReport, Store, StoreError};

#[cfg(test)]
mod tests;
