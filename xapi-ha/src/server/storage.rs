//! The storage effects of calls (`api::Effect`), performed before the
//! call's records are committed; if one fails, the call fails and nothing
//! is committed.
//!
//! `SR.create` with `type=file`: `device_config:path` must be an absolute,
//! existing directory (on shared storage such as an NFS mount). It gets a
//! label file, [`LABEL`], naming the SR. A directory that holds other files
//! but no label is someone else's data: refused with `SR_DEVICE_IN_USE
//! [path]`. A labelled directory (an SR forgotten and created again) is
//! taken, its label rewritten. `type=block` is not prepared yet
//! (`SR_BACKEND_FAILURE`).

use std::io::Write as _;
use std::path::Path;

use crate::api::{ApiError, Effect};

/// The label file in a `file` SR's directory.
pub const LABEL: &str = ".xapi-ha-sr";

/// Performs one effect.
pub fn perform(effect: &Effect) -> Result<(), ApiError> {
    match effect {
        Effect::CreateSr {
            sr,
            sr_type,
            device_config,
            ..
        } => match sr_type.as_str() {
            "file" => {
                let path = device_config
                    .iter()
                    .find(|(k, _)| k == "path")
                    .map(|(_, v)| v.as_str())
                    .ok_or_else(|| ApiError::invalid_value("device_config:path", ""))?;
                prepare_file_sr(Path::new(path), &sr.to_string())
            }
            other => Err(ApiError::new(
                "SR_BACKEND_FAILURE",
                [
                    "SR_NOT_PREPARED",
                    "",
                    &format!("this agent does not prepare {other} SRs yet"),
                ],
            )),
        },
        Effect::StartVm { .. }
        | Effect::StopVm { .. }
        | Effect::EnableHa(_)
        | Effect::DisableHa(_) => Err(ApiError::internal(
            "a VM or HA effect is not a storage effect",
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
        Effect::CreateSr {
            sr: Ref::from_uuid(uuid::Uuid::nil()),
            sr_type: sr_type.into(),
            device_config: vec![("path".into(), path.display().to_string())],
            shared: true,
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
        assert_eq!(
            perform(&effect(dir.path(), "block")).unwrap_err().code,
            "SR_BACKEND_FAILURE"
        );
    }
}
