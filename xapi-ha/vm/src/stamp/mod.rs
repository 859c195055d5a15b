//! The stamp workload and the double-run checker (docs/vm-drivers.md, "Stamps").
//!
//! Every 200 ms a VM writes a record (VM, host, boot, sequence, time) to its
//! own slot of its disk; the checker reads the slots and proves no VM ran twice.

pub mod check;
pub mod record;
pub mod region;

pub use check::{BootWindow, CheckOptions, StampLog, Violation};
pub use record::{StampRecord, decode};
pub use region::{DiskArea, StampWriter, read_region, read_region_in};
