//! Why a metadata structure (superblock, snapshot, delta record) did not
//! decode. One enum for the three decoders: `what` names the structure.

use super::layout::BLOCK;

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
