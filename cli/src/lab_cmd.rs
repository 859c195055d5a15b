//! `xe lab`: start a local pool of real `xhad` daemons, kill a non-master
//! host and measure detection, fencing and the smaller liveset, then stop
//! everything. The reference is `docs/lab.md`; the library is `xha_lab`.
//!
//! Unlike the planner commands, `xe lab` takes `--name VALUE` options and
//! reports progress as it goes: on stdout, or on stderr with `--json` (then
//! stdout gets exactly one JSON object at the end).
//!
//! Parts: `args` (the command line), this file (signals, binaries, progress
//! and the run), `demo` (the steps and what the survivors observe).

mod args;
mod demo;

pub use args::{LabArgs, parse};
use demo::demo;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use uuid::Uuid;
use xha_control::LivesetReport;
use xha_lab::{Lab, LabError, LabSpec, Signal};

use crate::error::CliError;

/// The command's name.
pub const NAME: &str = "lab";
/// Default number of hosts.
pub const DEFAULT_HOSTS: usize = 3;
/// Fewest hosts: a non-master host is killed and someone must survive.
pub const MIN_HOSTS: usize = 2;
/// Default base timeout T in seconds.
pub const DEFAULT_TIMEOUT_S: u64 = 10;
/// Environment variable naming the directory that holds `xhad` and
/// `xha-supervisor` (default: the directory of the `xe` executable).
pub use xha_lab::BIN_DIR_ENV;
/// Environment variable: keep the lab directory afterwards (for debugging).
pub const KEEP_ENV: &str = "XE_LAB_KEEP";

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
/// lab's processes still running). The children are in process groups of
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

/// The directory holding `xhad` and `xha-supervisor`: `$XE_LAB_BIN_DIR`, or
/// the directory of the running `xe`.
fn bin_dir() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().map_err(|e| CliError::Lab {
        step: "find xhad".into(),
        message: format!("cannot locate the xe executable: {e}"),
    })?;
    Ok(xha_lab::bin_dir(exe.parent().unwrap_or(Path::new(""))))
}

fn check_bins(dir: &Path) -> Result<(), CliError> {
    match xha_lab::missing_bin(dir) {
        None => Ok(()),
        Some(path) => Err(CliError::Lab {
            step: "find xhad".into(),
            message: format!(
                "{} not found (looked beside xe, or in ${BIN_DIR_ENV}); build it with `cargo build --release` (or `cargo build`), which puts xhad and xha-supervisor beside xe",
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

// ----- the demo -----

/// What the run measured (the `--json` object).
#[derive(Debug, Clone)]
pub struct Summary {
    pub hosts: usize,
    pub timeout_s: u64,
    pub killed: Uuid,
    pub master: Uuid,
    pub online_after: Duration,
    pub detected_after: Option<Duration>,
    pub fenced_after: Option<Duration>,
    pub shrink_after: Duration,
    pub survivors: Vec<Uuid>,
    pub fenced: Vec<Uuid>,
}

impl Summary {
    fn to_json(&self) -> serde_json::Value {
        let uuids = |v: &[Uuid]| v.iter().map(Uuid::to_string).collect::<Vec<_>>();
        serde_json::json!({
            "hosts": self.hosts,
            "timeout_s": self.timeout_s,
            "killed": self.killed.to_string(),
            "master": self.master.to_string(),
            "online_after_s": secs(self.online_after),
            "detected_after_fault_s": self.detected_after.map(secs),
            "fenced_after_fault_s": self.fenced_after.map(secs),
            "shrink_after_fault_s": secs(self.shrink_after),
            "survivors": uuids(&self.survivors),
            "fenced": uuids(&self.fenced),
        })
    }
}

/// A failed step.
struct Failed {
    step: &'static str,
    error: LabError,
}

fn at(step: &'static str) -> impl Fn(LabError) -> Failed {
    move |error| Failed { step, error }
}

/// Runs `xe lab ARGS`.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    let opts = parse(args)?;
    let dir = bin_dir()?;
    check_bins(&dir)?;
    let cancel = install_signal_handlers()?;
    let progress = Progress { json: opts.json };
    let mut spec = LabSpec::new(opts.hosts, opts.timeout_s, &dir);
    spec.cancel = Some(Arc::clone(&cancel));
    spec.keep_dir = std::env::var_os(KEEP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let outcome = match Lab::start(spec) {
        Ok(lab) => {
            progress.line(&format!(
                "lab: {} hosts, T = {} s, in {}",
                opts.hosts,
                opts.timeout_s,
                lab.dir().display()
            ));
            let result = demo(&lab, &opts, &progress);
            progress.line("lab: stopping every daemon and supervisor");
            let dir = lab.dir().to_path_buf();
            let kept = if lab.keeps_dir() { "kept" } else { "removed" };
            let stopped = lab.stop();
            match &stopped {
                Ok(()) => progress.line(&format!("lab: stopped cleanly, {kept} {}", dir.display())),
                Err(e) => progress.line(&format!("lab: {e}; every process was killed and reaped")),
            }
            match (result, stopped) {
                (Ok(summary), Ok(())) => Ok(summary),
                (Ok(_), Err(error)) => Err(Failed {
                    step: "stop",
                    error,
                }),
                (Err(failed), _) => Err(failed),
            }
        }
        Err(error) => Err(Failed {
            step: "start the lab",
            error,
        }),
    };
    match outcome {
        Ok(summary) => {
            if opts.json {
                serde_json::to_writer_pretty(&mut *out, &summary.to_json())
                    .map_err(std::io::Error::other)?;
                writeln!(out)?;
            }
            Ok(())
        }
        Err(failed) => {
            let sig = SIGNAL.load(Ordering::SeqCst);
            if cancel.load(Ordering::SeqCst) || failed.error.is_cancelled() {
                return Err(CliError::Interrupted {
                    step: failed.step.to_owned(),
                    signal: Signal::try_from(sig).map_or("a signal", Signal::as_str),
                });
            }
            Err(CliError::Lab {
                step: failed.step.to_owned(),
                message: failed.error.to_string(),
            })
        }
    }
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

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_table(progress: &Progress, report: &LivesetReport) {
    let rows: Vec<Vec<String>> = report
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.uuid.to_string(),
                h.index.to_string(),
                yes(h.live).to_owned(),
                yes(h.master).to_owned(),
                h.address.to_string(),
            ]
        })
        .collect();
    let mut buf = Vec::new();
    let _ = crate::render::table(
        &mut buf,
        &["uuid", "index", "live", "master", "address"],
        &rows,
    );
    progress.line(String::from_utf8_lossy(&buf).trim_end());
}
