//! The storage effects of VDIs as regions of a block SR, and of
//! `VDI.destroy` on both SR types (docs/vm-drivers.md, "VM disks").
//!
//! - [`create_region`]: writes the volume `vdi_region::place` decided into
//!   the label on the device, exactly there (`srlabel::device::place_volume`:
//!   the label's next generation in its other slot, so a crash leaves the
//!   table before or after, never a mix). A label that disagrees (a region
//!   the database does not know, a device too small) refuses it:
//!   `SR_BACKEND_FAILURE ["SR_FULL" | "SR_REGION_CONFLICT"; ""; why]`.
//! - [`delete_volume`]: removes a file (`file` SR) or frees the region
//!   (`block` SR); a volume that is already gone is logged, not an error,
//!   so a destroy that was interrupted after this step can be repeated.

use std::path::Path;

use sr_heartbeat::srlabel::device::{AllocateError, free_volume, place_volume, read_label};
use sr_heartbeat::srlabel::{LabelError, Volume};
use uuid::Uuid;

use crate::api::ApiError;
use crate::api::vdi_region::backend;

fn io_failure(device: &Path, e: &dyn std::fmt::Display) -> ApiError {
    backend("SR_IO", &format!("{}: {e}", device.display()))
}

/// `VDI.create` on a block SR: the volume into the label's table.
pub fn create_region(device: &Path, volume: &Volume) -> Result<(), ApiError> {
    let label = read_label(device).map_err(|e| io_failure(device, &e))?;
    let end = volume.offset.saturating_add(volume.size);
    if end > label.device_bytes {
        let free_at_end = label
            .device_bytes
            .saturating_sub(label.volumes.last().map_or(0, |v| v.offset + v.size));
        return Err(backend(
            "SR_FULL",
            &format!(
                "{}: a volume of {} bytes does not fit: the device has {} bytes, {} free after the last volume",
                device.display(),
                volume.size,
                label.device_bytes,
                free_at_end
            ),
        ));
    }
    match place_volume(device, *volume) {
        Ok(()) => {
            tracing::info!(device = %device.display(), volume = %volume.uuid, offset = volume.offset, size = volume.size, "region allocated");
            Ok(())
        }
        Err(AllocateError::Label(e @ LabelError::Conflict { .. })) => Err(backend(
            "SR_REGION_CONFLICT",
            &format!("{}: {e}", device.display()),
        )),
        Err(AllocateError::Label(e)) => {
            Err(backend("SR_FULL", &format!("{}: {e}", device.display())))
        }
        Err(e) => Err(io_failure(device, &e)),
    }
}

/// `VDI.destroy`: the volume's file, or its region in the label.
pub fn delete_volume(path: &Path, region: Option<Uuid>) -> Result<(), ApiError> {
    match region {
        Some(uuid) => match free_volume(path, uuid) {
            Ok(v) => {
                tracing::info!(device = %path.display(), volume = %uuid, offset = v.offset, size = v.size, "region freed");
                Ok(())
            }
            Err(AllocateError::Label(LabelError::NoSuchVolume(_))) => {
                tracing::warn!(device = %path.display(), volume = %uuid, "region already free");
                Ok(())
            }
            Err(e) => Err(io_failure(path, &e)),
        },
        None => match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "volume file already gone");
                Ok(())
            }
            Err(e) => Err(io_failure(path, &e)),
        },
    }
}
