//! A regular file or block device opened with `O_DIRECT`.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::{AlignedBuf, BlockIo, IoError, IoOp};

/// Sector size assumed for regular files: the page size, which every Linux
/// filesystem accepts for `O_DIRECT` and which is also what a 4Kn disk needs.
const FILE_SECTOR_SIZE: usize = 4096;

nix::ioctl_read_bad!(ioctl_blksszget, libc::BLKSSZGET, libc::c_int);
nix::ioctl_read!(ioctl_blkgetsize64, 0x12, 114, u64);

/// How to open a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// `O_RDONLY | O_DIRECT`: never writes (dump, check).
    ReadOnly,
    /// `O_RDWR | O_DIRECT | O_DSYNC`: a write returns once it is durable.
    ReadWrite,
}

/// A byte range of a device: what a volume of a block SR is (the
/// statefile, the metadata volume, a VM disk). Both numbers are multiples of
/// [`REGION_ALIGN`] and the range lies inside the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Region {
    /// Bytes from the start of the device.
    pub offset: u64,
    /// Bytes; not zero.
    pub len: u64,
}

/// Regions start and end on this boundary: a whole number of sectors of
/// every device this layer accepts (512 to 4096 bytes), and the block SR
/// label's volume alignment.
pub const REGION_ALIGN: u64 = 4096;

/// A regular file or block device opened for direct I/O, whole or as one
/// [`Region`] of it. Opened as a region, every offset the caller gives is
/// relative to the region's start and [`BlockDevice::size_bytes`] is the
/// region's length: the formats work on a region exactly as on a whole
/// file, and a request that would leave the region is refused before the
/// syscall ([`IoError::OutsideRegion`]).
///
/// Every request is checked before the syscall: offset, length and buffer
/// address must be multiples of [`BlockDevice::sector_size`] and the request
/// must lie inside the device. The checks make misuse a typed error instead
/// of an `EINVAL` that only some devices return.
#[derive(Debug)]
pub struct BlockDevice {
    file: File,
    path: PathBuf,
    mode: OpenMode,
    sector_size: usize,
    size_bytes: u64,
    is_block_device: bool,
    region: Option<Region>,
}

fn describe(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else {
        "not a regular file"
    }
}

