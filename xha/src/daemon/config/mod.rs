//! The daemon's TOML configuration file, validated into [`Config`].
//!
//! Every mistake is one [`ConfigError`] that names the key (`hosts[2].address`)
//! and maps to exit code 7 (invalid config) or 6 (cannot read config). The
//! keys are documented in `docs/daemon.md`; `packaging/xhad.toml.example` is
//! a complete sample that the tests parse.
//!
//! Relative paths are resolved against the directory of the configuration
//! file, so a configuration and the files it names can move together (the
//! lab writes them into one temporary directory).
//!
//! Parts: this file holds the validated configuration and reads the file;
//! `error` the refusals; `fields` the rules for each key; `tests` one test
//! per rule. The pool secret's checks are in `secret`, the checks that need
//! the files themselves (a statefile listed twice under two names) in
//! `startup`.

mod error;
mod fields;
#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use fields::{parse_address, regions_meet};

use error::syntax_error;
use fields::{
    RawConfig, check_families, parse_boot_join_timeout, parse_hosts, parse_master_lease,
    parse_statefiles, parse_timeout, parse_uuid, parse_watchdog, resolve,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sr_heartbeat::io::Region;
use uuid::Uuid;

pub use super::secret::{PoolSecret, SECRET_MAX_BYTES, SECRET_MIN_BYTES, SECRET_MIN_DISTINCT};
use crate::core::{Config as CoreConfig, Timeouts};

/// The heartbeat port when an address has none (XenServer's).
pub const DEFAULT_PORT: u16 = 694;
/// The boot-join timeout, in multiples of T, when the file has none.
pub const DEFAULT_BOOT_JOIN_TIMEOUT_T: u32 = 10;
/// Longest boot-join timeout accepted (a day).
pub const MAX_BOOT_JOIN_TIMEOUT_S: u64 = 86_400;
/// Shortest and longest `master-lease-ms` accepted.
pub const MIN_MASTER_LEASE_MS: u64 = 500;
pub const MAX_MASTER_LEASE_MS: u64 = 3_600_000;
/// Most statefiles (a majority of them must be reachable); the core's limit.
pub use crate::core::node::MAX_STATEFILES;
/// Largest configuration file read.
pub const CONFIG_MAX_BYTES: u64 = 1 << 20;
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/xhad/control.sock";
/// Default supervisor socket.
pub const DEFAULT_SUPERVISOR_SOCKET: &str = "/run/xhad/supervisor.sock";
/// Default watchdog device.
pub const DEFAULT_WATCHDOG_DEVICE: &str = "/dev/watchdog";
/// Default directory for the daemon's small persistent state (incarnation
/// counter, fence marker).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/xhad";

/// One configured host. Hosts are kept sorted by UUID: `index` is the
/// position in that order, the index every bitmap and tie-break uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub uuid: Uuid,
    pub index: usize,
    /// Where its heartbeats are sent (and, for this host, the bind address).
    pub address: SocketAddr,
}

/// The watchdog backend (see `daemon::watchdog`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchdogConfig {
    /// A Linux watchdog device (`/dev/watchdog`).
    Linux { device: PathBuf },
    /// The external `xha-supervisor` process listening on `socket`.
    Supervisor { socket: PathBuf },
    /// No watchdog: development only, needs `allow-no-watchdog = true`.
    None,
}

/// What fencing does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FenceAction {
    /// Immediate `reboot(RB_AUTOBOOT)`.
    Reboot,
    /// Kill the host's process group (the lab).
    KillHost,
}

/// A validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub pool_generation: Uuid,
    /// This host.
    pub local_uuid: Uuid,
    pub local_index: usize,
    /// Every host, sorted by UUID (`hosts[i].index == i`).
    pub hosts: Vec<Host>,
    /// Every duration, derived from the base timeout T.
    pub timeouts: Timeouts,
    /// A host not in the liveset this long after start-up exits 12
    /// (`boot-join-timeout`, default 10 T).
    pub boot_join_timeout: Duration,
    pub statefiles: Vec<PathBuf>,
    /// For each statefile (same index), the region of its device it is, when
    /// the entry gives `offset` and `length` (a block SR's statefile
    /// volume); `None`: the whole file or device.
    pub statefile_regions: Vec<Option<Region>>,
    pub secret_file: PathBuf,
    pub watchdog: WatchdogConfig,
    pub fence_action: FenceAction,
    pub control_socket: PathBuf,
    /// Users besides root allowed on the control socket (`control-uids`,
    /// e.g. the pool agent's); everyone else is refused by peer credentials.
    pub control_uids: Vec<u32>,
    pub state_dir: PathBuf,
    /// Ask for the master lock by itself whenever no live host holds it
    /// (`master-candidate`, default false: the pool agent proposes instead).
    pub master_candidate: bool,
    /// A `propose-master true` lapses this long after it was last repeated
    /// (`master-lease-ms`; absent: it holds until withdrawn). The pool
    /// agent repeats it every second while it is master or proposes.
    pub master_lease: Option<Duration>,
}

