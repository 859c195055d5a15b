//! Dropped-packet counters, as the liveset report carries them. The daemon's
//! packet decoder (`xha::daemon::wire`) classifies each drop into a
//! [`DropKind`]; the counters live here so that every client of the control
//! protocol reads them without depending on the daemon.

use serde::{Deserialize, Serialize};

/// Counter names (the keys of [`DropCounters`] in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropKind {
    Truncated,
    Oversized,
    BadMagic,
    WrongVersion,
    ForeignPool,
    Forged,
    WrongSender,
    Malformed,
    Replayed,
    FutureIncarnation,
}

/// Dropped-packet counters, one per [`DropKind`] (reported by the liveset
/// query).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DropCounters {
    pub truncated: u64,
    pub oversized: u64,
    pub bad_magic: u64,
    pub wrong_version: u64,
    pub foreign_pool: u64,
    pub forged: u64,
    pub wrong_sender: u64,
    pub malformed: u64,
    pub replayed: u64,
    /// Incarnations too far ahead of this host's wall clock.
    #[serde(default)]
    pub future_incarnation: u64,
    /// Not a drop: replay floors lowered on statefile evidence (a forged or
    /// replayed packet had raised them; `daemon::replay`).
    #[serde(default)]
    pub floors_lowered: u64,
}

impl DropCounters {
    /// Count one drop.
    pub fn record(&mut self, kind: DropKind) {
        let c = match kind {
            DropKind::Truncated => &mut self.truncated,
            DropKind::Oversized => &mut self.oversized,
            DropKind::BadMagic => &mut self.bad_magic,
            DropKind::WrongVersion => &mut self.wrong_version,
            DropKind::ForeignPool => &mut self.foreign_pool,
            DropKind::Forged => &mut self.forged,
            DropKind::WrongSender => &mut self.wrong_sender,
            DropKind::Malformed => &mut self.malformed,
            DropKind::Replayed => &mut self.replayed,
            DropKind::FutureIncarnation => &mut self.future_incarnation,
        };
        *c = c.saturating_add(1);
    }

    /// Every drop, whatever the reason (`floors_lowered` is not a drop).
    #[must_use]
    pub fn total(&self) -> u64 {
        [
            self.truncated,
            self.oversized,
            self.bad_magic,
            self.wrong_version,
            self.foreign_pool,
            self.forged,
            self.wrong_sender,
            self.malformed,
            self.replayed,
            self.future_incarnation,
        ]
        .iter()
        .fold(0u64, |a, &b| a.saturating_add(b))
    }
}
