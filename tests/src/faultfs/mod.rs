//! Per-host storage faults for end-to-end tests: a one-file FUSE file system.
//!
//! Every simulated host reaches the shared statefile through its own
//! `faultfs` mount of the same backing file. A test switches one mount to
//! `error`, `hang` or `delay` while the other hosts keep reaching the file
//! normally, which a loop device cannot do.
//!
//! - [`server`]: the file system itself, run by the `faultfs` binary.
//! - [`FaultFs`]: the test side: spawns the binary, switches modes over its
//!   control socket, and tears the mount down on drop, even while hung.
//!
//! See `docs/testing-faults.md` for the modes, the control protocol and the
//! cleanup order.

mod client;
mod mounts;
pub mod server;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use client::{FaultFs, find_bin, fuse_available};

/// Name of the one file a mount exposes unless told otherwise.
pub const DEFAULT_FILE_NAME: &str = "statefile";

/// What a mount does with reads, writes and fsyncs of its file.
///
/// Lookups, `stat`, `open` and `close` are always answered at once, so a test
/// can open the file and tear the mount down in every mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the backing file.
    Ok,
    /// Answer every request with `EIO`.
    Error,
    /// Hold every request unanswered until the mode changes; none is lost.
    Hang,
    /// Forward each request this long after it arrived.
    Delay(Duration),
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Ok => f.write_str("ok"),
            Mode::Error => f.write_str("error"),
            Mode::Hang => f.write_str("hang"),
            Mode::Delay(d) => write!(f, "delay {}", d.as_millis()),
        }
    }
}

impl FromStr for Mode {
    type Err = FaultFsError;

    /// Parses `ok`, `error`, `hang` or `delay MS`.
    fn from_str(s: &str) -> Result<Mode, FaultFsError> {
        let bad = || FaultFsError::BadMode(s.to_owned());
        let mut words = s.split_whitespace();
        let mode = match words.next() {
            Some("ok") => Mode::Ok,
            Some("error") => Mode::Error,
            Some("hang") => Mode::Hang,
            Some("delay") => {
                let ms: u64 = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
                Mode::Delay(Duration::from_millis(ms))
            }
            _ => return Err(bad()),
        };
        match words.next() {
            None => Ok(mode),
            Some(_) => Err(bad()),
        }
    }
}

/// Counters of one mount, as answered to `stats`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The mode now in force.
    pub mode: Mode,
    /// Read requests received.
    pub reads: u64,
    /// Write requests received.
    pub writes: u64,
    /// Fsync requests received.
    pub fsyncs: u64,
    /// Requests answered with an error (injected or from the backing file).
    pub errors: u64,
    /// Requests held unanswered now (`hang`).
    pub held: u64,
    /// Requests waiting for their delay to pass now.
    pub delayed: u64,
}

impl Stats {
    /// No request seen yet, in `mode`.
    #[must_use]
    pub fn zero(mode: Mode) -> Stats {
        Stats {
            mode,
            reads: 0,
            writes: 0,
            fsyncs: 0,
            errors: 0,
            held: 0,
            delayed: 0,
        }
    }
}

impl fmt::Display for Stats {
    /// The `stats` answer without its leading `ok`; the mode comes last
    /// because `delay MS` has a space in it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reads={} writes={} fsyncs={} errors={} held={} delayed={} mode={}",
            self.reads, self.writes, self.fsyncs, self.errors, self.held, self.delayed, self.mode
        )
    }
}

impl FromStr for Stats {
    type Err = FaultFsError;

    fn from_str(s: &str) -> Result<Stats, FaultFsError> {
        let bad = || FaultFsError::BadReply(s.to_owned());
        let (counters, mode) = s.split_once("mode=").ok_or_else(bad)?;
        let mut stats = Stats::zero(mode.parse().map_err(|_| bad())?);
        for word in counters.split_whitespace() {
            let (key, value) = word.split_once('=').ok_or_else(bad)?;
            let value: u64 = value.parse().map_err(|_| bad())?;
            match key {
                "reads" => stats.reads = value,
                "writes" => stats.writes = value,
                "fsyncs" => stats.fsyncs = value,
                "errors" => stats.errors = value,
                "held" => stats.held = value,
                "delayed" => stats.delayed = value,
                _ => {} // Newer servers may count more.
            }
        }
        Ok(stats)
    }
}

/// Why a faultfs operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FaultFsError {
    /// A mode that is not `ok`, `error`, `hang` or `delay MS`.
    #[error("bad mode {0:?}: expected ok, error, hang or delay MS")]
    BadMode(String),
    /// The backing file could not be opened or is not a regular file.
    #[error("backing file {path}: {source}")]
    Backing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Mounting failed (not root and no `fusermount3`, no `/dev/fuse`, ...).
    #[error("mount {dir}: {source}")]
    Mount {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The control socket could not be bound, reached, written or read.
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server answered something other than `ok ...`.
    #[error("unexpected control reply {0:?}")]
    BadReply(String),
    /// The `faultfs` process could not be started or waited for.
    #[error("faultfs process: {0}")]
    Process(#[source] std::io::Error),
    /// The server could not start one of its threads.
    #[error("faultfs thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The `faultfs` process exited before the mount was ready.
    #[error("faultfs exited before the mount was ready: {0}")]
    Exited(std::process::ExitStatus),
    /// The mount did not become ready in time.
    #[error("{0} not ready after {1:?}")]
    NotReady(PathBuf, Duration),
    /// Tearing the mount down left something behind.
    #[error("teardown of {dir}: {what}")]
    Teardown { dir: PathBuf, what: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips() {
        for mode in [
            Mode::Ok,
            Mode::Error,
            Mode::Hang,
            Mode::Delay(Duration::from_millis(300)),
        ] {
            assert_eq!(mode.to_string().parse::<Mode>().unwrap(), mode);
        }
        for bad in ["", "slow", "delay", "delay x", "ok ok", "delay 3 4"] {
            assert!(bad.parse::<Mode>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stats_round_trip() {
        let stats = Stats {
            mode: Mode::Delay(Duration::from_millis(5)),
            reads: 1,
            writes: 2,
            fsyncs: 3,
            errors: 4,
            held: 5,
            delayed: 6,
        };
        assert_eq!(stats.to_string().parse::<Stats>().unwrap(), stats);
        assert!("reads=1".parse::<Stats>().is_err());
    }
}
