//! Page-aligned buffers for `O_DIRECT`.

use std::ops::{Deref, DerefMut};

use memmap2::MmapMut;

use super::IoError;

/// Buffers are sized in pages; a page (4096) is a multiple of every
/// supported sector size, so any buffer is sector aligned in address and length.
pub const PAGE_SIZE: usize = 4096;

/// A zero-filled, page-aligned buffer: an anonymous private mapping, which
/// the kernel places on a page boundary by construction. Its length is a
/// non-zero multiple of [`PAGE_SIZE`].
pub struct AlignedBuf {
    map: MmapMut,
}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (`len` a non-zero multiple of 4096).
    pub fn new(len: usize) -> Result<AlignedBuf, IoError> {
        if len == 0 || !len.is_multiple_of(PAGE_SIZE) {
            return Err(IoError::BufferLength { len });
        }
        let map = MmapMut::map_anon(len).map_err(|source| IoError::Alloc { len, source })?;
        debug_assert_eq!(map.as_ptr() as usize % PAGE_SIZE, 0);
        Ok(AlignedBuf { map })
    }

    /// A buffer holding `bytes` followed by zeroes up to the next page.
    pub fn from_bytes(bytes: &[u8]) -> Result<AlignedBuf, IoError> {
        let len = bytes.len().div_ceil(PAGE_SIZE).max(1) * PAGE_SIZE;
        let mut buf = AlignedBuf::new(len)?;
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(buf)
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        let b = AlignedBuf::new(3 * PAGE_SIZE).unwrap();
        assert_eq!(b.as_ptr() as usize % PAGE_SIZE, 0);
        assert_eq!(b.len(), 3 * PAGE_SIZE);
        assert!(b.iter().all(|&x| x == 0));
    }

    #[test]
    fn bad_lengths_refused() {
        assert!(matches!(
            AlignedBuf::new(0),
            Err(IoError::BufferLength { len: 0 })
        ));
        assert!(matches!(
            AlignedBuf::new(512),
            Err(IoError::BufferLength { len: 512 })
        ));
    }

    #[test]
    fn from_bytes_pads() {
        let b = AlignedBuf::from_bytes(b"abc").unwrap();
        assert_eq!(b.len(), PAGE_SIZE);
        assert_eq!(&b[..3], b"abc");
        assert_eq!(b[3], 0);
    }
}
