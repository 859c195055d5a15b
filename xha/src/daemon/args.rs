//! `xhad`'s command line.

use std::path::PathBuf;

/// `xhad --help`.
pub const USAGE: &str = "usage: xhad --config PATH [--check] [--heartbeat-fd N]
  --config PATH       the configuration file (docs/daemon.md)
  --check             validate the configuration and the statefiles, then exit
  --heartbeat-fd N    use the UDP socket inherited on descriptor N, already
                      bound to this host's address, instead of binding it
  --help, --version";

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    Run {
        config: PathBuf,
        check: bool,
        heartbeat_fd: Option<i32>,
    },
    Help,
    Version,
}

/// Parse `xhad`'s arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let mut config = None;
    let mut check = false;
    let mut heartbeat_fd = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" => {
                let v = it.next().ok_or("--config: missing value (a path)")?;
                if v.is_empty() {
                    return Err("--config: the path is empty".into());
                }
                config = Some(PathBuf::from(v));
            }
            "--check" => check = true,
            "--heartbeat-fd" => {
                let v = it
                    .next()
                    .ok_or("--heartbeat-fd: missing value (a descriptor)")?;
                let fd: i32 =
                    v.parse().ok().filter(|&fd| fd > 2).ok_or_else(|| {
                        format!("--heartbeat-fd: {v:?} is not a descriptor above 2")
                    })?;
                heartbeat_fd = Some(fd);
            }
            "--help" | "-h" => return Ok(Cli::Help),
            "--version" | "-V" => return Ok(Cli::Version),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = config.ok_or("--config PATH is required")?;
    Ok(Cli::Run {
        config,
        check,
        heartbeat_fd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn command_line() {
        assert_eq!(
            parse_args(&args(&["--config", "/etc/x.toml"])),
            Ok(Cli::Run {
                config: PathBuf::from("/etc/x.toml"),
                check: false,
                heartbeat_fd: None,
            })
        );
        assert_eq!(
            parse_args(&args(&["--check", "--config", "x"])),
            Ok(Cli::Run {
                config: PathBuf::from("x"),
                check: true,
                heartbeat_fd: None,
            })
        );
        assert_eq!(parse_args(&args(&["--help"])), Ok(Cli::Help));
        assert_eq!(
            parse_args(&args(&["--config", "x", "--heartbeat-fd", "3"])),
            Ok(Cli::Run {
                config: PathBuf::from("x"),
                check: false,
                heartbeat_fd: Some(3),
            })
        );
        for bad in ["2", "-1", "x", ""] {
            assert!(
                parse_args(&args(&["--config", "x", "--heartbeat-fd", bad]))
                    .unwrap_err()
                    .contains("--heartbeat-fd")
            );
        }
        assert!(
            parse_args(&args(&[]))
                .unwrap_err()
                .contains("--config PATH is required")
        );
        assert!(
            parse_args(&args(&["--config"]))
                .unwrap_err()
                .contains("missing value")
        );
        assert!(
            parse_args(&args(&["--config", ""]))
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            parse_args(&args(&["--frobnicate"]))
                .unwrap_err()
                .contains("--frobnicate")
        );
    }
}
