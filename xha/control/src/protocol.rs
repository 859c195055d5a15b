//! The control protocol: JSON lines over the daemon's Unix stream socket
//! (mode 0600, so only root and the pool agent's user reach it).
//!
//! Each request is one line holding one JSON object with a `request` key
//! and an optional numeric `id` that the response echoes:
//!
//! ```text
//! {"request": "query-liveset", "id": 1}
//! {"request": "propose-master", "value": true}
//! {"request": "disarm-fencing"}
//! {"request": "set-excluded"}
//! {"request": "clear-excluded"}
//! {"request": "set-pool-state", "state": "active"}     (init | active | invalid)
//! {"request": "stop"}
//! {"request": "watch"}
//! ```
//!
//! Each request gets one [`Response`] line: `{"id":1,"ok":true,"result":{...}}`
//! or `{"ok":false,"error":{"code":"not-master","message":"..."}}`. After a
//! successful `watch` the connection also receives an [`Event`] line
//! (`{"event":"liveset","sequence":N,"liveset":{...}}`) every time the
//! liveset report changes, starting with the current one, so the pool agent
//! never polls. A malformed line gets a `bad-request` error naming what was
//! wrong, and the connection stays usable.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::DropCounters;
use xha_core::{ControlError, ControlRequest, HostStatus, PoolState, Timeouts};

/// Longest request line accepted, newline excluded.
pub const MAX_REQUEST_LINE: usize = 4096;

/// A control request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Report the liveset ([`LivesetReport`]).
    QueryLiveset,
    /// `true`: ask for the master lock; `false`: give it up.
    ProposeMaster(bool),
    /// Stop fencing on this host (maintenance, emergency disable).
    DisarmFencing,
    /// This host leaves cleanly; peers do not wait for it.
    SetExcluded,
    /// This host is back.
    ClearExcluded,
    /// Set the pool state (master only).
    SetPoolState(PoolState),
    /// Stop the daemon cleanly (disarms the watchdog).
    Stop,
    /// Stream liveset reports on this connection.
    Watch,
}

/// Every request name, as in the `request` key, in the order of
/// [`Request::EXAMPLES`]. Derived from [`Request::name`], where each name is
/// written once; the parser looks names up the same way.
pub const REQUEST_NAMES: [&str; 8] = distinct_names(&Request::EXAMPLES);

/// The names of `examples`, each once. Examples of one kind stand next to each
/// other, so a name is new when it differs from the one before; the asserts
/// (evaluated at compile time) catch a count that does not match `N`.
const fn distinct_names<const N: usize>(examples: &[Request]) -> [&'static str; N] {
    let mut names = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < examples.len() {
        let name = examples[i].name();
        if n == 0 || !same_str(names[n - 1], name) {
            assert!(n < N, "more request kinds than REQUEST_NAMES holds");
            names[n] = name;
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "fewer request kinds than REQUEST_NAMES holds");
    names
}

/// `a == b`, usable in a `const fn`.
const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Request {
    /// Every request, with every value of its argument.
    pub const EXAMPLES: [Request; 11] = [
        Request::QueryLiveset,
        Request::ProposeMaster(true),
        Request::ProposeMaster(false),
        Request::DisarmFencing,
        Request::SetExcluded,
        Request::ClearExcluded,
        Request::SetPoolState(PoolState::Init),
        Request::SetPoolState(PoolState::Active),
        Request::SetPoolState(PoolState::Invalid),
        Request::Stop,
        Request::Watch,
    ];

    /// The name in the `request` key.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Request::QueryLiveset => "query-liveset",
            Request::ProposeMaster(_) => "propose-master",
            Request::DisarmFencing => "disarm-fencing",
            Request::SetExcluded => "set-excluded",
            Request::ClearExcluded => "clear-excluded",
            Request::SetPoolState(_) => "set-pool-state",
            Request::Stop => "stop",
            Request::Watch => "watch",
        }
    }

    /// The request for the core, when the core handles it (`query-liveset`
    /// and `watch` are answered by the daemon from its published state).
    #[must_use]
    pub fn to_core(&self) -> Option<ControlRequest> {
        Some(match *self {
            Request::QueryLiveset | Request::Watch => return None,
            Request::ProposeMaster(v) => ControlRequest::ProposeMaster(v),
            Request::DisarmFencing => ControlRequest::DisarmFencing,
            Request::SetExcluded => ControlRequest::SetExcluded,
            Request::ClearExcluded => ControlRequest::ClearExcluded,
            Request::SetPoolState(s) => ControlRequest::SetPoolState(s),
            Request::Stop => ControlRequest::Stop,
        })
    }

    /// The JSON line for this request (clients: the pool agent, `xe lab`).
    #[must_use]
    pub fn to_line(&self, id: Option<u64>) -> String {
        let mut m = Map::new();
        m.insert("request".into(), Value::from(self.name()));
        if let Some(id) = id {
            m.insert("id".into(), Value::from(id));
        }
        match *self {
            Request::ProposeMaster(v) => {
                m.insert("value".into(), Value::from(v));
            }
            Request::SetPoolState(s) => {
                m.insert("state".into(), Value::from(pool_state_name(s)));
            }
            _ => {}
        }
        Value::Object(m).to_string()
    }
}

