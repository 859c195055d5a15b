//! The command line of `xe lab`: `--hosts N`, `--vms M`, `--timeout T`,
//! `--driver process|qemu`, `--json`, `--keep`; or `stop DIR`; or `bench`
//! with the same options (but `--keep`) and `--runs K`.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    DEFAULT_HOSTS, DEFAULT_QEMU_VMS, DEFAULT_RUNS, DEFAULT_TIMEOUT_S, DEFAULT_VMS, MAX_RUNS,
    MAX_VMS, MIN_HOSTS, NAME,
};
use crate::error::UsageError;

/// The VM driver of the lab's VMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Process VMs running `xha-stamp` (quick, nothing to install).
    Process,
    /// QEMU VMs of the test guest (`tests/guest/build.sh`).
    Qemu,
}

impl Driver {
    /// Its name, as `--driver` and `VM.driver` spell it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Process => "process",
            Driver::Qemu => "qemu",
        }
    }

    /// M when `--vms` is not given: fewer QEMU VMs (TCG guests are slow).
    #[must_use]
    pub fn default_vms(self) -> usize {
        match self {
            Driver::Process => DEFAULT_VMS,
            Driver::Qemu => DEFAULT_QEMU_VMS,
        }
    }
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabArgs {
    pub hosts: usize,
    pub vms: usize,
    pub timeout_s: u64,
    pub driver: Driver,
    pub json: bool,
    pub keep: bool,
    /// `xe lab stop DIR`: tear down a pool left by `--keep`.
    pub stop: Option<PathBuf>,
    /// `xe lab bench --runs K`: the failover K times, then the figures.
    pub bench: Option<usize>,
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

/// Parse `[--hosts N] [--vms M] [--timeout T] [--driver D] [--json]
/// [--keep]` (also `--hosts=N`), or `stop DIR`, or `bench [--runs K]` and
/// the same options but `--keep`.
pub fn parse(args: &[String]) -> Result<LabArgs, UsageError> {
    if args.first().is_some_and(|a| a == "stop") {
        return match &args[1..] {
            [dir] if !dir.starts_with("--") => Ok(LabArgs {
                hosts: DEFAULT_HOSTS,
                vms: DEFAULT_VMS,
                timeout_s: DEFAULT_TIMEOUT_S,
                driver: Driver::Process,
                json: false,
                keep: false,
                stop: Some(PathBuf::from(dir)),
                bench: None,
            }),
            [] => Err(UsageError::InvalidValue {
                key: "stop".into(),
                expected: "the lab directory that `xe lab --keep` printed: xe lab stop DIR",
                got: String::new(),
            }),
            [_, extra, ..] | [extra, ..] => Err(UsageError::ExtraArgument { arg: extra.clone() }),
        };
    }
    let bench = args.first().is_some_and(|a| a == "bench");
    let args = if bench { &args[1..] } else { args };
    let mut hosts = None;
    let mut vms = None;
    let mut timeout = None;
    let mut driver = None;
    let mut runs = None;
    let mut json = false;
    let mut keep = false;
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
            "--vms" => {
                if vms.is_some() {
                    return Err(UsageError::DuplicateFlag { flag: "--vms" });
                }
                let v = take_value("--vms", inline, &mut iter)?;
                vms = Some(parse_vms(v)?);
            }
            "--driver" => {
                if driver.is_some() {
                    return Err(UsageError::DuplicateFlag { flag: "--driver" });
                }
                let v = take_value("--driver", inline, &mut iter)?;
                driver = Some(parse_driver(v)?);
            }
            "--runs" if bench => {
                if runs.is_some() {
                    return Err(UsageError::DuplicateFlag { flag: "--runs" });
                }
                let v = take_value("--runs", inline, &mut iter)?;
                runs = Some(parse_runs(v)?);
            }
            "--keep" if inline.is_none() && bench => {
                return Err(UsageError::ConflictingFlags {
                    first: "bench",
                    second: "--keep",
                });
            }
            "--keep" if inline.is_none() => {
                if keep {
                    return Err(UsageError::DuplicateFlag { flag: "--keep" });
                }
                keep = true;
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
                let names: &[&str] = if bench {
                    &[
                        "--runs",
                        "--hosts",
                        "--vms",
                        "--timeout",
                        "--driver",
                        "--json",
                    ]
                } else {
                    &[
                        "--hosts",
                        "--vms",
                        "--timeout",
                        "--driver",
                        "--json",
                        "--keep",
                    ]
                };
                return Err(UsageError::UnknownFlag {
                    command: NAME.to_owned(),
                    flag: arg.clone(),
                    suggestion: xapi_ha::pool_file::nearest(name, names).map(str::to_owned),
                });
            }
            _ => return Err(UsageError::ExtraArgument { arg: arg.clone() }),
        }
    }
    let driver = driver.unwrap_or(Driver::Process);
    Ok(LabArgs {
        hosts: hosts.unwrap_or(DEFAULT_HOSTS),
        vms: vms.unwrap_or(driver.default_vms()),
        timeout_s: timeout.unwrap_or(DEFAULT_TIMEOUT_S),
        driver,
        json,
        keep,
        stop: None,
        bench: bench.then(|| runs.unwrap_or(DEFAULT_RUNS)),
    })
}

