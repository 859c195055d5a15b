//! Reading one request line: the parser the daemon runs on every line a
//! client sends, and why a line is refused.

use serde::Deserialize;
use serde_json::Value;

use super::request::{REQUEST_NAMES, Request, pool_state_named, pool_state_names};

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST_LINE: usize = 4096;

/// A parsed request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine {
    pub id: Option<u64>,
    pub request: Request,
}

/// Why a request line was refused (answered with code `bad-request`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request line is {len} bytes, at most {MAX_REQUEST_LINE} are accepted")]
    TooLong { len: usize },
    #[error("request line is not UTF-8")]
    NotUtf8,
    #[error("request line is not JSON: {reason}")]
    NotJson { reason: String },
    #[error("request line must be a JSON object, found {found}")]
    NotObject { found: &'static str },
    #[error("missing key \"{key}\"")]
    MissingKey { key: &'static str },
    #[error("key \"{key}\": expected {expected}, found {found}")]
    WrongType {
        key: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("unknown request {name:?}; expected one of: {}", REQUEST_NAMES.join(", "))]
    UnknownRequest { name: String },
    #[error("request {request}: unknown key \"{key}\"")]
    UnknownKey { request: &'static str, key: String },
    #[error(
        "key \"state\": {value:?} is not a pool state ({})",
        pool_state_names()
    )]
    BadPoolState { value: String },
    #[error("key \"{key}\" appears more than once")]
    DuplicateKey { key: String },
}

/// The keys of a JSON object in the order given, duplicates kept (a
/// `serde_json::Map` keeps only the last of two equal keys).
struct Keys(Vec<String>);

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

/// The first key that appears twice in the JSON object `text`, if any.
fn duplicate_key(text: &str) -> Option<String> {
    let Keys(keys) = serde_json::from_str(text).ok()?;
    let mut seen = std::collections::HashSet::new();
    keys.into_iter().find(|k| !seen.insert(k.clone()))
}