fn pool_state_name(s: PoolState) -> &'static str {
    match s {
        PoolState::Init => "init",
        PoolState::Active => "active",
        PoolState::Invalid => "invalid",
    }
}

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
    #[error("key \"state\": {value:?} is not a pool state (init, active, invalid)")]
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
            Some(Value::String(s)) => Request::SetPoolState(match s.as_str() {
                "init" => PoolState::Init,
                "active" => PoolState::Active,
                "invalid" => PoolState::Invalid,
                _ => return Err(RequestError::BadPoolState { value: s }),
            }),
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

/// The daemon's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Joining: not yet in the liveset.
    Starting,
    /// In the liveset.
    Online,
    /// This host fenced (the process is about to die).
    Fenced,
    /// Stopping after a `stop` request.
    Stopping,
}

/// Latency figures in milliseconds (`None` until measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub last_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    /// Record one measurement.
    pub fn record(&mut self, ms: f64) {
        self.last_ms = Some(ms);
        self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
        self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
    }
}

/// One host in the liveset report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub uuid: Uuid,
    pub index: usize,
    pub address: SocketAddr,
    /// In this host's current liveset.
    pub live: bool,
    /// Holds the master lock.
    pub master: bool,
    /// Heard on the network within the heartbeat timeout.
    pub heard: bool,
    /// Its slot seen advancing within the statefile timeout.
    pub seen: bool,
    /// It reported reaching the statefile.
    pub statefile_access: bool,
    /// Its slot failed to decode on the last read.
    pub statefile_corrupted: bool,
    pub excluded: bool,
    pub starting: bool,
    /// Its last state says its fencing is disarmed.
    #[serde(default)]
    pub fencing_disarmed: bool,
    /// Fencing disarmed and neither heard nor writing its slot: it is never
    /// removed from the liveset.
    #[serde(default)]
    pub silent_disarmed: bool,
    /// Since its last accepted heartbeat, on this host's clock.
    pub last_heartbeat_age_ms: Option<u64>,
    /// Since its slot last changed, on this host's clock.
    pub last_statefile_update_age_ms: Option<u64>,
}

/// The derived timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsReport {
    pub base_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub statefile_interval_ms: u64,
    pub statefile_timeout_ms: u64,
    pub io_deadline_ms: u64,
    pub latency_warning_ms: u64,
    pub lease_ms: u64,
    pub watchdog_min_ms: u64,
    pub kick_interval_ms: u64,
    pub settle_ms: u64,
    pub peers_may_act_ms: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&Timeouts> for TimeoutsReport {
    fn from(t: &Timeouts) -> Self {
        TimeoutsReport {
            base_ms: ms(t.base),
            heartbeat_interval_ms: ms(t.heartbeat_interval),
            heartbeat_timeout_ms: ms(t.heartbeat_timeout),
            statefile_interval_ms: ms(t.statefile_interval),
            statefile_timeout_ms: ms(t.statefile_timeout),
            io_deadline_ms: ms(t.io_deadline),
            latency_warning_ms: ms(t.latency_warning),
            lease_ms: ms(t.lease),
            watchdog_min_ms: ms(t.watchdog_min),
            kick_interval_ms: ms(t.kick_interval),
            settle_ms: ms(t.settle),
            peers_may_act_ms: ms(t.peers_may_act),
        }
    }
}

/// Kinds of operator warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// No majority of the statefiles is reachable.
    StatefileLost,
    /// A statefile I/O is approaching its deadline.
    StatefileApproachingTimeout,
    /// A peer's heartbeats are approaching the timeout.
    HeartbeatApproachingTimeout,
    /// A slot or the pool block failed to decode.
    StatefileCorrupted,
    /// The daemon runs without real-time priority or locked memory.
    NotRealtime,
    /// The watchdog backend is `none`, or the device ignored the timeout.
    Watchdog,
    /// A fence request was refused as not corroborated (forged or disputed).
    FenceRequestRefused,
    /// A peer does not hear this host while this host hears it.
    NotHeardBy,
    /// A member with fencing disarmed is neither heard nor writing its slot.
    SilentWhileDisarmed,
    /// A peer's packets are all dropped as replayed.
    ReplayDropping,
    /// Another condition (see the message).
    Other,
}

