//! The local record that HA is on: `<data.dir>/ha-state.toml`. Written
//! (atomically) as the last step of an enable, after the database is on the
//! metadata volume; removed by a disable after the database is back on the
//! local file. At start-up the agent reads it to know where its database
//! is and which `xhad` to re-find. Its presence is the commit point of
//! both moves.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::files::{FileError, write_atomic};

/// The file's name in the data directory.
pub const FILE_NAME: &str = "ha-state.toml";

/// What the agent must know after a restart while HA is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaState {
    /// The generation of this enablement.
    pub generation: Uuid,
    /// The base timeout T, seconds.
    pub timeout_s: u64,
    /// The metadata volume holding the database.
    pub metadata: PathBuf,
    /// The master epoch the database was last written under (a restart
    /// writes under the newer of this and `xhad`'s).
    pub epoch: u64,
    /// Every statefile, in order.
    pub statefiles: Vec<PathBuf>,
    /// `xhad`'s control socket.
    pub control_socket: PathBuf,
    /// blocksr: on a block SR, the metadata volume's region of the device
    /// `metadata` (absent for a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_region: Option<super::regions::HaVolume>,
    /// blocksr: the statefiles that are regions of a block SR's device
    /// (freed by a disable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statefile_regions: Vec<super::regions::HaVolume>,
}

/// Why the record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] FileError),
}

impl HaState {
    /// Parses the record's text (a fuzz target checks this decoder:
    /// `xapi-ha/fuzz`, `ha_state`).
    pub fn parse(text: &str) -> Result<HaState, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The record's text.
    pub fn to_text(&self) -> Result<String, String> {
        toml::to_string(self).map_err(|e| e.to_string())
    }

    /// The record in `data_dir`, if HA is on.
    pub fn load(data_dir: &Path) -> Result<Option<HaState>, StateError> {
        let path = data_dir.join(FILE_NAME);
        let err = |reason: String| StateError::Read {
            path: path.clone(),
            reason,
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        HaState::parse(&text).map(Some).map_err(err)
    }

    /// Writes the record durably.
    pub fn save(&self, data_dir: &Path) -> Result<(), StateError> {
        let text = self.to_text().map_err(|reason| StateError::Read {
            path: data_dir.join(FILE_NAME),
            reason,
        })?;
        write_atomic(&data_dir.join(FILE_NAME), text.as_bytes())?;
        Ok(())
    }

    /// Removes the record durably (HA is off from here on).
    pub fn remove(data_dir: &Path) -> Result<(), StateError> {
        let path = data_dir.join(FILE_NAME);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StateError::Read {
                    path,
                    reason: e.to_string(),
                });
            }
        }
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| StateError::Read {
                path: data_dir.to_path_buf(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_loads_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(HaState::load(dir.path()).unwrap(), None);
        let s = HaState {
            generation: Uuid::new_v4(),
            timeout_s: 10,
            metadata: PathBuf::from("/sr/ha-metadata"),
            epoch: 3,
            statefiles: vec![PathBuf::from("/sr/ha-statefile")],
            control_socket: PathBuf::from("/run/xhad/control.sock"),
            metadata_region: None,
            statefile_regions: Vec::new(),
        };
        s.save(dir.path()).unwrap();
        assert_eq!(HaState::load(dir.path()).unwrap(), Some(s.clone()));
        // blocksr: regions of a block SR round-trip too.
        let region = |offset| crate::ha_link::regions::HaVolume {
            path: PathBuf::from("/dev/sdz"),
            uuid: Uuid::new_v4(),
            offset,
            len: 4 << 20,
        };
        let b = HaState {
            metadata: PathBuf::from("/dev/sdz"),
            metadata_region: Some(region(5 << 20)),
            statefile_regions: vec![region(1 << 20)],
            ..s.clone()
        };
        b.save(dir.path()).unwrap();
        assert_eq!(HaState::load(dir.path()).unwrap(), Some(b));
        s.save(dir.path()).unwrap();
        assert_eq!(HaState::load(dir.path()).unwrap(), Some(s));
        HaState::remove(dir.path()).unwrap();
        assert_eq!(HaState::load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(FILE_NAME), "generation = 1\n").unwrap();
        assert!(HaState::load(dir.path()).is_err());
    }
}
