//! What the agent tells a driver about a VM: a plain struct filled from the
//! VM record (`driver` and the `driver-config` map; keys in docs/vm-drivers.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DriverError;

/// A VM as a driver needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    pub uuid: Uuid,
    pub name: String,
    /// Memory for the VM (`memory_static_max`), bytes.
    pub memory_bytes: u64,
    pub vcpus: u32,
    /// `qemu` or `process`.
    pub driver: String,
    /// The VM record's `driver-config` map.
    pub config: BTreeMap<String, String>,
    /// The VM's disks (VDIs on SRs) as paths, in device order.
    pub disks: Vec<PathBuf>,
    /// For each disk (same index), where its bytes are on the device when
    /// it is a region of a block SR; `None` (or no entry) is the whole
    /// file or device.
    #[serde(default)]
    pub disk_regions: Vec<Option<DiskRegion>>,
}

/// A disk that is a region of its device (a VDI on a `type=block` SR):
/// `size` bytes from byte `offset`, both multiples of 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRegion {
    pub offset: u64,
    pub size: u64,
}

impl VmSpec {
    /// The region of disk `index`, if it is one.
    pub fn disk_region(&self, index: usize) -> Option<DiskRegion> {
        self.disk_regions.get(index).copied().flatten()
    }

    /// The value of `key`, if set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.config
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Refuses keys the driver does not know, naming the first one.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), DriverError> {
        match self.config.keys().find(|k| !known.contains(&k.as_str())) {
            Some(k) => Err(DriverError::BadConfig {
                key: k.clone(),
                reason: format!(
                    "unknown key for driver {} (known: {})",
                    self.driver,
                    known.join(", ")
                ),
            }),
            None => Ok(()),
        }
    }

    /// `stamp-slot`: the VM's slot on its first disk (default 0).
    pub fn stamp_slot(&self) -> Result<u64, DriverError> {
        match self.get(KEY_STAMP_SLOT) {
            None => Ok(0),
            Some(v) => v.parse().map_err(|_| DriverError::BadConfig {
                key: KEY_STAMP_SLOT.into(),
                reason: format!("{v:?} is not a non-negative integer"),
            }),
        }
    }

    /// Checks the fields every driver uses.
    pub fn check_common(&self, driver: &str) -> Result<(), DriverError> {
        if self.driver != driver {
            return Err(DriverError::WrongDriver {
                vm: self.uuid,
                wanted: self.driver.clone(),
                have: driver.into(),
            });
        }
        if self.vcpus == 0 {
            return Err(DriverError::BadSpec {
                field: "vcpus",
                reason: "must be at least 1".into(),
            });
        }
        for d in &self.disks {
            if !d.exists() {
                return Err(DriverError::BadSpec {
                    field: "disks",
                    reason: format!("{} does not exist", d.display()),
                });
            }
        }
        self.stamp_slot()?;
        Ok(())
    }
}

/// `driver-config:stamp-slot`, shared by both drivers.
pub const KEY_STAMP_SLOT: &str = "stamp-slot";
