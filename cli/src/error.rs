//! Errors and exit codes. Every error is printed as one line on stderr
//! (`xe: ...`) and nothing goes to stdout.

use std::path::PathBuf;

use xapi_ha::pool_file::PoolFileError;

/// Exit status on success.
pub const EXIT_OK: u8 = 0;
/// The command line is wrong: unknown command, key or flag, missing or
/// repeated key, malformed value, unpaired arguments.
pub const EXIT_USAGE: u8 = 1;
/// The pool file cannot be read or is not a valid pool description.
pub const EXIT_POOL_FILE: u8 = 2;
/// The arguments are well-formed but do not fit the pool: a VM or host that
/// is not in it, a host that is not live.
pub const EXIT_REQUEST: u8 = 3;
/// The result could not be written to stdout.
pub const EXIT_OUTPUT: u8 = 4;
/// `xe lab`: a step failed (the message names it); every process the lab
/// started was stopped and its directory removed.
pub const EXIT_LAB: u8 = 5;
/// A live command: the agent refused the call (an xapi error, printed as
/// xe prints it: the error's sentence, then its parameters).
pub const EXIT_API: u8 = 6;
/// A live command: the agent cannot be reached, answered something that is
/// not XML-RPC, or the login failed.
pub const EXIT_CONNECT: u8 = 7;
/// A live command over TLS: the server's certificate fingerprint is not
/// the one remembered, or the server is new and neither `--trust-new` nor
/// `--fingerprint=` was given. Nothing was sent to it.
pub const EXIT_UNTRUSTED: u8 = 8;
/// `xe event-wait`: the condition was not reached within `timeout=`.
pub const EXIT_TIMED_OUT: u8 = 9;
/// `xe lab`: interrupted by SIGINT or SIGTERM; everything was cleaned up
/// (128 + SIGINT, as shells report an interrupted command).
pub const EXIT_INTERRUPTED: u8 = 130;

/// A mistake on the command line (exit code 1).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UsageError {
    /// `xe` with no arguments.
    #[error("no command given; run \"xe help\" for the list of commands")]
    NoCommand,
    /// The first argument names no command.
    #[error("unknown command {name:?}{}", did_you_mean(suggestion.as_deref(), "run \"xe help\" for the list of commands"))]
    UnknownCommand {
        name: String,
        suggestion: Option<String>,
    },
    /// `xe help X` for an unknown X.
    #[error("no help for unknown command {name:?}{}", did_you_mean(suggestion.as_deref(), "run \"xe help\" for the list of commands"))]
    UnknownHelpTopic {
        name: String,
        suggestion: Option<String>,
    },
    /// An argument that is neither `key=value` nor a `--flag`.
    #[error("expected key=value or a --flag, got {arg:?}")]
    NotKeyValue { arg: String },
    /// A positional argument where none is expected (`xe help a b`).
    #[error("unexpected argument {arg:?}")]
    ExtraArgument { arg: String },
    /// A key the command does not take.
    #[error("{command} does not take the parameter {key:?}{}", did_you_mean(suggestion.as_deref(), &format!("run \"xe help {command}\"")))]
    UnknownKey {
        command: String,
        key: String,
        suggestion: Option<String>,
    },
    /// A flag the command does not take.
    #[error("{command} does not take the flag {flag:?}{}", did_you_mean(suggestion.as_deref(), &format!("run \"xe help {command}\"")))]
    UnknownFlag {
        command: String,
        flag: String,
        suggestion: Option<String>,
    },
    /// A non-repeatable key given twice.
    #[error("parameter {key:?} given more than once")]
    DuplicateKey { key: String },
    /// A `--flag VALUE` option without its value.
    #[error("{flag} needs a value")]
    MissingFlagValue { flag: &'static str },
    /// A flag given twice.
    #[error("flag {flag:?} given more than once")]
    DuplicateFlag { flag: &'static str },
    /// A required key is absent.
    #[error("{command} needs the parameter {key}=...; run \"xe help {command}\"")]
    MissingKey { command: String, key: &'static str },
    /// Paired parameters given different numbers of times.
    #[error("unpaired arguments: {counts}; give them in pairs ({example})")]
    Unpaired { counts: String, example: String },
    /// A value that does not have the expected form.
    #[error("{key} must be {expected}, got {got:?}")]
    InvalidValue {
        key: String,
        expected: &'static str,
        got: String,
    },
    /// Two output flags that exclude each other.
    #[error("{first} and {second} cannot be used together")]
    ConflictingFlags {
        first: &'static str,
        second: &'static str,
    },
    /// An argument that is not valid UTF-8.
    #[error("argument {index} is not valid UTF-8")]
    NotUtf8 { index: usize },
}

fn did_you_mean(suggestion: Option<&str>, otherwise: &str) -> String {
    match suggestion {
        Some(s) => format!("; did you mean {s:?}?"),
        None => format!("; {otherwise}"),
    }
}

/// Everything that makes `xe` fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command line.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The pool file given with `pool-file=`.
    #[error("{}", pool_file_message(path, source))]
    PoolFile {
        path: PathBuf,
        /// Boxed: the schema errors are large and errors travel by value.
        source: Box<PoolFileError>,
    },
    /// Well-formed arguments that do not fit the pool.
    #[error("{0}")]
    Request(String),
    /// Writing the result failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    /// The agent answered a call with an xapi error.
    #[error("{}", crate::live::api_errors::describe(code, params).join("\n"))]
    Api { code: String, params: Vec<String> },
    /// The agent cannot be reached or the login failed.
    #[error("{0}")]
    Connect(String),
    /// The server's certificate is not trusted (see [`EXIT_UNTRUSTED`]).
    #[error("{0}")]
    Untrusted(String),
    /// `xe event-wait`: the condition was not reached in time (see
    /// [`EXIT_TIMED_OUT`]).
    #[error("{0}")]
    TimedOut(String),
    /// `xe lab`: a step failed; the lab was cleaned up.
    #[error("lab: step \"{step}\" failed: {message}")]
    Lab { step: String, message: String },
    /// `xe lab`: SIGINT or SIGTERM arrived; the lab was cleaned up.
    #[error(
        "lab: interrupted by {signal} during step \"{step}\"; every process was stopped and the lab directory removed"
    )]
    Interrupted { step: String, signal: &'static str },
}

/// Errors about reading the file already name it; schema errors get the
/// file name in front.
fn pool_file_message(path: &std::path::Path, error: &PoolFileError) -> String {
    match error {
        PoolFileError::Read { .. }
        | PoolFileError::TooLarge { .. }
        | PoolFileError::UnsupportedExtension { .. } => format!("pool-file: {error}"),
        _ => format!("pool-file {}: {error}", path.display()),
    }
}

impl CliError {
    /// The process exit status for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::PoolFile { .. } => EXIT_POOL_FILE,
            Self::Request(_) => EXIT_REQUEST,
            Self::Output(_) => EXIT_OUTPUT,
            Self::Api { .. } => EXIT_API,
            Self::Connect(_) => EXIT_CONNECT,
            Self::Untrusted(_) => EXIT_UNTRUSTED,
            Self::TimedOut(_) => EXIT_TIMED_OUT,
            Self::Lab { .. } => EXIT_LAB,
            Self::Interrupted { .. } => EXIT_INTERRUPTED,
        }
    }
}
