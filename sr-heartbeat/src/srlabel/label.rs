//! The label block and its volume table. One 4096-byte block, written to
//! slot `generation % 2` (byte 0 or byte 4096 of the device), so a torn
//! write always leaves the other slot's label intact; the newest valid
//! slot wins ([`SrLabel::newest`]).
//!
//! All integers little-endian; bytes not listed in `off` are zero and are
//! covered by the CRC32C in the last 4 bytes.

use uuid::Uuid;

use crate::le::{get_u16, get_u32, get_u64, get_uuid, put};

/// One label block.
pub const LABEL_BLOCK: usize = 4096;
/// The region the label owns at the start of the device (both slots, the
/// rest zero); volumes start at or after it.
pub const LABEL_REGION: u64 = 1 << 20;
/// `"XHASRLBL"` as a little-endian u64.
pub const LABEL_MAGIC: u64 = u64::from_le_bytes(*b"XHASRLBL");
/// Bumped on any incompatible change of the label.
pub const LABEL_VERSION: u16 = 1;
/// Volumes start and end on this boundary: a whole number of sectors of
/// every device we use (512 and 4096 bytes).
pub const VOLUME_ALIGN: u64 = 4096;
/// Bytes of one volume table entry.
pub const ENTRY_SIZE: usize = 48;
/// Most volumes in the table (what fits in the block).
pub const MAX_VOLUMES: usize = (off::CRC - off::ENTRIES) / ENTRY_SIZE;

/// Byte offsets of the fields (mirrored in `docs/on-disk-format.md`).
pub mod off {
    pub const MAGIC: usize = 0; // u64
    pub const VERSION: usize = 8; // u16
    pub const VOLUME_COUNT: usize = 10; // u16
    pub const BLOCK_SIZE: usize = 12; // u32, always 4096
    pub const SR_UUID: usize = 16; // [u8; 16]
    pub const GENERATION: usize = 32; // u64, >= 1, bumped on every write
    pub const DEVICE_BYTES: usize = 40; // u64, the device's size when labelled
    pub const DATA_OFFSET: usize = 48; // u64, always LABEL_REGION
    pub const ENTRIES: usize = 64; // VOLUME_COUNT entries of ENTRY_SIZE bytes
    pub const CRC: usize = 4092; // u32, CRC32C of bytes 0..4092
    /// Within an entry.
    pub mod entry {
        pub const UUID: usize = 0; // [u8; 16]
        pub const KIND: usize = 16; // u8 (VolumeKind)
        pub const OFFSET: usize = 24; // u64, bytes from the device start
        pub const SIZE: usize = 32; // u64, bytes
    }
}

const _: () = assert!(off::CRC + 4 == LABEL_BLOCK);
const _: () = assert!(MAX_VOLUMES >= 64);
const _: () = assert!(2 * LABEL_BLOCK as u64 <= LABEL_REGION);
const _: () = assert!(LABEL_REGION.is_multiple_of(VOLUME_ALIGN));

/// What a volume holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VolumeKind {
    /// The HA statefile (4 MiB).
    Statefile,
    /// The pool database's metadata volume (redo log).
    Metadata,
    /// A VM disk (a VDI).
    Disk,
}

impl VolumeKind {
    fn code(self) -> u8 {
        match self {
            VolumeKind::Statefile => 1,
            VolumeKind::Metadata => 2,
            VolumeKind::Disk => 3,
        }
    }
    fn from_code(c: u8) -> Option<VolumeKind> {
        match c {
            1 => Some(VolumeKind::Statefile),
            2 => Some(VolumeKind::Metadata),
            3 => Some(VolumeKind::Disk),
            _ => None,
        }
    }
}

/// One region of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volume {
    pub uuid: Uuid,
    pub kind: VolumeKind,
    /// Bytes from the start of the device; a multiple of [`VOLUME_ALIGN`].
    pub offset: u64,
    /// Bytes; a positive multiple of [`VOLUME_ALIGN`].
    pub size: u64,
}

