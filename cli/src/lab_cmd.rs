//! `xe lab`: start a local pool of real `xhad` daemons, kill a non-master
//! host and measure detection, fencing and the smaller liveset, then stop
//! everything. The reference is `docs/lab.md`; the library is `xha_lab`.
//!
//! Unlike the planner commands, `xe lab` takes `--name VALUE` options and
//! reports progress as it goes: on stdout, or on stderr with `--json` (then
//! stdout gets exactly one JSON object at the end).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use uuid::Uuid;
use xha::daemon::control::LivesetReport;
use xha_lab::{Lab, LabError, LabSpec, Signal, describe_status};

use crate::error::{CliError, UsageError};

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

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabArgs {
    pub hosts: usize,
    pub timeout_s: u64,
    pub json: bool,
}

fn take_value<'a>(
    flag: &'static str,
    inline: Option<&'a str>,
    rest: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, UsageError> {
    match inline {
        Some(v) => Ok(v),
        None => rest
            .next()
            .map(String::as_str)
            .ok_or(UsageError::MissingFlagValue { flag }),
    }
}

/// Parse `[--hosts N] [--timeout T] [--json]` (also `--hosts=N`).
pub fn parse(args: &[String]) -> Result<LabArgs, UsageError> {
    let mut hosts = None;
    let mut timeout = None;
    let mut json = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg.as_str(), None),
        };
        match name {
            "--hosts" => {
                if hosts.is_some() {
                    return Err(UsageError::DuplicateFlag { flag: "--hosts" });
                }
                let v = take_value("--hosts", inline, &mut iter)?;
                hosts = Some(parse_hosts(v)?);
            }
            "--timeout" => {
                if timeout.is_some() {
                    return Err(UsageError::DuplicateFlag { flag: "--timeout" });
                }
                let v = take_value("--timeout", inline, &mut iter)?;
                timeout = Some(parse_timeout(v)?);
            }
            "--json" if inline.is_none() => {
                if json {
                    return Err(UsageError::DuplicateFlag { flag: "--json" });
                }
                json = true;
            }
            _ if name.starts_with("--") => {
                let names = ["--hosts", "--timeout", "--json"];
                return Err(UsageError::UnknownFlag {
                    command: NAME.to_owned(),
                    flag: arg.clone(),
                    suggestion: xapi_ha::pool_file::nearest(name, &names).map(str::to_owned),
                });
            }
            _ => return Err(UsageError::ExtraArgument { arg: arg.clone() }),
        }
    }
    Ok(LabArgs {
        hosts: hosts.unwrap_or(DEFAULT_HOSTS),
        timeout_s: timeout.unwrap_or(DEFAULT_TIMEOUT_S),
        json,
    })
}

fn parse_hosts(v: &str) -> Result<usize, UsageError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (MIN_HOSTS..=xha_lab::MAX_HOSTS).contains(n))
        .ok_or_else(|| UsageError::InvalidValue {
            key: "--hosts".into(),
            expected: "a whole number of hosts from 2 to 64 (one non-master host is killed)",
            got: v.to_owned(),
        })
}

fn parse_timeout(v: &str) -> Result<u64, UsageError> {
    // `Timeouts::derive` is the one place the range of T is checked; the
    // text below is pinned to it by `timeout_text_names_the_range`.
    v.parse::<u64>()
        .ok()
        .filter(|t| xha::core::Timeouts::derive(Duration::from_secs(*t)).is_ok())
        .ok_or_else(|| UsageError::InvalidValue {
            key: "--timeout".into(),
            expected: "whole seconds from 10 to 3600 (the base timeout T of xhad)",
            got: v.to_owned(),
        })
}

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

