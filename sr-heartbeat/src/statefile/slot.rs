//! The host slot: one 4 KiB block of the statefile per host, written only by
//! that host. This file is the single definition of its byte layout; the table
//! in `docs/on-disk-format.md` mirrors the `off::*` constants below.
//!
//! All integers are little-endian. Bytes `RESERVED_START..CRC` are written as
//! zero and covered by the checksum; a reader ignores their value (so a later
//! minor version may use them), but a checksum mismatch still rejects the slot.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::hostset::HostSet;
use crate::le::{get_u16, get_u32, get_u64, get_uuid, put};

/// Size of one slot on disk. A slot is always one 4 KiB block, whatever the
/// device's sector size (512 or 4096), so one slot write is one aligned I/O.
pub const SLOT_SIZE: usize = 4096;
/// `"XHASLOT\0"` as a little-endian u64.
pub const SLOT_MAGIC: u64 = u64::from_le_bytes(*b"XHASLOT\0");
/// Bumped on any incompatible change of this layout.
pub const SLOT_VERSION: u16 = 1;
/// Longest status text, in bytes of UTF-8.
pub const STATUS_TEXT_MAX: usize = 256;

/// Byte offsets of every field (see `docs/on-disk-format.md`).
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const HOST_INDEX: usize = 10; // u16
    pub const FLAGS: usize = 12; // u32
    pub const GENERATION: usize = 16; // [u8; 16] pool generation UUID
    pub const HOST_UUID: usize = 32; // [u8; 16]
    pub const SEQUENCE: usize = 48; // u64
    pub const HEARD: usize = 56; // u64 bitmap
    pub const SEEN: usize = 64; // u64 bitmap
    pub const LIVESET: usize = 72; // u64 bitmap
    pub const PROPOSED: usize = 80; // u64 bitmap
    pub const LOCK_REQUEST: usize = 88; // u64 bitmap
    pub const LOCK_GRANT: usize = 96; // u64 bitmap
    pub const MASTER_EPOCH: usize = 104; // u64
    pub const FAULT_ROUND: usize = 112; // u64
    pub const PHASE: usize = 120; // u8
    pub const STATUS_LEN: usize = 122; // u16
    pub const DIAG_TIME_MS: usize = 128; // u64, unix ms, diagnosis only
    pub const NET_ROUND: usize = 136; // u64, statefile-lost network round
    pub const STATUS_TEXT: usize = 256; // [u8; STATUS_TEXT_MAX]
    pub const RESERVED_START: usize = 512;
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
}

const _: () = assert!(off::STATUS_TEXT + super::slot::STATUS_TEXT_MAX <= off::RESERVED_START);
const _: () = assert!(off::CRC + 4 == SLOT_SIZE);

/// Bits of the `flags` field.
pub mod flag {
    /// Left the pool cleanly (shutdown); peers do not wait for it.
    pub const EXCLUDED: u32 = 1 << 0;
    /// Booting and joining; not yet in the liveset.
    pub const STARTING: u32 = 1 << 1;
    /// A survivor asks the hosts outside its proposed liveset to fence.
    pub const FENCE_REQUEST: u32 = 1 << 2;
    /// The writer could read the statefile on its last cycle.
    pub const STATEFILE_ACCESS: u32 = 1 << 3;
    /// The writer's fencing is disarmed: peers never remove it.
    pub const FENCING_DISARMED: u32 = 1 << 4;
    pub const ALL: u32 = EXCLUDED | STARTING | FENCE_REQUEST | STATEFILE_ACCESS | FENCING_DISARMED;
}

/// The writer's fault-handling phase, as published to its peers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum Phase {
    /// No fault being handled.
    #[default]
    Normal = 0,
    /// A liveset member dropped out of a view; waiting for views to settle.
    Stabilising = 1,
    /// Exchanging views until all candidates report the same ones.
    Agreeing = 2,
    /// Survival rules applied; a survivor waits until losers have fenced.
    Deciding = 3,
    /// The writer lost and is fencing itself.
    Fencing = 4,
}

