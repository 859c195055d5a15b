//! A delta record: one change of the pool database, appended to the delta area
//! of the active half. Every record starts on a fresh block and occupies whole
//! blocks, so appending never rewrites a block that holds a committed record:
//! a torn append can only damage itself.
//!
//! A record is bound to its place in the log three ways: the volume uuid and
//! snapshot id (records left by an earlier use of the half do not match), its
//! sequence (must be the next one), and `prev_crc`, the CRC of the record
//! before it (or of the snapshot header for the first record), so a valid but
//! stale record left beyond a rewritten one breaks the chain.

use uuid::Uuid;

use super::error::{DecodeError, check_crc, check_version, is_blank};
use super::layout::{BLOCK, BLOCK_U64};
use super::superblock::METADATA_VERSION;
use crate::le::{get_u16, get_u32, get_u64, get_uuid, put};

/// `"XHADELT\0"` as a little-endian u64.
pub const RECORD_MAGIC: u64 = u64::from_le_bytes(*b"XHADELT\0");
/// Bytes of the record header before the payload.
pub const RECORD_HEADER_BYTES: usize = 64;

/// Largest payload the length field can describe (the writer also bounds it
/// by the delta area).
pub const MAX_PAYLOAD_BYTES: usize = u32::MAX as usize - RECORD_HEADER_BYTES;

const WHAT: &str = "delta record";

/// Byte offsets of the record header's fields.
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const RESERVED: usize = 10; // u16, zero
    pub const PAYLOAD_LEN: usize = 12; // u32
    pub const VOLUME_UUID: usize = 16; // [u8; 16]
    pub const SNAPSHOT_ID: usize = 32; // u64
    pub const EPOCH: usize = 40; // u64, master epoch of the writer
    pub const SEQUENCE: usize = 48; // u64
    pub const PREV_CRC: usize = 56; // u32, CRC of the previous record / snapshot header
    pub const CRC: usize = 60; // u32, CRC32C of bytes 0..60 then the payload
    pub const PAYLOAD: usize = 64;
}

const _: () = assert!(off::PAYLOAD == RECORD_HEADER_BYTES);

/// One decoded delta record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaRecord {
    pub volume_uuid: Uuid,
    pub snapshot_id: u64,
    pub epoch: u64,
    pub sequence: u64,
    pub prev_crc: u32,
    /// Opaque bytes (the pool agent's change).
    pub payload: Vec<u8>,
}

/// Bytes on disk of a record with a payload of `payload_len` bytes: header
/// plus payload, rounded up to whole blocks.
#[must_use]
pub fn record_disk_bytes(payload_len: u64) -> u64 {
    (RECORD_HEADER_BYTES as u64 + payload_len).div_ceil(BLOCK_U64) * BLOCK_U64
}

fn record_crc(buf: &[u8], payload_len: usize) -> u32 {
    let c = crc32c::crc32c(&buf[..off::CRC]);
    crc32c::crc32c_append(c, &buf[off::PAYLOAD..off::PAYLOAD + payload_len])
}

impl DeltaRecord {
    /// Bytes this record occupies on disk.
    #[must_use]
    pub fn disk_bytes(&self) -> u64 {
        record_disk_bytes(self.payload.len() as u64)
    }

    /// Encode into `out` (exactly [`DeltaRecord::disk_bytes`] long, padding
    /// zeroed). Returns the record's CRC, which the next record chains to.
    pub fn encode(&self, out: &mut [u8]) -> u32 {
        assert_eq!(out.len() as u64, self.disk_bytes(), "record buffer size");
        assert!(
            self.payload.len() <= MAX_PAYLOAD_BYTES,
            "payload of {} bytes",
            self.payload.len()
        );
        let len = self.payload.len() as u32;
        out.fill(0);
        put(out, off::MAGIC, &RECORD_MAGIC.to_le_bytes());
        put(out, off::VERSION, &METADATA_VERSION.to_le_bytes());
        put(out, off::PAYLOAD_LEN, &len.to_le_bytes());
        put(out, off::VOLUME_UUID, self.volume_uuid.as_bytes());
        put(out, off::SNAPSHOT_ID, &self.snapshot_id.to_le_bytes());
        put(out, off::EPOCH, &self.epoch.to_le_bytes());
        put(out, off::SEQUENCE, &self.sequence.to_le_bytes());
        put(out, off::PREV_CRC, &self.prev_crc.to_le_bytes());
        put(out, off::PAYLOAD, &self.payload);
        let crc = record_crc(out, self.payload.len());
        put(out, off::CRC, &crc.to_le_bytes());
        crc
    }