/// A decoded label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrLabel {
    pub sr_uuid: Uuid,
    /// Bumped by one on every write; decides which slot is newer.
    pub generation: u64,
    /// The device's size when it was labelled; volumes end within it.
    pub device_bytes: u64,
    /// Sorted by offset, aligned, inside `[LABEL_REGION, device_bytes)`,
    /// not overlapping, uuids distinct.
    pub volumes: Vec<Volume>,
}

/// Why a label block did not decode, or a volume cannot be added.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("SR label: buffer is {0} bytes, expected {LABEL_BLOCK}")]
    BadLength(usize),
    #[error("SR label: never written (all zero)")]
    Blank,
    #[error("SR label: bad magic {0:#018x}, not an SR label")]
    BadMagic(u64),
    #[error("SR label: checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("SR label: format version {0}, this build reads version {LABEL_VERSION}")]
    Version(u16),
    #[error("SR label: field {field}: {reason}")]
    BadField { field: &'static str, reason: String },
    #[error("SR label: no room for a volume of {size} bytes")]
    NoSpace { size: u64 },
    #[error("SR label: the volume table is full ({MAX_VOLUMES} volumes)")]
    TableFull,
    #[error("SR label: no volume {0} in the table")]
    NoSuchVolume(Uuid),
    #[error("SR label: volume {uuid} at offset {offset} of size {size} overlaps {reason}")]
    Conflict {
        uuid: Uuid,
        offset: u64,
        size: u64,
        reason: String,
    },
}

fn bad(field: &'static str, reason: String) -> LabelError {
    LabelError::BadField { field, reason }
}

impl SrLabel {
    /// A new label with an empty table, for a device of `device_bytes`.
    #[must_use]
    pub fn new(sr_uuid: Uuid, device_bytes: u64) -> SrLabel {
        SrLabel {
            sr_uuid,
            generation: 1,
            device_bytes,
            volumes: Vec::new(),
        }
    }

    /// Checks the table's rules (see [`SrLabel::volumes`]).
    pub fn validate(&self) -> Result<(), LabelError> {
        if self.generation == 0 {
            return Err(bad("generation", "0 is never written".into()));
        }
        if self.device_bytes < LABEL_REGION || !self.device_bytes.is_multiple_of(VOLUME_ALIGN) {
            return Err(bad(
                "device_bytes",
                format!(
                    "{} is below {LABEL_REGION} or not a multiple of {VOLUME_ALIGN}",
                    self.device_bytes
                ),
            ));
        }
        if self.volumes.len() > MAX_VOLUMES {
            return Err(bad(
                "volume_count",
                format!("{} > {MAX_VOLUMES}", self.volumes.len()),
            ));
        }
        let mut end_of_previous = LABEL_REGION;
        for (i, v) in self.volumes.iter().enumerate() {
            let end = v.offset.checked_add(v.size);
            let aligned =
                v.offset.is_multiple_of(VOLUME_ALIGN) && v.size.is_multiple_of(VOLUME_ALIGN);
            if !aligned || v.size == 0 {
                return Err(bad(
                    "volume",
                    format!(
                        "{i}: offset {} size {} not aligned to {VOLUME_ALIGN} or empty",
                        v.offset, v.size
                    ),
                ));
            }
            if v.offset < end_of_previous {
                return Err(bad(
                    "volume",
                    format!(
                        "{i}: offset {} overlaps the label or the volume before, or is out of order",
                        v.offset
                    ),
                ));
            }
            match end {
                Some(e) if e <= self.device_bytes => end_of_previous = e,
                _ => {
                    return Err(bad(
                        "volume",
                        format!("{i}: ends past the device ({} bytes)", self.device_bytes),
                    ));
                }
            }
            if v.uuid.is_nil() || self.volumes[..i].iter().any(|w| w.uuid == v.uuid) {
                return Err(bad(
                    "volume",
                    format!("{i}: uuid {} nil or used twice", v.uuid),
                ));
            }
        }
        Ok(())
    }