impl Phase {
    pub fn from_u8(v: u8) -> Option<Phase> {
        Some(match v {
            0 => Phase::Normal,
            1 => Phase::Stabilising,
            2 => Phase::Agreeing,
            3 => Phase::Deciding,
            4 => Phase::Fencing,
            _ => return None,
        })
    }
}

/// One host's published state. `sequence` changing is the only liveness
/// signal a reader uses (timed on the reader's own clock).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub host_uuid: Uuid,
    pub host_index: u16,
    /// Bumped by the writer on every write.
    pub sequence: u64,
    /// Hosts this host hears on the network.
    pub heard: HostSet,
    /// Hosts whose slots this host sees advancing on the statefile.
    pub seen: HostSet,
    /// The writer's current liveset.
    pub liveset: HostSet,
    /// The liveset the writer proposes during fault handling.
    pub proposed: HostSet,
    /// Hosts the writer knows to request the master lock (its own bit = its own request).
    pub lock_request: HostSet,
    /// Hosts the writer grants the master lock to (at most one).
    pub lock_grant: HostSet,
    /// The highest master epoch the writer knows.
    pub master_epoch: u64,
    /// Which fault the phase refers to; bumped when a new fault handling starts.
    pub fault_round: u64,
    pub phase: Phase,
    pub excluded: bool,
    pub starting: bool,
    pub fence_request: bool,
    pub statefile_access: bool,
    /// The writer's fencing is disarmed (maintenance): peers never remove it.
    pub fencing_disarmed: bool,
    /// Round counter of the statefile-lost mode: the network lease protocol
    /// (see `docs/fault-handling.md`). Zero while the statefile is reachable.
    pub net_round: u64,
    /// Free-form status or error text for operators (at most 256 bytes UTF-8).
    pub status: String,
    /// Wall-clock time of the write in unix milliseconds: for humans reading a
    /// dump only, never used for liveness.
    pub diag_time_ms: u64,
}

/// Why a slot did not decode. Each variant affects only that slot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SlotError {
    #[error("never written (all zero)")]
    NeverWritten,
    #[error("bad magic {found:#018x}, expected {SLOT_MAGIC:#018x}")]
    BadMagic { found: u64 },
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    #[error("format version {found}, this build reads version {SLOT_VERSION}")]
    WrongVersion { found: u16 },
    #[error("pool generation {found}, expected {expected}")]
    WrongGeneration { found: Uuid, expected: Uuid },
    #[error("slot at position {position} claims host index {found}")]
    WrongIndex { position: u16, found: u16 },
    #[error("field {field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("buffer is {len} bytes, a slot is {SLOT_SIZE}")]
    BadLength { len: usize },
}

/// CRC32C of the covered bytes of a 4 KiB block (everything but the last 4).
pub fn block_crc(block: &[u8]) -> u32 {
    crc32c::crc32c(&block[..block.len() - 4])
}

