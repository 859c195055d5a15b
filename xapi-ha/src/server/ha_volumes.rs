//! blocksr: where an enable puts its heartbeat volumes, for
//! `server::ha_ops`: files on a `file` SR (`ha_link::files`), regions of
//! the device on a `block` SR (`ha_link::regions`). Kept apart from the
//! enable and disable sequences so they only call these functions. Also
//! the opening of a master's database on the metadata volume at start-up
//! ([`open_ha_store`]).

use std::path::PathBuf;

use sr_heartbeat::metadata::{Layout, MetaError};
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::LocalStore;

use crate::api::ha_enable::EnableRequest;
use crate::db::store::{OpenReport, Store, StoreError};
use crate::ha_link::files::{self, FileError};
use crate::ha_link::regions::{self, HaVolume};
use crate::ha_link::state::HaState;
use sr_heartbeat::io::BlockDevice;

/// The heartbeat volumes of one enable.
pub struct Volumes {
    /// Per heartbeat SR: the statefile's file, or the block SR's device.
    pub statefiles: Vec<PathBuf>,
    /// Per heartbeat SR: the statefile's region on a block SR.
    pub statefile_regions: Vec<Option<HaVolume>>,
    /// The metadata volume's file, or the first SR's device.
    pub metadata: PathBuf,
    /// The metadata volume's region on a block SR.
    pub metadata_region: Option<HaVolume>,
    pub metadata_bytes: u64,
}

/// What a failed enable must remove or free.
#[derive(Default)]
pub struct Made {
    pub files: Vec<PathBuf>,
    pub regions: Vec<HaVolume>,
}

/// Creates a statefile on every heartbeat SR and the metadata volume on the
/// first, recording each in `made` as soon as it exists.
pub fn create(
    req: &EnableRequest,
    generation: uuid::Uuid,
    made: &mut Made,
) -> Result<Volumes, FileError> {
    let mut statefiles = Vec::new();
    let mut statefile_regions = Vec::new();
    for sr in &req.srs {
        if sr.block {
            let v = regions::create_statefile(&sr.path, generation)?;
            made.regions.push(v.clone());
            statefiles.push(sr.path.clone());
            statefile_regions.push(Some(v));
        } else {
            let path = files::statefile_path(&sr.path, generation);
            files::create_statefile(&path, generation)?;
            made.files.push(path.clone());
            statefiles.push(path);
            statefile_regions.push(None);
        }
    }
    let Some(first) = req.srs.first() else {
        return Err(FileError {
            step: "create the metadata volume",
            path: PathBuf::new(),
            reason: "no heartbeat SR".into(),
        });
    };
    if first.block {
        let v = regions::create_metadata(&first.path)?;
        made.regions.push(v.clone());
        return Ok(Volumes {
            statefiles,
            statefile_regions,
            metadata: first.path.clone(),
            metadata_bytes: v.len,
            metadata_region: Some(v),
        });
    }
    let metadata = files::metadata_path(&first.path, generation);
    made.files.push(metadata.clone());
    let metadata_bytes = files::create_metadata(&metadata)?;
    Ok(Volumes {
        statefiles,
        statefile_regions,
        metadata,
        metadata_region: None,
        metadata_bytes,
    })
}

/// Opens the database on the metadata volume `state` names (a file, or a
/// region of a block SR's device).
pub fn open_store(
    state: &HaState,
    epoch: u64,
) -> Result<(Store<BlockDevice>, OpenReport), StoreError> {
    match &state.metadata_region {
        Some(v) => Store::open_region(&v.path, v.region(), epoch),
        None => Store::open_file(&state.metadata, Layout::standard(), epoch),
    }
}

/// Opens the database on the metadata volume named by `state`, under the
/// newer of the recorded epoch and the one `xhad` reports now (if it
/// answers). The volume must exist: a missing one is an error, never a new
/// empty database.
pub fn open_ha_store(state: &HaState) -> Result<LocalStore, OpenHaError> {
    if !state.metadata.exists() {
        return Err(OpenHaError::Other(format!(
            "HA is enabled ({}) but the metadata volume {} is missing",
            crate::ha_link::state::FILE_NAME,
            state.metadata.display()
        )));
    }
    let live_epoch = client::query_liveset(&state.control_socket, REQUEST_TIMEOUT)
        .filter(|r| r.pool_generation == state.generation)
        // mfail: only this host's own lock counts (another holder's epoch
        // would make this agent a second writer of that epoch).
        .filter(|r| r.master == Some(r.local_host))
        .map_or(0, |r| r.master_epoch);
    let epoch = state.epoch.max(live_epoch);
    let (store, report) = open_store(state, epoch).map_err(|e| {
        let text = format!("{}: {e}", state.metadata.display());
        match e {
            StoreError::Log(MetaError::StaleEpoch { .. }) => OpenHaError::Superseded(text),
            _ => OpenHaError::Other(text),
        }
    })?;
    tracing::info!(
        volume = %state.metadata.display(),
        epoch,
        deltas_replayed = report.deltas_replayed,
        "database opened on the metadata volume (HA is enabled)"
    );
    Ok(store)
}

/// Why a master's database could not be opened on the metadata volume.
#[derive(Debug, thiserror::Error)]
pub enum OpenHaError {
    /// Another host took the master lock under a newer epoch and the volume
    /// refuses this one's (`StaleEpoch`): this host is not the master, and
    /// its `xhad` has not said yet who is. Worth retrying once it has.
    #[error("{0} (another host became master while this agent was down)")]
    Superseded(String),
    #[error("{0}")]
    Other(String),
}

/// What a disable removes: the files of `state`, and the regions it frees.
/// A block SR's device is never in the files.
#[must_use]
pub fn leftovers(state: &HaState) -> Made {
    let mut made = Made::default();
    for path in &state.statefiles {
        let is_region = state.statefile_regions.iter().any(|v| v.path == *path)
            || state
                .metadata_region
                .as_ref()
                .is_some_and(|v| v.path == *path);
        if !is_region {
            made.files.push(path.clone());
        }
    }
    made.regions.extend(state.statefile_regions.iter().cloned());
    match &state.metadata_region {
        Some(v) => made.regions.push(v.clone()),
        None => made.files.push(state.metadata.clone()),
    }
    made
}

/// Removes the files and frees the regions of `made` (errors are logged).
pub fn remove(made: &Made) {
    files::remove_all(&made.files);
    regions::free_all(&made.regions);
}