/// A configuration together with what it points at that the daemon needs
/// before doing anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub secret: PoolSecret,
}

impl Config {
    /// Parse and validate configuration text. Relative paths are resolved
    /// against `base_dir`. Reads no file.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| syntax_error(text, &e))?;
        let pool_generation = parse_uuid("pool-generation", &raw.pool_generation)?;
        let local_uuid = parse_uuid("host", &raw.host)?;
        let timeouts = parse_timeout(raw.timeout)?;
        let boot_join_timeout = parse_boot_join_timeout(raw.boot_join_timeout, timeouts.base)?;
        let hosts = parse_hosts(&raw.hosts)?;
        let local_index = hosts
            .iter()
            .position(|h| h.uuid == local_uuid)
            .ok_or(ConfigError::LocalHostMissing { uuid: local_uuid })?;
        check_families(&raw.hosts, &hosts[local_index])?;
        let (statefiles, statefile_regions) = parse_statefiles(&raw.statefiles, base_dir)?
            .into_iter()
            .unzip();
        let secret_file = resolve("secret-file", &raw.secret_file, base_dir)?;
        let watchdog = parse_watchdog(raw.watchdog, base_dir)?;
        let control_socket = match &raw.control_socket {
            Some(p) => resolve("control-socket", p, base_dir)?,
            None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
        };
        let state_dir = match &raw.state_dir {
            Some(p) => resolve("state-dir", p, base_dir)?,
            None => PathBuf::from(DEFAULT_STATE_DIR),
        };
        Ok(Config {
            pool_generation,
            local_uuid,
            local_index,
            hosts,
            timeouts,
            boot_join_timeout,
            statefiles,
            statefile_regions,
            secret_file,
            watchdog,
            fence_action: raw.fence_action.unwrap_or(FenceAction::Reboot),
            control_socket,
            control_uids: raw.control_uids.unwrap_or_default(),
            state_dir,
            master_candidate: raw.master_candidate.unwrap_or(false),
            master_lease: parse_master_lease(raw.master_lease_ms)?,
        })
    }

    /// Read, parse and validate the configuration file at `path`, then read
    /// the pool secret it names.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = read_config_text(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = Config::parse(&text, base)?;
        let secret = config.read_secret()?;
        Ok(Loaded { config, secret })
    }

    /// Read the pool secret named by `secret-file`, refusing a file that is
    /// not regular, is exposed to other users, or holds no random key
    /// (`daemon::secret`).
    pub fn read_secret(&self) -> Result<PoolSecret, ConfigError> {
        super::secret::read(&self.secret_file)
    }

    /// This host's entry.
    #[must_use]
    pub fn local(&self) -> &Host {
        &self.hosts[self.local_index]
    }

    /// The configuration of the pure core. `seed` seeds its jitter RNG.
    #[must_use]
    pub fn core_config(&self, seed: u64) -> CoreConfig {
        CoreConfig {
            pool_generation: self.pool_generation,
            hosts: self.hosts.iter().map(|h| h.uuid).collect(),
            local: self.local_index,
            timeouts: self.timeouts,
            statefiles: self.statefiles.len(),
            seed,
            fencing_armed: true,
            master_candidate: self.master_candidate,
            master_lease: self.master_lease,
        }
    }
}

fn read_config_text(path: &Path) -> Result<String, ConfigError> {
    let read_err = |e: std::io::Error| ConfigError::ReadConfig {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    use std::io::Read;
    // As for the secret: a FIFO must not hang `--check`.
    let (file, meta) = super::secret::open_regular(path).map_err(|e| match e {
        super::secret::OpenRegularError::Io(e) => read_err(e),
        super::secret::OpenRegularError::NotRegular(kind) => ConfigError::ReadConfig {
            path: path.to_path_buf(),
            reason: format!("{kind}, not a regular file"),
        },
    })?;
    if meta.len() > CONFIG_MAX_BYTES {
        return Err(ConfigError::ConfigTooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    file.take(CONFIG_MAX_BYTES)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        line: 0,
        column: 0,
        text: String::new(),
        message: format!("the file is not UTF-8: {e}"),
    })
}
