//! `xha-supervisor`: an external watchdog for hosts without a watchdog device
//! (and for the lab), as a separate process the host does not control.
//!
//! It is started before the daemon, outside the host's process group, with
//! the group to kill (`--pgid`). The daemon connects to its Unix socket and
//! sends lines:
//!
//! | line | reply | meaning |
//! |------|-------|---------|
//! | `arm <ms>` | `ok` | start the countdown (100 ms ..= 1 h) |
//! | `kick` or `kick <ms>` | none | restart the countdown (with a new timeout) |
//! | `disarm` | `ok` | stop the countdown (fencing disarmed or clean stop) |
//! | `fence` | `ok` | kill the host now (the `kill-host` fence action) |
//!
//! Only the host's own daemon may connect: a client whose pid is not in the
//! `--pgid` group, or whose uid is not root, the supervisor's own or the
//! `--uid` one, is refused at once (`error <reason>`, connection closed,
//! logged) and changes nothing (`daemon::supervisor_peer`).
//!
//! A bad line gets `error <reason>` and the connection is closed. When the
//! countdown runs out the supervisor sends SIGKILL to the whole process group
//! (which ends stopped processes too, so a SIGSTOPped daemon is no shelter),
//! logs one line and exits with [`SupervisorExit::Fenced`].
//!
//! Rules that keep a dead or frozen daemon from escaping:
//! - Only the connection that armed can kick. If it closes while armed (the
//!   daemon crashed or was killed), the countdown keeps running and no new
//!   connection is accepted: a restarted daemon cannot extend the life of a
//!   host that should be fencing.
//! - A connection that closes while disarmed ends the supervisor cleanly
//!   ([`SupervisorExit::CleanStop`]): the host stopped.
//! - A connection closed after a bad line changes nothing else: armed, the
//!   countdown runs on as above; disarmed, the supervisor waits for its
//!   daemon again. A stray line never ends it.
//! - If no daemon connects within `--connect-timeout-ms`, the supervisor
//!   exits ([`SupervisorExit::NoClient`]) instead of lingering.
//! - If the supervisor itself dies while armed, its reaper kills the host's
//!   group at once (`daemon::supervisor_reaper`, which says why a reaper
//!   process rather than a death signal or a pidfd); the daemon, whose next
//!   kick fails, fences its own host too.
//!
//! The decisions are a pure state machine ([`Supervision`]) fed with the
//! caller's monotonic time; [`serve`] (`supervisor_io`) is the I/O loop
//! around it. This file is over 600 lines because about half of it is the
//! state machine's tests, kept beside it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Shortest countdown accepted.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest countdown accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest protocol line, newline excluded.
pub const MAX_LINE: usize = 64;
/// Default wait for the daemon's first connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// A request line, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Arm(Duration),
    /// Restart the countdown, with a new timeout when given.
    Kick(Option<Duration>),
    Disarm,
    Fence,
}

/// Why a request line was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty line")]
    Empty,
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("unknown command {0:?} (expected arm, kick, disarm or fence)")]
    Unknown(String),
    #[error("arm: missing timeout in milliseconds")]
    MissingTimeout,
    #[error("timeout {0:?} is not a whole number of milliseconds")]
    BadTimeout(String),
    #[error("timeout {ms} ms is outside {MIN_TIMEOUT:?}..={MAX_TIMEOUT:?}")]
    TimeoutOutOfRange { ms: u64 },
    #[error("{command}: unexpected argument {extra:?}")]
    ExtraArgument {
        command: &'static str,
        extra: String,
    },
}

fn parse_timeout(arg: &str) -> Result<Duration, ProtocolError> {
    let ms: u64 = arg
        .parse()
        .map_err(|_| ProtocolError::BadTimeout(arg.to_owned()))?;
    let d = Duration::from_millis(ms);
    if d < MIN_TIMEOUT || d > MAX_TIMEOUT {
        return Err(ProtocolError::TimeoutOutOfRange { ms });
    }
    Ok(d)
}