fn demo(lab: &Lab, opts: &LabArgs, progress: &Progress) -> Result<Summary, Failed> {
    let t = opts.timeout_s;
    let all = lab.all();
    progress.line(&format!(
        "lab: started {} xhad daemons, each with its xha-supervisor; waiting for all to be online",
        all.len()
    ));
    let reports = lab
        .wait_all_online(Duration::from_secs(5 * t + 30))
        .map_err(at("wait for all hosts online"))?;
    let online_after = lab.started_at().elapsed();
    let master = lab
        .wait_master(&all, Duration::from_secs(3 * t + 30))
        .map_err(at("wait for a master"))?;
    let table_source = lab.query(master).unwrap_or_else(|_| reports[0].clone());
    progress.line(&format!(
        "lab: all {} hosts online after {:.1} s; master is host {master} ({})",
        all.len(),
        online_after.as_secs_f64(),
        lab.uuid(master)
    ));
    print_table(progress, &table_source);

    // The victim: the highest-numbered host that is not the master.
    let victim = all
        .iter()
        .rev()
        .copied()
        .find(|&i| i != master)
        .ok_or_else(|| Failed {
            step: "pick a host to kill",
            error: LabError::Spec("no host other than the master".into()),
        })?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let mut streams = Vec::new();
    for &s in &survivors {
        streams.push((s, lab.watch(s).map_err(at("watch the survivors"))?));
    }
    let victim_uuid = lab.uuid(victim);
    let pgid = lab.pgid(victim).unwrap_or_default();
    progress.line(&format!(
        "lab: killing host {victim} ({victim_uuid}): SIGKILL to its process group {pgid}"
    ));
    let fault = Instant::now();
    lab.kill_host(victim, Signal::SIGKILL)
        .map_err(at("kill a non-master host"))?;

    let observed = observe(lab, progress, victim, &survivors, &streams, fault)?;

    // Every survivor still online, with exactly the survivors in its liveset.
    lab.wait_online(&survivors, Duration::from_secs(t))
        .map_err(at("check the survivors"))?;
    let fenced: Vec<Uuid> = all
        .iter()
        .copied()
        .filter(|&i| {
            lab.supervisor_exit(i, Duration::ZERO)
                .and_then(|s| s.code())
                == Some(3)
        })
        .map(|i| lab.uuid(i))
        .collect();
    if fenced != [victim_uuid] {
        return Err(Failed {
            step: "check the fence",
            error: LabError::Spec(format!(
                "expected only host {victim} ({victim_uuid}) fenced, got {fenced:?}"
            )),
        });
    }
    Ok(Summary {
        hosts: all.len(),
        timeout_s: t,
        killed: victim_uuid,
        master: lab.uuid(master),
        online_after,
        detected_after: observed.detected,
        fenced_after: Some(observed.fenced),
        shrink_after: observed.shrink,
        survivors: survivors.iter().map(|&i| lab.uuid(i)).collect(),
        fenced,
    })
}

struct Observed {
    detected: Option<Duration>,
    fenced: Duration,
    shrink: Duration,
}

