//! The stamp record: one 4096-byte block, a line of ASCII text then zeros.
//!
//! ```text
//! XHASTAMP 1 <vm uuid> <host> <boot uuid> <seq> <time_ms> <crc32>\n
//! ```
//! `crc32` is the CRC-32 (IEEE 802.3, as zlib and busybox `crc32` compute it)
//! of the text before the space that precedes it, as 8 lower-case hex digits.
//! Text, not binary, because the test guest writes it from busybox `sh`.
//! Specified in docs/vm-drivers.md ("Stamp records").

use thiserror::Error;
use uuid::Uuid;

/// Bytes of one record block (the unit of every stamp read and write).
pub const BLOCK_BYTES: usize = 4096;
/// Longest record line, newline included; the rest of the block is zeros.
pub const LINE_BYTES_MAX: usize = 256;
/// Longest host name in a record.
pub const HOST_BYTES_MAX: usize = 64;
const MAGIC: &str = "XHASTAMP";
const VERSION: &str = "1";

const _: () = assert!(LINE_BYTES_MAX < BLOCK_BYTES);

/// One stamp: which VM, which boot of it, on which host, its sequence
/// number within the boot and the wall-clock time it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StampRecord {
    pub vm: Uuid,
    pub host: String,
    pub boot: Uuid,
    pub seq: u64,
    pub time_ms: u64,
}

/// Why a block is not a valid record.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("stamp block: {0} bytes, want {BLOCK_BYTES}")]
    Size(usize),
    #[error("stamp block: no XHASTAMP magic")]
    Magic,
    #[error("stamp block: version {0:?} unknown (want 1)")]
    Version(String),
    #[error("stamp block: no newline in the first {LINE_BYTES_MAX} bytes")]
    NoLineEnd,
    #[error("stamp block: non-zero byte after the record line at offset {0}")]
    TrailingBytes(usize),
    #[error("stamp block: field {0} missing")]
    Missing(&'static str),
    #[error("stamp block: {0} more fields than the format has")]
    Extra(usize),
    #[error("stamp block: field {field} is invalid: {value:?}")]
    Field { field: &'static str, value: String },
    #[error("stamp block: crc32 {stored:08x} does not match the text ({computed:08x})")]
    Checksum { stored: u32, computed: u32 },
}

/// Why a record cannot be encoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error(
        "stamp host name {0:?}: want 1 to {HOST_BYTES_MAX} printable ASCII characters without spaces"
    )]
    Host(String),
}

/// True when `host` can go into a record (printable ASCII, no spaces, 1..=64 bytes).
pub fn host_is_valid(host: &str) -> bool {
    !host.is_empty() && host.len() <= HOST_BYTES_MAX && host.bytes().all(|b| b.is_ascii_graphic())
}

impl StampRecord {
    /// The record as a full block.
    pub fn encode(&self) -> Result<[u8; BLOCK_BYTES], EncodeError> {
        if !host_is_valid(&self.host) {
            return Err(EncodeError::Host(self.host.clone()));
        }
        let text = format!(
            "{MAGIC} {VERSION} {} {} {} {} {}",
            self.vm.hyphenated(),
            self.host,
            self.boot.hyphenated(),
            self.seq,
            self.time_ms
        );
        let line = format!("{text} {:08x}\n", crc32(text.as_bytes()));
        assert!(
            line.len() <= LINE_BYTES_MAX,
            "stamp line too long: {}",
            line.len()
        );
        let mut block = [0u8; BLOCK_BYTES];
        block[..line.len()].copy_from_slice(line.as_bytes());
        debug_assert_eq!(decode(&block).as_ref(), Ok(&Some(self.clone())));
        Ok(block)
    }
}