impl Command {
    /// Parse one line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Command, ProtocolError> {
        if line.len() > MAX_LINE {
            return Err(ProtocolError::TooLong);
        }
        let text = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
        let mut words = text.split_ascii_whitespace();
        let Some(word) = words.next() else {
            return Err(ProtocolError::Empty);
        };
        let (cmd, name) = match word {
            "arm" => {
                let arg = words.next().ok_or(ProtocolError::MissingTimeout)?;
                (Command::Arm(parse_timeout(arg)?), "arm")
            }
            "kick" => (
                Command::Kick(words.next().map(parse_timeout).transpose()?),
                "kick",
            ),
            "disarm" => (Command::Disarm, "disarm"),
            "fence" => (Command::Fence, "fence"),
            other => return Err(ProtocolError::Unknown(other.chars().take(32).collect())),
        };
        if let Some(extra) = words.next() {
            return Err(ProtocolError::ExtraArgument {
                command: name,
                extra: extra.chars().take(32).collect(),
            });
        }
        Ok(cmd)
    }
}

/// How the supervisor ended (its process exit status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SupervisorExit {
    /// The daemon disarmed and disconnected: the host stopped cleanly.
    CleanStop,
    /// Bad command-line arguments.
    BadArguments,
    /// A system call failed (socket, poll, kill).
    SystemError,
    /// The host's process group was killed.
    Fenced,
    /// No daemon connected in time.
    NoClient,
}

impl SupervisorExit {
    #[must_use]
    pub fn code(self) -> i32 {
        match self {
            SupervisorExit::CleanStop => 0,
            SupervisorExit::BadArguments => 1,
            SupervisorExit::SystemError => 2,
            SupervisorExit::Fenced => 3,
            SupervisorExit::NoClient => 4,
        }
    }
}

/// Why the host is being killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceCause {
    /// No kick for the armed timeout.
    Expired {
        timeout: Duration,
        since_last_kick: Duration,
    },
    /// The daemon asked (`fence`).
    Requested,
}

/// What the I/O loop must do after feeding an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do.
    Continue,
    /// Write this line to the client.
    Reply(String),
    /// Write this line to the client, then close the connection.
    ReplyAndClose(String),
    /// Kill the host's process group now.
    Fence(FenceCause),
    /// Exit with this status.
    Exit(SupervisorExit),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Armed {
    timeout: Duration,
    last_kick: Instant,
}

impl Armed {
    fn deadline(&self) -> Instant {
        self.last_kick + self.timeout
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No daemon has connected yet.
    AwaitingClient { until: Instant },
    /// A daemon is connected; armed or not.
    Connected { armed: Option<Armed> },
    /// The daemon's connection closed while armed: only the deadline is left.
    Orphaned { armed: Armed },
    /// The host was killed or the supervisor is exiting.
    Done,
}

/// The supervisor's decisions, a pure function of events and times.
#[derive(Clone, Debug)]
pub struct Supervision {
    state: State,
    connect_timeout: Duration,
}

impl Supervision {
    #[must_use]
    pub fn new(now: Instant, connect_timeout: Duration) -> Supervision {
        Supervision {
            state: State::AwaitingClient {
                until: now + connect_timeout,
            },
            connect_timeout,
        }
    }

    /// Whether a countdown is running.
    #[must_use]
    pub fn is_armed(&self) -> bool {
        matches!(
            self.state,
            State::Connected { armed: Some(_) } | State::Orphaned { .. }
        )
    }

