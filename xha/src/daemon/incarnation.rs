//! The heartbeat incarnation: a number that grows with every daemon start.
//!
//! Peers reject packets whose `(incarnation, sequence)` is not newer than the
//! last one they accepted (see `daemon::wire`). The incarnation of a new start
//! is `max(previous + 1, wall-clock microseconds)`, written durably (temporary
//! file, fsync, rename, fsync of the directory) before the first packet goes
//! out: the persisted value keeps it growing even if the wall clock steps
//! back, and the wall clock keeps it growing if the state directory was wiped.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// File name inside the state directory.
pub const FILE_NAME: &str = "incarnation";

/// Why the incarnation could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum IncarnationError {
    /// The state file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
    /// The state file does not hold a decimal number.
    #[error("{path}: expected a decimal number, found {found:?}")]
    Corrupt { path: String, found: String },
    /// The previous incarnation is `u64::MAX`: no greater value exists.
    #[error("{path}: incarnation counter exhausted")]
    Exhausted { path: String },
}

/// Choose, persist and return this start's incarnation, given the wall
/// clock in microseconds since the epoch.
pub fn next(state_dir: &Path, wall_clock_us: u64) -> Result<u64, IncarnationError> {
    let path = state_dir.join(FILE_NAME);
    let name = path.display().to_string();
    let io_err = |source| IncarnationError::Io {
        path: name.clone(),
        source,
    };
    let previous = match fs::read_to_string(&path) {
        Ok(text) => Some(
            text.trim()
                .parse::<u64>()
                .map_err(|_| IncarnationError::Corrupt {
                    path: name.clone(),
                    found: text.chars().take(40).collect(),
                })?,
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(e)),
    };
    let next = match previous {
        Some(p) => p
            .checked_add(1)
            .ok_or(IncarnationError::Exhausted { path: name.clone() })?
            .max(wall_clock_us),
        None => wall_clock_us.max(1),
    };
    fs::create_dir_all(state_dir).map_err(io_err)?;
    let tmp = state_dir.join(format!("{FILE_NAME}.tmp"));
    let mut f = File::create(&tmp).map_err(io_err)?;
    writeln!(f, "{next}").map_err(io_err)?;
    f.sync_all().map_err(io_err)?;
    fs::rename(&tmp, &path).map_err(io_err)?;
    File::open(state_dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err)?;
    Ok(next)
}

/// The wall clock in microseconds since the epoch (0 if it is before it).
#[must_use]
pub fn wall_clock_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_even_when_the_clock_steps_back() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        assert_eq!(next(&state, 1000).unwrap(), 1000);
        assert_eq!(next(&state, 5000).unwrap(), 5000);
        // Clock stepped back: still greater than before.
        assert_eq!(next(&state, 10).unwrap(), 5001);
        assert_eq!(fs::read_to_string(state.join(FILE_NAME)).unwrap(), "5001\n");
    }

    #[test]
    fn corrupt_or_exhausted_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(matches!(
            next(dir.path(), 1),
            Err(IncarnationError::Corrupt { .. })
        ));
        fs::write(dir.path().join(FILE_NAME), u64::MAX.to_string()).unwrap();
        assert!(matches!(
            next(dir.path(), 1),
            Err(IncarnationError::Exhausted { .. })
        ));
        assert!(wall_clock_us() > 1_600_000_000_000_000);
    }
}
