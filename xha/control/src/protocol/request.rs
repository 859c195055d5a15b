//! The request kinds: each name written once, the list of names derived from
//! them, and the line a client sends.

use serde_json::{Map, Value};

use xha_core::{ControlRequest, PoolState};

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
                m.insert("state".into(), Value::from(s.name()));
            }
            _ => {}
        }
        Value::Object(m).to_string()
    }
}

/// The pool state names, as a refusal lists them (`init, active, invalid`).
pub(super) fn pool_state_names() -> String {
    PoolState::ALL.map(PoolState::name).join(", ")
}

/// The pool state named `name` in the `state` key, if any.
pub(super) fn pool_state_named(name: &str) -> Option<PoolState> {
    PoolState::ALL.into_iter().find(|s| s.name() == name)
}
