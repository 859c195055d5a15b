//! The network heartbeat packet: a fixed, versioned, authenticated format.
//!
//! A packet carries the sender's current state as the first
//! [`SLOT_PREFIX_LEN`] bytes of its statefile slot block, encoded by
//! `Slot::encode` exactly as on disk (see `docs/on-disk-format.md`), with an
//! empty status text. So the network and the statefile carry the same views
//! by construction, and a field added to the slot travels in heartbeats
//! without a change here. Layout (integers little-endian; `docs/daemon.md`
//! has the same table):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0   | 8   | magic `"XHANET\0\0"` |
//! | 8   | 2   | format version (2) |
//! | 10  | 2   | sender host index |
//! | 12  | 4   | reserved, zero |
//! | 16  | 16  | pool generation UUID |
//! | 32  | 16  | sender host UUID |
//! | 48  | 8   | sender incarnation |
//! | 56  | 8   | packet sequence (within the incarnation) |
//! | 64  | 256 | bytes 0..256 of the sender's slot block (status length 0) |
//! | 320 | 32  | HMAC-SHA256 of bytes 0..320 under the pool secret |
//!
//! Checks, in order, each with its own [`DropReason`]: length, magic,
//! version, pool generation, MAC (constant-time), sender index and UUID
//! against the configuration, reserved bytes, then the embedded slot (decoded
//! by `Slot::decode` after padding to a block and stamping its checksum: its
//! magic, version, generation, index and field values must be valid, its
//! UUID must be the sender's, its status length zero); then the per-peer
//! replay floors of [`super::replay`] ([`ReplayFilter`] is their basic
//! rule alone). Fields are only interpreted once the MAC is verified,
//! so a forger learns nothing beyond "dropped".
//!
//! # Replay rejection across restarts
//!
//! Every packet carries `(incarnation, sequence)`. The sequence grows by one
//! per packet; the incarnation is chosen once per daemon start by
//! [`super::incarnation::next`]: `max(previous + 1, wall-clock microseconds)`,
//! persisted before the first packet. A receiver accepts a packet only if its
//! pair is strictly greater (lexicographically) than the last pair it accepted
//! from that peer. So a restarted peer is accepted at once (its incarnation
//! is greater), while a recorded packet of an older incarnation, or an older
//! packet of the current one, is rejected: incarnations never go back even if
//! the wall clock does, because the persisted value is the floor.
//!
//! One forged packet with a higher pair would raise the floor for good; an
//! incarnation too far ahead of this host's wall clock is therefore refused,
//! and the statefile (never the network) may lower a raised floor: see
//! [`super::replay`].
//!
//! Residual window, by design: a receiver that itself restarted has no floor
//! yet, so it accepts the first authentic packet of each peer it sees, which
//! could be a recording. It then accepts only newer ones, the real peer's
//! next packet (a newer incarnation or sequence) supersedes the recording
//! within one heartbeat interval, and the statefile, which no network
//! attacker can replay into, stays the authority for a peer's liveness.
//!
//! Parts: this file holds the layout and the reasons a packet is dropped;
//! `codec` encodes and checks packets; `sequence` numbers the packets a host
//! sends and holds the basic replay rule.

mod codec;
mod sequence;
#[cfg(test)]
mod tests;

pub use codec::Codec;
pub use sequence::{ReplayFilter, Sender};

use hmac::Hmac;
use sha2::Sha256;
use sr_heartbeat::statefile::Slot;
use sr_heartbeat::statefile::slot::{SLOT_SIZE, off as slot_off};

pub use super::replay::Receiver;
use uuid::Uuid;
/// The counters are part of the control protocol (the liveset report).
pub use xha_control::{DropCounters, DropKind};

/// How much of the slot block a packet carries: every fixed field, up to
/// (not including) the status text.
pub const SLOT_PREFIX_LEN: usize = 256;
/// Total size of a packet.
pub const PACKET_LEN: usize = 352;
/// `"XHANET\0\0"` as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XHANET\0\0");
/// Bumped on any incompatible change of the layout (1 carried the fields
/// one by one; 2 embeds the slot prefix).
pub const VERSION: u16 = 2;
/// Size of the receive buffer the daemon should use: larger than a packet,
/// so an oversized datagram is recognised as such instead of being cut to
/// a plausible length.
pub const RECV_BUFFER_LEN: usize = 2048;

