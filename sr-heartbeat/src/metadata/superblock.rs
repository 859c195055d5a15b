//! The superblock: which half holds the committed snapshot, the newest master
//! epoch, and the volume's geometry. Two slots, written alternately
//! (generation `g` to slot `g % 2`), so a torn superblock write always leaves
//! the previous generation intact in the other slot. The newest valid one wins.
//!
//! Writing a new superblock is the commit point of a snapshot and the durable
//! record of a new master epoch.

use uuid::Uuid;

use super::error::{DecodeError, check_block_framing};
use super::layout::{BLOCK, BLOCK_U64, HALVES_OFFSET, Layout};
use crate::le::{get_u32, get_u64, get_uuid, put};

/// `"XHAMETA\0"` as a little-endian u64.
pub const SUPERBLOCK_MAGIC: u64 = u64::from_le_bytes(*b"XHAMETA\0");
/// Bumped on any incompatible change of the metadata volume format.
pub const METADATA_VERSION: u16 = 1;

const WHAT: &str = "superblock";

/// Byte offsets of every field (mirrored in `docs/on-disk-format.md`).
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const ACTIVE_HALF: usize = 10; // u8, 0 or 1
    pub const BLOCK_SIZE: usize = 12; // u32, always 4096
    pub const VOLUME_UUID: usize = 16; // [u8; 16], random at format
    pub const GENERATION: usize = 32; // u64, >= 1, bumped on every write
    pub const EPOCH: usize = 40; // u64, newest master epoch
    pub const EPOCH_START_SEQ: usize = 48; // u64, first sequence owned by EPOCH
    pub const SNAPSHOT_ID: usize = 56; // u64, id of the committed snapshot
    pub const SNAPSHOT_BASE_SEQ: usize = 64; // u64, last sequence folded into it
    pub const VOLUME_BYTES: usize = 72; // u64
    pub const HALVES_OFFSET: usize = 80; // u64, always 1 MiB
    pub const HALF_BYTES: usize = 88; // u64
    pub const SNAPSHOT_REGION_BYTES: usize = 96; // u64
    pub const RESERVED_START: usize = 104;
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
}

const _: () = assert!(off::CRC + 4 == BLOCK);

/// One decoded superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Random at format; every snapshot header and record carries it, so data
    /// left by an earlier format of the same device is never replayed.
    pub volume_uuid: Uuid,
    /// Bumped by one on every superblock write; decides which slot is newer.
    pub generation: u64,
    /// The half (0 or 1) whose snapshot is committed and whose delta area is in use.
    pub active_half: u8,
    /// The newest master epoch recorded on this volume. A writer with an
    /// older epoch is refused.
    pub epoch: u64,
    /// Delta records with a sequence at or above this belong to `epoch`: one
    /// with an older epoch there was written by a deposed master and is stale.
    pub epoch_start_seq: u64,
    /// Id of the committed snapshot (the generation of the superblock that
    /// first committed it); the snapshot header must carry the same id.
    pub snapshot_id: u64,
    /// Sequence of the last delta folded into the committed snapshot; the
    /// first delta after it has `snapshot_base_seq + 1`.
    pub snapshot_base_seq: u64,
    pub layout: Layout,
}

