//! The pool block: one 4 KiB block of the statefile holding what the whole pool
//! agrees on: the pool state, the master and its epoch. Written only by the
//! holder of the master lock (or by `format`), so its read / compare-and-set is
//! not a cross-host atomic primitive: the master lock is what serialises writers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::slot::{SlotError, block_crc};
use crate::le::{get_u16, get_u32, get_u64, get_uuid};

pub const POOL_BLOCK_SIZE: usize = 4096;
/// `"XHAPOOL\0"` as a little-endian u64.
pub const POOL_MAGIC: u64 = u64::from_le_bytes(*b"XHAPOOL\0");
pub const POOL_VERSION: u16 = 1;

pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const STATE: usize = 10; // u8
    pub const GENERATION: usize = 16; // [u8; 16]
    pub const MASTER_UUID: usize = 32; // [u8; 16], nil = no master
    pub const MASTER_EPOCH: usize = 48; // u64
    pub const UPDATE_SEQ: usize = 56; // u64, bumped on every write
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
}

/// Pool state as in XenServer: `Init` while HA is being enabled (the first
/// liveset is formed from all hosts), `Active` in service, `Invalid` when HA was
/// disabled and the statefile must not be trusted any more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum PoolState {
    Init = 1,
    Active = 2,
    Invalid = 3,
}

impl PoolState {
    /// Every pool state, in the order of their numbers.
    pub const ALL: [PoolState; 3] = [PoolState::Init, PoolState::Active, PoolState::Invalid];

    /// The state's name (`init`, `active`, `invalid`): its `Display`, its
    /// serde form, and its name in the control protocol.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            PoolState::Init => "init",
            PoolState::Active => "active",
            PoolState::Invalid => "invalid",
        }
    }

    pub fn from_u8(v: u8) -> Option<PoolState> {
        match v {
            1 => Some(PoolState::Init),
            2 => Some(PoolState::Active),
            3 => Some(PoolState::Invalid),
            _ => None,
        }
    }
}

impl std::fmt::Display for PoolState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolBlock {
    pub state: PoolState,
    /// `None` while no host holds the master lock.
    pub master: Option<Uuid>,
    /// Grows by one each time the master lock changes hands.
    pub master_epoch: u64,
    /// Bumped on every write; what compare-and-set compares.
    pub update_seq: u64,
}

impl PoolBlock {
    /// Encode into exactly `POOL_BLOCK_SIZE` bytes.
    pub fn encode(&self, generation: Uuid, out: &mut [u8]) {
        assert_eq!(out.len(), POOL_BLOCK_SIZE, "pool block buffer size");
        assert!(
            self.master != Some(Uuid::nil()),
            "nil master uuid means no master"
        );
        out.fill(0);
        out[off::MAGIC..off::MAGIC + 8].copy_from_slice(&POOL_MAGIC.to_le_bytes());
        out[off::VERSION..off::VERSION + 2].copy_from_slice(&POOL_VERSION.to_le_bytes());
        out[off::STATE] = self.state as u8;
        out[off::GENERATION..off::GENERATION + 16].copy_from_slice(generation.as_bytes());
        let master = self.master.unwrap_or(Uuid::nil());
        out[off::MASTER_UUID..off::MASTER_UUID + 16].copy_from_slice(master.as_bytes());
        out[off::MASTER_EPOCH..off::MASTER_EPOCH + 8]
            .copy_from_slice(&self.master_epoch.to_le_bytes());
        out[off::UPDATE_SEQ..off::UPDATE_SEQ + 8].copy_from_slice(&self.update_seq.to_le_bytes());
        let crc = block_crc(out);
        out[off::CRC..off::CRC + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[must_use]
    pub fn to_bytes(&self, generation: Uuid) -> Vec<u8> {
        let mut v = vec![0u8; POOL_BLOCK_SIZE];
        self.encode(generation, &mut v);
        v
    }

    /// Decode, with the same error kinds as a slot.
    pub fn decode(buf: &[u8], generation: Uuid) -> Result<PoolBlock, SlotError> {
        if buf.len() != POOL_BLOCK_SIZE {
            return Err(SlotError::BadLength { len: buf.len() });
        }
        if buf.iter().all(|&b| b == 0) {
            return Err(SlotError::NeverWritten);
        }
        let magic = get_u64(buf, off::MAGIC);
        if magic != POOL_MAGIC {
            return Err(SlotError::BadMagic { found: magic });
        }
        let stored = get_u32(buf, off::CRC);
        let computed = block_crc(buf);
        if stored != computed {
            return Err(SlotError::ChecksumMismatch { stored, computed });
        }
        let version = get_u16(buf, off::VERSION);
        if version != POOL_VERSION {
            return Err(SlotError::WrongVersion { found: version });
        }
        let found = get_uuid(buf, off::GENERATION);
        if found != generation {
            return Err(SlotError::WrongGeneration {
                found,
                expected: generation,
            });
        }
        let raw = buf[off::STATE];
        let state = PoolState::from_u8(raw).ok_or_else(|| SlotError::BadField {
            field: "state",
            reason: format!("{raw} is not a pool state (1 init, 2 active, 3 invalid)"),
        })?;
        let master = get_uuid(buf, off::MASTER_UUID);
        Ok(PoolBlock {
            state,
            master: (!master.is_nil()).then_some(master),
            master_epoch: get_u64(buf, off::MASTER_EPOCH),
            update_seq: get_u64(buf, off::UPDATE_SEQ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The name is written once: Display, serde and the numbering agree.
    #[test]
    fn every_state_has_one_name() {
        for s in PoolState::ALL {
            assert_eq!(s.to_string(), s.name());
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.name())
            );
            assert_eq!(PoolState::from_u8(s as u8), Some(s));
        }
    }

    #[test]
    fn round_trip_and_errors() {
        let g = Uuid::from_u128(7);
        let p = PoolBlock {
            state: PoolState::Active,
            master: Some(Uuid::from_u128(3)),
            master_epoch: 9,
            update_seq: 4,
        };
        let b = p.to_bytes(g);
        assert_eq!(PoolBlock::decode(&b, g), Ok(p));
        let mut c = b.clone();
        c[off::MASTER_EPOCH] ^= 0x10;
        assert!(matches!(
            PoolBlock::decode(&c, g),
            Err(SlotError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            PoolBlock::decode(&b, Uuid::from_u128(8)),
            Err(SlotError::WrongGeneration { .. })
        ));
    }
}
