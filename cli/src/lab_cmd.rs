//! `xe lab`: start a local pool of real agents (`xapi-ha`, each launching
//! its `xhad` and `xha-supervisor` when HA is enabled) with process VMs
//! running the stamp workload, cut the power of the host holding the most
//! protected VMs, and measure detection, fencing, the smaller liveset and
//! each VM's restart; check the stamps for a VM that ran twice; then stop
//! everything (or, with `--keep`, leave the pool running). The reference is
//! `docs/lab.md`; the library is `xha_lab` (`agent_pool`).
//!
//! Unlike the planner commands, `xe lab` takes `--name VALUE` options and
//! reports progress as it goes: on stdout, or on stderr with `--json` (then
//! stdout gets exactly one JSON object at the end).
//!
//! Parts: `args` (the command line), this file (signals, binaries, progress
//! and the run), `demo` (forming the pool, the VMs, the kill), `observe`
//! (what happens after the kill), `summary` (the results and `--json`),
//! `bench` (`xe lab bench`: the failover K times, medians and maxima).

mod args;
mod bench;
mod demo;
mod observe;
mod summary;

pub use args::{Driver, LabArgs, parse};
use demo::demo;
pub use summary::{Summary, VmOutcome};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use xha_lab::agent_pool::{
    AgentPool, PoolSpec, QemuGuest, USER, find_guest, missing_pool_bin, stop_dir,
};
use xha_lab::{LabError, Signal};

use crate::error::CliError;

/// The command's name.
pub const NAME: &str = "lab";
/// Default number of hosts.
pub const DEFAULT_HOSTS: usize = 3;
/// Fewest hosts: a non-master host is killed and someone must survive.
pub const MIN_HOSTS: usize = 2;
/// Default number of VMs (process driver).
pub const DEFAULT_VMS: usize = 4;
/// Default number of VMs with `--driver qemu` (TCG guests are slow): the
/// two protected ones.
pub const DEFAULT_QEMU_VMS: usize = 2;
/// `xe lab bench`: default and most runs.
pub const DEFAULT_RUNS: usize = 5;
pub const MAX_RUNS: usize = 1000;
/// Most VMs.
pub const MAX_VMS: usize = 32;
/// Default base timeout T in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// Environment variable naming the directory that holds the lab's
/// programs (default: the directory of the `xe` executable).
pub use xha_lab::BIN_DIR_ENV;

// ----- signals -----

static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    // Only atomic stores: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
    if let Some(c) = CANCEL.get() {
        c.store(true, Ordering::SeqCst);
    }
}

/// Raise the cancel flag on SIGINT and SIGTERM (instead of dying with the
/// lab's processes still running). The agents are in process groups of
/// their own, so a terminal's Ctrl-C reaches only `xe`, which cleans up.
fn install_signal_handlers() -> Result<Arc<AtomicBool>, CliError> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let cancel = Arc::clone(CANCEL.get_or_init(|| Arc::new(AtomicBool::new(false))));
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to atomics (async-signal-safe), and
        // the previous handler is not needed back.
        unsafe { sigaction(sig, &action) }.map_err(|e| CliError::Lab {
            step: "install the signal handlers".into(),
            message: e.to_string(),
        })?;
    }
    Ok(cancel)
}

// ----- binaries -----

/// The directory holding the lab's programs: `$XE_LAB_BIN_DIR`, or the
/// directory of the running `xe`.
fn bin_dir() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::Lab {
        step: "find the programs".into(),
        message: format!("cannot locate the xe executable: {e}"),
    })?;
    Ok(xha_lab::bin_dir(exe.parent().unwrap_or(Path::new(""))))
}

fn check_bins(dir: &Path) -> Result<(), CliError> {
    match missing_pool_bin(dir) {
        None => Ok(()),
        Some(path) => Err(CliError::Lab {
            step: "find the programs".into(),
            message: format!(
                "{} not found (looked beside xe, or in ${BIN_DIR_ENV}); build it with `cargo build --release` (or `cargo build`), which puts xapi-ha, xhad, xha-supervisor, xha-vm-keeper and xha-stamp beside xe",
                path.display()
            ),
        }),
    }
}

// ----- progress -----

/// Human progress: stdout normally, stderr with `--json`.
struct Progress {
    json: bool,
}

