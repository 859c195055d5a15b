//! The files of an HA enablement: their names, and creating and removing
//! them. On a heartbeat SR (a `file` SR's directory): one statefile per SR
//! and, on the first, the metadata volume, each named with the generation
//! so two enablements never share a file. In `xhad.config_dir`: the pool
//! secret, `xhad.toml`, and (with the process launcher) the control and
//! supervisor sockets, `xhad`'s state directory, pidfiles and logs.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::metadata::Layout;
use sr_heartbeat::statefile::{MAX_HOSTS_LIMIT, STATEFILE_SIZE, Statefile};
use uuid::Uuid;

use crate::db::store::Store;

/// Bytes of the random pool secret (xhad needs 32 ..= 4096).
pub const SECRET_BYTES: usize = 64;
/// The secret's file name in `xhad.config_dir`.
pub const SECRET_FILE: &str = "pool-secret";
/// The configuration's file name in `xhad.config_dir` (the one
/// `packaging/xhad.service` names).
pub const CONFIG_FILE: &str = "xhad.toml";

/// The statefile of generation `g` in SR directory `dir`.
#[must_use]
pub fn statefile_path(dir: &Path, g: Uuid) -> PathBuf {
    dir.join(format!("ha-statefile-{g}"))
}

/// The metadata volume of generation `g` in SR directory `dir`.
#[must_use]
pub fn metadata_path(dir: &Path, g: Uuid) -> PathBuf {
    dir.join(format!("ha-metadata-{g}"))
}

/// Why a file could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {reason}", path.display())]
pub struct FileError {
    pub step: &'static str,
    pub path: PathBuf,
    pub reason: String,
}

fn fail<'a>(step: &'static str, path: &'a Path) -> impl Fn(String) -> FileError + 'a {
    move |reason| FileError {
        step,
        path: path.to_path_buf(),
        reason,
    }
}

/// Whether `dir` is a directory this process can create files in (the SR
/// reachability check, before anything is created): a probe file is made
/// and removed.
pub fn check_writable_dir(dir: &Path) -> Result<(), FileError> {
    let err = fail("write to the SR directory", dir);
    if !dir.is_dir() {
        return Err(err("not a directory".into()));
    }
    let probe = dir.join(format!(".ha-probe-{}", Uuid::new_v4()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| err(e.to_string()))?;
    std::fs::remove_file(&probe).map_err(|e| err(e.to_string()))
}

/// Creates and formats a statefile for `generation` (never over an
/// existing file), with a slot for every host the format allows, so hosts
/// can join later.
pub fn create_statefile(path: &Path, generation: Uuid) -> Result<(), FileError> {
    let err = fail("create the statefile", path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    file.set_len(STATEFILE_SIZE)
        .map_err(|e| err(e.to_string()))?;
    drop(file);
    let dev = BlockDevice::open(path, OpenMode::ReadWrite).map_err(|e| err(e.to_string()))?;
    Statefile::format(dev, generation, MAX_HOSTS_LIMIT).map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Creates and formats the metadata volume (the standard 256 MiB layout,
/// sparse on a file SR). Refuses an existing file.
pub fn create_metadata(path: &Path) -> Result<u64, FileError> {
    let err = fail("create the metadata volume", path);
    if path.exists() {
        return Err(err("exists already".into()));
    }
    let layout = Layout::standard();
    Store::open_file(path, layout, 0).map_err(|e| err(e.to_string()))?;
    Ok(layout.volume_bytes)
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file, synced
/// and renamed, so the file is either the old one or the whole new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let err = fail("write", path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(e.to_string()))?;
    f.write_all(bytes).map_err(|e| err(e.to_string()))?;
    f.sync_all().map_err(|e| err(e.to_string()))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// Writes a fresh random pool secret (mode 0600).
pub fn write_secret(path: &Path) -> Result<(), FileError> {
    write_atomic(path, &random_secret())
}

/// A fresh random heartbeat secret ([`SECRET_BYTES`]), handed to every
/// host of the pool (`ha_link::arm`).
#[must_use]
pub fn random_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut secret);
    secret
}

/// Makes `dir` (and its parents), private to the owner.
pub fn make_private_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("make the directory", dir)(e.to_string()))
}

/// Removes the files in `paths`, logging (not failing on) any that cannot
/// be removed; a missing file is fine.
pub fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let result = if p.is_dir() {
            std::fs::remove_dir_all(p)
        } else {
            std::fs::remove_file(p)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %p.display(), error = %e, "could not remove"),
        }
    }
}