/// Byte offsets of every field.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const SENDER_INDEX: usize = 10;
    pub const RESERVED: usize = 12;
    pub const GENERATION: usize = 16;
    pub const SENDER_UUID: usize = 32;
    pub const INCARNATION: usize = 48;
    pub const PACKET_SEQUENCE: usize = 56;
    pub const SLOT: usize = 64;
    pub const MAC: usize = 320;
}

const MAC_LEN: usize = 32;
const _: () = assert!(off::MAC + MAC_LEN == PACKET_LEN);
const _: () = assert!(off::SLOT + SLOT_PREFIX_LEN == off::MAC);
const _: () = assert!(RECV_BUFFER_LEN > PACKET_LEN);
// The prefix holds every fixed slot field and stops before the status text.
const _: () = assert!(slot_off::STATUS_TEXT == SLOT_PREFIX_LEN);
const _: () = assert!(SLOT_PREFIX_LEN < SLOT_SIZE);

type HmacSha256 = Hmac<Sha256>;

/// Why a received datagram was dropped. Every variant is counted separately.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Shorter than a packet.
    #[error("truncated: {len} bytes, a packet is {PACKET_LEN}")]
    Truncated { len: usize },
    /// Longer than a packet.
    #[error("oversized: {len} bytes, a packet is {PACKET_LEN}")]
    Oversized { len: usize },
    /// Not a heartbeat packet at all.
    #[error("bad magic {found:#018x}")]
    BadMagic { found: u64 },
    /// A heartbeat of another format version.
    #[error("format version {found}, this build reads version {VERSION}")]
    WrongVersion { found: u16 },
    /// A heartbeat of another pool (or another HA enablement of this pool).
    #[error("pool generation {found}, expected {expected}")]
    ForeignPool { found: Uuid, expected: Uuid },
    /// The MAC does not verify under the pool secret: forged or corrupted.
    #[error("authentication failed (forged or corrupted packet)")]
    Forged,
    /// The sender index is not a configured host.
    #[error("sender index {index} is not below the host count {hosts}")]
    UnknownSender { index: u16, hosts: usize },
    /// The sender UUID is not the UUID configured at the sender index.
    #[error("sender index {index} carries UUID {found}, configured {expected}")]
    SenderMismatch {
        index: u16,
        found: Uuid,
        expected: Uuid,
    },
    /// The packet claims to come from this host.
    #[error("packet claims to come from this host (index {index})")]
    FromSelf { index: u16 },
    /// An authentic packet with a field value this build does not accept.
    #[error("field {field}: {reason}")]
    Malformed { field: &'static str, reason: String },
    /// An incarnation further ahead of this host's wall clock than any
    /// honest one can be (`daemon::replay`): refused, the floor unchanged.
    #[error(
        "incarnation {incarnation} is more than {} s ahead of this host's clock ({wall_us} us)",
        super::replay::INCARNATION_AHEAD_MAX / 1_000_000
    )]
    FutureIncarnation { incarnation: u64, wall_us: u64 },
    /// Not newer than the last packet accepted from that sender.
    #[error(
        "replayed: incarnation {incarnation} sequence {sequence} is not after {last_incarnation}/{last_sequence}"
    )]
    Replayed {
        incarnation: u64,
        sequence: u64,
        last_incarnation: u64,
        last_sequence: u64,
    },
}

impl DropReason {
    /// The counter this reason increments.
    #[must_use]
    pub fn kind(&self) -> DropKind {
        match self {
            DropReason::Truncated { .. } => DropKind::Truncated,
            DropReason::Oversized { .. } => DropKind::Oversized,
            DropReason::BadMagic { .. } => DropKind::BadMagic,
            DropReason::WrongVersion { .. } => DropKind::WrongVersion,
            DropReason::ForeignPool { .. } => DropKind::ForeignPool,
            DropReason::Forged => DropKind::Forged,
            DropReason::UnknownSender { .. }
            | DropReason::SenderMismatch { .. }
            | DropReason::FromSelf { .. } => DropKind::WrongSender,
            DropReason::Malformed { .. } => DropKind::Malformed,
            DropReason::Replayed { .. } => DropKind::Replayed,
            DropReason::FutureIncarnation { .. } => DropKind::FutureIncarnation,
        }
    }
}

/// A decoded, authenticated heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Sender host index (checked against the configuration).
    pub from: usize,
    pub incarnation: u64,
    pub packet_sequence: u64,
    /// The sender's state; `status` is empty (the text travels only in the
    /// statefile).
    pub slot: Slot,
}