fn parse_driver(v: &str) -> Result<Driver, UsageError> {
    match v {
        "process" => Ok(Driver::Process),
        "qemu" => Ok(Driver::Qemu),
        _ => Err(UsageError::InvalidValue {
            key: "--driver".into(),
            expected: "process (process VMs, the default) or qemu (QEMU test guests)",
            got: v.to_owned(),
        }),
    }
}

fn parse_runs(v: &str) -> Result<usize, UsageError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_RUNS).contains(n))
        .ok_or_else(|| UsageError::InvalidValue {
            key: "--runs".into(),
            expected: "a whole number of runs from 1 to 1000",
            got: v.to_owned(),
        })
}

fn parse_vms(v: &str) -> Result<usize, UsageError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_VMS).contains(n))
        .ok_or_else(|| UsageError::InvalidValue {
            key: "--vms".into(),
            expected: "a whole number of VMs from 1 to 32",
            got: v.to_owned(),
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
        .filter(|t| xha_core::Timeouts::derive(Duration::from_secs(*t)).is_ok())
        .ok_or_else(|| UsageError::InvalidValue {
            key: "--timeout".into(),
            expected: "whole seconds from 10 to 3600 (the base timeout T of xhad)",
            got: v.to_owned(),
        })
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
                vms: 4,
                timeout_s: 10,
                driver: Driver::Process,
                json: false,
                keep: false,
                stop: None,
                bench: None,
            }
        );
        assert_eq!(
            parse(&args(&[
                "--hosts",
                "5",
                "--timeout=12",
                "--json",
                "--vms=6",
                "--keep"
            ]))
            .unwrap(),
            LabArgs {
                hosts: 5,
                vms: 6,
                timeout_s: 12,
                driver: Driver::Process,
                json: true,
                keep: true,
                stop: None,
                bench: None,
            }
        );
        assert_eq!(
            parse(&args(&["stop", "/tmp/xe-lab-x"])).unwrap().stop,
            Some(PathBuf::from("/tmp/xe-lab-x"))
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
        assert!(err(&["--vms", "0"]).contains("from 1 to 32"));
        assert!(err(&["--vms", "33"]).contains("from 1 to 32"));
        assert!(err(&["stop", "a", "b"]).contains("unexpected argument"));
        assert!(err(&["--keep", "--keep"]).contains("more than once"));
        assert!(err(&["--driver", "xen"]).contains("process (process VMs, the default) or qemu"));
        assert!(err(&["--driver"]).contains("--driver needs a value"));
        assert!(err(&["--runs", "3"]).contains("does not take the flag"));
        assert!(err(&["bench", "--keep"]).contains("bench and --keep cannot be used together"));
        assert!(err(&["bench", "--runs", "0"]).contains("from 1 to 1000"));
        assert!(err(&["bench", "--run", "2"]).contains("did you mean \"--runs\""));
    }

    #[test]
    fn the_driver_sets_the_default_vm_count_and_bench_its_runs() {
        let q = parse(&args(&["--driver", "qemu"])).unwrap();
        assert_eq!((q.driver, q.vms, q.bench), (Driver::Qemu, 2, None));
        let q = parse(&args(&["--driver=qemu", "--vms", "3"])).unwrap();
        assert_eq!((q.driver, q.vms), (Driver::Qemu, 3));
        assert_eq!(parse(&args(&["--driver", "process"])).unwrap().vms, 4);
        let b = parse(&args(&["bench"])).unwrap();
        assert_eq!((b.bench, b.hosts, b.vms), (Some(DEFAULT_RUNS), 3, 4));
        let b = parse(&args(&[
            "bench", "--runs", "10", "--hosts", "16", "--vms", "8", "--json",
        ]))
        .unwrap();
        assert_eq!((b.bench, b.hosts, b.vms, b.json), (Some(10), 16, 8, true));
    }

    /// The range of T is checked in one place (`Timeouts::derive`); the
    /// usage text and the help line quote it and must say the same.
    #[test]
    fn timeout_text_names_the_range() {
        let (min, max) = (
            xha_core::timeouts::MIN_BASE.as_secs(),
            xha_core::timeouts::MAX_BASE.as_secs(),
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

    /// The host range is `MIN_HOSTS` to the lab's `MAX_HOSTS`; the usage
    /// text and the help line quote it and must say the same.
    #[test]
    fn hosts_text_names_the_range() {
        let (min, max) = (MIN_HOSTS, xha_lab::MAX_HOSTS);
        for n in [min - 1, max + 1] {
            let err = parse(&args(&["--hosts", &n.to_string()]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("from {min} to {max}")), "{err}");
        }
        for n in [min, max] {
            assert!(parse(&args(&["--hosts", &n.to_string()])).is_ok());
        }
        let help = crate::table::COMMANDS
            .iter()
            .flat_map(|c| c.flags)
            .find(|f| f.name == "--hosts")
            .map(|f| f.help)
            .unwrap_or_default();
        assert!(
            help.contains(&format!("{min} to {max} (default {DEFAULT_HOSTS})")),
            "{help}"
        );
    }
}