impl BlockDevice {
    /// Open `path` for direct I/O and learn its sector size and size.
    ///
    /// The type is checked before `open(2)`, so a FIFO or a character device
    /// is refused instead of blocking the caller in `open`.
    pub fn open(path: &Path, mode: OpenMode) -> Result<BlockDevice, IoError> {
        let open_err = |source| IoError::Open {
            path: path.to_owned(),
            source,
        };
        let ft = std::fs::metadata(path).map_err(open_err)?.file_type();
        if !ft.is_file() && !ft.is_block_device() {
            return Err(IoError::NotBlockOrFile {
                path: path.to_owned(),
                kind: describe(&ft),
            });
        }
        let mut flags = libc::O_DIRECT;
        if mode == OpenMode::ReadWrite {
            flags |= libc::O_DSYNC;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(mode == OpenMode::ReadWrite)
            .custom_flags(flags)
            .open(path)
            .map_err(open_err)?;
        // Re-check on the open file: the path may have changed in between.
        let meta = file.metadata().map_err(open_err)?;
        let is_block_device = meta.file_type().is_block_device();
        if !meta.file_type().is_file() && !is_block_device {
            return Err(IoError::NotBlockOrFile {
                path: path.to_owned(),
                kind: describe(&meta.file_type()),
            });
        }
        let (sector_size, size_bytes) = if is_block_device {
            block_geometry(&file, path)?
        } else {
            (FILE_SECTOR_SIZE, meta.len())
        };
        if !sector_size.is_power_of_two() || !(512..=4096).contains(&sector_size) {
            return Err(IoError::BadSectorSize {
                path: path.to_owned(),
                sector_size,
            });
        }
        if !size_bytes.is_multiple_of(sector_size as u64) {
            return Err(IoError::SizeNotAligned {
                path: path.to_owned(),
                size: size_bytes,
                sector_size,
            });
        }
        Ok(BlockDevice {
            file,
            path: path.to_owned(),
            mode,
            sector_size,
            size_bytes,
            is_block_device,
            region: None,
        })
    }

    /// Opens `region` of the device at `path` for direct I/O: offsets are
    /// relative to `region.offset` and the usable size is `region.len`.
    /// The region must be [`REGION_ALIGN`]-aligned, not empty, and inside the
    /// device ([`IoError::RegionMisaligned`], [`IoError::RegionOutOfRange`],
    /// both naming the offset and the length).
    pub fn open_region(
        path: &Path,
        mode: OpenMode,
        region: Region,
    ) -> Result<BlockDevice, IoError> {
        if region.len == 0
            || !region.offset.is_multiple_of(REGION_ALIGN)
            || !region.len.is_multiple_of(REGION_ALIGN)
        {
            return Err(IoError::RegionMisaligned {
                path: path.to_owned(),
                offset: region.offset,
                len: region.len,
                align: REGION_ALIGN,
            });
        }
        let mut dev = BlockDevice::open(path, mode)?;
        let device_size = dev.size_bytes;
        if region
            .offset
            .checked_add(region.len)
            .is_none_or(|end| end > device_size)
        {
            return Err(IoError::RegionOutOfRange {
                path: path.to_owned(),
                offset: region.offset,
                len: region.len,
                device_size,
            });
        }
        dev.size_bytes = region.len;
        dev.region = Some(region);
        Ok(dev)
    }

    /// The region this device was opened as, or `None` for the whole
    /// device.
    pub fn region(&self) -> Option<Region> {
        self.region
    }

    /// The byte on the device that offset `offset` of this device (or
    /// region) is.
    fn device_offset(&self, offset: u64) -> u64 {
        self.region.map_or(offset, |r| r.offset + offset)
    }

    /// Logical sector size: `BLKSSZGET` for a block device, 4096 for a file.
    pub fn sector_size(&self) -> usize {
        self.sector_size
    }

    /// Size in bytes: `BLKGETSIZE64` for a block device, the file length.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// The path this device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the device was opened.
    pub fn mode(&self) -> OpenMode {
        self.mode
    }

    /// Whether this is a block device (as opposed to a regular file).
    pub fn is_block_device(&self) -> bool {
        self.is_block_device
    }

    /// Refuse a device smaller than `min` bytes, with both sizes in the error.
    pub fn require_size(&self, min: u64) -> Result<(), IoError> {
        if self.size_bytes < min {
            return Err(IoError::TooSmall {
                path: self.path.clone(),
                need: min,
                have: self.size_bytes,
            });
        }
        Ok(())
    }

    fn check(&self, op: IoOp, offset: u64, buf: &[u8]) -> Result<(), IoError> {
        let sector = self.sector_size;
        let misaligned = |what, value: u64| IoError::Misaligned {
            what,
            value,
            sector_size: sector,
        };
        if !offset.is_multiple_of(sector as u64) {
            return Err(misaligned("offset", offset));
        }
        if !buf.len().is_multiple_of(sector) {
            return Err(misaligned("length", buf.len() as u64));
        }
        let addr = buf.as_ptr() as usize;
        if !addr.is_multiple_of(sector) {
            return Err(misaligned("buffer address", addr as u64));
        }
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size_bytes) {
            if let Some(region) = self.region {
                return Err(IoError::OutsideRegion {
                    op,
                    offset,
                    len: buf.len(),
                    region_offset: region.offset,
                    region_len: region.len,
                });
            }
            return Err(IoError::OutOfRange {
                op,
                offset,
                len: buf.len(),
                size: self.size_bytes,
            });
        }
        Ok(())
    }

    /// Read `buf.len()` bytes at `offset` with one direct read (retried only
    /// for a short read).
    pub fn read_at(&self, offset: u64, buf: &mut AlignedBuf) -> Result<(), IoError> {
        self.check(IoOp::Read, offset, buf)?;
        self.file
            .read_exact_at(buf, self.device_offset(offset))
            .map_err(|source| IoError::Io {
                op: IoOp::Read,
                offset,
                source,
            })
    }

    /// Write all of `buf` at `offset`; durable on return (`O_DSYNC`).
    pub fn write_at(&self, offset: u64, buf: &AlignedBuf) -> Result<(), IoError> {
        if self.mode == OpenMode::ReadOnly {
            return Err(IoError::ReadOnly {
                path: self.path.clone(),
            });
        }
        self.check(IoOp::Write, offset, buf)?;
        self.file
            .write_all_at(buf, self.device_offset(offset))
            .map_err(|source| IoError::Io {
                op: IoOp::Write,
                offset,
                source,
            })
    }
}

fn block_geometry(file: &File, path: &Path) -> Result<(usize, u64), IoError> {
    let fd = file.as_raw_fd();
    let mut ssz: libc::c_int = 0;
    // SAFETY: `fd` is an open block device owned by `file` for the whole
    // call, and BLKSSZGET writes exactly one c_int into `ssz`.
    unsafe { ioctl_blksszget(fd, &mut ssz) }.map_err(|source| IoError::Ioctl {
        path: path.to_owned(),
        ioctl: "BLKSSZGET",
        source,
    })?;
    let mut size: u64 = 0;
    // SAFETY: as above; BLKGETSIZE64 writes exactly one u64 into `size`.
    unsafe { ioctl_blkgetsize64(fd, &mut size) }.map_err(|source| IoError::Ioctl {
        path: path.to_owned(),
        ioctl: "BLKGETSIZE64",
        source,
    })?;
    let sector = usize::try_from(ssz).unwrap_or(0);
    Ok((sector, size))
}

