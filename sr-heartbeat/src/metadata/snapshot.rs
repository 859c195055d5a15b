//! The snapshot: the whole pool database as opaque bytes, written to the
//! inactive half as one header block followed by the data (padded to a whole
//! block). It becomes the committed state only when a superblock naming it
//! (same `snapshot_id`, same half) is written: until then a torn or half-written
//! snapshot is simply not referenced.

use uuid::Uuid;

use super::error::{DecodeError, check_block_framing};
use super::layout::{BLOCK, BLOCK_U64};
use super::superblock::METADATA_VERSION;
use crate::le::{get_u32, get_u64, get_uuid, put};

/// `"XHASNAP\0"` as a little-endian u64.
pub const SNAPSHOT_MAGIC: u64 = u64::from_le_bytes(*b"XHASNAP\0");

const WHAT: &str = "snapshot header";

/// Byte offsets of the header block's fields.
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const HALF: usize = 10; // u8, the half it was written to
    pub const VOLUME_UUID: usize = 16; // [u8; 16]
    pub const SNAPSHOT_ID: usize = 32; // u64
    pub const EPOCH: usize = 40; // u64, epoch of the writer
    pub const BASE_SEQ: usize = 48; // u64, last delta folded in
    pub const DATA_LEN: usize = 56; // u64, bytes of data after the header block
    pub const DATA_CRC: usize = 64; // u32, CRC32C of the data bytes
    pub const RESERVED_START: usize = 68;
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
}

const _: () = assert!(off::CRC + 4 == BLOCK);

/// The header block of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub volume_uuid: Uuid,
    /// The generation of the superblock that commits this snapshot.
    pub snapshot_id: u64,
    /// The half (0 or 1) this snapshot was written to.
    pub half: u8,
    /// Master epoch of the writer.
    pub epoch: u64,
    /// Sequence of the last delta whose effect the snapshot includes.
    pub base_seq: u64,
    /// Length of the data in bytes.
    pub data_len: u64,
    /// CRC32C of the data.
    pub data_crc: u32,
}

/// Bytes a snapshot of `data_len` bytes occupies on disk (header + padded data).
#[must_use]
pub fn snapshot_disk_bytes(data_len: u64) -> u64 {
    BLOCK_U64 + data_len.div_ceil(BLOCK_U64) * BLOCK_U64
}

impl SnapshotHeader {
    /// Encode the header block; returns its CRC, which the first delta record
    /// after this snapshot chains to.
    pub fn encode(&self, out: &mut [u8]) -> u32 {
        assert_eq!(out.len(), BLOCK, "snapshot header buffer size");
        assert!(self.half < 2, "half {}", self.half);
        out.fill(0);
        put(out, off::MAGIC, &SNAPSHOT_MAGIC.to_le_bytes());
        put(out, off::VERSION, &METADATA_VERSION.to_le_bytes());
        out[off::HALF] = self.half;
        put(out, off::VOLUME_UUID, self.volume_uuid.as_bytes());
        put(out, off::SNAPSHOT_ID, &self.snapshot_id.to_le_bytes());
        put(out, off::EPOCH, &self.epoch.to_le_bytes());
        put(out, off::BASE_SEQ, &self.base_seq.to_le_bytes());
        put(out, off::DATA_LEN, &self.data_len.to_le_bytes());
        put(out, off::DATA_CRC, &self.data_crc.to_le_bytes());
        let crc = crc32c::crc32c(&out[..off::CRC]);
        put(out, off::CRC, &crc.to_le_bytes());
        crc
    }

    /// Decode a header block (not the data: see [`decode_snapshot`]). Returns
    /// the header and its stored CRC.
    pub fn decode(buf: &[u8]) -> Result<(SnapshotHeader, u32), DecodeError> {
        let stored = check_block_framing(
            WHAT,
            buf,
            SNAPSHOT_MAGIC,
            (off::MAGIC, off::CRC, off::VERSION),
        )?;
        // Reserved bytes must be zero: the header CRC is the start of the
        // delta chain, so a header must re-encode to exactly its bytes.
        let reserved = (off::HALF + 1..off::VOLUME_UUID).chain(off::RESERVED_START..off::CRC);
        if let Some(at) = reserved.into_iter().find(|&i| buf[i] != 0) {
            return Err(DecodeError::BadField {
                what: WHAT,
                field: "reserved",
                reason: format!("byte {at} is {:#04x}, expected 0", buf[at]),
            });
        }
        let half = buf[off::HALF];
        if half > 1 {
            return Err(DecodeError::BadField {
                what: WHAT,
                field: "half",
                reason: format!("{half} is not 0 or 1"),
            });
        }
        let h = SnapshotHeader {
            volume_uuid: get_uuid(buf, off::VOLUME_UUID),
            snapshot_id: get_u64(buf, off::SNAPSHOT_ID),
            half,
            epoch: get_u64(buf, off::EPOCH),
            base_seq: get_u64(buf, off::BASE_SEQ),
            data_len: get_u64(buf, off::DATA_LEN),
            data_crc: get_u32(buf, off::DATA_CRC),
        };
        Ok((h, stored))
    }
}

