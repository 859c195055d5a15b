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
//! Longer than 600 lines because of its tests (the second half): one per
//! rule, beside the rules. The pool secret's checks are in `secret`, the
//! checks that need the files themselves (a statefile listed twice under
//! two names) in `startup`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sr_heartbeat::statefile::MAX_HOSTS_LIMIT;
use uuid::Uuid;

use super::exit::ExitCode;
pub use super::secret::{PoolSecret, SECRET_MAX_BYTES, SECRET_MIN_BYTES, SECRET_MIN_DISTINCT};
use crate::core::timeouts::{MAX_BASE, MIN_BASE};
use crate::core::{Config as CoreConfig, Timeouts};

/// The heartbeat port when an address has none (XenServer's).
pub const DEFAULT_PORT: u16 = 694;
/// The boot-join timeout, in multiples of T, when the file has none.
pub const DEFAULT_BOOT_JOIN_TIMEOUT_T: u32 = 10;
/// Longest boot-join timeout accepted (a day).
pub const MAX_BOOT_JOIN_TIMEOUT_S: u64 = 86_400;
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
}

/// A configuration together with what it points at that the daemon needs
/// before doing anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub config: Config,
    pub secret: PoolSecret,
}

/// Why a configuration was refused. Each names the key or file at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    ReadConfig { path: PathBuf, reason: String },
    /// The configuration file is larger than [`CONFIG_MAX_BYTES`].
    #[error("config file {path} is {len} bytes, more than the {CONFIG_MAX_BYTES} accepted")]
    ConfigTooLarge { path: PathBuf, len: u64 },
    /// TOML syntax, unknown key, missing key or a value of the wrong type
    /// (the message from the TOML parser, with the offending line).
    #[error("line {line}, column {column} (`{text}`): {message}")]
    Syntax {
        line: usize,
        column: usize,
        text: String,
        message: String,
    },
    /// A UUID-valued key does not hold a UUID.
    #[error("{key}: {value:?} is not a UUID: {reason}")]
    BadUuid {
        key: String,
        value: String,
        reason: String,
    },
    /// A UUID-valued key holds the nil UUID.
    #[error("{key}: the nil UUID is not allowed")]
    NilUuid { key: String },
    /// `timeout` is outside the accepted range.
    #[error("timeout: {value} s is outside {min}..={max} s")]
    TimeoutOutOfRange { value: i64, min: u64, max: u64 },
    /// `boot-join-timeout` is outside T ..= [`MAX_BOOT_JOIN_TIMEOUT_S`].
    #[error(
        "boot-join-timeout: {value} s is outside {min}..={MAX_BOOT_JOIN_TIMEOUT_S} s (at least the base timeout T)"
    )]
    BootJoinTimeoutOutOfRange { value: i64, min: u64 },
    /// `hosts` is empty or longer than 64 entries.
    #[error("hosts: {count} hosts configured, expected 1 to {MAX_HOSTS_LIMIT}")]
    HostCount { count: usize },
    /// Two entries of `hosts` have the same UUID.
    #[error("{key}: host {uuid} is already listed at {first}")]
    DuplicateHost {
        key: String,
        uuid: Uuid,
        first: String,
    },
    /// Two entries of `hosts` have the same address.
    #[error("{key}: address {address} is already used by {first}")]
    DuplicateAddress {
        key: String,
        address: SocketAddr,
        first: String,
    },
    /// An address is not `IP`, `IP:port` or `[IPv6]:port`, or cannot be
    /// sent to (port 0, unspecified or multicast address).
    #[error("{key}: {value:?} is not a usable heartbeat address: {reason}")]
    BadAddress {
        key: String,
        value: String,
        reason: String,
    },
    /// `host` is not one of `hosts[*].uuid`.
    #[error("host: {uuid} is not in the hosts list")]
    LocalHostMissing { uuid: Uuid },
    /// `statefiles` is empty or has more than [`MAX_STATEFILES`] entries.
    #[error("statefiles: {count} paths configured, expected 1 to {MAX_STATEFILES}")]
    StatefileCount { count: usize },
    /// A path-valued key is empty.
    #[error("{key}: the path is empty")]
    EmptyPath { key: String },
    /// The same statefile is listed twice.
    #[error("{key}: {path} is already listed at {first}")]
    DuplicateStatefile {
        key: String,
        path: PathBuf,
        first: String,
    },
    /// Two statefile entries name one file (`sf` and `./sf`, a symlink, a
    /// hard link, a bind mount, two nodes of one device): it would count
    /// twice towards the majority. Found at start-up by device and inode.
    #[error(
        "{key}: {path} is the same file as {first} ({first_path}), {identity}; one statefile counted twice would fake a majority"
    )]
    SameStatefile {
        key: String,
        path: PathBuf,
        first: String,
        first_path: PathBuf,
        identity: String,
    },
    /// The watchdog table has a key that the chosen backend does not use.
    #[error("watchdog.{key}: not used by backend \"{backend}\"")]
    WatchdogKeyNotAllowed { key: &'static str, backend: String },
    /// `watchdog.backend = "none"` without the explicit opt-in.
    #[error(
        "watchdog.backend: \"none\" leaves a hung host running; it requires watchdog.allow-no-watchdog = true"
    )]
    NoWatchdogNotAllowed,
    /// The pool secret file could not be read.
    #[error("secret-file: cannot read {path}: {reason}")]
    ReadSecret { path: PathBuf, reason: String },
    /// The pool secret path is not a regular file (a FIFO, a directory, a
    /// device): refused before it is opened, so a FIFO cannot hang start-up.
    #[error("secret-file: {path} is {kind}, not a regular file")]
    SecretNotRegular { path: PathBuf, kind: &'static str },
    /// The pool secret file can be read or written by group or others.
    #[error(
        "secret-file: {path} has mode {mode:o}, {why}: anyone who reads the pool secret can forge heartbeats (chmod 600)"
    )]
    SecretExposed {
        path: PathBuf,
        mode: u32,
        why: &'static str,
    },
    /// The pool secret file is owned by another user than the daemon's
    /// (or root): that user could read it or change its mode.
    #[error(
        "secret-file: {path} is owned by uid {uid}; only root or the daemon's user (uid {euid}) may own the pool secret"
    )]
    SecretOwner { path: PathBuf, uid: u32, euid: u32 },
    /// The pool secret is obviously not random (see `daemon::secret`).
    #[error("secret-file: {path} is not a random key: {reason}")]
    SecretWeak { path: PathBuf, reason: String },
    /// The pool secret is too short to be a safe HMAC key.
    #[error("secret-file: {path} holds {len} bytes, at least {SECRET_MIN_BYTES} are required")]
    SecretTooShort { path: PathBuf, len: usize },
    /// The pool secret file is suspiciously large.
    #[error("secret-file: {path} holds {len} bytes, at most {SECRET_MAX_BYTES} are accepted")]
    SecretTooLong { path: PathBuf, len: usize },
}

