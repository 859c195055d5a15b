//! The control-socket server: accepts connections on the Unix socket, parses
//! request lines (`daemon::control`), forwards them to the daemon's main loop
//! and streams liveset reports to watchers.
//!
//! The server holds no daemon state. Requests go to the main loop through a
//! bounded channel as [`ControlCommand`]s with a reply slot, so every answer,
//! including `query-liveset` (whose ages must be fresh), comes from the one
//! place that owns the state. Reports for `watch` come from a
//! [`ReportPublisher`]: the main loop publishes whenever the report changes in
//! a way a watcher cares about, and every watcher gets the latest one at once
//! (a slow watcher skips intermediate reports; `sequence` shows the gap).
//!
//! Access: the socket is created under umask 0177 (never world-accessible,
//! not even between bind and chmod), and every connection's peer
//! credentials (SO_PEERCRED) are checked: root, the daemon's own user and
//! the configured `control-uids` only. Connections are capped at
//! [`MAX_CONNECTIONS`], of which [`RESERVED_FOR_ROOT`] only root may take,
//! and a connection that sends no complete request for [`IDLE_TIMEOUT`] (and
//! is not watching) is closed, so idle clients cannot lock others out.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::control::{
    ErrorBody, ErrorCode, Event, EventKind, LivesetReport, MAX_REQUEST_LINE, Request, RequestLine,
    Response, parse_request, request_id,
};

/// Most simultaneous connections; more are answered `busy` and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Connections only root may take, so a full table of other users'
/// connections still leaves root (the pool agent, an operator) a way in.
pub const RESERVED_FOR_ROOT: usize = 4;
/// A connection that is not watching and sends no complete request line
/// (or does not read its replies) for this long is closed.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const _: () = assert!(RESERVED_FOR_ROOT < MAX_CONNECTIONS);

/// Who may connect and how long a connection may idle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// Users allowed besides root and the daemon's own user.
    pub uids: Vec<u32>,
    pub idle_timeout: std::time::Duration,
}

impl Default for Access {
    fn default() -> Self {
        Access {
            uids: Vec::new(),
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

impl Access {
    fn allows(&self, uid: u32) -> bool {
        let own = nix::unistd::geteuid().as_raw();
        uid == 0 || uid == own || self.uids.contains(&uid)
    }
}
/// Depth of the channel to the main loop.
pub const COMMAND_QUEUE: usize = 64;

/// What the main loop answers to a forwarded request: a report for
/// `query-liveset`, nothing for the others, or why it was refused.
pub type CommandReply = Result<Option<LivesetReport>, ErrorBody>;

/// A request forwarded to the main loop. `watch` is never forwarded.
#[derive(Debug)]
pub struct ControlCommand {
    pub request: Request,
    pub reply: oneshot::Sender<CommandReply>,
}

/// A report as published for watchers.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub sequence: u64,
    pub report: LivesetReport,
}

/// The main loop's handle for publishing reports to watchers.
#[derive(Debug)]
pub struct ReportPublisher {
    tx: watch::Sender<Option<Published>>,
}

impl ReportPublisher {
    /// Publish `report` if it differs from the last one; returns whether it
    /// was published.
    pub fn publish(&self, report: LivesetReport) -> bool {
        self.tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|p| p.report == report) {
                return false;
            }
            let sequence = cur.as_ref().map_or(1, |p| p.sequence + 1);
            *cur = Some(Published { sequence, report });
            true
        })
    }
}

/// Create the channels between the server and the main loop.
#[must_use]
pub fn channels() -> (
    ReportPublisher,
    watch::Receiver<Option<Published>>,
    mpsc::Sender<ControlCommand>,
    mpsc::Receiver<ControlCommand>,
) {
    let (tx, rx) = watch::channel(None);
    let (ctx, crx) = mpsc::channel(COMMAND_QUEUE);
    (ReportPublisher { tx }, rx, ctx, crx)
}

/// Bind the control socket with mode 0600. A stale socket file (nobody
/// listening) is replaced; a live one means another daemon runs. The socket
/// is created under umask 0177, so it is never accessible to others, not
/// even for a moment before the chmod (the umask is process-wide: anything
/// another thread creates meanwhile is created more restrictively, never
/// less).
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use nix::sys::stat::{Mode, umask};
    super::socket_path::clear_stale(path)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let old = umask(Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    umask(old);
    let listener = bound?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve connections with the default [`Access`] until the command channel
/// closes (the main loop ended).
pub async fn serve(
    listener: UnixListener,
    reports: watch::Receiver<Option<Published>>,
    commands: mpsc::Sender<ControlCommand>,
) {
    serve_with(listener, reports, commands, Access::default()).await;
}

/// One error line, then the connection is closed (best effort, bounded).
async fn refuse(stream: &mut UnixStream, code: ErrorCode, message: String) {
    let line = Response::error(None, ErrorBody { code, message }).to_line();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        stream.write_all(format!("{line}\n").as_bytes()),
    )
    .await;
}