/// Encode a whole snapshot (header block + data + zero padding) into `out`,
/// which must be exactly [`snapshot_disk_bytes`] long. Returns the header
/// (with its data CRC filled in) and the header CRC.
pub fn encode_snapshot(
    volume_uuid: Uuid,
    snapshot_id: u64,
    half: u8,
    epoch: u64,
    base_seq: u64,
    data: &[u8],
    out: &mut [u8],
) -> (SnapshotHeader, u32) {
    let data_len = data.len() as u64;
    assert_eq!(
        out.len() as u64,
        snapshot_disk_bytes(data_len),
        "snapshot buffer size"
    );
    let h = SnapshotHeader {
        volume_uuid,
        snapshot_id,
        half,
        epoch,
        base_seq,
        data_len,
        data_crc: crc32c::crc32c(data),
    };
    let (head, rest) = out.split_at_mut(BLOCK);
    let crc = h.encode(head);
    rest[..data.len()].copy_from_slice(data);
    rest[data.len()..].fill(0);
    (h, crc)
}

/// Decode a whole snapshot from `buf` (header block first, then at least
/// `data_len` bytes). Checks the header, the length against `capacity` (the
/// layout's snapshot capacity) and the data CRC. Returns the header, its CRC
/// and the data.
pub fn decode_snapshot(
    buf: &[u8],
    capacity: u64,
) -> Result<(SnapshotHeader, u32, &[u8]), DecodeError> {
    if buf.len() < BLOCK {
        return Err(DecodeError::BadLength {
            what: WHAT,
            len: buf.len(),
            expected: BLOCK,
        });
    }
    let (h, crc) = SnapshotHeader::decode(&buf[..BLOCK])?;
    if h.data_len > capacity {
        return Err(DecodeError::BadField {
            what: WHAT,
            field: "data_len",
            reason: format!("{} exceeds the capacity {capacity}", h.data_len),
        });
    }
    let available = (buf.len() - BLOCK) as u64;
    if h.data_len > available {
        return Err(DecodeError::Truncated {
            what: "snapshot data",
            needed: h.data_len,
            available,
        });
    }
    // data_len <= available < usize::MAX here, so the cast is exact.
    let data = &buf[BLOCK..BLOCK + h.data_len as usize];
    let computed = crc32c::crc32c(data);
    if computed != h.data_crc {
        return Err(DecodeError::ChecksumMismatch {
            what: "snapshot data",
            stored: h.data_crc,
            computed,
        });
    }
    Ok((h, crc, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; snapshot_disk_bytes(data.len() as u64) as usize];
        encode_snapshot(Uuid::from_u128(5), 9, 1, 4, 100, data, &mut out);
        out
    }

    #[test]
    fn round_trip_and_errors() {
        let data = b"pool database".repeat(500);
        let out = encode(&data);
        assert_eq!(out.len(), 4096 + 8192);
        let (h, _, d) = decode_snapshot(&out, 1 << 20).unwrap();
        assert_eq!(d, &data[..]);
        assert_eq!((h.snapshot_id, h.half, h.epoch, h.base_seq), (9, 1, 4, 100));
        // Torn data: the tail block never landed.
        let mut torn = out.clone();
        torn[8192..].fill(0);
        assert!(matches!(
            decode_snapshot(&torn, 1 << 20),
            Err(DecodeError::ChecksumMismatch {
                what: "snapshot data",
                ..
            })
        ));
        assert!(matches!(
            decode_snapshot(&out[..5000], 1 << 20),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            decode_snapshot(&out, 100),
            Err(DecodeError::BadField {
                field: "data_len",
                ..
            })
        ));
        assert!(matches!(
            decode_snapshot(&[0u8; 4096], 100),
            Err(DecodeError::Blank { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_round_trip(data in proptest::collection::vec(any::<u8>(), 0..10000)) {
            let out = encode(&data);
            let (_, _, d) = decode_snapshot(&out, 1 << 20).unwrap();
            prop_assert_eq!(d, &data[..]);
        }

        #[test]
        fn prop_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..9000), cap in any::<u64>()) {
            let _ = decode_snapshot(&bytes, cap);
        }
    }
}