/// One warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningReport {
    pub kind: WarningKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefile: Option<usize>,
}

impl WarningReport {
    /// The report of one of the core's warnings; `hosts` maps indexes to
    /// UUIDs (sorted host list).
    #[must_use]
    pub fn from_core(w: &xha_core::Warning, hosts: &[Uuid]) -> WarningReport {
        use xha_core::Warning;
        let uuid = |i: xha_core::HostIndex| hosts.get(i.0).copied();
        // The core's warnings grow with its features: one without a kind of
        // its own is reported as `other` with its debug text.
        #[allow(unreachable_patterns)]
        match w {
            Warning::StatefileLatency { statefile, latency } => WarningReport {
                kind: WarningKind::StatefileApproachingTimeout,
                message: format!("statefile {statefile}: I/O took {} ms", latency.as_millis()),
                host: None,
                statefile: Some(statefile.0),
            },
            Warning::HeartbeatLatency { host, silence } => WarningReport {
                kind: WarningKind::HeartbeatApproachingTimeout,
                message: format!("host {host}: no heartbeat for {} ms", silence.as_millis()),
                host: uuid(*host),
                statefile: None,
            },
            Warning::StatefileLost => WarningReport {
                kind: WarningKind::StatefileLost,
                message: "a majority of the statefiles cannot be reached".into(),
                host: None,
                statefile: None,
            },
            Warning::StatefileCorrupt { statefile, host } => WarningReport {
                kind: WarningKind::StatefileCorrupted,
                message: match host {
                    Some(h) => format!("statefile {statefile}: the slot of host {h} is corrupt"),
                    None => format!("statefile {statefile}: the pool block is corrupt"),
                },
                host: host.and_then(uuid),
                statefile: Some(statefile.0),
            },
            Warning::FenceRequestRefused { by, why } => WarningReport {
                kind: WarningKind::FenceRequestRefused,
                message: format!(
                    "fence request from host {by} refused (not corroborated: {}); it is counted in fence_requests_refused",
                    why.text()
                ),
                host: uuid(*by),
                statefile: None,
            },
            Warning::NotHeardBy { host, lasted } => WarningReport {
                kind: WarningKind::NotHeardBy,
                message: format!(
                    "host {host} has not heard this host for {} ms while this host hears it (a one-way link, or host {host} drops this host's packets as replayed: see its query)",
                    lasted.as_millis()
                ),
                host: uuid(*host),
                statefile: None,
            },
            Warning::SilentWhileDisarmed { host } => WarningReport {
                kind: WarningKind::SilentWhileDisarmed,
                message: format!(
                    "host {host} silent while fencing disarmed: not heard, slot unchanged; it is never removed from the liveset"
                ),
                host: uuid(*host),
                statefile: None,
            },
            other => WarningReport {
                kind: WarningKind::Other,
                message: format!("{other:?}"),
                host: None,
                statefile: None,
            },
        }
    }
}

impl HostReport {
    /// One host's report: the core's view of it plus what the daemon
    /// measures (its address, whether its slot decoded, ages on this host's
    /// clock).
    #[must_use]
    pub fn from_core(
        status: &HostStatus,
        address: SocketAddr,
        statefile_corrupted: bool,
        last_heartbeat_age_ms: Option<u64>,
        last_statefile_update_age_ms: Option<u64>,
    ) -> HostReport {
        HostReport {
            uuid: status.uuid,
            index: status.index.0,
            address,
            live: status.live,
            master: status.master,
            heard: status.heard,
            seen: status.seen,
            statefile_access: status.statefile_access,
            statefile_corrupted,
            excluded: status.excluded,
            starting: status.starting,
            fencing_disarmed: status.fencing_disarmed,
            silent_disarmed: status.silent_disarmed,
            last_heartbeat_age_ms,
            last_statefile_update_age_ms,
        }
    }
}

