//! The statefile header: block 0, written once by `format`, read by everyone
//! who opens the statefile. It says which pool enablement (generation) the
//! statefile belongs to and where the pool block and the slots are.
//!
//! All integers little-endian; bytes not listed in `off` are zero and covered
//! by the CRC32C in the last 4 bytes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::hostset::MAX_HOSTS_LIMIT;
use super::pool::POOL_BLOCK_SIZE;
use super::slot::{SLOT_SIZE, block_crc};
use crate::le::{get_u16, get_u32, get_u64, put};

pub const HEADER_SIZE: usize = 4096;
/// `"XHASTATE"` as a little-endian u64.
pub const HEADER_MAGIC: u64 = u64::from_le_bytes(*b"XHASTATE");
/// Bumped on any incompatible change of the statefile layout.
pub const HEADER_VERSION: u16 = 1;
/// The size of a statefile, and the least a device must offer.
pub const STATEFILE_SIZE: u64 = 4 << 20;
/// Where the pool block lives (version 1).
pub const POOL_OFFSET: u64 = HEADER_SIZE as u64;
/// Where slot 0 lives (version 1); slot `i` is at `SLOT0_OFFSET + i * SLOT_SIZE`.
pub const SLOT0_OFFSET: u64 = POOL_OFFSET + POOL_BLOCK_SIZE as u64;

const _: () = assert!(SLOT0_OFFSET + (MAX_HOSTS_LIMIT * SLOT_SIZE) as u64 <= STATEFILE_SIZE);
const _: () = assert!(POOL_BLOCK_SIZE == SLOT_SIZE && HEADER_SIZE == SLOT_SIZE);

/// Byte offsets of the header fields (see `docs/on-disk-format.md`).
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const SECTOR_SIZE: usize = 12; // u32
    pub const GENERATION: usize = 16; // [u8; 16]
    pub const SLOT_SIZE: usize = 32; // u32
    pub const MAX_HOSTS: usize = 36; // u32
    pub const POOL_OFFSET: usize = 40; // u64
    pub const SLOT0_OFFSET: usize = 48; // u64
    pub const TOTAL_SIZE: usize = 56; // u64
    pub const FORMAT_TIME_MS: usize = 64; // u64, unix ms, diagnosis only
    pub const RESERVED_START: usize = 72;
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
}

/// The decoded header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The pool generation UUID of this HA enablement; every slot and the
    /// pool block carry it too.
    pub generation: Uuid,
    /// Logical sector size of the device the statefile was formatted on.
    pub sector_size: u32,
    /// Number of slots (at most 64).
    pub max_hosts: u16,
    /// When it was formatted (unix ms): for humans only.
    pub format_time_ms: u64,
}

/// Why a header did not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum HeaderError {
    /// The buffer is not one header block.
    #[error("header buffer is {len} bytes, expected {HEADER_SIZE}")]
    BadLength { len: usize },
    /// Block 0 is all zero: nothing was ever formatted here.
    #[error("not formatted (header block is all zero)")]
    NotFormatted,
    /// Something else lives here.
    #[error(
        "not an HA statefile (bad magic {found:#018x}, expected {HEADER_MAGIC:#018x} \"XHASTATE\")"
    )]
    BadMagic { found: u64 },
    /// The header block is damaged.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch { stored: u32, computed: u32 },
    /// Written by a different format version.
    #[error("statefile format version {found}, this build reads version {HEADER_VERSION}")]
    WrongVersion { found: u16 },
    /// A field holds a value version 1 does not allow.
    #[error("header field {field} is {found}, expected {expected}")]
    BadField {
        field: &'static str,
        found: u64,
        expected: String,
    },
}

fn expect(field: &'static str, found: u64, want: u64) -> Result<(), HeaderError> {
    if found == want {
        Ok(())
    } else {
        Err(HeaderError::BadField {
            field,
            found,
            expected: want.to_string(),
        })
    }
}

impl Header {
    /// Offset of slot `index` (`index < max_hosts`).
    pub fn slot_offset(&self, index: u16) -> u64 {
        SLOT0_OFFSET + u64::from(index) * SLOT_SIZE as u64
    }

    /// Offset and length of the one read that covers the pool block and all
    /// `max_hosts` slots.
    pub fn read_all_range(&self) -> (u64, usize) {
        (
            POOL_OFFSET,
            POOL_BLOCK_SIZE + usize::from(self.max_hosts) * SLOT_SIZE,
        )
    }

