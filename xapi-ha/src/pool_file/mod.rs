//! Pool description files: a pool's hosts and VMs in TOML or JSON (one
//! schema, chosen by the file extension), read into [`Pool`] for the planner.
//!
//! The schema is documented in `docs/cli.md`. Unknown keys, wrong types and
//! contradictions are errors naming the entry and the field: a typo must
//! never silently change a plan.

mod error;
mod memory;
mod node;
mod schema;
mod suggest;

use std::fmt;
use std::io::Read;
use std::path::Path;

use uuid::Uuid;

use crate::model::Pool;
pub use error::{Entry, PoolFileError};
pub use memory::{MemoryError, UNIT_LIST, format_bytes, format_bytes_wide, parse_memory};
pub use suggest::{edit_distance, nearest};

/// Larger files are refused before reading: a pool of thousands of VMs is a
/// few MiB, so this only stops a mistaken `pool-file=/dev/sda`.
pub const FILE_SIZE_MAX: u64 = 64 << 20;

/// The namespace under which UUIDs are derived from names (UUID v5 of
/// `host:NAME` or `vm:NAME`), so a file without UUIDs gives the same UUIDs on
/// every run and on every machine.
pub const UUID_NAMESPACE: Uuid = Uuid::from_u128(0x5c1e_7a4e_2b0d_4f3a_9e61_08d4_c3b2_a197);

/// The syntax of a pool file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// The format named by the path's extension (`.toml` or `.json`, any
    /// case), or `None`.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?;
        if extension.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else if extension.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Json => "JSON",
        })
    }
}

/// The UUID a host gets when the file gives it none.
#[must_use]
pub fn host_uuid_from_name(name: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, format!("host:{name}").as_bytes())
}

/// The UUID a VM gets when the file gives it none.
#[must_use]
pub fn vm_uuid_from_name(name: &str) -> Uuid {
    Uuid::new_v5(&UUID_NAMESPACE, format!("vm:{name}").as_bytes())
}

/// Reads and parses a pool file; the format comes from the extension.
pub fn load_pool_file(path: &Path) -> Result<Pool, PoolFileError> {
    let format = Format::from_path(path).ok_or_else(|| PoolFileError::UnsupportedExtension {
        path: path.to_owned(),
    })?;
    let read_error = |source| PoolFileError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > FILE_SIZE_MAX {
        return Err(PoolFileError::TooLarge {
            path: path.to_owned(),
            size,
            limit: FILE_SIZE_MAX,
        });
    }
    let mut text = String::new();
    // `take` bounds the read even if the file grows (or is not a regular
    // file and reported no size).
    file.take(FILE_SIZE_MAX + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > FILE_SIZE_MAX {
        return Err(PoolFileError::TooLarge {
            path: path.to_owned(),
            size: text.len() as u64,
            limit: FILE_SIZE_MAX,
        });
    }
    parse_pool(&text, format)
}

/// Parses a pool description given as text.
pub fn parse_pool(text: &str, format: Format) -> Result<Pool, PoolFileError> {
    // Editors on some systems start UTF-8 files with a byte-order mark; it
    // carries no meaning and neither parser accepts it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let document = match format {
        Format::Toml => toml::from_str::<node::Node>(text).map_err(|e| toml_error(text, &e))?,
        Format::Json => serde_json::from_str::<node::Node>(text).map_err(|e| json_error(&e))?,
    };
    schema::pool_from_node(&document)
}

fn toml_error(text: &str, error: &toml::de::Error) -> PoolFileError {
    let offset = error.span().map_or(0, |span| span.start).min(text.len());
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    PoolFileError::Syntax {
        format: Format::Toml,
        line,
        column,
        message: one_line(error.message()),
    }
}

fn json_error(error: &serde_json::Error) -> PoolFileError {
    let text = error.to_string();
    // serde_json appends " at line L column C"; we report those separately.
    let message = match text.rfind(" at line ") {
        Some(i) => &text[..i],
        None => &text,
    };
    PoolFileError::Syntax {
        format: Format::Json,
        line: error.line(),
        column: error.column(),
        message: one_line(message),
    }
}

/// Error messages end up on one line of `xe`'s stderr.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