/// Serve connections allowed by `access` until the command channel closes.
pub async fn serve_with(
    listener: UnixListener,
    reports: watch::Receiver<Option<Published>>,
    commands: mpsc::Sender<ControlCommand>,
    access: Access,
) {
    let shared = Arc::new(Semaphore::new(MAX_CONNECTIONS - RESERVED_FOR_ROOT));
    let reserved = Arc::new(Semaphore::new(RESERVED_FOR_ROOT));
    let mut refusals = super::ratelimit::RateLimit::new(IDLE_TIMEOUT);
    let started = std::time::Instant::now();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = commands.closed() => return,
        };
        let now = crate::core::Instant::from_nanos(
            u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        );
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                if let Some(n) = refusals.check("accept", now) {
                    let more = super::ratelimit::suffix(n, IDLE_TIMEOUT);
                    tracing::warn!("control socket accept failed: {e}{more}");
                }
                // Out of descriptors, say: do not spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let uid = match stream.peer_cred() {
            Ok(c) => c.uid(),
            Err(e) => {
                tracing::debug!("control connection without peer credentials: {e}");
                continue;
            }
        };
        if !access.allows(uid) {
            if let Some(n) = refusals.check(&format!("uid {uid}"), now) {
                let more = super::ratelimit::suffix(n, IDLE_TIMEOUT);
                tracing::warn!("control connection from uid {uid} refused{more}");
            }
            let message =
                format!("uid {uid} may not use the control socket (root and control-uids only)");
            refuse(&mut stream, ErrorCode::Forbidden, message).await;
            continue;
        }
        let permit = match Arc::clone(&shared).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if uid == 0 => Arc::clone(&reserved).try_acquire_owned().ok(),
            Err(_) => None,
        };
        let Some(permit) = permit else {
            let message = format!("more than {MAX_CONNECTIONS} control connections");
            refuse(&mut stream, ErrorCode::Busy, message).await;
            continue;
        };
        let reports = reports.clone();
        let commands = commands.clone();
        let idle = access.idle_timeout;
        tokio::spawn(async move {
            if let Err(e) = connection(stream, reports, commands, idle).await {
                tracing::debug!("control connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// Read one line of at most `MAX_REQUEST_LINE` bytes into `buf` (without
/// its newline). `Ok(None)` at end of input; `Err(len)` for an overlong line.
/// Cancel-safe: bytes read before a cancellation stay in `buf`, which the
/// caller clears only after handling a complete line.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), usize>>> {
    let limit = (MAX_REQUEST_LINE + 2).saturating_sub(buf.len()) as u64;
    let n = (&mut *reader).take(limit).read_until(b'\n', buf).await?;
    if n == 0 && buf.is_empty() {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Some(Ok(())));
    }
    if buf.len() > MAX_REQUEST_LINE {
        return Ok(Some(Err(buf.len())));
    }
    // A last line without a newline, then end of input.
    Ok(Some(Ok(())))
}

/// Write one line within `idle` (a client that does not read its replies
/// is treated as idle).
async fn send_line<W: tokio::io::AsyncWrite + Unpin>(
    write: &mut W,
    line: String,
    idle: std::time::Duration,
) -> std::io::Result<()> {
    tokio::time::timeout(idle, write.write_all(format!("{line}\n").as_bytes()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "client not reading"))?
}

async fn connection(
    stream: UnixStream,
    mut reports: watch::Receiver<Option<Published>>,
    commands: mpsc::Sender<ControlCommand>,
    idle: std::time::Duration,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::with_capacity(256);
    let mut watching = false;
    let mut idle_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(idle_since + idle), if !watching => {
                let r = Response::error(None, ErrorBody {
                    code: ErrorCode::Idle,
                    message: format!("no request for {} s: connection closed", idle.as_secs()),
                });
                send_line(&mut write, r.to_line(), idle).await?;
                return Ok(());
            }
            line = read_line(&mut reader, &mut buf) => {
                let Some(line) = line? else { return Ok(()) };
                let response = match line {
                    Err(len) => {
                        // The rest of an overlong line cannot be resynchronised
                        // reliably: answer and close.
                        let e = super::control::RequestError::TooLong { len };
                        let r = Response::error(None, ErrorBody::from(&e));
                        send_line(&mut write, r.to_line(), idle).await?;
                        return Ok(());
                    }
                    Ok(()) => match parse_request(&buf) {
                        Err(e) => Response::error(request_id(&buf), ErrorBody::from(&e)),
                        Ok(RequestLine { id, request: Request::Watch }) => {
                            watching = true;
                            // The current report is sent below, after the reply.
                            reports.mark_changed();
                            Response::ok(id)
                        }
                        Ok(RequestLine { id, request }) => forward(&commands, id, request).await,
                    },
                };
                buf.clear();
                idle_since = tokio::time::Instant::now();
                send_line(&mut write, response.to_line(), idle).await?;
            }
            changed = reports.changed(), if watching => {
                if changed.is_err() {
                    return Ok(());
                }
                let latest = reports.borrow_and_update().clone();
                if let Some(p) = latest {
                    let event = Event { event: EventKind::Liveset, sequence: p.sequence, liveset: p.report };
                    send_line(&mut write, event.to_line(), idle).await?;
                }
            }
        }
    }
}

async fn forward(
    commands: &mpsc::Sender<ControlCommand>,
    id: Option<u64>,
    request: Request,
) -> Response {
    let (tx, rx) = oneshot::channel();
    let gone = || {
        Response::error(
            id,
            ErrorBody {
                code: ErrorCode::Stopped,
                message: "the daemon is stopping".into(),
            },
        )
    };
    if commands
        .send(ControlCommand { request, reply: tx })
        .await
        .is_err()
    {
        return gone();
    }
    match rx.await {
        Ok(Ok(Some(report))) => Response::liveset(id, report),
        Ok(Ok(None)) => Response::ok(id),
        Ok(Err(e)) => Response::error(id, e),
        Err(_) => gone(),
    }
}
