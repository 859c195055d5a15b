//! Little-endian field access for every on-disk encoder and decoder (statefile
//! and metadata volume) and for `xha`'s heartbeat packets, which use the same
//! helpers rather than a copy. Callers check buffer lengths first; these
//! helpers index within a checked block and panic if the field runs past the
//! end of `b` (a caller's bug).

use uuid::Uuid;

/// The `u16` at byte `at`.
pub fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The `u32` at byte `at`.
pub fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The `u64` at byte `at`.
pub fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The UUID stored as its 16 bytes at byte `at`.
pub fn get_uuid(b: &[u8], at: usize) -> Uuid {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    Uuid::from_bytes(a)
}

/// Copy `v` into `b` from byte `at`.
pub fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}