/// The answer to `query-liveset`, and the payload of `watch` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LivesetReport {
    pub status: Status,
    pub pool_generation: Uuid,
    pub local_host: Uuid,
    pub local_index: usize,
    /// Whether this host fences on a fault (false after `disarm-fencing`).
    pub fencing_armed: bool,
    /// The watchdog backend (`linux`, `supervisor`, `none`).
    pub watchdog: String,
    /// The master (lock holder) this host knows, if any.
    pub master: Option<Uuid>,
    pub master_epoch: u64,
    /// UUIDs of the hosts in this host's liveset, by index.
    pub liveset: Vec<Uuid>,
    pub hosts: Vec<HostReport>,
    pub statefile_latency: Latency,
    pub heartbeat_latency: Latency,
    pub dropped_packets: DropCounters,
    /// Fence requests this host refused as not corroborated by its own
    /// views (forged, or disputed); each is also logged with its sender.
    #[serde(default)]
    pub fence_requests_refused: u64,
    pub timeouts: TimeoutsReport,
    pub warnings: Vec<WarningReport>,
}

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
    use std::time::Duration;

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

    fn report() -> LivesetReport {
        let t = Timeouts::derive(Duration::from_secs(10)).unwrap();
        let mut lat = Latency::default();
        lat.record(2.5);
        lat.record(1.0);
        LivesetReport {
            status: Status::Online,
            pool_generation: Uuid::from_u128(1),
            local_host: Uuid::from_u128(2),
            local_index: 0,
            fencing_armed: true,
            watchdog: "supervisor".into(),
            master: Some(Uuid::from_u128(2)),
            master_epoch: 3,
            liveset: vec![Uuid::from_u128(2)],
            hosts: vec![HostReport {
                uuid: Uuid::from_u128(2),
                index: 0,
                address: "127.0.0.1:694".parse().unwrap(),
                live: true,
                master: true,
                heard: true,
                seen: true,
                statefile_access: true,
                statefile_corrupted: false,
                excluded: false,
                starting: false,
                fencing_disarmed: false,
                silent_disarmed: false,
                last_heartbeat_age_ms: None,
                last_statefile_update_age_ms: Some(120),
            }],
            statefile_latency: lat,
            heartbeat_latency: Latency::default(),
            dropped_packets: DropCounters {
                forged: 2,
                ..DropCounters::default()
            },
            fence_requests_refused: 0,
            timeouts: TimeoutsReport::from(&t),
            warnings: vec![WarningReport {
                kind: WarningKind::StatefileApproachingTimeout,
                message: "statefile 0 latency 4100 ms".into(),
                host: None,
                statefile: Some(0),
            }],
        }
    }

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

    #[test]
    fn core_warnings_and_host_status_map_to_reports() {
        use xha_core::Warning;
        let hosts = [Uuid::from_u128(10), Uuid::from_u128(11)];
        let w = WarningReport::from_core(
            &Warning::HeartbeatLatency {
                host: xha_core::HostIndex(1),
                silence: Duration::from_millis(1500),
            },
            &hosts,
        );
        assert_eq!(w.kind, WarningKind::HeartbeatApproachingTimeout);
        assert_eq!(w.host, Some(hosts[1]));
        assert_eq!(w.message, "host 1: no heartbeat for 1500 ms");
        let w = WarningReport::from_core(
            &Warning::StatefileCorrupt {
                statefile: xha_core::StatefileIndex(0),
                host: None,
            },
            &hosts,
        );
        assert_eq!(
            (w.kind, w.statefile, w.host),
            (WarningKind::StatefileCorrupted, Some(0), None)
        );
        assert_eq!(
            WarningReport::from_core(&Warning::StatefileLost, &hosts).kind,
            WarningKind::StatefileLost
        );
        // A real node's view of a host (built through the core's API, so
        // this test follows the core's fields).
        let cfg = xha_core::Config {
            pool_generation: Uuid::from_u128(1),
            hosts: hosts.to_vec(),
            local: 0,
            timeouts: Timeouts::derive(Duration::from_secs(10)).unwrap(),
            statefiles: 1,
            seed: 1,
            fencing_armed: true,
            master_candidate: false,
        };
        let node = xha_core::Node::new(cfg, xha_core::Instant::from_nanos(0)).unwrap();
        let status = node.status().hosts[1].clone();
        let r = HostReport::from_core(
            &status,
            "10.0.0.2:694".parse().unwrap(),
            false,
            Some(40),
            None,
        );
        assert_eq!(
            (r.index, r.uuid, r.last_heartbeat_age_ms),
            (1, hosts[1], Some(40))
        );
        assert_eq!(
            (r.live, r.heard, r.seen, r.master),
            (status.live, status.heard, status.seen, status.master)
        );
    }

    #[test]
    fn latency_tracks_last_min_max() {
        let mut l = Latency::default();
        assert_eq!(l.last_ms, None);
        for v in [3.0, 1.0, 7.0, 2.0] {
            l.record(v);
        }
        assert_eq!(
            (l.last_ms, l.min_ms, l.max_ms),
            (Some(2.0), Some(1.0), Some(7.0))
        );
    }
}