    /// The offset at which [`SrLabel::allocate`] would put a volume of
    /// `size` bytes (rounded up to [`VOLUME_ALIGN`]): the lowest gap it
    /// fits in (first fit), and the rounded size.
    pub fn first_fit(&self, size: u64) -> Result<(u64, u64), LabelError> {
        if self.volumes.len() >= MAX_VOLUMES {
            return Err(LabelError::TableFull);
        }
        let size = size
            .max(1)
            .checked_next_multiple_of(VOLUME_ALIGN)
            .ok_or(LabelError::NoSpace { size })?;
        let mut at = LABEL_REGION;
        for v in &self.volumes {
            if v.offset.saturating_sub(at) >= size {
                return Ok((at, size));
            }
            at = v.offset + v.size;
        }
        if at.checked_add(size).is_none_or(|e| e > self.device_bytes) {
            return Err(LabelError::NoSpace { size });
        }
        Ok((at, size))
    }

    /// Adds a volume of `size` bytes (rounded up to [`VOLUME_ALIGN`]) at
    /// the lowest free offset; returns it. The label's generation is not
    /// bumped here: [`SrLabel::next`] does, for the write.
    pub fn allocate(
        &mut self,
        uuid: Uuid,
        kind: VolumeKind,
        size: u64,
    ) -> Result<Volume, LabelError> {
        let (offset, size) = self.first_fit(size)?;
        let volume = Volume {
            uuid,
            kind,
            offset,
            size,
        };
        self.place(volume)?;
        Ok(volume)
    }

    /// Adds `volume` exactly where it says (an allocation decided
    /// elsewhere, from a copy of this table): refused with
    /// [`LabelError::Conflict`] when it overlaps the label or another
    /// volume, reuses a uuid, is misaligned or leaves the device. The table
    /// is unchanged on error.
    pub fn place(&mut self, volume: Volume) -> Result<(), LabelError> {
        if self.volumes.len() >= MAX_VOLUMES {
            return Err(LabelError::TableFull);
        }
        let conflict = |reason: String| LabelError::Conflict {
            uuid: volume.uuid,
            offset: volume.offset,
            size: volume.size,
            reason,
        };
        if let Some(v) = self.volumes.iter().find(|v| v.uuid == volume.uuid) {
            return Err(conflict(format!(
                "the volume of the same uuid at offset {}",
                v.offset
            )));
        }
        let end = volume.offset.saturating_add(volume.size);
        if let Some(v) = self
            .volumes
            .iter()
            .find(|v| volume.offset < v.offset + v.size && v.offset < end)
        {
            return Err(conflict(format!(
                "volume {} at offset {} of size {}",
                v.uuid, v.offset, v.size
            )));
        }
        let index = self
            .volumes
            .iter()
            .position(|v| v.offset > volume.offset)
            .unwrap_or(self.volumes.len());
        let mut next = self.volumes.clone();
        next.insert(index, volume);
        let candidate = SrLabel {
            volumes: next,
            ..self.clone()
        };
        if let Err(e) = candidate.validate() {
            return Err(conflict(format!("the table's rules ({e})")));
        }
        *self = candidate;
        Ok(())
    }

    /// Removes the volume `uuid` from the table and returns it; its bytes
    /// become free for the next allocation.
    pub fn free(&mut self, uuid: Uuid) -> Result<Volume, LabelError> {
        let i = self
            .volumes
            .iter()
            .position(|v| v.uuid == uuid)
            .ok_or(LabelError::NoSuchVolume(uuid))?;
        Ok(self.volumes.remove(i))
    }