/// The first line of every `xhad.toml` the agent writes (`xhad_config`),
/// so a leftover is recognised as the agent's own.
pub const CONFIG_MARK: &str = "# Written by xapi-ha at pool.enable_ha";

/// The SR files named by an `xhad.toml` the agent wrote: its statefiles
/// and, beside the first, the metadata volume of the same generation.
/// Empty when the text is not the agent's or does not parse.
#[must_use]
pub fn sr_files_of_config(text: &str) -> Vec<PathBuf> {
    if !text.starts_with(CONFIG_MARK) {
        return Vec::new();
    }
    let Ok(v) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let generation = v
        .get("pool-generation")
        .and_then(|g| g.as_str())
        .and_then(|g| Uuid::parse_str(g).ok());
    let statefiles: Vec<PathBuf> = v
        .get("statefiles")
        .and_then(|s| s.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    let mut out = statefiles.clone();
    if let (Some(g), Some(dir)) = (generation, statefiles.first().and_then(|p| p.parent())) {
        out.push(metadata_path(dir, g));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sr_files_of_a_written_config_are_found() {
        use crate::ha_link::xhad_config::{Fencing, XhadConfig, text};
        let g = Uuid::from_u128(3);
        let c = XhadConfig {
            generation: g,
            local: Uuid::from_u128(1),
            timeout_s: 10,
            secret_file: PathBuf::from("/etc/xhad/pool-secret"),
            statefiles: vec![
                statefile_path(Path::new("/sr/a"), g),
                statefile_path(Path::new("/sr/b"), g),
            ],
            statefile_regions: Vec::new(),
            control_socket: None,
            state_dir: None,
            fencing: Fencing::Linux,
            hosts: vec![(Uuid::from_u128(1), "127.0.0.1:694".parse().unwrap())],
        };
        let t = text(&c).unwrap();
        assert_eq!(
            sr_files_of_config(&t),
            vec![
                statefile_path(Path::new("/sr/a"), g),
                statefile_path(Path::new("/sr/b"), g),
                metadata_path(Path::new("/sr/a"), g),
            ]
        );
        // Not the agent's: nothing.
        assert!(sr_files_of_config(&t.replacen("# Written", "# written", 1)).is_empty());
        assert!(sr_files_of_config("garbage").is_empty());
    }

    #[test]
    fn statefile_and_metadata_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let g = Uuid::new_v4();
        check_writable_dir(dir.path()).unwrap();
        let sf = statefile_path(dir.path(), g);
        create_statefile(&sf, g).unwrap();
        let dev = BlockDevice::open(&sf, OpenMode::ReadOnly).unwrap();
        assert_eq!(Statefile::open(dev).unwrap().generation(), g);
        assert!(create_statefile(&sf, g).is_err(), "never over a file");
        let md = metadata_path(dir.path(), g);
        assert_eq!(
            create_metadata(&md).unwrap(),
            Layout::standard().volume_bytes
        );
        assert!(create_metadata(&md).is_err());
        // Only the two files (the probe is gone).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
        remove_all(&[sf.clone(), md.clone(), dir.path().join("missing")]);
        assert!(!sf.exists() && !md.exists());
    }

    #[test]
    fn a_missing_or_unwritable_sr_directory_is_refused() {
        assert!(check_writable_dir(Path::new("/nonexistent/sr")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_writable_dir(&file).is_err());
    }

    #[test]
    fn the_secret_is_private_and_passes_xhads_checks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(SECRET_FILE);
        write_secret(&p).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        xha::daemon::secret::read(&p).unwrap();
    }
}