    /// Encode into exactly `HEADER_SIZE` bytes. Panics on values `format`
    /// refuses earlier (a bug if reached).
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), HEADER_SIZE, "header buffer size");
        assert!(
            self.max_hosts >= 1 && usize::from(self.max_hosts) <= MAX_HOSTS_LIMIT,
            "max_hosts out of range"
        );
        out.fill(0);
        put(out, off::MAGIC, &HEADER_MAGIC.to_le_bytes());
        put(out, off::VERSION, &HEADER_VERSION.to_le_bytes());
        put(out, off::SECTOR_SIZE, &self.sector_size.to_le_bytes());
        put(out, off::GENERATION, self.generation.as_bytes());
        put(out, off::SLOT_SIZE, &(SLOT_SIZE as u32).to_le_bytes());
        put(
            out,
            off::MAX_HOSTS,
            &u32::from(self.max_hosts).to_le_bytes(),
        );
        put(out, off::POOL_OFFSET, &POOL_OFFSET.to_le_bytes());
        put(out, off::SLOT0_OFFSET, &SLOT0_OFFSET.to_le_bytes());
        put(out, off::TOTAL_SIZE, &STATEFILE_SIZE.to_le_bytes());
        put(out, off::FORMAT_TIME_MS, &self.format_time_ms.to_le_bytes());
        let crc = block_crc(out);
        put(out, off::CRC, &crc.to_le_bytes());
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_SIZE];
        self.encode(&mut v);
        v
    }

    /// Decode and validate, checking in this order: length, all zero, magic,
    /// checksum, version, then every layout field.
    pub fn decode(buf: &[u8]) -> Result<Header, HeaderError> {
        if buf.len() != HEADER_SIZE {
            return Err(HeaderError::BadLength { len: buf.len() });
        }
        if buf.iter().all(|&b| b == 0) {
            return Err(HeaderError::NotFormatted);
        }
        let magic = get_u64(buf, off::MAGIC);
        if magic != HEADER_MAGIC {
            return Err(HeaderError::BadMagic { found: magic });
        }
        let stored = get_u32(buf, off::CRC);
        let computed = block_crc(buf);
        if stored != computed {
            return Err(HeaderError::ChecksumMismatch { stored, computed });
        }
        let version = get_u16(buf, off::VERSION);
        if version != HEADER_VERSION {
            return Err(HeaderError::WrongVersion { found: version });
        }
        let sector_size = get_u32(buf, off::SECTOR_SIZE);
        if !sector_size.is_power_of_two() || !(512..=4096).contains(&sector_size) {
            return Err(HeaderError::BadField {
                field: "sector_size",
                found: sector_size.into(),
                expected: "a power of two from 512 to 4096".into(),
            });
        }
        expect(
            "slot_size",
            get_u32(buf, off::SLOT_SIZE).into(),
            SLOT_SIZE as u64,
        )?;
        let max_hosts = get_u32(buf, off::MAX_HOSTS);
        if max_hosts == 0 || max_hosts as usize > MAX_HOSTS_LIMIT {
            return Err(HeaderError::BadField {
                field: "max_hosts",
                found: max_hosts.into(),
                expected: format!("1 to {MAX_HOSTS_LIMIT}"),
            });
        }
        expect("pool_offset", get_u64(buf, off::POOL_OFFSET), POOL_OFFSET)?;
        expect(
            "slot0_offset",
            get_u64(buf, off::SLOT0_OFFSET),
            SLOT0_OFFSET,
        )?;
        expect("total_size", get_u64(buf, off::TOTAL_SIZE), STATEFILE_SIZE)?;
        let mut generation = [0u8; 16];
        generation.copy_from_slice(&buf[off::GENERATION..off::GENERATION + 16]);
        Ok(Header {
            generation: Uuid::from_bytes(generation),
            sector_size,
            // max_hosts <= 64 was checked above.
            max_hosts: max_hosts as u16,
            format_time_ms: get_u64(buf, off::FORMAT_TIME_MS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            generation: Uuid::from_u128(0xfeed),
            sector_size: 512,
            max_hosts: 16,
            format_time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(Header::decode(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn layout() {
        let h = sample();
        assert_eq!(h.slot_offset(0), 8192);
        assert_eq!(h.slot_offset(3), 8192 + 3 * 4096);
        assert_eq!(h.read_all_range(), (4096, 4096 + 16 * 4096));
    }

    #[test]
    fn errors_are_precise() {
        let b = sample().to_bytes();
        assert_eq!(
            Header::decode(&[0u8; HEADER_SIZE]),
            Err(HeaderError::NotFormatted)
        );
        assert_eq!(
            Header::decode(&b[..100]),
            Err(HeaderError::BadLength { len: 100 })
        );
        let mut m = b.clone();
        m[0] = b'Z';
        assert!(matches!(
            Header::decode(&m),
            Err(HeaderError::BadMagic { .. })
        ));
        let mut c = b.clone();
        c[off::GENERATION] ^= 1;
        assert!(matches!(
            Header::decode(&c),
            Err(HeaderError::ChecksumMismatch { .. })
        ));
    }

    /// Re-stamp the CRC after editing a field, so validation of the field
    /// itself is what fails.
    fn with_field(edit: impl Fn(&mut [u8])) -> Result<Header, HeaderError> {
        let mut b = sample().to_bytes();
        edit(&mut b);
        let crc = block_crc(&b);
        b[off::CRC..off::CRC + 4].copy_from_slice(&crc.to_le_bytes());
        Header::decode(&b)
    }

    #[test]
    fn field_validation() {
        assert_eq!(
            with_field(|b| b[off::VERSION] = 2),
            Err(HeaderError::WrongVersion { found: 2 })
        );
        let bad = |field: &str, r: Result<Header, HeaderError>| {
            assert!(
                matches!(r, Err(HeaderError::BadField { field: f, .. }) if f == field),
                "{field}: {r:?}"
            );
        };
        bad("sector_size", with_field(|b| b[off::SECTOR_SIZE] = 3));
        bad("slot_size", with_field(|b| b[off::SLOT_SIZE] = 1));
        bad("max_hosts", with_field(|b| b[off::MAX_HOSTS] = 65));
        bad("max_hosts", with_field(|b| b[off::MAX_HOSTS] = 0));
        bad("pool_offset", with_field(|b| b[off::POOL_OFFSET] = 1));
        bad("slot0_offset", with_field(|b| b[off::SLOT0_OFFSET] = 1));
        bad("total_size", with_field(|b| b[off::TOTAL_SIZE] = 1));
    }
}
