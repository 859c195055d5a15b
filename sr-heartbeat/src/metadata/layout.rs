//! Where things live on the metadata volume. Every offset and length is a
//! multiple of [`BLOCK`] (4096), which is a whole number of sectors on both
//! 512-byte and 4096-byte devices, so every I/O is sector-aligned by
//! construction.
//!
//! ```text
//! 0          superblock slot 0 (one block)
//! 4096       superblock slot 1 (one block)
//! 8192       unused, zero (reserved up to 1 MiB)
//! 1 MiB      half 0: snapshot header block | snapshot data ... | delta area ...
//! 1 MiB + H  half 1: same shape
//! ```

use serde::{Deserialize, Serialize};

/// Unit of every offset and length on the volume, and of every I/O.
pub const BLOCK: usize = 4096;
/// [`BLOCK`] as a u64, for offset arithmetic.
pub const BLOCK_U64: u64 = BLOCK as u64;
/// The size XenServer gives the metadata volume, and what [`Layout::standard`] fills.
pub const STANDARD_VOLUME_BYTES: u64 = 256 << 20;
/// Byte offsets of the two superblock slots. Generation `g` goes to slot `g % 2`.
pub const SUPERBLOCK_OFFSETS: [u64; 2] = [0, BLOCK_U64];
/// Where half 0 starts. The gap after the superblocks keeps the halves
/// MiB-aligned, which suits devices with large physical blocks.
pub const HALVES_OFFSET: u64 = 1 << 20;
/// Smallest snapshot region: a header block plus one data block.
pub const MIN_SNAPSHOT_REGION_BYTES: u64 = 2 * BLOCK_U64;
/// Smallest delta area: two one-block records.
pub const MIN_DELTA_AREA_BYTES: u64 = 2 * BLOCK_U64;

/// Why a layout cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A size or offset is not a whole number of blocks.
    #[error("{field} = {value} is not a multiple of {BLOCK}")]
    Unaligned { field: &'static str, value: u64 },
    /// The two halves do not fit in the volume.
    #[error(
        "two halves of {half_bytes} bytes after offset {HALVES_OFFSET} need {needed} bytes, the volume has {volume_bytes}"
    )]
    HalvesDoNotFit {
        half_bytes: u64,
        needed: u64,
        volume_bytes: u64,
    },
    /// The snapshot region is smaller than a header block plus one data block.
    #[error("snapshot region of {value} bytes, at least {MIN_SNAPSHOT_REGION_BYTES} needed")]
    SnapshotRegionTooSmall { value: u64 },
    /// What is left of the half for deltas is smaller than two blocks.
    #[error(
        "delta area of {value} bytes (half {half_bytes} minus snapshot region {snapshot_region_bytes}), at least {MIN_DELTA_AREA_BYTES} needed"
    )]
    DeltaAreaTooSmall {
        value: u64,
        half_bytes: u64,
        snapshot_region_bytes: u64,
    },
}

/// The geometry of one formatted volume; stored in every superblock so that a
/// reader never guesses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Layout {
    /// Bytes of the device this format uses (the device may be larger).
    pub volume_bytes: u64,
    /// Bytes of each of the two halves.
    pub half_bytes: u64,
    /// Bytes at the start of each half for the snapshot (header block + data).
    pub snapshot_region_bytes: u64,
}

fn round_down(v: u64) -> u64 {
    v - v % BLOCK_U64
}

impl Layout {
    /// The layout of a 256 MiB volume: halves of 127.5 MiB, each split in
    /// about equal snapshot and delta parts.
    #[must_use]
    pub const fn standard() -> Layout {
        let half = (STANDARD_VOLUME_BYTES - HALVES_OFFSET) / 2;
        let half = half - half % BLOCK_U64;
        let snap = (half / 2) - (half / 2) % BLOCK_U64;
        Layout {
            volume_bytes: STANDARD_VOLUME_BYTES,
            half_bytes: half,
            snapshot_region_bytes: snap,
        }
    }

    /// The largest halves that fit in `volume_bytes`, each split in about equal
    /// snapshot and delta parts. For tests and small volumes.
    pub fn for_volume(volume_bytes: u64) -> Result<Layout, LayoutError> {
        let half = round_down(volume_bytes.saturating_sub(HALVES_OFFSET) / 2);
        Layout::new(volume_bytes, half, round_down(half / 2))
    }

    /// An explicit layout, validated.
    pub fn new(
        volume_bytes: u64,
        half_bytes: u64,
        snapshot_region_bytes: u64,
    ) -> Result<Layout, LayoutError> {
        let l = Layout {
            volume_bytes,
            half_bytes,
            snapshot_region_bytes,
        };
        l.validate()?;
        Ok(l)
    }

