//! The label of a block SR: the first megabyte of a shared LUN names the SR
//! and holds its volume table, the sector-aligned regions of the device
//! that hold the statefile, the metadata volume and VM disks
//! (`docs/on-disk-format.md`, "Block SR label").
//!
//! - [`label`]: the label block (versioned, CRC32C-checked, two slots
//!   written alternately so a torn write leaves the previous label) and
//!   the volume table's rules (aligned, inside the data area, no overlap);
//! - [`content`]: what the first sectors of a device hold (nothing, our
//!   label, or someone else's data, with the known filesystem named);
//! - `device` (feature `io`): reading and writing the label on a device.

pub mod content;
#[cfg(feature = "io")]
pub mod device;
pub mod label;

pub use content::{Content, classify};
pub use label::{LabelError, SrLabel, Volume, VolumeKind};
