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

/// A regular file or block device opened for direct I/O.
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
        })
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
            .read_exact_at(buf, offset)
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
            .write_all_at(buf, offset)
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