/// After the kill: read the survivors' reports as they arrive and the
/// victim's supervisor, until every survivor's liveset excludes the victim
/// and the supervisor has fenced it.
fn observe(
    lab: &Lab,
    progress: &Progress,
    victim: usize,
    survivors: &[usize],
    streams: &[(usize, Receiver<(Instant, LivesetReport)>)],
    fault: Instant,
) -> Result<Observed, Failed> {
    let t = lab.timeout_s();
    let bound = Duration::from_secs(3 * t);
    let victim_uuid = lab.uuid(victim);
    let mut detected: Option<Duration> = None;
    let mut fenced: Option<Duration> = None;
    // Per survivor: since when its liveset excludes the victim.
    let mut excluded_since: HashMap<usize, Option<Instant>> =
        survivors.iter().map(|&s| (s, None)).collect();
    let mut shrink: Option<Duration> = None;
    loop {
        let step = if fenced.is_none() {
            "wait for the fence"
        } else {
            "wait for the smaller liveset"
        };
        lab.check_cancel(step).map_err(at(step))?;
        lab.ensure_running(step, survivors).map_err(at(step))?;
        for (s, rx) in streams {
            while let Ok((when, report)) = rx.try_recv() {
                if when < fault {
                    continue;
                }
                let seen = report.hosts.iter().find(|h| h.uuid == victim_uuid);
                if detected.is_none()
                    && let Some(h) = seen
                    && (!h.heard || !h.seen || !h.live)
                {
                    let d = when - fault;
                    detected = Some(d);
                    let what = if !h.heard {
                        "no longer hears it"
                    } else if !h.seen {
                        "no longer sees its statefile slot advance"
                    } else {
                        "dropped it from its liveset"
                    };
                    progress.line(&format!("  +{:6.2} s  detected: host {s} {what}", secs(d)));
                }
                let entry = excluded_since.entry(*s).or_default();
                if report.liveset.contains(&victim_uuid) {
                    *entry = None;
                } else if entry.is_none() {
                    *entry = Some(when);
                }
            }
        }
        if fenced.is_none()
            && let Some(status) = lab.supervisor_exit(victim, Duration::ZERO)
        {
            let d = fault.elapsed();
            if status.code() != Some(3) {
                return Err(Failed {
                    step: "wait for the fence",
                    error: LabError::Spec(format!(
                        "host {victim}'s xha-supervisor ended with {}, not 3 (fenced); its log:\n{}",
                        describe_status(status),
                        lab.supervisor_log(victim)
                    )),
                });
            }
            let log = lab.supervisor_log(victim);
            let line = log
                .lines()
                .rev()
                .find(|l| l.contains("FENCED"))
                .map(|l| l.find("FENCED").map_or(l, |i| &l[i..]).to_owned())
                .unwrap_or_default();
            progress.line(&format!(
                "  +{:6.2} s  fenced: host {victim}'s supervisor exited with status 3: {line}",
                secs(d)
            ));
            fenced = Some(d);
        }
        if shrink.is_none() && excluded_since.values().all(Option::is_some) {
            let last = excluded_since
                .values()
                .flatten()
                .max()
                .copied()
                .unwrap_or(fault);
            let d = last - fault;
            progress.line(&format!(
                "  +{:6.2} s  liveset shrank: every survivor's liveset excludes host {victim} ({} host{} left)",
                secs(d),
                survivors.len(),
                if survivors.len() == 1 { "" } else { "s" }
            ));
            shrink = Some(d);
        }
        if let (Some(fenced), Some(shrink)) = (fenced, shrink) {
            return Ok(Observed {
                detected,
                fenced,
                shrink,
            });
        }
        if fault.elapsed() > bound {
            let waiting: Vec<String> = excluded_since
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(s, _)| format!("host {s} still lists host {victim}"))
                .chain(
                    fenced
                        .is_none()
                        .then(|| format!("host {victim}'s supervisor has not exited")),
                )
                .collect();
            return Err(Failed {
                step,
                error: LabError::Timeout {
                    step: step.to_owned(),
                    waited: bound,
                    detail: waiting.join("; "),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn defaults_and_both_spellings() {
        assert_eq!(
            parse(&[]).unwrap(),
            LabArgs {
                hosts: 3,
                timeout_s: 10,
                json: false
            }
        );
        assert_eq!(
            parse(&args(&["--hosts", "5", "--timeout=12", "--json"])).unwrap(),
            LabArgs {
                hosts: 5,
                timeout_s: 12,
                json: true
            }
        );
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let err = |a: &[&str]| parse(&args(a)).unwrap_err().to_string();
        assert!(err(&["--hosts", "1"]).contains("--hosts must be"));
        assert!(err(&["--hosts", "65"]).contains("from 2 to 64"));
        assert!(err(&["--timeout", "9"]).contains("from 10 to 3600"));
        assert!(err(&["--hosts"]).contains("--hosts needs a value"));
        assert!(err(&["--host", "3"]).contains("did you mean \"--hosts\""));
        assert!(err(&["--json", "--json"]).contains("more than once"));
        assert!(err(&["extra"]).contains("unexpected argument"));
    }

    /// The range of T is checked in one place (`Timeouts::derive`); the
    /// usage text and the help line quote it and must say the same.
    #[test]
    fn timeout_text_names_the_range() {
        let (min, max) = (
            xha::core::timeouts::MIN_BASE.as_secs(),
            xha::core::timeouts::MAX_BASE.as_secs(),
        );
        for t in [min - 1, max + 1] {
            let err = parse(&args(&["--timeout", &t.to_string()]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("from {min} to {max}")), "{err}");
        }
        for t in [min, max] {
            assert!(parse(&args(&["--timeout", &t.to_string()])).is_ok());
        }
        let help = crate::table::COMMANDS
            .iter()
            .flat_map(|c| c.flags)
            .find(|f| f.name == "--timeout")
            .map(|f| f.help)
            .unwrap_or_default();
        assert!(
            help.contains(&format!("{min} to {max} (default {DEFAULT_TIMEOUT_S})")),
            "{help}"
        );
    }
}
