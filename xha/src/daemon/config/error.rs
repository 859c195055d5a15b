//! Why a configuration was refused, each refusal naming its key or file,
//! and the daemon's exit code for it.

use std::net::SocketAddr;
use std::path::PathBuf;

use uuid::Uuid;

use super::{
    CONFIG_MAX_BYTES, MAX_BOOT_JOIN_TIMEOUT_S, MAX_MASTER_LEASE_MS, MAX_STATEFILES,
    MIN_MASTER_LEASE_MS,
};
use crate::daemon::exit::ExitCode;
use crate::daemon::secret::{SECRET_MAX_BYTES, SECRET_MIN_BYTES};
use sr_heartbeat::statefile::MAX_HOSTS_LIMIT;

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
    /// `master-lease-ms` is outside its range.
    #[error(
        "master-lease-ms: {value} ms is outside {MIN_MASTER_LEASE_MS}..={MAX_MASTER_LEASE_MS} ms"
    )]
    MasterLeaseOutOfRange { value: i64 },
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
    /// A statefile region's `offset` or `length` is missing, misaligned or
    /// too small (`key` is `statefiles[i].offset` or `.length`).
    #[error("{key}: {value}: {reason}")]
    StatefileRegion {
        key: String,
        value: i64,
        reason: String,
    },
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

/// Condense a TOML error into one line that shows the offending line (and
/// so its key).
pub(super) fn syntax_error(text: &str, e: &toml::de::Error) -> ConfigError {
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