impl Superblock {
    /// The slot (0 or 1) this superblock is written to.
    #[must_use]
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    /// Encode into exactly one block. Panics on a value the writer must never
    /// produce (a bug, not input).
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), BLOCK, "superblock buffer size");
        assert!(self.active_half < 2, "active half {}", self.active_half);
        assert!(self.generation >= 1, "generation 0 is never written");
        assert!(
            self.snapshot_id <= self.generation,
            "snapshot id from the future"
        );
        assert_eq!(self.layout.validate(), Ok(()), "layout");
        out.fill(0);
        put(out, off::MAGIC, &SUPERBLOCK_MAGIC.to_le_bytes());
        put(out, off::VERSION, &METADATA_VERSION.to_le_bytes());
        out[off::ACTIVE_HALF] = self.active_half;
        put(out, off::BLOCK_SIZE, &(BLOCK as u32).to_le_bytes());
        put(out, off::VOLUME_UUID, self.volume_uuid.as_bytes());
        put(out, off::GENERATION, &self.generation.to_le_bytes());
        put(out, off::EPOCH, &self.epoch.to_le_bytes());
        put(
            out,
            off::EPOCH_START_SEQ,
            &self.epoch_start_seq.to_le_bytes(),
        );
        put(out, off::SNAPSHOT_ID, &self.snapshot_id.to_le_bytes());
        put(
            out,
            off::SNAPSHOT_BASE_SEQ,
            &self.snapshot_base_seq.to_le_bytes(),
        );
        put(
            out,
            off::VOLUME_BYTES,
            &self.layout.volume_bytes.to_le_bytes(),
        );
        put(out, off::HALVES_OFFSET, &HALVES_OFFSET.to_le_bytes());
        put(out, off::HALF_BYTES, &self.layout.half_bytes.to_le_bytes());
        put(
            out,
            off::SNAPSHOT_REGION_BYTES,
            &self.layout.snapshot_region_bytes.to_le_bytes(),
        );
        let crc = crc32c::crc32c(&out[..off::CRC]);
        put(out, off::CRC, &crc.to_le_bytes());
    }

    /// Encode into a fresh one-block vector (tests, tools).
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; BLOCK];
        self.encode(&mut v);
        v
    }

    /// Decode one superblock slot, checking in this order: length, all zero,
    /// magic, checksum, version, then every field. Reserved bytes are covered
    /// by the checksum but their value is ignored.
    pub fn decode(buf: &[u8]) -> Result<Superblock, DecodeError> {
        check_block_framing(
            WHAT,
            buf,
            SUPERBLOCK_MAGIC,
            (off::MAGIC, off::CRC, off::VERSION),
        )?;
        let bad = |field: &'static str, reason: String| DecodeError::BadField {
            what: WHAT,
            field,
            reason,
        };
        let block_size = get_u32(buf, off::BLOCK_SIZE);
        if block_size as usize != BLOCK {
            return Err(bad("block_size", format!("{block_size}, expected {BLOCK}")));
        }
        let halves = get_u64(buf, off::HALVES_OFFSET);
        if halves != HALVES_OFFSET {
            return Err(bad(
                "halves_offset",
                format!("{halves}, expected {HALVES_OFFSET}"),
            ));
        }
        let active_half = buf[off::ACTIVE_HALF];
        if active_half > 1 {
            return Err(bad("active_half", format!("{active_half} is not 0 or 1")));
        }
        let generation = get_u64(buf, off::GENERATION);
        if generation == 0 {
            return Err(bad("generation", "0 is never written".into()));
        }
        let snapshot_id = get_u64(buf, off::SNAPSHOT_ID);
        if snapshot_id == 0 || snapshot_id > generation {
            return Err(bad(
                "snapshot_id",
                format!("{snapshot_id} not in 1..={generation} (the generation)"),
            ));
        }
        let layout = Layout {
            volume_bytes: get_u64(buf, off::VOLUME_BYTES),
            half_bytes: get_u64(buf, off::HALF_BYTES),
            snapshot_region_bytes: get_u64(buf, off::SNAPSHOT_REGION_BYTES),
        };
        layout
            .validate()
            .map_err(|e| bad("layout", e.to_string()))?;
        debug_assert!(layout.volume_bytes.is_multiple_of(BLOCK_U64));
        Ok(Superblock {
            volume_uuid: get_uuid(buf, off::VOLUME_UUID),
            generation,
            active_half,
            epoch: get_u64(buf, off::EPOCH),
            epoch_start_seq: get_u64(buf, off::EPOCH_START_SEQ),
            snapshot_id,
            snapshot_base_seq: get_u64(buf, off::SNAPSHOT_BASE_SEQ),
            layout,
        })
    }
}

/// The outcome of reading both superblock slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuperblockPair {
    /// Each slot's decode result, index = slot.
    pub slots: [Result<Superblock, DecodeError>; 2],
}

impl SuperblockPair {
    /// Decode both slots from the first two blocks of the volume.
    pub fn decode(two_blocks: &[u8]) -> Result<SuperblockPair, DecodeError> {
        if two_blocks.len() != 2 * BLOCK {
            return Err(DecodeError::BadLength {
                what: "superblock pair",
                len: two_blocks.len(),
                expected: 2 * BLOCK,
            });
        }
        Ok(SuperblockPair {
            slots: [
                Superblock::decode(&two_blocks[..BLOCK]),
                Superblock::decode(&two_blocks[BLOCK..]),
            ],
        })
    }

