//! `sr-heartbeat`: format, dump and check the volumes of the heartbeat SR.
//!
//! Exit codes: 0 success; 1 `check` found problems; 2 bad input or an I/O
//! failure (one line on stderr, nothing written).
//!
//! Parts: this file (arguments and exit codes), `format` (`format-statefile`,
//! `format-metadata`), `show` (`dump`, `check`), `demo`.

mod demo;
mod format;
mod show;

use demo::demo;
use format::{format_metadata, format_statefile};
use show::{check, dump};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use sr_heartbeat::statefile::MAX_HOSTS_LIMIT;

#[derive(Parser)]
#[command(
    name = "sr-heartbeat",
    version,
    about = "Format, dump and check the HA heartbeat SR volumes (statefile, metadata volume)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format PATH as a 4 MiB statefile for a pool. A regular file that does
    /// not exist or is empty is created at 4 MiB; anything else must be at
    /// least 4 MiB, and a non-blank one is refused unless --force.
    FormatStatefile {
        path: PathBuf,
        /// The pool generation UUID of this HA enablement.
        #[arg(long)]
        pool_uuid: Uuid,
        /// Number of host slots (1 to 64).
        #[arg(long, default_value_t = MAX_HOSTS_LIMIT)]
        hosts: usize,
        /// Overwrite a device that holds something (another statefile, a
        /// filesystem, ...).
        #[arg(long)]
        force: bool,
    },
    /// Format PATH as a 256 MiB metadata volume (pool database redo log). A
    /// regular file that does not exist or is empty is created at 256 MiB; a
    /// non-blank device is refused unless --force.
    FormatMetadata {
        path: PathBuf,
        /// Overwrite a device that holds something.
        #[arg(long)]
        force: bool,
    },
    /// Print a statefile (header, pool block, every slot) or a metadata
    /// volume (superblocks, snapshot, log); the kind is read from the magic.
    Dump {
        path: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a statefile or metadata volume; exit 1 and list the problems.
    Check { path: PathBuf },
    /// Format a statefile in a temporary directory, heartbeat three hosts
    /// through the deadline I/O path, dump it and print the I/O latencies.
    Demo {
        /// Where to create the temporary directory (needs O_DIRECT support).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FormatStatefile {
            path,
            pool_uuid,
            hosts,
            force,
        } => format_statefile(&path, pool_uuid, hosts, force),
        Command::FormatMetadata { path, force } => format_metadata(&path, force),
        Command::Dump { path, json } => dump(&path, json),
        Command::Check { path } => check(&path),
        Command::Demo { dir } => demo(dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("sr-heartbeat: {msg}");
            ExitCode::from(2)
        }
    }
}