impl Slot {
    /// Encode into `out` (exactly `SLOT_SIZE` bytes), stamping generation,
    /// version, magic and checksum. Panics on a value that the writer must
    /// never produce (status too long, index beyond the bitmap): a bug.
    pub fn encode(&self, generation: Uuid, out: &mut [u8]) {
        assert_eq!(out.len(), SLOT_SIZE, "slot buffer size");
        assert!(self.status.len() <= STATUS_TEXT_MAX, "status text too long");
        assert!(
            (self.host_index as usize) < super::hostset::MAX_HOSTS_LIMIT,
            "host index out of range"
        );
        out.fill(0);
        put(out, off::MAGIC, &SLOT_MAGIC.to_le_bytes());
        put(out, off::VERSION, &SLOT_VERSION.to_le_bytes());
        put(out, off::HOST_INDEX, &self.host_index.to_le_bytes());
        put(out, off::FLAGS, &self.flags().to_le_bytes());
        put(out, off::GENERATION, generation.as_bytes());
        put(out, off::HOST_UUID, self.host_uuid.as_bytes());
        put(out, off::SEQUENCE, &self.sequence.to_le_bytes());
        put(out, off::HEARD, &self.heard.0.to_le_bytes());
        put(out, off::SEEN, &self.seen.0.to_le_bytes());
        put(out, off::LIVESET, &self.liveset.0.to_le_bytes());
        put(out, off::PROPOSED, &self.proposed.0.to_le_bytes());
        put(out, off::LOCK_REQUEST, &self.lock_request.0.to_le_bytes());
        put(out, off::LOCK_GRANT, &self.lock_grant.0.to_le_bytes());
        put(out, off::MASTER_EPOCH, &self.master_epoch.to_le_bytes());
        put(out, off::FAULT_ROUND, &self.fault_round.to_le_bytes());
        out[off::PHASE] = self.phase as u8;
        put(
            out,
            off::STATUS_LEN,
            &(self.status.len() as u16).to_le_bytes(),
        );
        put(out, off::DIAG_TIME_MS, &self.diag_time_ms.to_le_bytes());
        put(out, off::NET_ROUND, &self.net_round.to_le_bytes());
        put(out, off::STATUS_TEXT, self.status.as_bytes());
        let crc = block_crc(out);
        put(out, off::CRC, &crc.to_le_bytes());
    }

    /// Encode into a fresh `SLOT_SIZE` vector (tests, tools; the I/O path
    /// encodes into its aligned buffer with [`Slot::encode`]).
    #[must_use]
    pub fn to_bytes(&self, generation: Uuid) -> Vec<u8> {
        let mut v = vec![0u8; SLOT_SIZE];
        self.encode(generation, &mut v);
        v
    }

    fn flags(&self) -> u32 {
        let mut f = 0;
        if self.excluded {
            f |= flag::EXCLUDED;
        }
        if self.starting {
            f |= flag::STARTING;
        }
        if self.fence_request {
            f |= flag::FENCE_REQUEST;
        }
        if self.statefile_access {
            f |= flag::STATEFILE_ACCESS;
        }
        if self.fencing_disarmed {
            f |= flag::FENCING_DISARMED;
        }
        f
    }

