//! The host-to-host client (docs/pool.md, "Host to host"): one XML-RPC call
//! to another agent over TLS, with that agent's certificate pinned to the
//! fingerprint the pool database records for it (or, for the first contact
//! of `pool.join`, to none: trust on first use, the fingerprint seen is
//! returned). A new connection per call; pool calls are few.
//!
//! Every connection leaves from this host's `host.address` when that is an
//! address of this host ([`set_source_address`], once at start-up): the
//! pool's traffic then goes out of the management interface whatever the
//! routing table prefers, and a firewall (or a test's packet filter) can
//! tell the pool's hosts apart by source address.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
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

/// The address host-to-host connections leave from (see the module
/// documentation); unset: the kernel chooses.
static SOURCE: OnceLock<IpAddr> = OnceLock::new();

/// Makes every later host-to-host connection of this process leave from
/// `address` if a socket can be bound to it here (it is an address of this
/// host); else they leave from the kernel's choice. Called once by the
/// agent at start-up with its `host.address`; the answer is whether
/// `address` is used.
pub fn set_source_address(address: &str) -> bool {
    let Ok(ip) = address.parse::<IpAddr>() else {
        return false;
    };
    let bindable = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).is_ok();
    bindable && (SOURCE.set(ip).is_ok() || SOURCE.get() == Some(&ip))
}

/// A TCP connection to `address:port` (a name is resolved), from `source`
/// when given: the first resolved address of `source`'s family.
async fn connect_from(
    address: &str,
    port: u16,
    source: Option<IpAddr>,
) -> std::io::Result<tokio::net::TcpStream> {
    let Some(source) = source else {
        return tokio::net::TcpStream::connect((address, port)).await;
    };
    let peer = tokio::net::lookup_host((address, port))
        .await?
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("{address} has no address of the family of {source}"),
            )
        })?;
    let socket = if source.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(peer).await
}

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
        let tcp = connect_from(&target.address, target.port, SOURCE.get().copied())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection made with a source leaves from it (the listener sees
    /// it), and one made without leaves from the kernel's choice.
    #[tokio::test]
    async fn connections_leave_from_the_source_address() {
        let listener = tokio::net::TcpListener::bind("127.77.0.2:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let source: IpAddr = "127.77.0.1".parse().unwrap();
        let (out, accepted) = tokio::join!(
            connect_from("127.77.0.2", port, Some(source)),
            listener.accept()
        );
        assert_eq!(out.unwrap().local_addr().unwrap().ip(), source);
        assert_eq!(accepted.unwrap().1.ip(), source);
        let (out, accepted) =
            tokio::join!(connect_from("127.77.0.2", port, None), listener.accept());
        let kernel: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(out.unwrap().local_addr().unwrap().ip(), kernel);
        assert_eq!(accepted.unwrap().1.ip(), kernel);
    }

    #[test]
    fn only_an_address_of_this_host_is_used_as_the_source() {
        assert!(!set_source_address("not-an-address"));
        // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
        assert!(!set_source_address("192.0.2.7"));
        assert!(SOURCE.get().is_none());
    }
}