impl Progress {
    fn line(&self, text: &str) {
        // Progress is best effort: a closed terminal must not stop cleanup.
        if self.json {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
            let _ = out.flush();
        }
    }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A failed step.
struct Failed {
    step: &'static str,
    error: LabError,
}

fn at(step: &'static str) -> impl Fn(LabError) -> Failed {
    move |error| Failed { step, error }
}

/// What `--keep` hands the user.
struct Kept {
    dir: PathBuf,
    password_file: PathBuf,
}

/// The QEMU guest for `--driver qemu` (none for process VMs), or an error
/// naming what is missing.
fn guest_for(driver: Driver) -> Result<Option<QemuGuest>, CliError> {
    match driver {
        Driver::Process => Ok(None),
        Driver::Qemu => find_guest().map(Some).map_err(|e| CliError::Lab {
            step: "find the QEMU guest".into(),
            message: match e {
                xha_lab::LabError::Spec(what) => what,
                e => e.to_string(),
            },
        }),
    }
}

/// What one run needs besides its options.
struct Setup {
    bin_dir: PathBuf,
    guest: Option<QemuGuest>,
    cancel: Arc<AtomicBool>,
    progress: Progress,
}

/// Everything `xe lab` and `xe lab bench` check before a pool starts.
fn setup(opts: &LabArgs) -> Result<Setup, CliError> {
    let bin_dir = bin_dir()?;
    check_bins(&bin_dir)?;
    let guest = guest_for(opts.driver)?;
    Ok(Setup {
        bin_dir,
        guest,
        cancel: install_signal_handlers()?,
        // The bench's stdout is its tables: each run's progress on stderr.
        progress: Progress {
            json: opts.json || opts.bench.is_some(),
        },
    })
}

/// One lab: start the pool, run the demo, then stop it (or keep it).
fn run_once(opts: &LabArgs, setup: &Setup) -> Result<(Summary, Option<Kept>), Failed> {
    let progress = &setup.progress;
    let mut spec = PoolSpec::new(opts.hosts, &setup.bin_dir);
    spec.cancel = Some(Arc::clone(&setup.cancel));
    if opts.driver == Driver::Qemu {
        spec.drivers.push("qemu");
    }
    progress.line(&format!(
        "lab: starting {} agents (xapi-ha) on loopback, {} {} VMs, T = {} s",
        opts.hosts,
        opts.vms,
        opts.driver.as_str(),
        opts.timeout_s
    ));
    match AgentPool::start(&spec) {
        Ok(mut pool) => {
            progress.line(&format!(
                "lab: pool of {} hosts formed with pool.join in {}; shared file SR {}",
                pool.hosts.len(),
                pool.dir().display(),
                pool.sr_dir.display()
            ));
            let result = demo(&mut pool, opts, setup.guest.as_ref(), progress);
            if opts.keep && result.is_ok() {
                let kept = Kept {
                    password_file: pool.password_file(0),
                    dir: pool.keep(),
                };
                result.map(|s| (s, Some(kept)))
            } else {
                progress.line("lab: stopping every agent, daemon, supervisor and VM");
                let dir = pool.dir().to_path_buf();
                let stopped = pool.stop();
                match &stopped {
                    Ok(()) => {
                        progress.line(&format!("lab: stopped cleanly, removed {}", dir.display()));
                    }
                    Err(e) => progress.line(&format!("lab: {e}")),
                }
                match (result, stopped) {
                    (Ok(summary), Ok(())) => Ok((summary, None)),
                    (Ok(_), Err(error)) => Err(Failed {
                        step: "stop",
                        error,
                    }),
                    (Err(failed), _) => Err(failed),
                }
            }
        }
        Err(error) => Err(Failed {
            step: "start the pool",
            error,
        }),
    }
}

/// The error for a failed step: interrupted (exit 130) or failed (exit 5).
fn failure(failed: Failed, cancel: &AtomicBool) -> CliError {
    let sig = SIGNAL.load(Ordering::SeqCst);
    if cancel.load(Ordering::SeqCst) || failed.error.is_cancelled() {
        return CliError::Interrupted {
            step: failed.step.to_owned(),
            signal: Signal::try_from(sig).map_or("a signal", Signal::as_str),
        };
    }
    CliError::Lab {
        step: failed.step.to_owned(),
        message: failed.error.to_string(),
    }
}

/// Runs `xe lab ARGS`.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    let opts = parse(args)?;
    if let Some(dir) = &opts.stop {
        return stop_kept(dir, out);
    }
    let setup = setup(&opts)?;
    if let Some(runs) = opts.bench {
        return bench::run(&opts, runs, &setup, out);
    }
    match run_once(&opts, &setup) {
        Ok((summary, kept)) => {
            if let Some(k) = &kept {
                print_kept(&setup.progress, &summary, k);
            }
            if opts.json {
                serde_json::to_writer_pretty(&mut *out, &summary.to_json(kept.as_ref()))
                    .map_err(std::io::Error::other)?;
                writeln!(out)?;
            }
            Ok(())
        }
        Err(failed) => Err(failure(failed, &setup.cancel)),
    }
}

fn print_kept(progress: &Progress, summary: &Summary, k: &Kept) {
    progress.line(&format!(
        "lab: the pool keeps running (--keep) in {}",
        k.dir.display()
    ));
    progress.line(&format!(
        "  API (JSON-RPC, XML-RPC), plain HTTP: {}",
        summary.api_url
    ));
    progress.line(&format!(
        "  user {USER}, password in {}",
        k.password_file.display()
    ));
    progress.line(&format!(
        "  xe -s {} -p {} -u {USER} -pwf {} {} host-list",
        summary.master_address,
        summary.tls_port,
        k.password_file.display(),
        summary
            .master_fingerprint
            .as_ref()
            .map_or("--trust-new".to_owned(), |f| format!("--fingerprint={f}"))
    ));
    progress.line(&format!("  stop it with: xe lab stop {}", k.dir.display()));
}

/// `xe lab stop DIR`.
fn stop_kept(dir: &Path, out: &mut dyn Write) -> Result<(), CliError> {
    stop_dir(dir).map_err(|e| CliError::Lab {
        step: "stop".into(),
        message: e.to_string(),
    })?;
    writeln!(out, "lab: stopped cleanly, removed {}", dir.display())?;
    Ok(())
}

/// The table's entry point. `xe::run` hands `xe lab` its raw arguments
/// (its options take values, which the `key=value` parser does not know),
/// so this is reached only by a caller that parsed the line with
/// `args::parse`, which accepts `--json` alone.
pub fn run_from_table(
    invocation: &crate::args::Invocation,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let args: Vec<String> = if invocation.flag("--json") {
        vec!["--json".to_owned()]
    } else {
        Vec::new()
    };
    run(&args, out)
}
