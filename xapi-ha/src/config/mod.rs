//! The agent's configuration file (TOML, default `/etc/xha/xapi-ha.toml`;
//! every key in docs/api.md, "Configuration", and
//! packaging/xapi-ha.toml.example).
//!
//! Parsing is pure ([`Config::parse`]); every refusal names the key.
//! Unknown keys are refused too (a misspelt key must not silently fall back
//! to a default).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = "/etc/xha/xapi-ha.toml";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// This host's UUID (`host.uuid`).
    pub host_uuid: Uuid,
    /// This host's name (`host.name_label`).
    pub host_name: String,
    /// This host's address as other hosts and clients reach it
    /// (`host.address`; the parameter of `HOST_IS_SLAVE`).
    pub host_address: String,
    /// The API listeners.
    pub api: Api,
    /// The data directory: database, role file, users, TLS key.
    pub data_dir: PathBuf,
    /// VM drivers this host offers.
    pub drivers: Vec<String>,
    /// Memory of the host in bytes, when set (labs); else `/proc/meminfo`.
    pub memory_total_bytes: Option<u64>,
    /// The `xhad` binary.
    pub xhad_path: PathBuf,
    /// The directory of `xhad`'s configuration.
    pub xhad_config_dir: PathBuf,
    /// haenable: how the agent starts `xhad` (docs/ha-enable.md).
    pub xhad_launcher: XhadLauncher,
    /// haenable: this host's heartbeat address (`xhad.heartbeat_address`;
    /// default `host.address` on port 694, resolved at enable time).
    pub xhad_heartbeat_address: Option<SocketAddr>,
}

/// How `xhad` is started and found again after an agent restart
/// (`xhad.launcher`; docs/ha-enable.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XhadLauncher {
    /// Production: `systemctl start UNIT` (the unit runs `xhad --config
    /// <config_dir>/xhad.toml`, watchdog `linux`, fence action `reboot`).
    Systemd { unit: String },
    /// The lab: a detached process in its own session with a pidfile, and
    /// its `xha-supervisor` (watchdog `supervisor`, fence action `kill-host`).
    Process { supervisor_path: PathBuf },
}

/// The API listeners and their limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Api {
    /// TCP addresses served with TLS.
    pub tls_listen: Vec<SocketAddr>,
    /// TCP addresses served with plain HTTP: loopback only, unless
    /// `allow_plain_http` is set.
    pub http_listen: Vec<SocketAddr>,
    /// Whether plain HTTP may listen on a non-loopback address (logged).
    pub allow_plain_http: bool,
    /// The root-only Unix socket, if any.
    pub unix_socket: Option<PathBuf>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Most connections served at once, over all listeners.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive, and for an idle
    /// keep-alive connection to send its next request.
    pub header_timeout: Duration,
    /// Time allowed for a request's body to arrive.
    pub body_timeout: Duration,
}

/// A refused configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// TOML syntax, a missing key, an unknown key or a wrong type (the
    /// message names the key and the line).
    #[error("{0}")]
    Toml(String),
    /// A key's value is refused; the key and why.
    #[error("{key}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `api.http_listen`.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    host: RawHost,
    #[serde(default)]
    api: RawApi,
    data: RawData,
    #[serde(default)]
    vm: RawVm,
    #[serde(default)]
    memory: RawMemory,
    #[serde(default)]
    xhad: RawXhad,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    uuid: String,
    name: String,
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    #[serde(default = "default_tls_listen")]
    tls_listen: Vec<SocketAddr>,
    #[serde(default)]
    http_listen: Vec<SocketAddr>,
    #[serde(default)]
    allow_plain_http: bool,
    #[serde(default = "default_unix_socket")]
    unix_socket: Option<PathBuf>,
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    #[serde(default = "default_max_connections")]
    max_connections: u64,
    #[serde(default = "default_header_timeout_s")]
    header_timeout_s: f64,
    #[serde(default = "default_body_timeout_s")]
    body_timeout_s: f64,
}

impl Default for RawApi {
    fn default() -> Self {
        RawApi {
            tls_listen: default_tls_listen(),
            http_listen: Vec::new(),
            allow_plain_http: false,
            unix_socket: default_unix_socket(),
            max_body_bytes: default_max_body_bytes(),
            max_connections: default_max_connections(),
            header_timeout_s: default_header_timeout_s(),
            body_timeout_s: default_body_timeout_s(),
        }
    }
}

