//! metrics: the two GET routes for people and Prometheus (docs/api.md,
//! docs/metrics.md):
//! - `GET /metrics`: the Prometheus exposition, open on every listener
//!   (as Prometheus scrapes without a login; it shows counts and states,
//!   no secrets and no VM names);
//! - `GET /`: the master's status page, behind HTTP basic auth with the
//!   pool's users (the API's login); root on the Unix socket needs none.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::agent::{Agent, Origin};
use super::role::Role;
use crate::status_page::{self, PageOptions};

/// Seconds between reloads of the status page.
pub const REFRESH_SECONDS: u32 = 5;

/// The realm of the status page's basic auth.
pub const REALM: &str = "xapi-ha";

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /metrics`.
pub async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    let a = Arc::clone(&agent);
    match tokio::task::spawn_blocking(move || a.metrics.exposition(&a.database())).await {
        Ok(text) => reply(StatusCode::OK, crate::metrics::CONTENT_TYPE, text),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("metrics failed: {e}\n"),
        ),
    }
}

/// The user and password of a `Basic` authorization header, if well formed.
#[must_use]
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn unauthorized() -> Response {
    let mut r = reply(
        StatusCode::UNAUTHORIZED,
        "text/plain; charset=utf-8",
        "log in with a pool user (xapi-ha passwd)\n".to_owned(),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\", charset=\"UTF-8\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// `GET /`: the status page.
pub async fn status(
    State(agent): State<Arc<Agent>>,
    origin: Option<Extension<Origin>>,
    headers: HeaderMap,
) -> Response {
    let local_root = matches!(origin, Some(Extension(Origin::LocalRoot)));
    if !local_root {
        let Some((user, password)) = basic_credentials(&headers) else {
            return unauthorized();
        };
        let a = Arc::clone(&agent);
        let u = user.clone();
        // Hashing takes tens of milliseconds: off the async workers.
        let ok = tokio::task::spawn_blocking(move || a.check_password(&u, &password))
            .await
            .unwrap_or(false);
        if !ok || user == crate::pool::peer::PEER_USER {
            tracing::info!(user = %user, "status page login refused");
            return unauthorized();
        }
    }
    if let Role::Slave(master) = agent.role() {
        let body = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>xapi-ha member</title></head>\
             <body><p>This host is a pool member. The status page is on the master, {}.</p></body></html>\n",
            status_page::html::esc(&master)
        );
        return reply(StatusCode::OK, "text/html; charset=utf-8", body);
    }
    let a = Arc::clone(&agent);
    let page = tokio::task::spawn_blocking(move || {
        let opts = PageOptions {
            refresh_seconds: REFRESH_SECONDS,
            generated_at: super::agent::wall_clock().to_string(),
        };
        status_page::render(&a.database(), &opts)
    })
    .await;
    match page {
        Ok(html) => reply(StatusCode::OK, "text/html; charset=utf-8", html),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("the status page failed: {e}\n"),
        ),
    }
}
