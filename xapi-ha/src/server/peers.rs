//! The host-to-host client (docs/pool.md, "Host to host"): one XML-RPC call
//! to another agent over TLS, with that agent's certificate pinned to the
//! fingerprint the pool database records for it (or, for the first contact
//! of `pool.join`, to none: trust on first use, the fingerprint seen is
//! returned). A new connection per call; pool calls are few.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

use super::tls::{Seen, pinned_client_config};
use crate::pool::peer::PEER_USER;
use crate::pool::secret::PoolSecret;
use crate::rpc::{Call, Failure, Rpc, xmlrpc};

/// Time to connect and finish the TLS handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for one reply: a forwarded clean shutdown waits up to 30 s for the
/// VM (`server::vms::CLEAN_STOP_TIMEOUT`), a join hashes a password.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// Another agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its `host.address` (or the address given to `pool.join`).
    pub address: String,
    /// The pool's TLS port.
    pub port: u16,
    /// The certificate fingerprint to insist on; `None` accepts any (the
    /// first contact of a join) and reports the one seen.
    pub fingerprint: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.address, self.port)
    }
}

/// Why a call got no API answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{target} presented certificate {seen}, not the pinned {expected}")]
    Fingerprint {
        target: String,
        seen: String,
        expected: String,
    },
    #[error("HTTP exchange with {target} failed: {reason}")]
    Http { target: String, reason: String },
    #[error("{target} sent no XML-RPC reply: {reason}")]
    Reply { target: String, reason: String },
    #[error("no reply from {target} within {seconds} s")]
    Timeout { target: String, seconds: u64 },
}

/// A call's end: an API answer (success or failure), or no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error("{}: {:?}", .0.code, .0.params)]
    Api(Failure),
}

/// Sends `call` to `target`; the API's answer and the fingerprint seen.
pub async fn call(
    target: &Target,
    call: &Call,
) -> Result<(Result<Rpc, Failure>, String), PeerError> {
    let name = target.to_string();
    let seen: Seen = Arc::new(Mutex::new(None));
    let seen_fp = |seen: &Seen| seen.lock().ok().and_then(|s| s.clone()).unwrap_or_default();
    let connect_err = |reason: String| PeerError::Connect {
        target: name.clone(),
        reason,
    };
    let config = pinned_client_config(target.fingerprint.clone(), seen.clone())
        .map_err(|e| connect_err(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    // The name only selects SNI: the pin authenticates.
    let server_name = ServerName::try_from(target.address.clone())
        .unwrap_or_else(|_| ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    let timeout = |d: Duration| PeerError::Timeout {
        target: name.clone(),
        seconds: d.as_secs(),
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        connector.connect(server_name, tcp).await.map_err(|e| {
            match (&target.fingerprint, seen_fp(&seen)) {
                (Some(expected), got) if !got.is_empty() && got != *expected => {
                    PeerError::Fingerprint {
                        target: name.clone(),
                        seen: got,
                        expected: expected.clone(),
                    }
                }
                _ => connect_err(format!("TLS: {e}")),
            }
        })
    })
    .await
    .map_err(|_| timeout(CONNECT_TIMEOUT))??;
    let http = |reason: String| PeerError::Http {
        target: name.clone(),
        reason,
    };
    let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, async {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| http(e.to_string()))?;
        let conn = tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = hyper::Request::post("/")
            .header(hyper::header::HOST, target.address.as_str())
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .body(Full::new(Bytes::from(xmlrpc::encode_call(call))))
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http(e.to_string()))?
            .to_bytes();
        drop(sender);
        conn.abort();
        Ok::<_, PeerError>((status, bytes))
    })
    .await
    .map_err(|_| timeout(CALL_TIMEOUT))??;
    let reply = xmlrpc::decode_response(&bytes).map_err(|e| PeerError::Reply {
        target: name.clone(),
        reason: format!("HTTP {status}: {e}"),
    })?;
    Ok((reply, seen_fp(&seen)))
}

/// Logs in to `target` with `user` and `password`; the session and the
/// fingerprint seen.
pub async fn login(
    target: &Target,
    user: &str,
    password: &str,
) -> Result<(String, String), CallError> {
    let login = Call {
        method: "session.login_with_password".into(),
        params: vec![
            Rpc::Str(user.to_owned()),
            Rpc::Str(password.to_owned()),
            Rpc::Str("1.0".into()),
            Rpc::Str("xapi-ha".into()),
        ],
    };
    match call(target, &login).await? {
        (Ok(Rpc::Str(session)), seen) => Ok((session, seen)),
        (Ok(other), _) => Err(CallError::Api(Failure::new(
            "INTERNAL_ERROR",
            [format!("{target}: the login returned {other:?}")],
        ))),
        (Err(f), _) => Err(CallError::Api(f)),
    }
}

/// Calls `method` on `target` with `session` and `params`.
pub async fn call_with(
    target: &Target,
    session: &str,
    method: &str,
    params: Vec<Rpc>,
) -> Result<Rpc, CallError> {
    let mut all = Vec::with_capacity(params.len() + 1);
    all.push(Rpc::Str(session.to_owned()));
    all.extend(params);
    let c = Call {
        method: method.to_owned(),
        params: all,
    };
    call(target, &c).await?.0.map_err(CallError::Api)
}

/// A host-to-host call: log in with the pool secret, call, log out.
pub async fn peer_call(
    target: &Target,
    secret: &PoolSecret,
    method: &str,
    params: Vec<Rpc>,
) -> Result<Rpc, CallError> {
    let (session, _) = login(target, PEER_USER, secret.expose()).await?;
    let result = call_with(target, &session, method, params).await;
    let _ = call_with(target, &session, "session.local_logout", Vec::new()).await;
    result
}