    /// When `tick` must be called next.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::AwaitingClient { until } => Some(until),
            State::Connected { armed: Some(a) } | State::Orphaned { armed: a } => {
                Some(a.deadline())
            }
            State::Connected { armed: None } | State::Done => None,
        }
    }

    /// A new connection: accepted (`Ok`) or refused with the reason to send.
    pub fn connect(&mut self) -> Result<(), String> {
        match self.state {
            State::AwaitingClient { .. } => {
                self.state = State::Connected { armed: None };
                Ok(())
            }
            State::Connected { .. } => Err("busy: another daemon is connected".into()),
            State::Orphaned { .. } => {
                Err("armed by a daemon that disconnected: the countdown cannot be extended".into())
            }
            State::Done => Err("shutting down".into()),
        }
    }

    /// The connected client sent a line.
    pub fn line(&mut self, now: Instant, line: &[u8]) -> Outcome {
        let State::Connected { armed } = self.state else {
            return Outcome::Continue;
        };
        let cmd = match Command::parse(line) {
            Ok(c) => c,
            Err(e) => return self.refuse(now, armed, format!("error {e}")),
        };
        match (cmd, armed) {
            (Command::Arm(_), Some(_)) => self.refuse(now, armed, "error already armed".into()),
            (Command::Arm(timeout), None) => {
                self.state = State::Connected {
                    armed: Some(Armed {
                        timeout,
                        last_kick: now,
                    }),
                };
                Outcome::Reply("ok".into())
            }
            (Command::Kick(timeout), Some(a)) => {
                // A kick after the deadline does not revive the host: the
                // I/O loop ticks before reading, so this only happens when
                // both arrive in the same wake-up.
                if now >= a.deadline() {
                    return self.expire(now, a);
                }
                self.state = State::Connected {
                    armed: Some(Armed {
                        last_kick: now,
                        timeout: timeout.unwrap_or(a.timeout),
                    }),
                };
                Outcome::Continue
            }
            // A kick while disarmed is harmless; it gets no reply so the
            // client's request/reply pairing stays intact.
            (Command::Kick(_), None) => Outcome::Continue,
            (Command::Disarm, _) => {
                self.state = State::Connected { armed: None };
                Outcome::Reply("ok".into())
            }
            (Command::Fence, _) => {
                self.state = State::Done;
                Outcome::Fence(FenceCause::Requested)
            }
        }
    }

    /// A bad line: the connection is closed and nothing else changes. An
    /// armed countdown runs on (orphaned, as if the daemon disconnected);
    /// disarmed, the supervisor waits for its daemon again. A stray line
    /// never ends the supervisor.
    fn refuse(&mut self, now: Instant, armed: Option<Armed>, reply: String) -> Outcome {
        self.state = match armed {
            Some(armed) => State::Orphaned { armed },
            None => State::AwaitingClient {
                until: now + self.connect_timeout,
            },
        };
        Outcome::ReplyAndClose(reply)
    }

    /// A request to terminate (SIGTERM, SIGINT, SIGHUP). Refused while a
    /// countdown runs: like a watchdog device, an armed supervisor stops only
    /// by disarm (or SIGKILL, which cannot be caught).
    pub fn terminate(&mut self) -> Outcome {
        if self.is_armed() {
            return Outcome::Continue;
        }
        self.state = State::Done;
        Outcome::Exit(SupervisorExit::CleanStop)
    }

    /// The client's connection closed.
    pub fn disconnect(&mut self) -> Outcome {
        match self.state {
            State::Connected { armed: None } => {
                self.state = State::Done;
                Outcome::Exit(SupervisorExit::CleanStop)
            }
            State::Connected { armed: Some(a) } => {
                self.state = State::Orphaned { armed: a };
                Outcome::Continue
            }
            _ => Outcome::Continue,
        }
    }

    /// Time passed.
    pub fn tick(&mut self, now: Instant) -> Outcome {
        match self.state {
            State::AwaitingClient { until } if now >= until => {
                self.state = State::Done;
                Outcome::Exit(SupervisorExit::NoClient)
            }
            State::Connected { armed: Some(a) } | State::Orphaned { armed: a }
                if now >= a.deadline() =>
            {
                self.expire(now, a)
            }
            _ => Outcome::Continue,
        }
    }

    fn expire(&mut self, now: Instant, a: Armed) -> Outcome {
        self.state = State::Done;
        Outcome::Fence(FenceCause::Expired {
            timeout: a.timeout,
            since_last_kick: now.saturating_duration_since(a.last_kick),
        })
    }
}

