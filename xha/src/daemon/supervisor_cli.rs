//! The command line of `xha-supervisor` (`run`, `kick`, `fence`, `reap`) and
//! its `main`; the minimal kicking client the lab and the tests use.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::supervisor::{SupervisorExit, serve};

/// Default wait for the daemon's first connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// Options of `xha-supervisor run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    pub socket: PathBuf,
    pub pgid: i32,
    pub connect_timeout: Duration,
    /// A uid allowed to connect besides root and the supervisor's own.
    pub uid: Option<u32>,
}

const USAGE: &str = "usage:
  xha-supervisor run  --socket PATH --pgid PGID [--connect-timeout-ms MS] [--uid UID]
  xha-supervisor kick --socket PATH --timeout-ms MS --interval-ms MS
                      [--disarm-after N | --fence-after N]
  xha-supervisor fence --socket PATH";

/// Parsed command line of the binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cli {
    /// Supervise a host.
    Run(ServeOptions),
    /// A minimal kicking client (lab and tests): arm, kick every interval,
    /// optionally disarm after N kicks and exit.
    Kick {
        socket: PathBuf,
        timeout: Duration,
        interval: Duration,
        disarm_after: Option<u64>,
        fence_after: Option<u64>,
    },
    /// Ask the supervisor to kill the host now.
    Fence { socket: PathBuf },
    /// The reaper the supervisor starts (`supervisor_reaper`); not for
    /// operators.
    Reap { pgid: i32 },
}

/// Parse the binary's arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Cli, String> {
    let Some((sub, rest)) = args.split_first() else {
        return Err("missing subcommand".into());
    };
    if sub == "reap" {
        return match rest {
            [flag, value] if flag == "--pgid" => value
                .parse::<i32>()
                .ok()
                .filter(|&g| g >= 2)
                .map(|pgid| Cli::Reap { pgid })
                .ok_or_else(|| format!("--pgid: {value:?} is not a process group (2 or more)")),
            _ => Err("reap: expected --pgid PGID".into()),
        };
    }
    let mut socket = None;
    let mut nums: Vec<(String, u64)> = Vec::new();
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag}: missing value"))?;
        match flag.as_str() {
            "--socket" => socket = Some(PathBuf::from(value)),
            "--pgid"
            | "--uid"
            | "--connect-timeout-ms"
            | "--timeout-ms"
            | "--interval-ms"
            | "--disarm-after"
            | "--fence-after" => {
                let n: u64 = value
                    .parse()
                    .map_err(|_| format!("{flag}: {value:?} is not a whole number"))?;
                nums.push((flag.clone(), n));
            }
            _ => return Err(format!("unknown option {flag:?}")),
        }
    }
    let num = |name: &str| nums.iter().rev().find(|(f, _)| f == name).map(|&(_, n)| n);
    let allowed: &[&str] = match sub.as_str() {
        "run" => &["--pgid", "--connect-timeout-ms", "--uid"],
        "kick" => &[
            "--timeout-ms",
            "--interval-ms",
            "--disarm-after",
            "--fence-after",
        ],
        "fence" => &[],
        other => return Err(format!("unknown subcommand {other:?}")),
    };
    if let Some((f, _)) = nums.iter().find(|(f, _)| !allowed.contains(&f.as_str())) {
        return Err(format!("{f} is not an option of {sub}"));
    }
    let socket = socket.ok_or("--socket is required")?;
    let need = |name: &str| num(name).ok_or_else(|| format!("{name} is required"));
    Ok(match sub.as_str() {
        "run" => Cli::Run(ServeOptions {
            socket,
            pgid: i32::try_from(need("--pgid")?).map_err(|_| "--pgid: out of range")?,
            connect_timeout: num("--connect-timeout-ms")
                .map_or(DEFAULT_CONNECT_TIMEOUT, Duration::from_millis),
            uid: num("--uid")
                .map(|u| u32::try_from(u).map_err(|_| "--uid: out of range"))
                .transpose()?,
        }),
        "kick" => Cli::Kick {
            socket,
            timeout: Duration::from_millis(need("--timeout-ms")?),
            interval: Duration::from_millis(need("--interval-ms")?),
            disarm_after: num("--disarm-after"),
            fence_after: num("--fence-after"),
        },
        _ => Cli::Fence { socket },
    })
}

/// The binary's `main`: returns the exit status.
#[must_use]
pub fn main_with_args(args: &[String]) -> i32 {
    super::logging::init();
    let cli = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xha-supervisor: {e}\n{USAGE}");
            return SupervisorExit::BadArguments.code();
        }
    };
    match cli {
        Cli::Run(opts) => serve(&opts).code(),
        Cli::Reap { pgid } => super::supervisor_reaper::reap_main(pgid),
        Cli::Kick {
            socket,
            timeout,
            interval,
            disarm_after,
            fence_after,
        } => kick_loop(&socket, timeout, interval, disarm_after, fence_after),
        Cli::Fence { socket } => {
            match super::watchdog::SupervisorWatchdog::connect(&socket)
                .and_then(|mut w| w.fence_and_confirm())
            {
                Ok(()) => 0,
                Err(e) => {
                    tracing::error!("{e}");
                    SupervisorExit::SystemError.code()
                }
            }
        }
    }
}

fn kick_loop(
    socket: &Path,
    timeout: Duration,
    interval: Duration,
    disarm_after: Option<u64>,
    fence_after: Option<u64>,
) -> i32 {
    use super::watchdog::Watchdog;
    let run = || -> Result<(), super::watchdog::WatchdogError> {
        let mut w = super::watchdog::SupervisorWatchdog::connect(socket)?;
        w.arm(timeout)?;
        let mut kicks = 0u64;
        loop {
            std::thread::sleep(interval);
            w.kick(timeout)?;
            kicks += 1;
            if disarm_after.is_some_and(|n| kicks >= n) {
                return w.disarm();
            }
            if fence_after.is_some_and(|n| kicks >= n) {
                // This process is in the host group: it is killed too.
                w.fence()?;
                std::thread::sleep(crate::daemon::supervisor::MAX_TIMEOUT);
                return Ok(());
            }
        }
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            SupervisorExit::SystemError.code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let a = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&a("run --socket /s --pgid 42")),
            Ok(Cli::Run(ServeOptions {
                socket: "/s".into(),
                pgid: 42,
                connect_timeout: DEFAULT_CONNECT_TIMEOUT,
                uid: None,
            }))
        );
        assert_eq!(
            parse_args(&a("run --socket /s --pgid 42 --uid 107"))
                .map(|c| matches!(c, Cli::Run(ServeOptions { uid: Some(107), .. }))),
            Ok(true)
        );
        assert_eq!(parse_args(&a("reap --pgid 42")), Ok(Cli::Reap { pgid: 42 }));
        assert!(parse_args(&a("reap --pgid 1")).is_err());
        assert!(parse_args(&a("reap")).is_err());
        assert!(
            parse_args(&a("run --socket /s"))
                .unwrap_err()
                .contains("--pgid")
        );
        assert!(parse_args(&a("run --socket /s --pgid 4 --interval-ms 3")).is_err());
        assert!(parse_args(&a("kick --socket /s --timeout-ms x")).is_err());
        assert!(parse_args(&a("jump --socket /s")).is_err());
        assert!(parse_args(&[]).is_err());
        assert_eq!(
            parse_args(&a("fence --socket /s")),
            Ok(Cli::Fence {
                socket: "/s".into()
            })
        );
    }
}
