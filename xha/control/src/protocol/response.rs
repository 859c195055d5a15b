//! What the daemon sends: response lines, event lines on a `watch` stream,
//! and how a client reads either.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::parse::RequestError;
use super::report::LivesetReport;
use xha_core::ControlError;

/// Machine-readable error codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The line was not a valid request.
    BadRequest,
    /// The node fenced.
    Fenced,
    /// The node stopped.
    Stopped,
    /// Only the master may do that.
    NotMaster,
    /// The host is not in the liveset yet.
    NotLive,
    /// The daemon is busy (too many watchers or connections).
    Busy,
    /// Refused by the core for another reason (see the message).
    Refused,
    /// The connecting user may not use the control socket (peer
    /// credentials: root and the configured `control-uids` only).
    Forbidden,
    /// The connection sent no complete request for the idle timeout and
    /// is closed (watchers are exempt).
    Idle,
}

/// An error in a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl From<&RequestError> for ErrorBody {
    fn from(e: &RequestError) -> Self {
        ErrorBody {
            code: ErrorCode::BadRequest,
            message: e.to_string(),
        }
    }
}

impl From<&ControlError> for ErrorBody {
    fn from(e: &ControlError) -> Self {
        // The core's refusals grow with its features; a refusal without a
        // code of its own is reported as `refused` with the core's message.
        #[allow(unreachable_patterns)]
        let code = match e {
            ControlError::Fenced => ErrorCode::Fenced,
            ControlError::Stopped => ErrorCode::Stopped,
            ControlError::NotMaster => ErrorCode::NotMaster,
            ControlError::NotLive => ErrorCode::NotLive,
            _ => ErrorCode::Refused,
        };
        ErrorBody {
            code,
            message: e.to_string(),
        }
    }
}

/// One response line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<LivesetReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    #[must_use]
    pub fn ok(id: Option<u64>) -> Response {
        Response {
            id,
            ok: true,
            result: None,
            error: None,
        }
    }
    #[must_use]
    pub fn liveset(id: Option<u64>, report: LivesetReport) -> Response {
        Response {
            result: Some(report),
            ..Response::ok(id)
        }
    }
    #[must_use]
    pub fn error(id: Option<u64>, error: ErrorBody) -> Response {
        Response {
            id,
            ok: false,
            result: None,
            error: Some(error),
        }
    }
    /// The JSON line (without newline).
    #[must_use]
    pub fn to_line(&self) -> String {
        // Plain data with string keys: serialising cannot fail in practice;
        // should it, the client still gets one well-formed line.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"error":{"code":"refused","message":"the response could not be encoded"}}"#
                .to_owned()
        })
    }
}

/// Event kinds on a `watch` stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The liveset report changed.
    Liveset,
}

/// One event line on a `watch` stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub event: EventKind,
    /// Grows by one per event on the daemon (gaps mean a slow watcher
    /// missed intermediate reports; the latest is always sent).
    pub sequence: u64,
    pub liveset: LivesetReport,
}

impl Event {
    /// The JSON line (without newline).
    #[must_use]
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A line from the daemon, as a client reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerLine {
    Response(Response),
    Event(Event),
}

/// Why a line from the daemon did not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("daemon sent an unreadable line: {reason}")]
pub struct ServerLineError {
    pub reason: String,
}

/// Parse one line from the daemon (clients).
pub fn parse_server_line(line: &str) -> Result<ServerLine, ServerLineError> {
    let value: Value = serde_json::from_str(line).map_err(|e| ServerLineError {
        reason: e.to_string(),
    })?;
    let is_event = value.get("event").is_some();
    let err = |e: serde_json::Error| ServerLineError {
        reason: e.to_string(),
    };
    if is_event {
        serde_json::from_value(value)
            .map(ServerLine::Event)
            .map_err(err)
    } else {
        serde_json::from_value(value)
            .map(ServerLine::Response)
            .map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::report::example_report as report;

    #[test]
    fn responses_and_events_round_trip() {
        let r = Response::liveset(Some(1), report());
        let line = r.to_line();
        assert!(line.contains(r#""status":"online""#), "{line}");
        assert!(line.contains(r#""forged":2"#), "{line}");
        assert!(line.contains(r#""lease_ms":7000"#), "{line}");
        assert!(
            line.contains(r#""kind":"statefile-approaching-timeout""#),
            "{line}"
        );
        assert_eq!(parse_server_line(&line), Ok(ServerLine::Response(r)));
        let e = Event {
            event: EventKind::Liveset,
            sequence: 4,
            liveset: report(),
        };
        assert_eq!(parse_server_line(&e.to_line()), Ok(ServerLine::Event(e)));
        let err = Response::error(None, ErrorBody::from(&ControlError::NotMaster));
        assert_eq!(
            err.to_line(),
            r#"{"ok":false,"error":{"code":"not-master","message":"only the master may set the pool state"}}"#
        );
        assert_eq!(Response::ok(Some(3)).to_line(), r#"{"id":3,"ok":true}"#);
        assert!(parse_server_line("{").is_err());
        assert!(parse_server_line(r#"{"ok":true,"extra":1}"#).is_err());
    }
}
