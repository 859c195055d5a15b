//! The lines a daemon sends to `xha-supervisor` (`arm <ms>`, `kick [<ms>]`,
//! `disarm`, `fence`), parsed, and why a line is refused.

use std::time::Duration;

/// Shortest countdown accepted.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest countdown accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest protocol line, newline excluded.
pub const MAX_LINE: usize = 64;

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
            Ok(Command::Kick(Some(Duration::from_millis(2500))))
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
}
