//! `faultfs`: mount one file forwarding to a backing file (or a directory's
//! files forwarding to a backing directory), with faults switched at run
//! time over a control socket. See docs/testing-faults.md.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use ha_tests::faultfs::DEFAULT_FILE_NAME;
use ha_tests::faultfs::server::{Config, Server};
use nix::sys::signal::{SigSet, Signal};

/// How often `--exit-with-parent` checks the parent.
const PARENT_POLL: Duration = Duration::from_millis(500);

/// Expose FILE as DIR/NAME (or the files of a backing directory in DIR);
/// reads, writes and fsyncs can be made to fail, hang or be slow through
/// the control socket.
#[derive(Parser, Debug)]
#[command(name = "faultfs")]
struct Args {
    /// The regular file every read and write is forwarded to, or a
    /// directory whose regular files the mount shows.
    #[arg(long, value_name = "FILE|DIR")]
    backing: PathBuf,
    /// An existing directory to mount on.
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// Name of the one file in the mount (a backing file only).
    #[arg(long, default_value = DEFAULT_FILE_NAME)]
    name: String,
    /// Control socket (lines: `mode ok|error|hang|delay MS`, `stats`, `ping`);
    /// default: the mount directory with `.ctl` appended.
    #[arg(long, value_name = "PATH")]
    control: Option<PathBuf>,
    /// Stop (as on SIGTERM) once the process that started this one is gone,
    /// so a killed test run leaves no mount behind.
    #[arg(long)]
    exit_with_parent: bool,
}

fn main() -> anyhow::Result<()> {
    // fuser's own unmount-on-exit retries the unmount the stop path already
    // did and logs a spurious error: its mount module stays quiet whatever
    // RUST_LOG says (mount errors still come back from `Server::mount`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive("fuser::mnt=off".parse()?);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let args = Args::parse();
    let mount = args
        .mount
        .canonicalize()
        .with_context(|| format!("mount point {}", args.mount.display()))?;
    let control = args.control.unwrap_or_else(|| {
        let mut path = mount.clone().into_os_string();
        path.push(".ctl");
        PathBuf::from(path)
    });
    // Block the stop signals before any thread starts, so every thread
    // inherits the mask and only the waiting thread below receives them.
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(signal);
    }
    signals.thread_block().context("block signals")?;

    let config = Config {
        backing: args.backing,
        mount,
        name: args.name.into(),
        control,
    };
    let server = Server::mount(&config)?;
    tracing::info!(
        "serving {} as {} (control {})",
        config.backing.display(),
        if config.backing.is_dir() {
            config.mount.clone()
        } else {
            config.mount.join(&config.name)
        }
        .display(),
        config.control.display()
    );
    let stopper = server.stopper();
    if args.exit_with_parent {
        let parent = nix::unistd::getppid();
        let stopper = stopper.clone();
        std::thread::Builder::new()
            .name("faultfs-parent".into())
            .spawn(move || {
                while nix::unistd::getppid() == parent {
                    std::thread::sleep(PARENT_POLL);
                }
                tracing::warn!("parent {parent} is gone: releasing held requests and unmounting");
                stopper.stop();
                std::process::exit(0);
            })
            .context("spawn parent watch thread")?;
    }
    std::thread::Builder::new()
        .name("faultfs-signals".into())
        .spawn(move || match signals.wait() {
            Ok(signal) => {
                tracing::info!("{signal}: releasing held requests and unmounting");
                stopper.stop();
                // Exiting closes /dev/fuse, which ends the connection for
                // any file still open on the detached mount.
                std::process::exit(0);
            }
            Err(e) => tracing::error!("waiting for signals: {e}"),
        })
        .context("spawn signal thread")?;
    server.run()?;
    tracing::info!("unmounted {}", config.mount.display());
    Ok(())
}