impl BlockIo for BlockDevice {
    fn sector_size(&self) -> usize {
        self.sector_size
    }
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn read(&self, offset: u64, len: usize) -> Result<AlignedBuf, IoError> {
        let mut buf = AlignedBuf::new(len)?;
        self.read_at(offset, &mut buf)?;
        Ok(buf)
    }
    fn write(&self, offset: u64, buf: AlignedBuf) -> Result<(), IoError> {
        self.write_at(offset, &buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: u64) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        f.as_file().set_len(len).expect("size");
        f
    }

    fn filled(len: usize, byte: u8) -> AlignedBuf {
        let mut b = AlignedBuf::new(len).expect("buf");
        b.fill(byte);
        b
    }

    #[test]
    fn a_region_is_a_device_of_its_own_length_at_its_offset() {
        let f = file(1 << 20);
        let region = Region {
            offset: 64 << 10,
            len: 16 << 10,
        };
        let dev = BlockDevice::open_region(f.path(), OpenMode::ReadWrite, region).expect("open");
        assert_eq!(dev.size_bytes(), 16 << 10);
        assert_eq!(dev.region(), Some(region));
        dev.write_at(0, &filled(4096, 0xa1)).expect("first block");
        dev.write_at(12 << 10, &filled(4096, 0xa2))
            .expect("last block");
        // On the whole device the bytes are at the region's offset, and
        // nothing before or after it was touched.
        let whole = BlockDevice::open(f.path(), OpenMode::ReadOnly).expect("whole");
        let mut all = AlignedBuf::new(1 << 20).expect("buf");
        whole.read_at(0, &mut all).expect("read");
        assert!(all[..64 << 10].iter().all(|&b| b == 0));
        assert!(all[64 << 10..68 << 10].iter().all(|&b| b == 0xa1));
        assert!(all[68 << 10..76 << 10].iter().all(|&b| b == 0));
        assert!(all[76 << 10..80 << 10].iter().all(|&b| b == 0xa2));
        assert!(all[80 << 10..].iter().all(|&b| b == 0));
        let mut back = AlignedBuf::new(4096).expect("buf");
        dev.read_at(12 << 10, &mut back).expect("read back");
        assert!(back.iter().all(|&b| b == 0xa2));
    }

    #[test]
    fn requests_leaving_the_region_are_refused_naming_it() {
        let f = file(1 << 20);
        let region = Region {
            offset: 8192,
            len: 8192,
        };
        let dev = BlockDevice::open_region(f.path(), OpenMode::ReadWrite, region).expect("open");
        match dev.write_at(4096, &filled(8192, 1)) {
            Err(IoError::OutsideRegion {
                op: IoOp::Write,
                offset: 4096,
                len: 8192,
                region_offset: 8192,
                region_len: 8192,
            }) => {}
            other => panic!("{other:?}"),
        }
        let mut buf = AlignedBuf::new(4096).expect("buf");
        let e = dev.read_at(8192, &mut buf).expect_err("past the end");
        assert!(
            e.to_string()
                .contains("region at offset 8192 of length 8192"),
            "{e}"
        );
        // Nothing was written by the refused request.
        let whole = BlockDevice::open(f.path(), OpenMode::ReadOnly).expect("whole");
        let mut all = AlignedBuf::new(1 << 20).expect("buf");
        whole.read_at(0, &mut all).expect("read");
        assert!(all.iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_regions_are_refused_at_open() {
        let f = file(1 << 20);
        for (offset, len) in [(512, 4096), (4096, 512), (4096, 0)] {
            match BlockDevice::open_region(f.path(), OpenMode::ReadOnly, Region { offset, len }) {
                Err(IoError::RegionMisaligned {
                    offset: o, len: l, ..
                }) => assert_eq!((o, l), (offset, len)),
                other => panic!("{offset}+{len}: {other:?}"),
            }
        }
        for (offset, len) in [(1 << 20, 4096), (0, 2 << 20), (u64::MAX - 4095, 8192)] {
            match BlockDevice::open_region(f.path(), OpenMode::ReadOnly, Region { offset, len }) {
                Err(IoError::RegionOutOfRange {
                    offset: o,
                    len: l,
                    device_size,
                    ..
                }) => assert_eq!((o, l, device_size), (offset, len, 1 << 20)),
                other => panic!("{offset}+{len}: {other:?}"),
            }
        }
        // The whole device is a valid region.
        let whole = Region {
            offset: 0,
            len: 1 << 20,
        };
        assert!(BlockDevice::open_region(f.path(), OpenMode::ReadOnly, whole).is_ok());
    }
}