    /// Decode the slot stored at `position`, checking, in this order: all
    /// zero, magic, checksum, version, generation, index, field values.
    pub fn decode(buf: &[u8], generation: Uuid, position: u16) -> Result<Slot, SlotError> {
        if buf.len() != SLOT_SIZE {
            return Err(SlotError::BadLength { len: buf.len() });
        }
        if buf.iter().all(|&b| b == 0) {
            return Err(SlotError::NeverWritten);
        }
        let magic = get_u64(buf, off::MAGIC);
        if magic != SLOT_MAGIC {
            return Err(SlotError::BadMagic { found: magic });
        }
        let stored = get_u32(buf, off::CRC);
        let computed = block_crc(buf);
        if stored != computed {
            return Err(SlotError::ChecksumMismatch { stored, computed });
        }
        let version = get_u16(buf, off::VERSION);
        if version != SLOT_VERSION {
            return Err(SlotError::WrongVersion { found: version });
        }
        let found = get_uuid(buf, off::GENERATION);
        if found != generation {
            return Err(SlotError::WrongGeneration {
                found,
                expected: generation,
            });
        }
        let host_index = get_u16(buf, off::HOST_INDEX);
        if host_index != position {
            return Err(SlotError::WrongIndex {
                position,
                found: host_index,
            });
        }
        let flags = get_u32(buf, off::FLAGS);
        if flags & !flag::ALL != 0 {
            return Err(SlotError::BadField {
                field: "flags",
                reason: format!("unknown bits {:#x}", flags & !flag::ALL),
            });
        }
        let phase_raw = buf[off::PHASE];
        let phase = Phase::from_u8(phase_raw).ok_or_else(|| SlotError::BadField {
            field: "phase",
            reason: format!("{phase_raw} is not a phase (0..=4)"),
        })?;
        let status_len = get_u16(buf, off::STATUS_LEN) as usize;
        if status_len > STATUS_TEXT_MAX {
            return Err(SlotError::BadField {
                field: "status_len",
                reason: format!("{status_len} exceeds {STATUS_TEXT_MAX}"),
            });
        }
        let text = &buf[off::STATUS_TEXT..off::STATUS_TEXT + status_len];
        let status = std::str::from_utf8(text)
            .map_err(|e| SlotError::BadField {
                field: "status",
                reason: e.to_string(),
            })?
            .to_owned();
        let slot = Slot {
            host_uuid: get_uuid(buf, off::HOST_UUID),
            host_index,
            sequence: get_u64(buf, off::SEQUENCE),
            heard: HostSet(get_u64(buf, off::HEARD)),
            seen: HostSet(get_u64(buf, off::SEEN)),
            liveset: HostSet(get_u64(buf, off::LIVESET)),
            proposed: HostSet(get_u64(buf, off::PROPOSED)),
            lock_request: HostSet(get_u64(buf, off::LOCK_REQUEST)),
            lock_grant: HostSet(get_u64(buf, off::LOCK_GRANT)),
            master_epoch: get_u64(buf, off::MASTER_EPOCH),
            fault_round: get_u64(buf, off::FAULT_ROUND),
            phase,
            excluded: flags & flag::EXCLUDED != 0,
            starting: flags & flag::STARTING != 0,
            fence_request: flags & flag::FENCE_REQUEST != 0,
            statefile_access: flags & flag::STATEFILE_ACCESS != 0,
            fencing_disarmed: flags & flag::FENCING_DISARMED != 0,
            net_round: get_u64(buf, off::NET_ROUND),
            status,
            diag_time_ms: get_u64(buf, off::DIAG_TIME_MS),
        };
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Slot {
        Slot {
            host_uuid: Uuid::from_u128(0x1234),
            host_index: 3,
            sequence: 77,
            heard: HostSet(0b1011),
            seen: HostSet(0b1001),
            liveset: HostSet(0b1111),
            proposed: HostSet(0b1011),
            lock_request: HostSet(0b1000),
            lock_grant: HostSet(0b0001),
            master_epoch: 5,
            fault_round: 2,
            phase: Phase::Agreeing,
            excluded: false,
            starting: true,
            fence_request: true,
            statefile_access: true,
            fencing_disarmed: true,
            net_round: 9,
            status: "ok".into(),
            diag_time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let g = Uuid::from_u128(99);
        let s = sample();
        let b = s.to_bytes(g);
        assert_eq!(Slot::decode(&b, g, 3), Ok(s));
    }

    #[test]
    fn precise_errors() {
        let g = Uuid::from_u128(99);
        let b = sample().to_bytes(g);
        assert_eq!(
            Slot::decode(&[0u8; SLOT_SIZE], g, 3),
            Err(SlotError::NeverWritten)
        );
        assert!(matches!(
            Slot::decode(&b, Uuid::from_u128(1), 3),
            Err(SlotError::WrongGeneration { .. })
        ));
        assert!(matches!(
            Slot::decode(&b, g, 4),
            Err(SlotError::WrongIndex {
                position: 4,
                found: 3
            })
        ));
        let mut c = b.clone();
        c[off::SEQUENCE] ^= 1;
        assert!(matches!(
            Slot::decode(&c, g, 3),
            Err(SlotError::ChecksumMismatch { .. })
        ));
        let mut m = b.clone();
        m[off::MAGIC] ^= 1;
        assert!(matches!(
            Slot::decode(&m, g, 3),
            Err(SlotError::BadMagic { .. })
        ));
    }
}