    /// The volume `uuid`, if the table has it.
    #[must_use]
    pub fn volume(&self, uuid: Uuid) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.uuid == uuid)
    }

    /// The same label with the next generation (what a rewrite writes).
    #[must_use]
    pub fn next(&self) -> SrLabel {
        SrLabel {
            generation: self.generation + 1,
            ..self.clone()
        }
    }

    /// The slot (0 or 1) this label is written to.
    #[must_use]
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    /// Encodes into exactly one block. Panics on a label that breaks the
    /// table's rules (a caller's bug: labels are built by `new`/`allocate`).
    pub fn encode(&self, out: &mut [u8]) {
        assert_eq!(out.len(), LABEL_BLOCK, "label buffer size");
        assert_eq!(self.validate(), Ok(()), "label");
        out.fill(0);
        put(out, off::MAGIC, &LABEL_MAGIC.to_le_bytes());
        put(out, off::VERSION, &LABEL_VERSION.to_le_bytes());
        put(
            out,
            off::VOLUME_COUNT,
            &(self.volumes.len() as u16).to_le_bytes(),
        );
        put(out, off::BLOCK_SIZE, &(LABEL_BLOCK as u32).to_le_bytes());
        put(out, off::SR_UUID, self.sr_uuid.as_bytes());
        put(out, off::GENERATION, &self.generation.to_le_bytes());
        put(out, off::DEVICE_BYTES, &self.device_bytes.to_le_bytes());
        put(out, off::DATA_OFFSET, &LABEL_REGION.to_le_bytes());
        for (i, v) in self.volumes.iter().enumerate() {
            let at = off::ENTRIES + i * ENTRY_SIZE;
            put(out, at + off::entry::UUID, v.uuid.as_bytes());
            out[at + off::entry::KIND] = v.kind.code();
            put(out, at + off::entry::OFFSET, &v.offset.to_le_bytes());
            put(out, at + off::entry::SIZE, &v.size.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out[..off::CRC]);
        put(out, off::CRC, &crc.to_le_bytes());
    }

    /// Encodes into a fresh block.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![0u8; LABEL_BLOCK];
        self.encode(&mut v);
        v
    }

    /// Decodes one slot, checking in this order: length, all zero, magic,
    /// checksum, version, then every field and the table's rules. Never
    /// panics.
    pub fn decode(buf: &[u8]) -> Result<SrLabel, LabelError> {
        if buf.len() != LABEL_BLOCK {
            return Err(LabelError::BadLength(buf.len()));
        }
        if buf.iter().all(|&b| b == 0) {
            return Err(LabelError::Blank);
        }
        let magic = get_u64(buf, off::MAGIC);
        if magic != LABEL_MAGIC {
            return Err(LabelError::BadMagic(magic));
        }
        let stored = get_u32(buf, off::CRC);
        let computed = crc32c::crc32c(&buf[..off::CRC]);
        if stored != computed {
            return Err(LabelError::Checksum { stored, computed });
        }
        let version = get_u16(buf, off::VERSION);
        if version != LABEL_VERSION {
            return Err(LabelError::Version(version));
        }
        let block = get_u32(buf, off::BLOCK_SIZE);
        if block as usize != LABEL_BLOCK {
            return Err(bad(
                "block_size",
                format!("{block}, expected {LABEL_BLOCK}"),
            ));
        }
        let data = get_u64(buf, off::DATA_OFFSET);
        if data != LABEL_REGION {
            return Err(bad(
                "data_offset",
                format!("{data}, expected {LABEL_REGION}"),
            ));
        }
        let count = usize::from(get_u16(buf, off::VOLUME_COUNT));
        if count > MAX_VOLUMES {
            return Err(bad("volume_count", format!("{count} > {MAX_VOLUMES}")));
        }
        let mut volumes = Vec::with_capacity(count);
        for i in 0..count {
            let at = off::ENTRIES + i * ENTRY_SIZE;
            let code = buf[at + off::entry::KIND];
            let kind = VolumeKind::from_code(code)
                .ok_or_else(|| bad("volume kind", format!("entry {i}: unknown kind {code}")))?;
            volumes.push(Volume {
                uuid: get_uuid(buf, at + off::entry::UUID),
                kind,
                offset: get_u64(buf, at + off::entry::OFFSET),
                size: get_u64(buf, at + off::entry::SIZE),
            });
        }
        let label = SrLabel {
            sr_uuid: get_uuid(buf, off::SR_UUID),
            generation: get_u64(buf, off::GENERATION),
            device_bytes: get_u64(buf, off::DEVICE_BYTES),
            volumes,
        };
        label.validate()?;
        Ok(label)
    }

    /// The newer of the two slots' labels (the one with the higher
    /// generation among those that decode), or the first slot's error when
    /// neither does.
    pub fn newest(slot0: &[u8], slot1: &[u8]) -> Result<SrLabel, LabelError> {
        match (SrLabel::decode(slot0), SrLabel::decode(slot1)) {
            (Ok(a), Ok(b)) => Ok(if b.generation > a.generation { b } else { a }),
            (Ok(a), Err(_)) => Ok(a),
            (Err(_), Ok(b)) => Ok(b),
            (Err(e), Err(_)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> SrLabel {
        let mut l = SrLabel::new(Uuid::from_u128(7), 1 << 30);
        l.allocate(Uuid::from_u128(1), VolumeKind::Statefile, 4 << 20)
            .unwrap();
        l.allocate(Uuid::from_u128(2), VolumeKind::Metadata, 256 << 20)
            .unwrap();
        l.allocate(Uuid::from_u128(3), VolumeKind::Disk, 1000)
            .unwrap();
        l
    }

    #[test]
    fn round_trip_and_allocation() {
        let l = label();
        assert_eq!(SrLabel::decode(&l.to_bytes()), Ok(l.clone()));
        assert_eq!(l.volumes[0].offset, LABEL_REGION);
        assert_eq!(l.volumes[1].offset, LABEL_REGION + (4 << 20));
        assert_eq!(l.volumes[2].size, VOLUME_ALIGN);
        // A freed gap is reused first; an oversize request is refused.
        let mut m = l.clone();
        m.volumes.remove(0);
        let v = m
            .allocate(Uuid::from_u128(4), VolumeKind::Disk, 8192)
            .unwrap();
        assert_eq!(v.offset, LABEL_REGION);
        assert_eq!(
            m.allocate(Uuid::from_u128(5), VolumeKind::Disk, 1 << 30),
            Err(LabelError::NoSpace { size: 1 << 30 })
        );
        assert!(m.validate().is_ok());
    }

    #[test]
    fn free_and_place() {
        let mut l = label();
        let meta = l.free(Uuid::from_u128(2)).unwrap();
        assert_eq!(meta.offset, LABEL_REGION + (4 << 20));
        assert_eq!(
            l.free(Uuid::from_u128(2)),
            Err(LabelError::NoSuchVolume(Uuid::from_u128(2)))
        );
        // The freed gap is found first; a volume placed in it must fit.
        assert_eq!(l.first_fit(8 << 20).unwrap(), (meta.offset, 8 << 20));
        let clash = Volume {
            uuid: Uuid::from_u128(9),
            kind: VolumeKind::Disk,
            offset: LABEL_REGION,
            size: 4096,
        };
        let before = l.clone();
        assert!(matches!(l.place(clash), Err(LabelError::Conflict { .. })));
        let same_uuid = Volume {
            uuid: Uuid::from_u128(1),
            offset: meta.offset,
            ..clash
        };
        assert!(matches!(
            l.place(same_uuid),
            Err(LabelError::Conflict { .. })
        ));
        let odd = Volume {
            offset: meta.offset + 512,
            ..clash
        };
        assert!(matches!(l.place(odd), Err(LabelError::Conflict { .. })));
        assert_eq!(l, before, "refused placements change nothing");
        let fits = Volume {
            offset: meta.offset + 4096,
            ..clash
        };
        l.place(fits).unwrap();
        assert!(l.validate().is_ok());
        assert_eq!(l.volumes[1], fits);
        assert_eq!(SrLabel::decode(&l.to_bytes()), Ok(l.clone()));
    }

    #[test]
    fn damaged_blocks_are_refused_and_the_other_slot_wins() {
        let l = label();
        let newer = l.next();
        let (a, b) = (l.to_bytes(), newer.to_bytes());
        assert_eq!(SrLabel::newest(&a, &b).unwrap().generation, 2);
        let mut torn = b.clone();
        torn[100] ^= 1;
        assert!(matches!(
            SrLabel::decode(&torn),
            Err(LabelError::Checksum { .. })
        ));
        assert_eq!(SrLabel::newest(&a, &torn).unwrap().generation, 1);
        assert_eq!(SrLabel::decode(&[0; LABEL_BLOCK]), Err(LabelError::Blank));
        assert!(matches!(
            SrLabel::decode(&[1; LABEL_BLOCK]),
            Err(LabelError::BadMagic(_))
        ));
        assert_eq!(SrLabel::decode(&[0; 10]), Err(LabelError::BadLength(10)));
    }
}
