//! Errors from reading a pool description file. Every schema error names the
//! entry (`host "h1"`, `vm #3`) and the field, so the operator can fix the
//! file without guessing.

use std::fmt;
use std::path::PathBuf;

use uuid::Uuid;

use super::Format;
use super::memory::{MemoryError, format_bytes, format_bytes_wide};

/// The part of the file an error is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The top level of the file.
    TopLevel,
    /// The `[pool]` table.
    Pool,
    /// A `[[host]]` entry: its 1-based position and its name when it has a
    /// usable one.
    Host { index: usize, name: Option<String> },
    /// A `[[vm]]` entry: its 1-based position and its name when it has a
    /// usable one.
    Vm { index: usize, name: Option<String> },
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TopLevel => write!(f, "top level"),
            Self::Pool => write!(f, "[pool]"),
            Self::Host {
                name: Some(name), ..
            } => write!(f, "host {name:?}"),
            Self::Host { index, name: None } => write!(f, "host #{index}"),
            Self::Vm {
                name: Some(name), ..
            } => write!(f, "vm {name:?}"),
            Self::Vm { index, name: None } => write!(f, "vm #{index}"),
        }
    }
}

/// Why a pool description file was rejected. Nothing is half-loaded: any
/// error means no `Pool` at all.
#[derive(Debug, thiserror::Error)]
pub enum PoolFileError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any sensible pool description (a guard against
    /// pointing `pool-file=` at a disk image).
    #[error("{} is {size} bytes; pool files are limited to {limit} bytes", path.display())]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    /// The file name does not end in `.toml` or `.json`.
    #[error("{}: unsupported file extension (expected .toml or .json)", path.display())]
    UnsupportedExtension { path: PathBuf },
    /// The text is not valid TOML or JSON.
    #[error("invalid {format} at line {line}, column {column}: {message}")]
    Syntax {
        format: Format,
        /// 1-based.
        line: usize,
        /// 1-based, in characters.
        column: usize,
        message: String,
    },
    /// A key that the schema does not know (likely a typo).
    #[error("{entry}: unknown key {key:?}{}", suggestion_text(suggestion.as_deref(), allowed))]
    UnknownKey {
        entry: Entry,
        key: String,
        /// The nearest known key, when one is close.
        suggestion: Option<&'static str>,
        /// The keys accepted in this entry.
        allowed: &'static [&'static str],
    },
    /// The same key appears twice in one entry (possible in JSON).
    #[error("{entry}: key {key:?} given more than once")]
    DuplicateKey { entry: Entry, key: String },
    /// A required key is absent.
    #[error("{entry}: missing required key {key:?}")]
    MissingKey { entry: Entry, key: &'static str },
    /// A value of the wrong type (a string where a boolean was expected, ...).
    #[error("{entry}: {key} must be {expected}, got {got}")]
    WrongType {
        entry: Entry,
        key: &'static str,
        expected: &'static str,
        got: String,
    },
    /// A value of the right type outside the allowed range.
    #[error("{entry}: {key} must be {expected}, got {got}")]
    OutOfRange {
        entry: Entry,
        key: &'static str,
        expected: &'static str,
        got: String,
    },
    /// A memory size string that does not parse.
    #[error("{entry}: {key} {reason}, got {got}")]
    InvalidMemory {
        entry: Entry,
        key: &'static str,
        /// The value as written (strings quoted).
        got: String,
        reason: MemoryError,
    },
    /// A `uuid` that is not a UUID.
    #[error(
        "{entry}: {key} must be a UUID (like 7b3e1c2a-0d4f-4e8b-9a6c-5f2d1e0b3a47), got {got:?}"
    )]
    InvalidUuid {
        entry: Entry,
        key: &'static str,
        got: String,
    },
    /// `ha-restart-priority` is not one of the three values.
    #[error("{entry}: ha-restart-priority must be restart, best-effort or empty, got {got}")]
    InvalidPriority { entry: Entry, got: String },
    /// `power-state` is not `running` or `halted`.
    #[error("{entry}: power-state must be running or halted, got {got}")]
    InvalidPowerState { entry: Entry, got: String },
    /// A `name` that is empty or only spaces.
    #[error("{entry}: name must not be empty")]
    EmptyName { entry: Entry },
    /// Two hosts, or two VMs, with the same name: references by name would be
    /// ambiguous and derived UUIDs would collide.
    #[error("{kind} name {name:?} is used by entries #{first} and #{second}")]
    DuplicateName {
        /// `host` or `vm`.
        kind: &'static str,
        name: String,
        first: usize,
        second: usize,
    },
    /// Two entries (hosts or VMs) with the same UUID.
    #[error("{second}: uuid {uuid} is already used by {first}")]
    DuplicateUuid {
        uuid: Uuid,
        first: Entry,
        second: Entry,
    },
    /// `resident-on` or `affinity` names no host.
    #[error("{entry}: {key} {reference:?} is not the name or uuid of any host")]
    UnknownHost {
        entry: Entry,
        key: &'static str,
        reference: String,
    },
    /// A host reference that is the name of one host and the UUID of another.
    #[error(
        "{entry}: {key} {reference:?} is ambiguous: it is the name of one host and the uuid of host {by_uuid:?}"
    )]
    AmbiguousHost {
        entry: Entry,
        key: &'static str,
        /// The reference as written, which is also the first host's name.
        reference: String,
        /// The name of the host whose UUID the reference is.
        by_uuid: String,
    },
    /// A running VM must be resident somewhere.
    #[error("{entry}: power-state is running but resident-on is not set")]
    RunningWithoutHost { entry: Entry },
    /// A halted VM resides nowhere; `affinity` is the key for a preferred
    /// host.
    #[error(
        "{entry}: power-state is halted but resident-on is set to {host:?} (a halted VM resides nowhere; use affinity for a preferred host)"
    )]
    HaltedWithHost { entry: Entry, host: String },
    /// A host's overhead larger than its memory.
    #[error("{entry}: memory-overhead ({}) exceeds memory-total ({})", format_bytes(*overhead), format_bytes(*total))]
    OverheadExceedsTotal {
        entry: Entry,
        overhead: u64,
        total: u64,
    },
    /// The VMs resident on a host need more memory than it has: the described
    /// pool cannot exist. `needed` is a sum over VMs, exact beyond `u64`.
    #[error("{entry}: its running VMs need {} but only {} is available (memory-total - memory-overhead)", format_bytes_wide(*needed), format_bytes(*available))]
    HostOverfull {
        entry: Entry,
        needed: u128,
        available: u64,
    },
    /// No `[[host]]` entry at all.
    #[error("the pool has no hosts (at least one [[host]] entry is required)")]
    NoHosts,
}

fn suggestion_text(suggestion: Option<&str>, allowed: &[&str]) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean {s:?}?)"),
        None => format!(" (known keys: {})", allowed.join(", ")),
    }
}
