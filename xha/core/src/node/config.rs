//! A node's static configuration and its validation.

use std::time::Duration;

use sr_heartbeat::statefile::MAX_HOSTS_LIMIT;
use uuid::Uuid;

use crate::timeouts::Timeouts;

/// Static configuration of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Generation UUID of this HA enablement (stamped into every slot).
    pub pool_generation: Uuid,
    /// Every host's UUID, sorted ascending: index = position.
    pub hosts: Vec<Uuid>,
    /// This host's index.
    pub local: usize,
    /// Every duration, from one base T.
    pub timeouts: Timeouts,
    /// Number of statefiles (>= 1); a majority must be reachable.
    pub statefiles: usize,
    /// Seed of the node's own RNG (heartbeat jitter).
    pub seed: u64,
    /// Whether this host fences (false: maintenance, nobody fences).
    pub fencing_armed: bool,
    /// Request the master lock by itself whenever no live host holds it.
    pub master_candidate: bool,
    /// A `propose-master true` lapses this long after it was last
    /// repeated (`None`: it holds until withdrawn). The pool agent repeats
    /// it while it is master, so a dead agent's host stops holding the
    /// lock (docs/master-failover.md, "The master's agent dies").
    pub master_lease: Option<Duration>,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("hosts: {0} hosts configured, expected 1 to {MAX_HOSTS_LIMIT}")]
    HostCount(usize),
    #[error("hosts: not sorted ascending or duplicated at position {0}")]
    HostsNotSorted(usize),
    #[error("local: index {local} is not below the host count {hosts}")]
    LocalOutOfRange { local: usize, hosts: usize },
    #[error("statefiles: {0} configured, expected 1 to {MAX_STATEFILES}")]
    StatefileCount(usize),
    #[error("pool_generation: the nil UUID is not a generation")]
    NilGeneration,
}

/// Most statefiles a pool may use.
pub const MAX_STATEFILES: usize = 8;

impl Config {
    /// Check every field; nothing is built from a bad config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.hosts.len();
        if n == 0 || n > MAX_HOSTS_LIMIT {
            return Err(ConfigError::HostCount(n));
        }
        if let Some(i) = (1..n).find(|&i| self.hosts[i - 1] >= self.hosts[i]) {
            return Err(ConfigError::HostsNotSorted(i));
        }
        if self.local >= n {
            return Err(ConfigError::LocalOutOfRange {
                local: self.local,
                hosts: n,
            });
        }
        if self.statefiles == 0 || self.statefiles > MAX_STATEFILES {
            return Err(ConfigError::StatefileCount(self.statefiles));
        }
        if self.pool_generation.is_nil() {
            return Err(ConfigError::NilGeneration);
        }
        self.timeouts.check();
        Ok(())
    }
}
