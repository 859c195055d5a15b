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
//!
//! The protocol is written in parts, one job each: `request` (the request
//! kinds and their names), `parse` (reading a request line, and why one is
//! refused), `report` (the liveset report), `warning` (operator warnings)
//! and `response` (response and event lines, and reading them as a client).

mod parse;
mod report;
mod request;
mod response;
mod warning;

pub use parse::{MAX_REQUEST_LINE, RequestError, RequestLine, parse_request, request_id};
pub use report::{HostReport, Latency, LivesetReport, Status, TimeoutsReport};
pub use request::{REQUEST_NAMES, Request};
pub use response::{
    ErrorBody, ErrorCode, Event, EventKind, Response, ServerLine, ServerLineError,
    parse_server_line,
};
pub use warning::{WarningKind, WarningReport};
