//! The HTTP routes: XML-RPC on `POST /` and `POST /RPC2`, JSON-RPC on
//! `POST /jsonrpc`, all into [`Agent::dispatch`]; CORS pre-flight on
//! `OPTIONS /` and `OPTIONS /jsonrpc`. Bodies are read here with
//! the size limit and the body timeout; an undecodable body is answered
//! with HTTP 400 in the protocol's failure shape (docs/api.md, "Malformed
//! requests").

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::agent::{Agent, Origin};
use crate::rpc::{DecodeError, Failure, jsonrpc, xmlrpc};

/// The limits applied to every request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Time allowed for the body to arrive.
    pub body_timeout: Duration,
}

#[derive(Clone)]
struct AppState {
    agent: Arc<Agent>,
    limits: Limits,
}

/// Error codes of requests refused before dispatch (ours; docs/api.md).
pub mod code {
    /// The XML-RPC body does not decode (xapi's name for it).
    pub const XMLRPC_UNMARSHAL_FAILURE: &str = "XMLRPC_UNMARSHAL_FAILURE";
    /// The body is larger than `api.max_body_bytes` (HTTP 413).
    pub const REQUEST_BODY_TOO_LARGE: &str = "REQUEST_BODY_TOO_LARGE";
    /// The body did not arrive within `api.body_timeout_s` (HTTP 408).
    pub const REQUEST_BODY_TIMEOUT: &str = "REQUEST_BODY_TIMEOUT";
}

/// The routes over `agent`.
pub fn router(agent: Arc<Agent>, limits: Limits) -> Router {
    Router::new()
        .route("/", get(super::web::status).post(xml).options(preflight))
        .route("/metrics", get(super::web::metrics))
        .route("/RPC2", post(xml))
        .route("/jsonrpc", post(json).options(preflight))
        .with_state(AppState { agent, limits })
}

// metrics: the GET routes (`web`) take the agent alone.
impl axum::extract::FromRef<AppState> for Arc<Agent> {
    fn from_ref(st: &AppState) -> Arc<Agent> {
        Arc::clone(&st.agent)
    }
}

/// The CORS pre-flight answer xapi gives on `OPTIONS /` and `/jsonrpc`.
async fn preflight() -> Response {
    let mut r = reply(StatusCode::OK, "text/plain", String::new());
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    r
}

/// Why a body could not be read.
enum BodyError {
    TooLarge,
    Timeout,
    Broken,
}

async fn read_body(body: Body, limits: Limits) -> Result<Bytes, BodyError> {
    match tokio::time::timeout(
        limits.body_timeout,
        axum::body::to_bytes(body, limits.max_body_bytes),
    )
    .await
    {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            // to_bytes reports the limit as a LengthLimitError in the chain.
            let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = src {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(BodyError::TooLarge);
                }
                src = s.source();
            }
            Err(BodyError::Broken)
        }
    }
}

fn body_failure(e: &BodyError, limits: Limits) -> (StatusCode, Failure) {
    match e {
        BodyError::TooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            Failure::new(
                code::REQUEST_BODY_TOO_LARGE,
                [limits.max_body_bytes.to_string()],
            ),
        ),
        BodyError::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            Failure::new(
                code::REQUEST_BODY_TIMEOUT,
                [format!("{}", limits.body_timeout.as_secs_f64())],
            ),
        ),
        BodyError::Broken => (
            StatusCode::BAD_REQUEST,
            Failure::new(
                code::XMLRPC_UNMARSHAL_FAILURE,
                ["the request body could not be read".to_owned()],
            ),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With"),
    );
    r
}

fn xml_reply(status: StatusCode, r: &Result<crate::rpc::Rpc, Failure>) -> Response {
    reply(status, "text/xml", xmlrpc::encode_response(r))
}

/// The request's origin, set per connection by the listener (absent: network).
fn origin_of(ext: Option<Extension<Origin>>) -> Origin {
    ext.map_or(Origin::Network, |Extension(o)| o)
}

async fn xml(
    State(st): State<AppState>,
    origin: Option<Extension<Origin>>,
    body: Body,
) -> Response {
    let bytes = match read_body(body, st.limits).await {
        Ok(b) => b,
        Err(e) => {
            let (status, f) = body_failure(&e, st.limits);
            return xml_reply(status, &Err(f));
        }
    };
    let call = match xmlrpc::decode_call(&bytes) {
        Ok(c) => c,
        Err(e) => {
            return xml_reply(
                StatusCode::BAD_REQUEST,
                &Err(decode_failure(code::XMLRPC_UNMARSHAL_FAILURE, &e)),
            );
        }
    };
    let method = call.method.clone();
    let r = st.agent.dispatch(call, origin_of(origin)).await;
    count(&st.agent, &method, &r);
    xml_reply(StatusCode::OK, &r)
}

/// metrics: counts one answered call (`xha_api_requests_total`).
fn count(agent: &Agent, method: &str, r: &Result<crate::rpc::Rpc, Failure>) {
    agent
        .metrics
        .api_request(method, r.as_ref().err().map(|f| f.code.as_str()));
}

/// A decode error as a failure; non-UTF-8 gets xapi's `INVALID_VALUE`.
fn decode_failure(code: &str, e: &DecodeError) -> Failure {
    match e {
        DecodeError::NotUtf8(_) => Failure::new(
            "INVALID_VALUE",
            [
                "Invalid UTF-8 string in parameter".to_owned(),
                e.to_string(),
            ],
        ),
        _ => Failure::new(code, [e.to_string()]),
    }
}

async fn json(
    State(st): State<AppState>,
    origin: Option<Extension<Origin>>,
    body: Body,
) -> Response {
    let json_reply = |status, text| reply(status, "application/json", text);
    let bytes = match read_body(body, st.limits).await {
        Ok(b) => b,
        Err(e) => {
            let (status, f) = body_failure(&e, st.limits);
            return json_reply(
                status,
                jsonrpc::encode_response(jsonrpc::Version::V2, &serde_json::Value::Null, &Err(f)),
            );
        }
    };
    let req = match jsonrpc::decode_request(&bytes) {
        Ok(r) => r,
        Err(e) => {
            let f = decode_failure(jsonrpc::UNMARSHAL_FAILURE, &e);
            return json_reply(
                StatusCode::BAD_REQUEST,
                jsonrpc::encode_response(jsonrpc::Version::V2, &serde_json::Value::Null, &Err(f)),
            );
        }
    };
    let method = req.call.method.clone();
    let r = st.agent.dispatch(req.call, origin_of(origin)).await;
    count(&st.agent, &method, &r);
    json_reply(
        StatusCode::OK,
        jsonrpc::encode_response(req.version, &req.id, &r),
    )
}