fn default_tls_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([0, 0, 0, 0], 443))]
}
fn default_unix_socket() -> Option<PathBuf> {
    Some(PathBuf::from("/run/xha/xapi-ha.sock"))
}
fn default_max_body_bytes() -> u64 {
    4 << 20
}
fn default_max_connections() -> u64 {
    2048
}
fn default_header_timeout_s() -> f64 {
    10.0
}
fn default_body_timeout_s() -> f64 {
    30.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    dir: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawVm {
    #[serde(default)]
    drivers: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMemory {
    total_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawXhad {
    #[serde(default = "default_xhad_path")]
    path: PathBuf,
    #[serde(default = "default_xhad_config_dir")]
    config_dir: PathBuf,
    // haenable: the launcher and the heartbeat address.
    #[serde(default = "default_xhad_launcher")]
    launcher: String,
    #[serde(default = "default_xhad_unit")]
    unit: String,
    #[serde(default = "default_supervisor_path")]
    supervisor_path: PathBuf,
    #[serde(default)]
    heartbeat_address: Option<SocketAddr>,
}

impl Default for RawXhad {
    fn default() -> Self {
        RawXhad {
            path: default_xhad_path(),
            config_dir: default_xhad_config_dir(),
            launcher: default_xhad_launcher(),
            unit: default_xhad_unit(),
            supervisor_path: default_supervisor_path(),
            heartbeat_address: None,
        }
    }
}

fn default_xhad_launcher() -> String {
    "systemd".into()
}
fn default_xhad_unit() -> String {
    "xhad.service".into()
}
fn default_supervisor_path() -> PathBuf {
    PathBuf::from("/usr/sbin/xha-supervisor")
}

fn default_xhad_path() -> PathBuf {
    PathBuf::from("/usr/sbin/xhad")
}
fn default_xhad_config_dir() -> PathBuf {
    PathBuf::from("/etc/xhad")
}

/// Largest body limit accepted (`api.max_body_bytes`).
pub const MAX_BODY_BYTES_LIMIT: u64 = 256 << 20;
/// Largest connection limit accepted (`api.max_connections`).
pub const MAX_CONNECTIONS_LIMIT: u64 = 65_536;

fn timeout(key: &'static str, s: f64) -> Result<Duration, ConfigError> {
    if !(0.1..=3600.0).contains(&s) {
        return Err(invalid(key, format!("{s} is outside 0.1..=3600 seconds")));
    }
    Ok(Duration::from_secs_f64(s))
}

impl Config {
    /// Parses and validates the text of a configuration file.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text)
            .map_err(|e| ConfigError::Toml(e.to_string().trim_end().to_owned()))?;
        let host_uuid = Uuid::parse_str(&raw.host.uuid).map_err(|e| {
            invalid(
                "host.uuid",
                format!("{:?} is not a UUID: {e}", raw.host.uuid),
            )
        })?;
        if raw.host.name.trim().is_empty() {
            return Err(invalid("host.name", "is empty"));
        }
        if raw.host.address.trim().is_empty() || raw.host.address.contains(char::is_whitespace) {
            return Err(invalid(
                "host.address",
                format!("{:?} is not an address", raw.host.address),
            ));
        }
        let a = raw.api;
        if !a.allow_plain_http
            && let Some(addr) = a.http_listen.iter().find(|s| !s.ip().is_loopback())
        {
            return Err(invalid(
                "api.http_listen",
                format!(
                    "{addr} is not a loopback address: plain HTTP elsewhere needs api.allow_plain_http = true"
                ),
            ));
        }
        if a.tls_listen.is_empty() && a.http_listen.is_empty() && a.unix_socket.is_none() {
            return Err(invalid(
                "api",
                "no listener: set tls_listen, http_listen or unix_socket",
            ));
        }
        if let Some(p) = &a.unix_socket
            && !p.is_absolute()
        {
            return Err(invalid(
                "api.unix_socket",
                format!("{} is not an absolute path", p.display()),
            ));
        }
        if !(1024..=MAX_BODY_BYTES_LIMIT).contains(&a.max_body_bytes) {
            return Err(invalid(
                "api.max_body_bytes",
                format!(
                    "{} is outside 1024..={MAX_BODY_BYTES_LIMIT}",
                    a.max_body_bytes
                ),
            ));
        }
        if !(1..=MAX_CONNECTIONS_LIMIT).contains(&a.max_connections) {
            return Err(invalid(
                "api.max_connections",
                format!(
                    "{} is outside 1..={MAX_CONNECTIONS_LIMIT}",
                    a.max_connections
                ),
            ));
        }
        let api = Api {
            tls_listen: a.tls_listen,
            http_listen: a.http_listen,
            allow_plain_http: a.allow_plain_http,
            unix_socket: a.unix_socket,
            max_body_bytes: a.max_body_bytes as usize,
            max_connections: a.max_connections as usize,
            header_timeout: timeout("api.header_timeout_s", a.header_timeout_s)?,
            body_timeout: timeout("api.body_timeout_s", a.body_timeout_s)?,
        };
        if !raw.data.dir.is_absolute() {
            return Err(invalid(
                "data.dir",
                format!("{} is not an absolute path", raw.data.dir.display()),
            ));
        }
        for d in &raw.vm.drivers {
            if d.is_empty()
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid(
                    "vm.drivers",
                    format!("{d:?} is not a driver name (letters, digits, - and _)"),
                ));
            }
        }
        if raw.memory.total_bytes == Some(0) {
            return Err(invalid("memory.total_bytes", "is 0"));
        }
        let x = raw.xhad;
        let xhad_launcher = match x.launcher.as_str() {
            "systemd" => XhadLauncher::Systemd { unit: x.unit },
            "process" => XhadLauncher::Process {
                supervisor_path: x.supervisor_path,
            },
            other => {
                return Err(invalid(
                    "xhad.launcher",
                    format!("{other:?} is not \"systemd\" or \"process\""),
                ));
            }
        };
        if !x.config_dir.is_absolute() {
            return Err(invalid(
                "xhad.config_dir",
                format!("{} is not an absolute path", x.config_dir.display()),
            ));
        }
        Ok(Config {
            host_uuid,
            host_name: raw.host.name,
            host_address: raw.host.address,
            api,
            data_dir: raw.data.dir,
            drivers: raw.vm.drivers,
            memory_total_bytes: raw.memory.total_bytes,
            xhad_path: x.path,
            xhad_config_dir: x.config_dir,
            xhad_launcher,
            xhad_heartbeat_address: x.heartbeat_address,
        })
    }

    /// Reads and parses a configuration file; errors name the file.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::Read(path.to_owned(), e.to_string()))?;
        Config::parse(&text).map_err(|e| LoadError::Invalid(path.to_owned(), e))
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, String),
    /// The file is refused.
    #[error("{0}: {1}")]
    Invalid(PathBuf, ConfigError),
}

/// Total memory in bytes from the text of `/proc/meminfo` (`MemTotal`).
pub fn meminfo_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => n.checked_mul(1024),
        None => Some(n),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