/// The `id` of a request line, when it has a valid one, even if the rest of
/// the line is refused: an error reply echoes it so a client matching
/// replies by id can tell which request failed.
#[must_use]
pub fn request_id(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let Value::Object(obj) = serde_json::from_str::<Value>(text).ok()? else {
        return None;
    };
    obj.get("id")?.as_u64()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 40 {
        format!("{}...", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// Parse one request line (without its newline). Never panics.
pub fn parse_request(line: &[u8]) -> Result<RequestLine, RequestError> {
    if line.len() > MAX_REQUEST_LINE {
        return Err(RequestError::TooLong { len: line.len() });
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    let value: Value = serde_json::from_str(text).map_err(|e| RequestError::NotJson {
        reason: e.to_string(),
    })?;
    let Value::Object(mut obj) = value else {
        return Err(RequestError::NotObject {
            found: type_name(&value),
        });
    };
    // Two equal keys would silently keep the last one (two `request`s: the
    // second one executes): refuse instead.
    if let Some(key) = duplicate_key(text) {
        return Err(RequestError::DuplicateKey {
            key: key.chars().take(40).collect(),
        });
    }
    let name = match obj.remove("request") {
        None => return Err(RequestError::MissingKey { key: "request" }),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(RequestError::WrongType {
                key: "request",
                expected: "a string",
                found: shown(&other),
            });
        }
    };
    let id = match obj.remove("id") {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| RequestError::WrongType {
            key: "id",
            expected: "a non-negative integer",
            found: shown(&v),
        })?),
    };
    let Some(kind) = Request::EXAMPLES.iter().find(|r| r.name() == name) else {
        return Err(RequestError::UnknownRequest {
            name: name.chars().take(40).collect(),
        });
    };
    let request = match *kind {
        Request::ProposeMaster(_) => match obj.remove("value") {
            None => return Err(RequestError::MissingKey { key: "value" }),
            Some(Value::Bool(b)) => Request::ProposeMaster(b),
            Some(other) => {
                return Err(RequestError::WrongType {
                    key: "value",
                    expected: "true or false",
                    found: shown(&other),
                });
            }
        },
        Request::SetPoolState(_) => match obj.remove("state") {
            None => return Err(RequestError::MissingKey { key: "state" }),
            Some(Value::String(s)) => match pool_state_named(&s) {
                Some(state) => Request::SetPoolState(state),
                None => return Err(RequestError::BadPoolState { value: s }),
            },
            Some(other) => {
                return Err(RequestError::WrongType {
                    key: "state",
                    expected: "a string",
                    found: shown(&other),
                });
            }
        },
        // Requests without an argument are their own example.
        r @ (Request::QueryLiveset
        | Request::DisarmFencing
        | Request::SetExcluded
        | Request::ClearExcluded
        | Request::Stop
        | Request::Watch) => r,
    };
    if let Some(key) = obj.keys().next() {
        return Err(RequestError::UnknownKey {
            request: request.name(),
            key: key.chars().take(40).collect(),
        });
    }
    Ok(RequestLine { id, request })
}

#[cfg(test)]
mod tests {
    use super::*;
    use xha_core::{ControlRequest, PoolState};

    fn req(s: &str) -> Result<Request, RequestError> {
        parse_request(s.as_bytes()).map(|l| l.request)
    }

    #[test]
    fn every_request_parses_and_round_trips() {
        for r in Request::EXAMPLES {
            let line = r.to_line(Some(7));
            assert_eq!(
                parse_request(line.as_bytes()),
                Ok(RequestLine {
                    id: Some(7),
                    request: r
                }),
                "{line}"
            );
            assert!(REQUEST_NAMES.contains(&r.name()));
        }
        assert_eq!(req(r#"{"request":"stop"}"#), Ok(Request::Stop));
        assert_eq!(
            Request::SetPoolState(PoolState::Active).to_core(),
            Some(ControlRequest::SetPoolState(PoolState::Active))
        );
        assert_eq!(Request::Watch.to_core(), None);
    }

    #[test]
    fn precise_errors() {
        assert_eq!(
            req("\u{0}"),
            Err(RequestError::NotJson {
                reason: "expected value at line 1 column 1".into()
            })
        );
        assert_eq!(
            req("[1]"),
            Err(RequestError::NotObject { found: "an array" })
        );
        assert_eq!(req("{}"), Err(RequestError::MissingKey { key: "request" }));
        assert!(matches!(
            req(r#"{"request":1}"#),
            Err(RequestError::WrongType { key: "request", .. })
        ));
        assert!(matches!(
            req(r#"{"request":"reboot"}"#),
            Err(RequestError::UnknownRequest { .. })
        ));
        // The names are derived from `Request::name`; the refusal still lists
        // every name once, in the documented order.
        assert_eq!(
            req(r#"{"request":"reboot"}"#).unwrap_err().to_string(),
            "unknown request \"reboot\"; expected one of: query-liveset, propose-master, \
             disarm-fencing, set-excluded, clear-excluded, set-pool-state, stop, watch"
        );
        assert_eq!(
            req(r#"{"request":"propose-master"}"#),
            Err(RequestError::MissingKey { key: "value" })
        );
        assert!(matches!(
            req(r#"{"request":"propose-master","value":"yes"}"#),
            Err(RequestError::WrongType { key: "value", .. })
        ));
        assert_eq!(
            req(r#"{"request":"set-pool-state","state":"on"}"#),
            Err(RequestError::BadPoolState { value: "on".into() })
        );
        assert_eq!(
            req(r#"{"request":"set-pool-state","state":"on"}"#)
                .unwrap_err()
                .to_string(),
            "key \"state\": \"on\" is not a pool state (init, active, invalid)"
        );
        assert_eq!(
            req(r#"{"request":"stop","force":true}"#),
            Err(RequestError::UnknownKey {
                request: "stop",
                key: "force".into()
            })
        );
        assert!(matches!(
            req(r#"{"request":"stop","id":-1}"#),
            Err(RequestError::WrongType { key: "id", .. })
        ));
        assert_eq!(parse_request(&[0xff, b'{']), Err(RequestError::NotUtf8));
        let long = vec![b' '; MAX_REQUEST_LINE + 1];
        assert!(matches!(
            parse_request(&long),
            Err(RequestError::TooLong { .. })
        ));
        let e = req(r#"{"request":"reboot"}"#).unwrap_err().to_string();
        assert!(e.contains("query-liveset, propose-master"), "{e}");
    }

    #[test]
    fn duplicate_keys_are_refused_naming_the_key() {
        // Before: the second "request" executed.
        assert_eq!(
            req(r#"{"request":"query-liveset","request":"stop"}"#),
            Err(RequestError::DuplicateKey {
                key: "request".into()
            })
        );
        assert_eq!(
            req(r#"{"request":"query-liveset","id":1,"id":2}"#),
            Err(RequestError::DuplicateKey { key: "id".into() })
        );
        let e = req(r#"{"request":"stop","request":"stop"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"request\" appears more than once"), "{e}");
        // Nested objects are not the request's keys.
        assert!(matches!(
            req(r#"{"request":"stop","x":{"a":1,"a":2}}"#),
            Err(RequestError::UnknownKey { .. })
        ));
    }

    #[test]
    fn the_id_of_a_refused_line_is_found() {
        assert_eq!(request_id(br#"{"request":"reboot","id":7}"#), Some(7));
        assert_eq!(
            request_id(br#"{"request":"stop","force":1,"id":8}"#),
            Some(8)
        );
        assert_eq!(request_id(br#"{"id":-1}"#), None);
        assert_eq!(request_id(b"not json"), None);
        assert_eq!(request_id(b"[1]"), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// Arbitrary bytes, and arbitrary JSON objects built from the known
        /// keys, never panic the parser.
        #[test]
        fn parser_is_total(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn parser_is_total_on_near_requests(
            name in proptest::sample::select(&["query-liveset", "propose-master", "set-pool-state", "stop", "x"][..]),
            key in proptest::sample::select(&["value", "state", "id", "request", "other"][..]),
            value in proptest::sample::select(&["true", "1", "-1", "\"init\"", "null", "[]", "{}", "1e400", "18446744073709551616"][..]),
        ) {
            let line = format!(r#"{{"request":"{name}","{key}":{value}}}"#);
            let _ = parse_request(line.as_bytes());
        }
    }
}
