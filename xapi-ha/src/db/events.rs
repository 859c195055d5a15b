//! `event.from` as a pure query over the database.

/// A parsed `event.from` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {}
