//! What to start: the lab's and each host's options, checked before
//! anything is made.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use uuid::Uuid;

use crate::{LabError, MAX_HOSTS, SUPERVISOR, XHAD};

/// Per-host knobs for tests; the default is the plain lab host.
#[derive(Clone, Debug, Default)]
pub struct HostOptions {
    /// Use this statefile path instead of the lab's own (e.g. a FUSE mount
    /// of the same backing file). The lab does not format it.
    pub statefile: Option<PathBuf>,
    /// Heartbeat address instead of a free port on 127.0.0.1 (e.g. an
    /// address inside a network namespace). Every host must use the same
    /// address family.
    pub address: Option<SocketAddr>,
    /// Command prefix for the daemon, e.g. `["ip", "netns", "exec", "ns1"]`;
    /// the prefix must exec the daemon in place (the pid is the host's
    /// process group).
    pub wrapper: Vec<OsString>,
    /// Extra environment for the daemon (e.g. `RUST_LOG`).
    pub env: Vec<(OsString, OsString)>,
}

/// What lab to build.
#[derive(Clone, Debug)]
pub struct LabSpec {
    /// 1 ..= 64 hosts.
    pub hosts: usize,
    /// The base timeout T in whole seconds (10 ..= 3600, as `xhad` accepts).
    pub timeout_s: u64,
    /// Where the lab directory is made (`xe-lab-XXXXXX` inside it).
    pub base_dir: PathBuf,
    pub xhad: PathBuf,
    pub supervisor: PathBuf,
    /// Knobs for host `i` at index `i`; may be shorter than `hosts`.
    pub host_options: Vec<HostOptions>,
    /// Keep the directory after the lab stops (for debugging).
    pub keep_dir: bool,
    /// Children die with SIGKILL when the thread that started the lab ends
    /// (so even a killed `xe lab` leaves nothing behind). Start and use the
    /// lab on one thread when this is on.
    pub die_with_parent: bool,
    /// Raised from outside (Ctrl-C): every wait returns
    /// [`LabError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// `--connect-timeout-ms` of the supervisors.
    pub supervisor_connect_timeout: Duration,
    /// The pool generation (default: a new random one). Tests that format
    /// their own statefile for [`HostOptions::statefile`] set it.
    pub generation: Option<Uuid>,
}

impl LabSpec {
    /// `hosts` hosts with base timeout `timeout_s`, binaries `xhad` and
    /// `xha-supervisor` from `bin_dir`, directory in the system temp dir.
    #[must_use]
    pub fn new(hosts: usize, timeout_s: u64, bin_dir: &Path) -> LabSpec {
        LabSpec {
            hosts,
            timeout_s,
            base_dir: std::env::temp_dir(),
            xhad: bin_dir.join(XHAD),
            supervisor: bin_dir.join(SUPERVISOR),
            host_options: Vec::new(),
            keep_dir: false,
            die_with_parent: true,
            cancel: None,
            supervisor_connect_timeout: Duration::from_secs(60),
            generation: None,
        }
    }

    /// The knobs of host `i` (created on first use).
    pub fn host(&mut self, i: usize) -> &mut HostOptions {
        if self.host_options.len() <= i {
            self.host_options.resize(i + 1, HostOptions::default());
        }
        &mut self.host_options[i]
    }

    pub(crate) fn check(&self) -> Result<(), LabError> {
        if self.hosts == 0 || self.hosts > MAX_HOSTS {
            return Err(LabError::Spec(format!(
                "{} hosts: a lab has 1 to {MAX_HOSTS}",
                self.hosts
            )));
        }
        // `Timeouts::derive` is the one place the range of T is checked.
        if xha_core::Timeouts::derive(std::time::Duration::from_secs(self.timeout_s)).is_err() {
            return Err(LabError::Spec(format!(
                "timeout {} s: xhad accepts {} to {} s",
                self.timeout_s,
                xha_core::timeouts::MIN_BASE.as_secs(),
                xha_core::timeouts::MAX_BASE.as_secs(),
            )));
        }
        if self.host_options.len() > self.hosts {
            return Err(LabError::Spec(format!(
                "options for {} hosts in a lab of {}",
                self.host_options.len(),
                self.hosts
            )));
        }
        for (what, path) in [(XHAD, &self.xhad), (SUPERVISOR, &self.supervisor)] {
            if !path.is_file() {
                return Err(LabError::Spec(format!(
                    "{what} not found at {}; build it with `cargo build --release` (or `cargo build`)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}
