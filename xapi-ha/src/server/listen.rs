//! Listeners and connections: TCP with TLS, plain TCP, and the root-only
//! Unix socket, each served by hyper's HTTP/1.1 with the same routes.
//!
//! Limits that keep one client from starving others:
//! - at most `max_connections` connections at once over all listeners (a
//!   semaphore; past it, new connections wait in the kernel's backlog);
//! - the header timeout closes a connection whose request head has not
//!   arrived in time, and an idle keep-alive connection (hyper starts the
//!   timer when it waits for a request);
//! - the TLS handshake must finish within the header timeout;
//! - the body limit and timeout are the routes' (`http::Limits`).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::agent::Origin;

/// How connections are served.
#[derive(Clone)]
pub struct ConnConfig {
    /// The routes.
    pub app: Router,
    /// Shared by every listener: one permit per open connection.
    pub permits: Arc<Semaphore>,
    /// Header (and keep-alive idle) timeout.
    pub header_timeout: Duration,
}

/// One listening socket.
pub enum Listener {
    /// TCP with TLS.
    Tls(TcpListener, TlsAcceptor),
    /// Plain TCP.
    Plain(TcpListener),
    /// The Unix socket.
    Unix(UnixListener),
}

impl Listener {
    /// A description for logs.
    pub fn describe(&self) -> String {
        let addr = |l: &TcpListener| {
            l.local_addr()
                .map_or_else(|e| e.to_string(), |a| a.to_string())
        };
        match self {
            Listener::Tls(l, _) => format!("https://{}", addr(l)),
            Listener::Plain(l) => format!("http://{}", addr(l)),
            Listener::Unix(l) => format!(
                "unix:{}",
                l.local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Binds a TCP address.
pub async fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Binds the Unix socket at `path` with mode 0600 in a 0700 directory
/// (created if missing). A stale socket file (nobody listening) is
/// replaced; a live one means another agent runs, and any other file there
/// is refused. The socket is created under umask 0177, so it is never
/// reachable by others, not even before the chmod.
pub fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use nix::sys::stat::{Mode, umask};
    use std::os::unix::fs::FileTypeExt as _;
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!("{}: another agent is listening there", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let l = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves every listener until the process ends.
pub async fn serve_all(listeners: Vec<Listener>, conn: ConnConfig) {
    let mut set = JoinSet::new();
    for l in listeners {
        set.spawn(accept_loop(l, conn.clone()));
    }
    while set.join_next().await.is_some() {}
}

async fn accept_loop(listener: Listener, conn: ConnConfig) {
    loop {
        let Ok(permit) = Arc::clone(&conn.permits).acquire_owned().await else {
            return;
        };
        let conn = conn.clone();
        match &listener {
            Listener::Tls(l, acceptor) => match l.accept().await {
                Ok((stream, _)) => {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        match tokio::time::timeout(conn.header_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => serve_conn(tls, &conn).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!("TLS handshake timed out"),
                        }
                    });
                }
                Err(e) => accept_error(e).await,
            },
            Listener::Plain(l) => match l.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        let _permit = permit;
                        let _ = stream.set_nodelay(true);
                        serve_conn(stream, &conn).await;
                    });
                }
                Err(e) => accept_error(e).await,
            },
            Listener::Unix(l) => match l.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(async move {
                        let _permit = permit;
                        let root = stream.peer_cred().is_ok_and(|c| c.uid() == 0);
                        let origin = if root {
                            Origin::LocalRoot
                        } else {
                            Origin::Network
                        };
                        let conn = ConnConfig {
                            app: conn.app.clone().layer(axum::Extension(origin)),
                            ..conn
                        };
                        serve_conn(stream, &conn).await;
                    });
                }
                Err(e) => accept_error(e).await,
            },
        }
    }
}

/// Accept errors (EMFILE, ECONNABORTED) are transient: log, pause, go on.
async fn accept_error(e: std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn serve_conn<S>(io: S, conn: &ConnConfig)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(conn.app.clone());
    let result = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(conn.header_timeout)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(io), service)
        .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
