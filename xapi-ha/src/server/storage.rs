//! The storage effects of calls (`api::Effect`), performed before the
//! call's records are committed; if one fails, the call fails and nothing
//! is committed.
//!
//! `SR.create` with `type=file`: `device_config:path` must be an absolute,
//! existing directory (on shared storage such as an NFS mount). It gets a
//! label file, [`LABEL`], naming the SR. A directory that holds other files
//! but no label is someone else's data: refused with `SR_DEVICE_IN_USE
//! [path]`. A labelled directory (an SR forgotten and created again) is
//! taken, its label rewritten.
//!
//! `SR.create` with `type=block`: `device_config:device` must be an
//! absolute path of a block device or a file; it gets the SR label with
//! its volume table ([`prepare_block_sr`]).
//!
//! `VDI.create` on a `file` SR: a new sparse file (`O_EXCL`: an existing
//! file is `SR_BACKEND_FAILURE`), synced with its directory. On a `block`
//! SR, and `VDI.destroy` on both: `server::volumes`.

use std::io::Write as _;
use std::path::Path;

use sr_heartbeat::srlabel;
use sr_heartbeat::srlabel::device::LabelDeviceError;

use crate::api::{ApiError, Effect};

/// The label file in a `file` SR's directory.
pub const LABEL: &str = ".xapi-ha-sr";

/// Performs one effect.
pub fn perform(effect: &Effect) -> Result<(), ApiError> {
    match effect {
        Effect::CreateSr {
            uuid,
            sr_type,
            device_config,
            force,
            ..
        } => {
            let key = |name: &str| {
                device_config
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| ApiError::invalid_value(&format!("device_config:{name}"), ""))
            };
            match sr_type.as_str() {
                "file" => prepare_file_sr(Path::new(key("path")?), uuid),
                "block" => prepare_block_sr(Path::new(key("device")?), uuid, *force),
                other => Err(ApiError::sr_unknown_driver(other)),
            }
        }
        Effect::CreateVdi { path, size } => create_volume(path, *size),
        Effect::CreateRegion { device, volume } => super::volumes::create_region(device, volume),
        Effect::DeleteVolume { path, region } => super::volumes::delete_volume(path, *region),
        Effect::StartVm { .. }
        | Effect::StopVm { .. }
        | Effect::MigrateVm { .. }
        | Effect::OnHost { .. }
        | Effect::JoinPool { .. }
        | Effect::EjectHost { .. }
        | Effect::HandOverMaster { .. }
        | Effect::EnableHa(_)
        | Effect::DisableHa(_)
        | Effect::Evacuate { .. }
        | Effect::ShutdownHost { .. } => Err(ApiError::internal(
            "a VM, pool or HA effect is not a storage effect",
        )),
    }
}

