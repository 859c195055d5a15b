//! One HTTP/1.1 connection to an agent (hyper's client), over its Unix
//! socket or over TLS with the server certificate pinned by its SHA-256
//! fingerprint (no CA: the agent's certificate is self-signed), carrying
//! XML-RPC calls (`xapi_ha::rpc::xmlrpc`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use xapi_ha::rpc::{Call, Failure, Rpc, xmlrpc};
use xapi_ha::server::tls::pinned_client_config;

/// How long to wait for a connection and for each reply. Generous: the
/// agent hashes passwords (argon2) on login.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why talking to the agent failed (before any API answer).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {target} failed: {source}")]
    Tls {
        target: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange with {target} failed: {message}")]
    Http { target: String, message: String },
    #[error("{target} answered HTTP {status}: {body}")]
    Status {
        target: String,
        status: u16,
        body: String,
    },
    #[error("{target} sent a reply that is not XML-RPC: {message}")]
    Reply { target: String, message: String },
    #[error("no reply from {target} within {} s", TIMEOUT.as_secs())]
    Timeout { target: String },
}

/// What the TLS verifier saw: the fingerprint of the server's certificate.
pub use xapi_ha::server::tls::Seen;

/// An open connection.
pub struct Transport {
    runtime: tokio::runtime::Runtime,
    sender: SendRequest<Full<Bytes>>,
    /// `host:port` or the socket path, for messages and the Host header.
    pub target: String,
}

fn runtime(target: &str) -> Result<tokio::runtime::Runtime, TransportError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| TransportError::Connect {
            target: target.to_owned(),
            source,
        })
}

impl Transport {
    /// Connects to the agent's Unix socket.
    pub fn unix(path: &Path) -> Result<Transport, TransportError> {
        let target = path.display().to_string();
        Transport::open(target, |target| async move {
            let stream = within(&target, tokio::net::UnixStream::connect(path))
                .await?
                .map_err(|source| TransportError::Connect { target, source })?;
            Ok(stream)
        })
    }

    /// Connects over TLS, accepting the certificate with fingerprint
    /// `expected` (any when `None`); `seen` receives the one presented.
    pub fn tls(
        host: &str,
        port: u16,
        expected: Option<String>,
        seen: Seen,
    ) -> Result<Transport, TransportError> {
        let target = format!("{host}:{port}");
        let tls_err = |e: rustls::Error| TransportError::Tls {
            target: target.clone(),
            source: std::io::Error::other(e),
        };
        let config = pinned_client_config(expected, seen).map_err(tls_err)?;
        // The name only selects SNI: the pin, not the name, authenticates.
        let name = ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
            ServerName::try_from("xapi-ha")
                .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
        });
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        Transport::open(target, |target| async move {
            let stream = within(&target, tokio::net::TcpStream::connect((host, port)))
                .await?
                .map_err(|source| TransportError::Connect {
                    target: target.clone(),
                    source,
                })?;
            let tls = within(&target, connector.connect(name, stream))
                .await?
                .map_err(|source| TransportError::Tls { target, source })?;
            Ok(tls)
        })
    }

    /// The one way a connection is made, whatever carries it: a runtime,
    /// the stream `connect(target)` opens, and the HTTP/1.1 handshake on it.
    fn open<S, F, Fut>(target: String, connect: F) -> Result<Transport, TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        F: FnOnce(String) -> Fut,
        Fut: std::future::Future<Output = Result<S, TransportError>>,
    {
        let runtime = runtime(&target)?;
        let sender = runtime.block_on(async {
            let stream = connect(target.clone()).await?;
            handshake(stream, &target).await
        })?;
        Ok(Transport {
            runtime,
            sender,
            target,
        })
    }

    /// Sends one XML-RPC call and decodes the reply.
    pub fn call(&mut self, call: &Call) -> Result<Result<Rpc, Failure>, TransportError> {
        let body = xmlrpc::encode_call(call);
        let target = self.target.clone();
        let http = |message: String| TransportError::Http {
            target: target.clone(),
            message,
        };
        let request = hyper::Request::post("/")
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "text/xml")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(e.to_string()))?;
        let sender = &mut self.sender;
        let (status, bytes) = self.runtime.block_on(async {
            within(&target, async {
                sender.ready().await.map_err(|e| http(e.to_string()))?;
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
                Ok::<_, TransportError>((status, bytes))
            })
            .await?
        })?;
        if status != 200 {
            // The agent answers malformed requests in the protocol's shape
            // with a 4xx status: decode that when possible.
            if let Ok(reply) = xmlrpc::decode_response(&bytes) {
                return Ok(reply);
            }
            return Err(TransportError::Status {
                target,
                status,
                body: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            });
        }
        xmlrpc::decode_response(&bytes).map_err(|e| TransportError::Reply {
            target,
            message: e.to_string(),
        })
    }
}

/// `work`, or [`TransportError::Timeout`] after [`TIMEOUT`].
async fn within<T>(
    target: &str,
    work: impl std::future::Future<Output = T>,
) -> Result<T, TransportError> {
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| TransportError::Timeout {
            target: target.to_owned(),
        })
}

async fn handshake<S>(stream: S, target: &str) -> Result<SendRequest<Full<Bytes>>, TransportError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| TransportError::Http {
            target: target.to_owned(),
            message: e.to_string(),
        })?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; an error
        // then shows up on the next request.
        let _ = connection.await;
    });
    Ok(sender)
}
