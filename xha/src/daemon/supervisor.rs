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
//! around it. The request lines are parsed in `supervisor_line`, the
//! command line of the binary in `supervisor_cli`.

use std::time::{Duration, Instant};

pub use super::supervisor_cli::{
    Cli, DEFAULT_CONNECT_TIMEOUT, ServeOptions, main_with_args, parse_args,
};
pub use super::supervisor_io::serve;
pub use super::supervisor_line::{Command, MAX_LINE, MAX_TIMEOUT, MIN_TIMEOUT, ProtocolError};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