impl ConfigError {
    /// The daemon's exit code for this error: 6 when a file could not be
    /// read, 7 for everything wrong inside it.
    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ConfigError::ReadConfig { .. } | ConfigError::ReadSecret { .. } => {
                ExitCode::CannotReadConfig
            }
            _ => ExitCode::InvalidConfig,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    pool_generation: String,
    host: String,
    timeout: Option<i64>,
    boot_join_timeout: Option<i64>,
    secret_file: PathBuf,
    statefiles: Vec<PathBuf>,
    fence_action: Option<FenceAction>,
    control_socket: Option<PathBuf>,
    control_uids: Option<Vec<u32>>,
    state_dir: Option<PathBuf>,
    master_candidate: Option<bool>,
    watchdog: Option<RawWatchdog>,
    hosts: Vec<RawHost>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Backend {
    Linux,
    Supervisor,
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWatchdog {
    backend: Backend,
    device: Option<PathBuf>,
    socket: Option<PathBuf>,
    allow_no_watchdog: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHost {
    uuid: String,
    address: String,
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
        let statefiles = parse_statefiles(&raw.statefiles, base_dir)?;
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
            secret_file,
            watchdog,
            fence_action: raw.fence_action.unwrap_or(FenceAction::Reboot),
            control_socket,
            control_uids: raw.control_uids.unwrap_or_default(),
            state_dir,
            master_candidate: raw.master_candidate.unwrap_or(false),
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

/// Condense a TOML error into one line that shows the offending line (and
/// so its key).
fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return ConfigError::Syntax {
            line: 0,
            column: 0,
            text: String::new(),
            message,
        };
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.len() - line_start + 1;
    let line_text = text
        .get(line_start..)
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    let mut shown: String = line_text.chars().take(80).collect();
    if shown.len() < line_text.len() {
        shown.push_str("...");
    }
    ConfigError::Syntax {
        line,
        column,
        text: shown,
        message,
    }
}

fn parse_uuid(key: &str, value: &str) -> Result<Uuid, ConfigError> {
    let uuid = Uuid::parse_str(value.trim()).map_err(|e| ConfigError::BadUuid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if uuid.is_nil() {
        return Err(ConfigError::NilUuid {
            key: key.to_owned(),
        });
    }
    Ok(uuid)
}

fn parse_timeout(value: Option<i64>) -> Result<Timeouts, ConfigError> {
    let Some(value) = value else {
        return Ok(Timeouts::default());
    };
    let (min, max) = (MIN_BASE.as_secs(), MAX_BASE.as_secs());
    let out_of_range = ConfigError::TimeoutOutOfRange { value, min, max };
    // `Timeouts::derive` is the one place the range is checked.
    let secs = u64::try_from(value).map_err(|_| out_of_range.clone())?;
    Timeouts::derive(Duration::from_secs(secs)).map_err(|_| out_of_range)
}

fn parse_boot_join_timeout(value: Option<i64>, base: Duration) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(base * DEFAULT_BOOT_JOIN_TIMEOUT_T);
    };
    let min = base.as_secs();
    let secs = u64::try_from(value)
        .ok()
        .filter(|s| (min..=MAX_BOOT_JOIN_TIMEOUT_S).contains(s))
        .ok_or(ConfigError::BootJoinTimeoutOutOfRange { value, min })?;
    Ok(Duration::from_secs(secs))
}

/// Parse `IP`, `IP:port` or `[IPv6]:port` (no host names: a heartbeat must
/// not depend on a name service that may be part of the failure).
pub fn parse_address(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |reason: &str| ConfigError::BadAddress {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let v = value.trim();
    let addr = if let Ok(ip) = v.parse::<IpAddr>() {
        SocketAddr::new(ip, DEFAULT_PORT)
    } else if let Ok(sa) = v.parse::<SocketAddr>() {
        sa
    } else if v.starts_with('[') && v.ends_with(']') {
        let ip: IpAddr = v[1..v.len() - 1]
            .parse()
            .map_err(|_| bad("expected an IPv6 address inside [ ]"))?;
        SocketAddr::new(ip, DEFAULT_PORT)
    } else {
        return Err(bad(
            "expected an IP address, IP:port or [IPv6]:port (host names are not accepted)",
        ));
    };
    if addr.port() == 0 {
        return Err(bad("port 0 cannot receive heartbeats"));
    }
    if let Some(reason) = not_unicast(addr.ip()) {
        return Err(bad(reason));
    }
    Ok(addr)
}

/// Why `ip` cannot be one host's heartbeat address, if it cannot: the
/// daemon binds it and every peer sends to it, one datagram per peer, so it
/// must name one host. An IPv4-mapped IPv6 address is judged as the IPv4
/// address it maps. A directed subnet broadcast (`10.0.0.255` in a /24)
/// looks like a unicast address without the netmask, which the
/// configuration does not know, so it is not refused here.
fn not_unicast(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return Some("the unspecified address cannot receive heartbeats");
    }
    if ip.is_multicast() {
        return Some("heartbeats are unicast; multicast addresses are refused");
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Some("heartbeats are unicast; the broadcast address is refused");
    }
    None
}

fn parse_hosts(raw: &[RawHost]) -> Result<Vec<Host>, ConfigError> {
    if raw.is_empty() || raw.len() > MAX_HOSTS_LIMIT {
        return Err(ConfigError::HostCount { count: raw.len() });
    }
    let mut by_uuid: HashMap<Uuid, String> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, String> = HashMap::new();
    let mut hosts = Vec::with_capacity(raw.len());
    for (i, h) in raw.iter().enumerate() {
        let uuid_key = format!("hosts[{i}].uuid");
        let addr_key = format!("hosts[{i}].address");
        let uuid = parse_uuid(&uuid_key, &h.uuid)?;
        let address = parse_address(&addr_key, &h.address)?;
        if let Some(first) = by_uuid.get(&uuid) {
            return Err(ConfigError::DuplicateHost {
                key: uuid_key,
                uuid,
                first: first.clone(),
            });
        }
        if let Some(first) = by_addr.get(&address) {
            return Err(ConfigError::DuplicateAddress {
                key: addr_key,
                address,
                first: first.clone(),
            });
        }
        by_uuid.insert(uuid, uuid_key);
        by_addr.insert(address, addr_key);
        hosts.push(Host {
            uuid,
            index: 0,
            address,
        });
    }
    hosts.sort_by_key(|h| h.uuid);
    for (i, h) in hosts.iter_mut().enumerate() {
        h.index = i;
    }
    Ok(hosts)
}

/// One socket bound to this host's address sends to every peer, so every
/// address must be of the same family (IPv4 or IPv6) as this host's.
fn check_families(raw: &[RawHost], local: &Host) -> Result<(), ConfigError> {
    for (i, h) in raw.iter().enumerate() {
        let key = format!("hosts[{i}].address");
        let addr = parse_address(&key, &h.address)?;
        if addr.is_ipv6() != local.address.is_ipv6() {
            let family = |v6| if v6 { "IPv6" } else { "IPv4" };
            return Err(ConfigError::BadAddress {
                key,
                value: h.address.clone(),
                reason: format!(
                    "an {} address, but this host's address {} is {}; all heartbeat addresses must be of one family",
                    family(addr.is_ipv6()),
                    local.address,
                    family(local.address.is_ipv6())
                ),
            });
        }
    }
    Ok(())
}

fn resolve(key: &str, path: &Path, base_dir: &Path) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::EmptyPath {
            key: key.to_owned(),
        });
    }
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    })
}