    /// Encode into a fresh vector (tests, tools).
    #[must_use]
    pub fn to_bytes(&self) -> (Vec<u8>, u32) {
        let mut v = vec![0u8; self.disk_bytes() as usize];
        let crc = self.encode(&mut v);
        (v, crc)
    }

    /// How many bytes the record starting at `buf` occupies, from its first
    /// block alone (so a reader knows how much more to read). Checks blank,
    /// magic and that the length fits in `area_left` bytes; not the checksum.
    pub fn peek_disk_bytes(buf: &[u8], area_left: u64) -> Result<u64, DecodeError> {
        if buf.len() < BLOCK {
            return Err(DecodeError::BadLength {
                what: WHAT,
                len: buf.len(),
                expected: BLOCK,
            });
        }
        let head = &buf[..BLOCK];
        if is_blank(head) {
            return Err(DecodeError::Blank { what: WHAT });
        }
        let magic = get_u64(head, off::MAGIC);
        if magic != RECORD_MAGIC {
            return Err(DecodeError::BadMagic {
                what: WHAT,
                found: magic,
                expected: RECORD_MAGIC,
            });
        }
        let needed = record_disk_bytes(u64::from(get_u32(head, off::PAYLOAD_LEN)));
        if needed > area_left {
            return Err(DecodeError::Truncated {
                what: WHAT,
                needed,
                available: area_left,
            });
        }
        Ok(needed)
    }

    /// Decode the record at the start of `buf` (which may extend past it, to
    /// the end of the delta area). Returns the record, its CRC and the bytes
    /// it occupies. Checks: blank, magic, length within `buf`, checksum,
    /// version, reserved field.
    pub fn decode(buf: &[u8]) -> Result<(DeltaRecord, u32, u64), DecodeError> {
        let disk = DeltaRecord::peek_disk_bytes(buf, buf.len() as u64)?;
        let len = get_u32(buf, off::PAYLOAD_LEN) as usize;
        let stored = get_u32(buf, off::CRC);
        check_crc(WHAT, stored, record_crc(buf, len))?;
        check_version(WHAT, get_u16(buf, off::VERSION))?;
        let reserved = get_u16(buf, off::RESERVED);
        if reserved != 0 {
            return Err(DecodeError::BadField {
                what: WHAT,
                field: "reserved",
                reason: format!("{reserved:#x}, expected 0"),
            });
        }
        let r = DeltaRecord {
            volume_uuid: get_uuid(buf, off::VOLUME_UUID),
            snapshot_id: get_u64(buf, off::SNAPSHOT_ID),
            epoch: get_u64(buf, off::EPOCH),
            sequence: get_u64(buf, off::SEQUENCE),
            prev_crc: get_u32(buf, off::PREV_CRC),
            payload: buf[off::PAYLOAD..off::PAYLOAD + len].to_vec(),
        };
        Ok((r, stored, disk))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(payload: Vec<u8>) -> DeltaRecord {
        DeltaRecord {
            volume_uuid: Uuid::from_u128(77),
            snapshot_id: 3,
            epoch: 2,
            sequence: 10,
            prev_crc: 0xdead_beef,
            payload,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(record_disk_bytes(0), 4096);
        assert_eq!(record_disk_bytes(4032), 4096);
        assert_eq!(record_disk_bytes(4033), 8192);
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let r = sample(vec![0xab; 6000]);
        let (bytes, crc) = r.to_bytes();
        assert_eq!(bytes.len(), 8192);
        let mut area = bytes.clone();
        area.extend_from_slice(&[0u8; 4096]);
        assert_eq!(DeltaRecord::decode(&area), Ok((r.clone(), crc, 8192)));
        // The second block of the record never landed.
        let mut torn = area.clone();
        torn[4096..8192].fill(0);
        assert!(matches!(
            DeltaRecord::decode(&torn),
            Err(DecodeError::ChecksumMismatch { .. })
        ));
        // The area ends inside the record.
        assert!(matches!(
            DeltaRecord::decode(&bytes[..4096]),
            Err(DecodeError::Truncated { needed: 8192, .. })
        ));
        assert!(matches!(
            DeltaRecord::decode(&[0u8; 4096]),
            Err(DecodeError::Blank { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..9000), seq in any::<u64>(), epoch in any::<u64>()) {
            let mut r = sample(payload);
            r.sequence = seq;
            r.epoch = epoch;
            let (bytes, crc) = r.to_bytes();
            prop_assert_eq!(DeltaRecord::decode(&bytes), Ok((r, crc, bytes.len() as u64)));
        }

        #[test]
        fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let _ = DeltaRecord::decode(&bytes);
        }
    }
}