/// Options of `xha-supervisor run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    pub socket: PathBuf,
    pub pgid: i32,
    pub connect_timeout: Duration,
    /// A uid allowed to connect besides root and the supervisor's own.
    pub uid: Option<u32>,
}

pub use super::supervisor_io::serve;

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
    fn parses_commands() {
        assert_eq!(
            Command::parse(b"arm 1500"),
            Ok(Command::Arm(Duration::from_millis(1500)))
        );
        assert_eq!(Command::parse(b"kick"), Ok(Command::Kick(None)));
        assert_eq!(
            Command::parse(b"kick 2500"),
            Ok(Command::Kick(Some(ms(2500))))
        );
        assert_eq!(
            Command::parse(b"kick 5"),
            Err(ProtocolError::TimeoutOutOfRange { ms: 5 })
        );
        assert_eq!(Command::parse(b" disarm "), Ok(Command::Disarm));
        assert_eq!(Command::parse(b"fence"), Ok(Command::Fence));
        assert_eq!(Command::parse(b""), Err(ProtocolError::Empty));
        assert_eq!(Command::parse(b"arm"), Err(ProtocolError::MissingTimeout));
        assert_eq!(
            Command::parse(b"arm x"),
            Err(ProtocolError::BadTimeout("x".into()))
        );
        assert_eq!(
            Command::parse(b"arm 99"),
            Err(ProtocolError::TimeoutOutOfRange { ms: 99 })
        );
        assert!(matches!(
            Command::parse(b"kick 300 3"),
            Err(ProtocolError::ExtraArgument { .. })
        ));
        assert!(matches!(
            Command::parse(b"reboot"),
            Err(ProtocolError::Unknown(_))
        ));
        assert_eq!(Command::parse(&[0xff]), Err(ProtocolError::NotUtf8));
        assert_eq!(Command::parse(&[b'k'; 65]), Err(ProtocolError::TooLong));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    proptest::proptest! {
        /// Any line, fed to a connected and armed supervisor, is either a
        /// command or a refusal that closes the connection: never a panic.
        #[test]
        fn any_line_is_parsed_or_refused(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let t0 = Instant::now();
            let mut s = Supervision::new(t0, ms(5000));
            s.connect().unwrap();
            s.line(t0, b"arm 1000");
            let out = s.line(t0, &line);
            let expected = match Command::parse(&line) {
                Ok(Command::Arm(_)) => Outcome::ReplyAndClose("error already armed".into()),
                Ok(Command::Kick(_)) => Outcome::Continue,
                Ok(Command::Disarm) => Outcome::Reply("ok".into()),
                Ok(Command::Fence) => Outcome::Fence(FenceCause::Requested),
                Err(e) => Outcome::ReplyAndClose(format!("error {e}")),
            };
            proptest::prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn kicks_keep_it_alive_and_silence_fences() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        assert_eq!(s.line(t0, b"arm 1000"), Outcome::Reply("ok".into()));
        for i in 1..=10 {
            let now = t0 + ms(500 * i);
            assert_eq!(s.tick(now), Outcome::Continue);
            assert_eq!(s.line(now, b"kick"), Outcome::Continue);
        }
        assert_eq!(s.next_deadline(), Some(t0 + ms(6000)));
        assert_eq!(s.tick(t0 + ms(5999)), Outcome::Continue);
        assert_eq!(
            s.tick(t0 + ms(6100)),
            Outcome::Fence(FenceCause::Expired {
                timeout: ms(1000),
                since_last_kick: ms(1100)
            })
        );
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn a_kick_may_shorten_or_lengthen_the_countdown() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        s.line(t0 + ms(500), b"kick 3000");
        assert_eq!(s.next_deadline(), Some(t0 + ms(3500)));
        s.line(t0 + ms(600), b"kick 200");
        assert_eq!(s.next_deadline(), Some(t0 + ms(800)));
        s.line(t0 + ms(700), b"kick");
        assert_eq!(s.next_deadline(), Some(t0 + ms(900)));
        assert!(matches!(s.tick(t0 + ms(900)), Outcome::Fence(_)));
    }

    #[test]
    fn a_late_kick_does_not_revive() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        assert!(matches!(s.line(t0 + ms(1000), b"kick"), Outcome::Fence(_)));
    }

    #[test]
    fn disarm_then_disconnect_is_a_clean_stop() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        assert_eq!(s.line(t0 + ms(500), b"disarm"), Outcome::Reply("ok".into()));
        assert_eq!(s.tick(t0 + ms(60_000)), Outcome::Continue);
        assert_eq!(s.line(t0 + ms(60_000), b"kick"), Outcome::Continue);
        assert_eq!(s.disconnect(), Outcome::Exit(SupervisorExit::CleanStop));
    }

    #[test]
    fn an_orphaned_countdown_cannot_be_extended() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        assert_eq!(s.disconnect(), Outcome::Continue);
        assert!(s.is_armed());
        assert!(s.connect().is_err(), "a restarted daemon may not take over");
        assert!(matches!(s.tick(t0 + ms(1000)), Outcome::Fence(_)));
    }

    #[test]
    fn protocol_errors_close_and_second_client_is_refused() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        assert!(s.connect().unwrap_err().starts_with("busy"));
        assert!(matches!(s.line(t0, b"arm 5"), Outcome::ReplyAndClose(_)));
        // The bad client is gone; the supervisor waits for its daemon again.
        assert_eq!(s.disconnect(), Outcome::Continue);
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        assert_eq!(s.line(t0, b"fence"), Outcome::Fence(FenceCause::Requested));
    }

    /// A bad line closes the connection and changes nothing else: armed,
    /// the countdown runs on; disarmed, the supervisor waits for its daemon
    /// again instead of taking the close for a clean stop.
    #[test]
    fn a_stray_line_never_ends_the_supervisor() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        assert!(matches!(s.line(t0, b"hello"), Outcome::ReplyAndClose(_)));
        assert_eq!(s.disconnect(), Outcome::Continue, "not a clean stop");
        assert_eq!(s.next_deadline(), Some(t0 + ms(5000)));
        s.connect().unwrap();
        assert_eq!(s.line(t0, b"arm 1000"), Outcome::Reply("ok".into()));
        assert_eq!(
            s.line(t0, b"arm 1000"),
            Outcome::ReplyAndClose("error already armed".into())
        );
        assert_eq!(s.disconnect(), Outcome::Continue);
        assert!(s.is_armed());
        assert!(
            s.connect().is_err(),
            "an orphaned countdown is not extended"
        );
        assert!(matches!(s.tick(t0 + ms(1000)), Outcome::Fence(_)));
    }

    #[test]
    fn terminate_is_refused_while_armed() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(5000));
        s.connect().unwrap();
        s.line(t0, b"arm 1000");
        assert_eq!(s.terminate(), Outcome::Continue);
        assert!(s.is_armed());
        s.line(t0, b"disarm");
        assert_eq!(s.terminate(), Outcome::Exit(SupervisorExit::CleanStop));
        let mut idle = Supervision::new(t0, ms(5000));
        assert_eq!(idle.terminate(), Outcome::Exit(SupervisorExit::CleanStop));
    }

    #[test]
    fn no_client_in_time() {
        let t0 = Instant::now();
        let mut s = Supervision::new(t0, ms(100));
        assert_eq!(s.tick(t0 + ms(50)), Outcome::Continue);
        assert_eq!(
            s.tick(t0 + ms(100)),
            Outcome::Exit(SupervisorExit::NoClient)
        );
    }

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
