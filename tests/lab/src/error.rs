//! The lab's errors: each names the step and, when one is involved, the host.

use std::path::PathBuf;
use std::time::Duration;

use uuid::Uuid;

/// Why a lab step failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The [`LabSpec`](super::LabSpec) asks for something the lab cannot do.
    #[error("lab spec: {0}")]
    Spec(String),
    /// A file or directory of the lab could not be made.
    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The shared statefile could not be formatted.
    #[error("format statefile {path}: {reason}")]
    Statefile { path: PathBuf, reason: String },
    /// A program could not be started.
    #[error("start {program} for host {host} ({path}): {source}")]
    Spawn {
        host: usize,
        program: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A host's daemon exited while the step needed it running.
    #[error(
        "{step}: host {host} ({uuid}): xhad exited ({status}); last lines of its log:\n{log_tail}"
    )]
    DaemonExited {
        step: String,
        host: usize,
        uuid: Uuid,
        status: String,
        log_tail: String,
    },
    /// A host's supervisor exited while the step needed it running.
    #[error(
        "{step}: host {host} ({uuid}): xha-supervisor exited ({status}); last lines of its log:\n{log_tail}"
    )]
    SupervisorExited {
        step: String,
        host: usize,
        uuid: Uuid,
        status: String,
        log_tail: String,
    },
    /// The control socket could not be reached, or answered nonsense.
    #[error("{request} to host {host} ({uuid}): {reason}")]
    Control {
        host: usize,
        uuid: Uuid,
        request: &'static str,
        reason: String,
    },
    /// The daemon refused a request.
    #[error("{request} to host {host} ({uuid}) refused: {code}: {message}")]
    Refused {
        host: usize,
        uuid: Uuid,
        request: &'static str,
        code: String,
        message: String,
    },
    /// A wait ran out.
    #[error("{step}: not done after {waited:?}: {detail}")]
    Timeout {
        step: String,
        waited: Duration,
        detail: String,
    },
    /// The cancel flag was raised (Ctrl-C).
    #[error("{step}: interrupted")]
    Cancelled { step: String },
    /// A host number outside the lab.
    #[error("no host {host}: the lab has {hosts} hosts")]
    NoSuchHost { host: usize, hosts: usize },
    /// The host's daemon already exited, so there is no process to signal.
    #[error("host {host} ({uuid}): xhad already exited")]
    HostGone { host: usize, uuid: Uuid },
    /// `kill(2)` failed.
    #[error("signal {signal} to host {host}: {errno}")]
    Signal {
        host: usize,
        signal: &'static str,
        errno: nix::errno::Errno,
    },
    /// A pool agent (`xapi-ha`) could not be started.
    #[error("host {host}: {source}")]
    Agent {
        host: usize,
        #[source]
        source: crate::agent::AgentError,
    },
    /// An API call to a pool agent failed.
    #[error(transparent)]
    Rpc(#[from] crate::rpc::RpcError),
    /// `Lab::stop` stopped everything, but not every process cleanly.
    #[error("stop: {0}")]
    Unclean(String),
}

impl LabError {
    /// Whether this error comes from the cancel flag.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        matches!(self, LabError::Cancelled { .. })
    }
}
