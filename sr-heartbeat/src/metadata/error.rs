//! Why a metadata structure (superblock, snapshot, delta record) did not
//! decode. One enum for the three decoders: `what` names the structure.

use super::layout::BLOCK;
use super::superblock::METADATA_VERSION;
use crate::le::{get_u16, get_u32, get_u64};

/// A decoding failure. The decoders never panic; every failure is one of these.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer has the wrong size for this structure (superblock and
    /// snapshot header blocks are exactly one block; a record needs at least one).
    #[error("{what}: buffer is {len} bytes, expected {expected}")]
    BadLength {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    /// The block is all zero: never written.
    #[error("{what}: never written (all zero)")]
    Blank { what: &'static str },
    /// The magic number is not ours: foreign data or never written by this format.
    #[error("{what}: bad magic {found:#018x}, expected {expected:#018x}")]
    BadMagic {
        what: &'static str,
        found: u64,
        expected: u64,
    },
    /// The stored CRC32C does not match the bytes: a torn or corrupted write.
    #[error("{what}: checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        what: &'static str,
        stored: u32,
        computed: u32,
    },
    /// Written by another version of this format.
    #[error("{what}: format version {found}, this build reads version {expected}")]
    WrongVersion {
        what: &'static str,
        found: u16,
        expected: u16,
    },
    /// The structure claims more bytes than the buffer (or the area) holds:
    /// a torn record or a corrupt length field.
    #[error("{what}: needs {needed} bytes, only {available} available")]
    Truncated {
        what: &'static str,
        needed: u64,
        available: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("{what}: field {field}: {reason}")]
    BadField {
        what: &'static str,
        field: &'static str,
        reason: String,
    },
}

/// True when every byte is zero (a block never written since the device was
/// zeroed or created sparse).
pub(crate) fn is_blank(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0)
}

/// Checks that `buf` is exactly one block.
pub(crate) fn expect_block(what: &'static str, buf: &[u8]) -> Result<(), DecodeError> {
    if buf.len() != BLOCK {
        return Err(DecodeError::BadLength {
            what,
            len: buf.len(),
            expected: BLOCK,
        });
    }
    Ok(())
}

/// Checks a stored checksum against the computed one.
pub(crate) fn check_crc(what: &'static str, stored: u32, computed: u32) -> Result<(), DecodeError> {
    if stored != computed {
        return Err(DecodeError::ChecksumMismatch {
            what,
            stored,
            computed,
        });
    }
    Ok(())
}

/// Checks a block's format version.
pub(crate) fn check_version(what: &'static str, found: u16) -> Result<(), DecodeError> {
    if found != METADATA_VERSION {
        return Err(DecodeError::WrongVersion {
            what,
            found,
            expected: METADATA_VERSION,
        });
    }
    Ok(())
}

/// The framing every fixed block (superblock, snapshot header) starts with,
/// checked in this order: one block long, not blank, magic, CRC32C of the
/// bytes before `crc_at`, version. Returns the stored checksum.
pub(crate) fn check_block_framing(
    what: &'static str,
    buf: &[u8],
    expected_magic: u64,
    (magic_at, crc_at, version_at): (usize, usize, usize),
) -> Result<u32, DecodeError> {
    expect_block(what, buf)?;
    if is_blank(buf) {
        return Err(DecodeError::Blank { what });
    }
    let found = get_u64(buf, magic_at);
    if found != expected_magic {
        return Err(DecodeError::BadMagic {
            what,
            found,
            expected: expected_magic,
        });
    }
    let stored = get_u32(buf, crc_at);
    check_crc(what, stored, crc32c::crc32c(&buf[..crc_at]))?;
    check_version(what, get_u16(buf, version_at))?;
    Ok(stored)
}