    /// Checks every relation a reader relies on. Decoders call it on the
    /// layout stored in a superblock, so a corrupt layout is an error, never
    /// an out-of-range offset.
    pub fn validate(&self) -> Result<(), LayoutError> {
        for (field, value) in [
            ("volume_bytes", self.volume_bytes),
            ("half_bytes", self.half_bytes),
            ("snapshot_region_bytes", self.snapshot_region_bytes),
        ] {
            if !value.is_multiple_of(BLOCK_U64) {
                return Err(LayoutError::Unaligned { field, value });
            }
        }
        if self.snapshot_region_bytes < MIN_SNAPSHOT_REGION_BYTES {
            return Err(LayoutError::SnapshotRegionTooSmall {
                value: self.snapshot_region_bytes,
            });
        }
        let delta = self.half_bytes.saturating_sub(self.snapshot_region_bytes);
        if delta < MIN_DELTA_AREA_BYTES {
            return Err(LayoutError::DeltaAreaTooSmall {
                value: delta,
                half_bytes: self.half_bytes,
                snapshot_region_bytes: self.snapshot_region_bytes,
            });
        }
        let needed = self
            .half_bytes
            .checked_mul(2)
            .and_then(|b| b.checked_add(HALVES_OFFSET));
        match needed {
            Some(needed) if needed <= self.volume_bytes => Ok(()),
            _ => Err(LayoutError::HalvesDoNotFit {
                half_bytes: self.half_bytes,
                needed: needed.unwrap_or(u64::MAX),
                volume_bytes: self.volume_bytes,
            }),
        }
    }

    /// Byte offset of half `half` (0 or 1).
    #[must_use]
    pub fn half_offset(&self, half: u8) -> u64 {
        assert!(half < 2, "half index {half}");
        HALVES_OFFSET + u64::from(half) * self.half_bytes
    }

    /// Byte offset of the snapshot header block of `half`.
    #[must_use]
    pub fn snapshot_offset(&self, half: u8) -> u64 {
        self.half_offset(half)
    }

    /// Largest snapshot (data bytes, without its header block).
    #[must_use]
    pub fn snapshot_capacity(&self) -> u64 {
        self.snapshot_region_bytes - BLOCK_U64
    }

    /// Byte offset of the delta area of `half`.
    #[must_use]
    pub fn delta_offset(&self, half: u8) -> u64 {
        self.half_offset(half) + self.snapshot_region_bytes
    }

    /// Bytes of each delta area.
    #[must_use]
    pub fn delta_capacity(&self) -> u64 {
        self.half_bytes - self.snapshot_region_bytes
    }
}

const _: () = assert!(SUPERBLOCK_OFFSETS[1] + BLOCK_U64 <= HALVES_OFFSET);
const _: () = assert!(HALVES_OFFSET.is_multiple_of(BLOCK_U64));
const _: () = {
    let s = Layout::standard();
    assert!(s.half_bytes * 2 + HALVES_OFFSET <= s.volume_bytes);
    assert!(s.snapshot_region_bytes >= MIN_SNAPSHOT_REGION_BYTES);
    assert!(s.half_bytes - s.snapshot_region_bytes >= MIN_DELTA_AREA_BYTES);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_layout_is_valid_and_fills_256_mib() {
        let s = Layout::standard();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.delta_offset(1) + s.delta_capacity(), s.volume_bytes);
        assert_eq!(Layout::for_volume(STANDARD_VOLUME_BYTES), Ok(s));
    }

    #[test]
    fn small_and_bad_layouts_are_refused() {
        assert!(matches!(
            Layout::for_volume(HALVES_OFFSET),
            Err(LayoutError::SnapshotRegionTooSmall { .. })
        ));
        assert!(matches!(
            Layout::new(4 << 20, 1 << 20, (1 << 20) - 4096),
            Err(LayoutError::DeltaAreaTooSmall { .. })
        ));
        assert!(matches!(
            Layout::new(2 << 20, 1 << 20, 8192),
            Err(LayoutError::HalvesDoNotFit { .. })
        ));
        assert!(matches!(
            Layout::new(4 << 20, (1 << 20) + 1, 8192),
            Err(LayoutError::Unaligned {
                field: "half_bytes",
                ..
            })
        ));
        assert!(matches!(
            Layout::new(u64::MAX - 4095, u64::MAX / 2 - 4095, 8192),
            Err(LayoutError::HalvesDoNotFit { .. })
        ));
    }
}