    /// The valid superblock with the highest generation. A slot holding a
    /// generation that does not belong there (`g % 2 != slot`) was not
    /// written by this format's alternation rule and is ignored.
    #[must_use]
    pub fn newest(&self) -> Option<&Superblock> {
        let a = self.slots[0].as_ref().ok().filter(|s| s.slot() == 0);
        let b = self.slots[1].as_ref().ok().filter(|s| s.slot() == 1);
        match (a, b) {
            (Some(a), Some(b)) => Some(if a.generation > b.generation { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// True when neither slot holds anything of ours (never formatted).
    #[must_use]
    pub fn unformatted(&self) -> bool {
        self.slots.iter().all(|s| {
            matches!(
                s,
                Err(DecodeError::Blank { .. }) | Err(DecodeError::BadMagic { .. })
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample() -> Superblock {
        Superblock {
            volume_uuid: Uuid::from_u128(0xfeed),
            generation: 7,
            active_half: 1,
            epoch: 3,
            epoch_start_seq: 40,
            snapshot_id: 6,
            snapshot_base_seq: 31,
            layout: Layout::standard(),
        }
    }

    #[test]
    fn round_trip_and_slot() {
        let s = sample();
        assert_eq!(Superblock::decode(&s.to_bytes()), Ok(s.clone()));
        assert_eq!(s.slot(), 1);
    }

    #[test]
    fn precise_errors() {
        let b = sample().to_bytes();
        assert_eq!(
            Superblock::decode(&[0u8; BLOCK]),
            Err(DecodeError::Blank { what: WHAT })
        );
        assert!(matches!(
            Superblock::decode(&b[..100]),
            Err(DecodeError::BadLength { len: 100, .. })
        ));
        let mut c = b.clone();
        c[off::EPOCH] ^= 1;
        assert!(matches!(
            Superblock::decode(&c),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
        let mut m = b.clone();
        m[off::MAGIC] ^= 1;
        assert!(matches!(
            Superblock::decode(&m),
            Err(DecodeError::BadMagic { .. })
        ));
        // A field error behind a valid checksum: re-stamp the CRC.
        let mut h = b.clone();
        h[off::ACTIVE_HALF] = 2;
        let crc = crc32c::crc32c(&h[..off::CRC]);
        h[off::CRC..].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            Superblock::decode(&h),
            Err(DecodeError::BadField {
                field: "active_half",
                ..
            })
        ));
    }

    #[test]
    fn newest_valid_slot_wins_and_torn_newest_falls_back() {
        let mut older = sample();
        older.generation = 6;
        let newer = sample();
        let mut two = vec![0u8; 2 * BLOCK];
        two[..BLOCK].copy_from_slice(&older.to_bytes());
        two[BLOCK..].copy_from_slice(&newer.to_bytes());
        let pair = SuperblockPair::decode(&two).unwrap();
        assert_eq!(pair.newest(), Some(&newer));
        two[BLOCK + 2000] ^= 0x40;
        let pair = SuperblockPair::decode(&two).unwrap();
        assert_eq!(pair.newest(), Some(&older));
        assert!(!pair.unformatted());
        let blank = SuperblockPair::decode(&[0u8; 2 * BLOCK]).unwrap();
        assert!(blank.unformatted());
        assert_eq!(blank.newest(), None);
    }

    proptest! {
        #[test]
        fn prop_round_trip(
            uuid in any::<u128>(), generation in 1u64.., half in 0u8..2,
            epoch in any::<u64>(), start in any::<u64>(), base in any::<u64>(), id_frac in 0u64..=1000,
        ) {
            let snapshot_id = 1 + (generation - 1) / 1000 * id_frac;
            let s = Superblock {
                volume_uuid: Uuid::from_u128(uuid), generation, active_half: half, epoch,
                epoch_start_seq: start, snapshot_id, snapshot_base_seq: base,
                layout: Layout::for_volume(8 << 20).unwrap(),
            };
            prop_assert_eq!(Superblock::decode(&s.to_bytes()), Ok(s));
        }

        #[test]
        fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            let _ = Superblock::decode(&bytes);
        }
    }
}