fn parse_statefiles(raw: &[PathBuf], base_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    if raw.is_empty() || raw.len() > MAX_STATEFILES {
        return Err(ConfigError::StatefileCount { count: raw.len() });
    }
    let mut out: Vec<PathBuf> = Vec::with_capacity(raw.len());
    for (i, p) in raw.iter().enumerate() {
        let key = format!("statefiles[{i}]");
        let path = resolve(&key, p, base_dir)?;
        if let Some(j) = out.iter().position(|q| *q == path) {
            return Err(ConfigError::DuplicateStatefile {
                key,
                path,
                first: format!("statefiles[{j}]"),
            });
        }
        out.push(path);
    }
    Ok(out)
}

fn parse_watchdog(
    raw: Option<RawWatchdog>,
    base_dir: &Path,
) -> Result<WatchdogConfig, ConfigError> {
    let Some(w) = raw else {
        return Ok(WatchdogConfig::Linux {
            device: PathBuf::from(DEFAULT_WATCHDOG_DEVICE),
        });
    };
    let name = match w.backend {
        Backend::Linux => "linux",
        Backend::Supervisor => "supervisor",
        Backend::None => "none",
    };
    let not_allowed = |key: &'static str| ConfigError::WatchdogKeyNotAllowed {
        key,
        backend: name.to_owned(),
    };
    if w.backend != Backend::Linux && w.device.is_some() {
        return Err(not_allowed("device"));
    }
    if w.backend != Backend::Supervisor && w.socket.is_some() {
        return Err(not_allowed("socket"));
    }
    if w.backend != Backend::None && w.allow_no_watchdog.is_some() {
        return Err(not_allowed("allow-no-watchdog"));
    }
    Ok(match w.backend {
        Backend::Linux => WatchdogConfig::Linux {
            device: match &w.device {
                Some(p) => resolve("watchdog.device", p, base_dir)?,
                None => PathBuf::from(DEFAULT_WATCHDOG_DEVICE),
            },
        },
        Backend::Supervisor => WatchdogConfig::Supervisor {
            socket: match &w.socket {
                Some(p) => resolve("watchdog.socket", p, base_dir)?,
                None => PathBuf::from(DEFAULT_SUPERVISOR_SOCKET),
            },
        },
        Backend::None => {
            if w.allow_no_watchdog != Some(true) {
                return Err(ConfigError::NoWatchdogNotAllowed);
            }
            WatchdogConfig::None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "00000000-0000-0000-0000-00000000000a";
    const B: &str = "00000000-0000-0000-0000-00000000000b";
    const C: &str = "00000000-0000-0000-0000-00000000000c";
    const GEN: &str = "11111111-2222-3333-4444-555555555555";

    fn base(host: &str) -> String {
        format!(
            r#"
pool-generation = "{GEN}"
host = "{host}"
timeout = 10
secret-file = "secret"
statefiles = ["/dev/sdx"]
fence-action = "kill-host"

[watchdog]
backend = "supervisor"
socket = "sup.sock"

[[hosts]]
uuid = "{C}"
address = "127.0.0.3"

[[hosts]]
uuid = "{A}"
address = "127.0.0.1:7001"

[[hosts]]
uuid = "{B}"
address = "127.0.0.2:7002"
"#
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/xhad"))
    }

    #[test]
    fn valid_config_sorts_hosts_and_resolves_paths() {
        let c = parse(&base(B)).unwrap();
        let uuids: Vec<String> = c.hosts.iter().map(|h| h.uuid.to_string()).collect();
        assert_eq!(uuids, vec![A, B, C]);
        assert_eq!(c.local_index, 1);
        assert_eq!(c.local().address, "127.0.0.2:7002".parse().unwrap());
        assert_eq!(c.hosts[2].address, "127.0.0.3:694".parse().unwrap());
        assert_eq!(c.timeouts.base, Duration::from_secs(10));
        assert_eq!(c.secret_file, PathBuf::from("/etc/xhad/secret"));
        assert_eq!(c.statefiles, vec![PathBuf::from("/dev/sdx")]);
        assert_eq!(
            c.watchdog,
            WatchdogConfig::Supervisor {
                socket: PathBuf::from("/etc/xhad/sup.sock")
            }
        );
        assert_eq!(c.fence_action, FenceAction::KillHost);
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
        let core = c.core_config(7);
        assert_eq!(core.local, 1);
        assert_eq!(core.hosts.len(), 3);
        core.validate().unwrap();
    }

    #[test]
    fn defaults() {
        let text = format!(
            "pool-generation = \"{GEN}\"\nhost = \"{A}\"\nsecret-file = \"/s\"\nstatefiles = [\"/f\"]\n[[hosts]]\nuuid = \"{A}\"\naddress = \"10.0.0.1\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.timeouts.base, crate::core::timeouts::DEFAULT_BASE);
        assert_eq!(
            c.watchdog,
            WatchdogConfig::Linux {
                device: PathBuf::from("/dev/watchdog")
            }
        );
        assert_eq!(c.fence_action, FenceAction::Reboot);
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
    }

    fn err(text: &str) -> ConfigError {
        let e = parse(text).unwrap_err();
        assert_eq!(e.exit_code(), ExitCode::InvalidConfig, "{e}");
        e
    }

    #[test]
    fn unknown_key_is_named() {
        let e = err(&base(A).replace("timeout = 10", "timeout = 10\ntimeuot = 3"));
        let s = e.to_string();
        assert!(s.contains("timeuot"), "{s}");
        assert!(s.starts_with("line 5"), "{s}");
        let e = err(&base(A).replace(
            "address = \"127.0.0.3\"",
            "address = \"127.0.0.3\"\nport = 1",
        ));
        assert!(e.to_string().contains("unknown field `port`"), "{e}");
    }

    #[test]
    fn wrong_type_shows_the_line() {
        let e = err(&base(A).replace("timeout = 10", "timeout = \"10\""));
        assert!(e.to_string().contains("`timeout = \"10\"`"), "{e}");
    }

    #[test]
    fn duplicate_host_and_address() {
        let e = err(&base(A).replace(C, A));
        assert!(
            matches!(&e, ConfigError::DuplicateHost { key, first, .. } if key == "hosts[1].uuid" && first == "hosts[0].uuid"),
            "{e}"
        );
        let e = err(&base(A).replace("127.0.0.1:7001", "127.0.0.3:694"));
        assert!(
            matches!(&e, ConfigError::DuplicateAddress { key, .. } if key == "hosts[1].address"),
            "{e}"
        );
    }

    #[test]
    fn local_host_missing() {
        let other = "00000000-0000-0000-0000-0000000000ff";
        assert!(matches!(
            err(&base(other)),
            ConfigError::LocalHostMissing { .. }
        ));
    }

    #[test]
    fn bad_addresses() {
        for bad in [
            "host.example",
            "127.0.0.1:0",
            "0.0.0.0",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "[::ffff:255.255.255.255]:7",
            "[::ffff:224.0.0.1]:7",
            "[::ffff:0.0.0.0]:7",
            "[::]:7",
            "[ff02::1]:7",
            "ff05::2",
            "[::1]:x",
            "1.2.3.4:99999",
            "",
        ] {
            let e = err(&base(A).replace("127.0.0.3", bad));
            assert!(
                matches!(&e, ConfigError::BadAddress { key, .. } if key == "hosts[0].address"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse_address("k", "fe80::1").unwrap(),
            "[fe80::1]:694".parse().unwrap()
        );
        assert_eq!(
            parse_address("k", "[fe80::1]").unwrap(),
            "[fe80::1]:694".parse().unwrap()
        );
    }

    #[test]
    fn only_unicast_addresses() {
        for (bad, why) in [
            ("255.255.255.255", "broadcast"),
            ("[::ffff:255.255.255.255]:7", "broadcast"),
            ("224.0.0.1", "multicast"),
            ("[::ffff:239.1.1.1]:7", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0:7", "unspecified"),
            ("::", "unspecified"),
            ("[::ffff:0.0.0.0]:7", "unspecified"),
        ] {
            let e = parse_address("hosts[3].address", bad).unwrap_err();
            assert!(
                matches!(&e, ConfigError::BadAddress { key, reason, .. } if key == "hosts[3].address" && reason.contains(why)),
                "{bad}: {e}"
            );
        }
        // A directed broadcast cannot be told from a unicast address.
        assert!(parse_address("k", "10.0.0.255").is_ok());
        assert!(parse_address("k", "[::ffff:10.0.0.1]:7").is_ok());
    }

    #[test]
    fn one_address_family() {
        let e = err(&base(A).replace("127.0.0.2:7002", "[::1]:7002"));
        assert!(
            matches!(&e, ConfigError::BadAddress { key, reason, .. } if key == "hosts[2].address" && reason.contains("one family")),
            "{e}"
        );
        let v6 = base(A)
            .replace("127.0.0.1:7001", "[::1]:7001")
            .replace("127.0.0.2:7002", "[::2]:7002")
            .replace("\"127.0.0.3\"", "\"::3\"");
        let c = parse(&v6).unwrap();
        assert!(c.hosts.iter().all(|h| h.address.is_ipv6()));
    }

    #[test]
    fn timeout_range() {
        for t in ["9", "0", "-1", "3601"] {
            let e = err(&base(A).replace("timeout = 10", &format!("timeout = {t}")));
            assert!(
                matches!(e, ConfigError::TimeoutOutOfRange { .. }),
                "{t}: {e}"
            );
        }
        assert!(parse(&base(A).replace("timeout = 10", "timeout = 3600")).is_ok());
    }

    #[test]
    fn boot_join_timeout() {
        assert_eq!(
            parse(&base(A)).unwrap().boot_join_timeout,
            Duration::from_secs(100),
            "10 T by default"
        );
        let with = |v: &str| {
            base(A).replace(
                "timeout = 10",
                &format!("timeout = 10\nboot-join-timeout = {v}"),
            )
        };
        assert_eq!(
            parse(&with("10")).unwrap().boot_join_timeout,
            Duration::from_secs(10)
        );
        assert_eq!(
            parse(&with("86400")).unwrap().boot_join_timeout,
            Duration::from_secs(86_400)
        );
        for v in ["9", "0", "-1", "86401"] {
            let e = err(&with(v));
            assert!(
                matches!(e, ConfigError::BootJoinTimeoutOutOfRange { min: 10, .. }),
                "{v}: {e}"
            );
            assert!(e.to_string().starts_with("boot-join-timeout: "), "{e}");
        }
    }

    #[test]
    fn too_many_hosts() {
        let mut text = base(A);
        for i in 0..61u32 {
            text.push_str(&format!(
                "[[hosts]]\nuuid = \"{}\"\naddress = \"10.1.{}.{}\"\n",
                Uuid::from_u128(0x1000 + u128::from(i)),
                i / 200,
                i % 200 + 1
            ));
        }
        assert!(parse(&text).is_ok(), "64 hosts are fine");
        text.push_str(
            "[[hosts]]\nuuid = \"00000000-0000-0000-0000-00000000ffff\"\naddress = \"10.9.9.9\"\n",
        );
        assert_eq!(err(&text), ConfigError::HostCount { count: 65 });
    }

    #[test]
    fn uuids() {
        let e = err(&base(A).replace(GEN, "not-a-uuid"));
        assert!(
            matches!(&e, ConfigError::BadUuid { key, .. } if key == "pool-generation"),
            "{e}"
        );
        let e = err(&base(A).replace(GEN, "00000000-0000-0000-0000-000000000000"));
        assert!(
            matches!(&e, ConfigError::NilUuid { key } if key == "pool-generation"),
            "{e}"
        );
    }

    #[test]
    fn watchdog_rules() {
        let none = base(A).replace(
            "backend = \"supervisor\"\nsocket = \"sup.sock\"",
            "backend = \"none\"",
        );
        assert_eq!(err(&none), ConfigError::NoWatchdogNotAllowed);
        let none_ok = none.replace(
            "backend = \"none\"",
            "backend = \"none\"\nallow-no-watchdog = true",
        );
        assert_eq!(parse(&none_ok).unwrap().watchdog, WatchdogConfig::None);
        let linux_with_socket = base(A).replace("backend = \"supervisor\"", "backend = \"linux\"");
        assert!(matches!(
            err(&linux_with_socket),
            ConfigError::WatchdogKeyNotAllowed { key: "socket", .. }
        ));
        let e = err(&base(A).replace("backend = \"supervisor\"", "backend = \"hardware\""));
        assert!(e.to_string().contains("unknown variant `hardware`"), "{e}");
    }

    #[test]
    fn statefiles() {
        let e = err(&base(A).replace("[\"/dev/sdx\"]", "[]"));
        assert_eq!(e, ConfigError::StatefileCount { count: 0 });
        let e = err(&base(A).replace("[\"/dev/sdx\"]", "[\"/a\", \"/b\", \"/a\"]"));
        assert!(
            matches!(&e, ConfigError::DuplicateStatefile { key, .. } if key == "statefiles[2]"),
            "{e}"
        );
        let e = err(&base(A).replace("[\"/dev/sdx\"]", "[\"\"]"));
        assert!(
            matches!(&e, ConfigError::EmptyPath { key } if key == "statefiles[0]"),
            "{e}"
        );
    }

    #[test]
    fn missing_key_and_bad_syntax() {
        let e = err(&base(A).replace("host = ", "hostx = "));
        assert!(e.to_string().contains("hostx"), "{e}");
        let e = err("pool-generation = ");
        assert!(matches!(e, ConfigError::Syntax { line: 1, .. }), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Arbitrary text, and the sample with one line replaced by
        /// arbitrary text, never panic the parser.
        #[test]
        fn parse_is_total(text in ".{0,300}", line in 0usize..40, junk in "[ -~]{0,40}") {
            let _ = parse(&text);
            let mut lines: Vec<String> = base(A).lines().map(String::from).collect();
            let i = line % lines.len();
            lines[i] = junk;
            let _ = parse(&lines.join("\n"));
        }
    }

    #[test]
    fn files_and_secret() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("xhad.toml");
        let e = Config::load(&cfg).unwrap_err();
        assert!(matches!(e, ConfigError::ReadConfig { .. }));
        assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);
        // A FIFO or a directory is refused without blocking.
        nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = Config::load(&cfg).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);
        std::fs::remove_file(&cfg).unwrap();
        assert!(
            Config::load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );

        std::fs::write(&cfg, base(A)).unwrap();
        let e = Config::load(&cfg).unwrap_err();
        assert!(matches!(e, ConfigError::ReadSecret { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);

        // The secret's own rules are tested in `daemon::secret`.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, [7u8; 32]).unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Config::load(&cfg).unwrap_err();
        assert!(matches!(e, ConfigError::SecretWeak { .. }), "{e}");
        assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
        let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37)).collect();
        std::fs::write(&secret, &key).unwrap();
        let l = Config::load(&cfg).unwrap();
        assert_eq!(l.secret.as_bytes(), &key[..]);
        assert_eq!(l.config.secret_file, secret);
    }
}