/// A VDI's volume on a `file` SR: a new sparse file, synced with its
/// directory entry.
fn create_volume(path: &Path, size: u64) -> Result<(), ApiError> {
    let io = |e: std::io::Error| {
        ApiError::new(
            "SR_BACKEND_FAILURE",
            ["VDI_IO", "", &format!("{}: {e}", path.display())],
        )
    };
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    f.set_len(size).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// `type=block`: the device (a shared LUN, or a plain file used as one)
/// gets the SR label with its volume table (`sr_heartbeat::srlabel`,
/// docs/on-disk-format.md "Block SR label"). Someone else's data is
/// `SR_DEVICE_IN_USE [device, what]` unless `force`.
fn prepare_block_sr(device: &Path, sr: &str, force: bool) -> Result<(), ApiError> {
    let shown = device.display().to_string();
    if !device.is_absolute() || !device.exists() {
        return Err(ApiError::invalid_value("device_config:device", &shown));
    }
    let sr_uuid = uuid::Uuid::parse_str(sr).map_err(|e| ApiError::internal(&e.to_string()))?;
    match srlabel::device::label_device(device, sr_uuid, force) {
        Ok(label) => {
            tracing::info!(device = %shown, sr, generation = label.generation, volumes = label.volumes.len(), "block SR labelled");
            Ok(())
        }
        Err(LabelDeviceError::InUse { what, .. }) => {
            Err(ApiError::new("SR_DEVICE_IN_USE", [shown, what]))
        }
        Err(LabelDeviceError::TooSmall { size, .. }) => Err(ApiError::new(
            "SR_BACKEND_FAILURE",
            [
                "SR_DEVICE_TOO_SMALL".to_owned(),
                String::new(),
                format!(
                    "{shown} has {size} bytes; a block SR needs at least {}",
                    srlabel::device::MIN_DEVICE_BYTES
                ),
            ],
        )),
        Err(LabelDeviceError::Io(e)) => Err(ApiError::new(
            "SR_BACKEND_FAILURE",
            ["SR_IO".to_owned(), String::new(), e.to_string()],
        )),
    }
}

fn prepare_file_sr(dir: &Path, sr: &str) -> Result<(), ApiError> {
    let shown = dir.display().to_string();
    if !dir.is_absolute() || !dir.is_dir() {
        return Err(ApiError::invalid_value("device_config:path", &shown));
    }
    let io = |e: std::io::Error| {
        ApiError::new(
            "SR_BACKEND_FAILURE",
            ["SR_IO", "", &format!("{shown}: {e}")],
        )
    };
    let mut foreign = false;
    let mut labelled = false;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry.map_err(io)?.file_name();
        if name == LABEL {
            labelled = true;
        } else {
            foreign = true;
        }
    }
    if foreign && !labelled {
        return Err(ApiError::new("SR_DEVICE_IN_USE", [shown]));
    }
    let label = dir.join(LABEL);
    let tmp = dir.join(format!("{LABEL}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(format!("{sr}\n").as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, &label).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Ref;

    fn effect(path: &Path, sr_type: &str) -> Effect {
        let key = if sr_type == "block" { "device" } else { "path" };
        Effect::CreateSr {
            sr: Ref::from_uuid(uuid::Uuid::nil()),
            uuid: "5e0a1b2c-0000-4000-8000-000000000001".into(),
            sr_type: sr_type.into(),
            device_config: vec![(key.into(), path.display().to_string())],
            shared: true,
            force: false,
        }
    }

    #[test]
    fn file_sr_labels_an_empty_directory_and_refuses_foreign_data() {
        let dir = tempfile::tempdir().unwrap();
        perform(&effect(dir.path(), "file")).unwrap();
        assert!(dir.path().join(LABEL).exists());
        // Labelled: taken again.
        perform(&effect(dir.path(), "file")).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("data"), b"x").unwrap();
        assert_eq!(
            perform(&effect(other.path(), "file")).unwrap_err().code,
            "SR_DEVICE_IN_USE"
        );
        assert_eq!(
            perform(&effect(Path::new("/nonexistent/x"), "file"))
                .unwrap_err()
                .code,
            "INVALID_VALUE"
        );
    }

    #[test]
    fn block_sr_labels_a_zeroed_file_and_refuses_foreign_data() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("lun");
        std::fs::File::create(&dev)
            .unwrap()
            .set_len(16 << 20)
            .unwrap();
        perform(&effect(&dev, "block")).unwrap();
        let opened =
            sr_heartbeat::io::BlockDevice::open(&dev, sr_heartbeat::io::OpenMode::ReadOnly)
                .unwrap();
        assert!(matches!(
            srlabel::device::probe(&opened).unwrap(),
            srlabel::Content::Label(l) if l.sr_uuid.to_string() == "5e0a1b2c-0000-4000-8000-000000000001"
        ));
        let foreign = dir.path().join("foreign");
        let mut bytes = vec![0u8; 16 << 20];
        bytes[0] = 0x42;
        std::fs::write(&foreign, &bytes).unwrap();
        let e = perform(&effect(&foreign, "block")).unwrap_err();
        assert_eq!(e.code, "SR_DEVICE_IN_USE");
        let mut forced = effect(&foreign, "block");
        if let Effect::CreateSr { force, .. } = &mut forced {
            *force = true;
        }
        perform(&forced).unwrap();
        assert_eq!(
            perform(&effect(Path::new("relative"), "block"))
                .unwrap_err()
                .code,
            "INVALID_VALUE"
        );
    }

    #[test]
    fn a_vdi_volume_is_a_new_sparse_file_of_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.img");
        let effect = Effect::CreateVdi {
            path: path.clone(),
            size: 64 << 20,
        };
        perform(&effect).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 64 << 20);
        // Sparse: nothing allocated yet.
        assert!(std::os::unix::fs::MetadataExt::blocks(&meta) < 64);
        // Never over an existing file.
        assert_eq!(perform(&effect).unwrap_err().code, "SR_BACKEND_FAILURE");
    }
}