/// Decodes one block: `Ok(None)` for an all-zero block (never written),
/// `Ok(Some)` for a valid record, `Err` for anything else.
pub fn decode(block: &[u8]) -> Result<Option<StampRecord>, DecodeError> {
    if block.len() != BLOCK_BYTES {
        return Err(DecodeError::Size(block.len()));
    }
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    if !block.starts_with(MAGIC.as_bytes()) {
        return Err(DecodeError::Magic);
    }
    let end = block[..LINE_BYTES_MAX]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DecodeError::NoLineEnd)?;
    if let Some(off) = block[end + 1..].iter().position(|&b| b != 0) {
        return Err(DecodeError::TrailingBytes(end + 1 + off));
    }
    let line = std::str::from_utf8(&block[..end]).map_err(|_| DecodeError::Field {
        field: "line",
        value: String::from_utf8_lossy(&block[..end]).into_owned(),
    })?;
    let (text, crc_text) = line.rsplit_once(' ').ok_or(DecodeError::Missing("crc32"))?;
    let mut fields = text.split(' ');
    let mut next = |name: &'static str| fields.next().ok_or(DecodeError::Missing(name));
    let _magic = next("magic")?;
    let version = next("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version.to_owned()));
    }
    let vm = parse_uuid("vm", next("vm")?)?;
    let host = next("host")?;
    if !host_is_valid(host) {
        return Err(invalid("host", host));
    }
    let boot = parse_uuid("boot", next("boot")?)?;
    let seq = parse_u64("seq", next("seq")?)?;
    let time_ms = parse_u64("time_ms", next("time_ms")?)?;
    let extra = fields.count();
    if extra > 0 {
        return Err(DecodeError::Extra(extra));
    }
    if crc_text.len() != 8
        || !crc_text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(invalid("crc32", crc_text));
    }
    let stored = u32::from_str_radix(crc_text, 16).map_err(|_| invalid("crc32", crc_text))?;
    let computed = crc32(text.as_bytes());
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok(Some(StampRecord {
        vm,
        host: host.to_owned(),
        boot,
        seq,
        time_ms,
    }))
}

fn invalid(field: &'static str, value: &str) -> DecodeError {
    DecodeError::Field {
        field,
        value: value.to_owned(),
    }
}

fn parse_uuid(field: &'static str, s: &str) -> Result<Uuid, DecodeError> {
    // Only the hyphenated lower-case form is written; accept nothing else so
    // one record has one text.
    let u = Uuid::try_parse(s).map_err(|_| invalid(field, s))?;
    if u.hyphenated().to_string() != s {
        return Err(invalid(field, s));
    }
    Ok(u)
}

fn parse_u64(field: &'static str, s: &str) -> Result<u64, DecodeError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(invalid(field, s));
    }
    s.parse().map_err(|_| invalid(field, s))
}

/// CRC-32/ISO-HDLC (reflected polynomial 0xEDB88320), as zlib and busybox
/// `crc32` compute it. Bitwise: records are ~130 bytes, written 5 times a second.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StampRecord {
        StampRecord {
            vm: Uuid::from_u128(0x1111_2222_3333_4444_5555_6666_7777_8888),
            host: "host-1".into(),
            boot: Uuid::from_u128(0xaaaa_bbbb_cccc_dddd_eeee_ffff_0000_1111),
            seq: 42,
            time_ms: 1_796_324_167_627,
        }
    }

    #[test]
    fn crc32_matches_zlib() {
        // busybox: printf hello | crc32 -> 3610a686
        assert_eq!(crc32(b"hello"), 0x3610_a686);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn round_trip() {
        let block = sample().encode().unwrap();
        assert_eq!(decode(&block), Ok(Some(sample())));
    }

    #[test]
    fn zero_block_is_empty() {
        assert_eq!(decode(&[0u8; BLOCK_BYTES]), Ok(None));
    }

    #[test]
    fn guest_written_line_decodes() {
        // A line exactly as the test guest's init wrote it (crc32 by busybox).
        let text = "XHASTAMP 1 11111111-2222-3333-4444-555555555555 h1 95ccfe85-f72a-4dc0-9f04-d60f9cc68275 0 1796324163797";
        let mut block = [0u8; BLOCK_BYTES];
        let line = format!("{text} {:08x}\n", crc32(text.as_bytes()));
        block[..line.len()].copy_from_slice(line.as_bytes());
        let r = decode(&block).unwrap().unwrap();
        assert_eq!(
            (r.host.as_str(), r.seq, r.time_ms),
            ("h1", 0, 1_796_324_163_797)
        );
    }

    #[test]
    fn damage_is_reported_by_field() {
        let good = sample().encode().unwrap();
        let mut b = good;
        b[40] ^= 1;
        assert!(decode(&b).is_err());
        let mut b = good;
        b[3000] = 7;
        assert_eq!(decode(&b), Err(DecodeError::TrailingBytes(3000)));
        let mut b = good;
        b[0] = b'Y';
        assert_eq!(decode(&b), Err(DecodeError::Magic));
        assert_eq!(decode(&good[..512]), Err(DecodeError::Size(512)));
        let bad_host = StampRecord {
            host: "a b".into(),
            ..sample()
        };
        assert!(matches!(bad_host.encode(), Err(EncodeError::Host(_))));
    }
}
