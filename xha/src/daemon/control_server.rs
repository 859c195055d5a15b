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

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::control::{
    ErrorBody, ErrorCode, Event, EventKind, LivesetReport, MAX_REQUEST_LINE, Request, RequestLine,
    Response, parse_request,
};

/// Most simultaneous connections; more are answered `busy` and closed.
pub const MAX_CONNECTIONS: usize = 64;
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
/// listening) is replaced; a live one means another daemon runs.
pub async fn bind(path: &Path) -> std::io::Result<UnixListener> {
    super::socket_path::clear_stale(path)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve connections until the command channel closes (the main loop ended).
pub async fn serve(
    listener: UnixListener,
    reports: watch::Receiver<Option<Published>>,
    commands: mpsc::Sender<ControlCommand>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = commands.closed() => return,
        };
        let mut stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("control socket accept failed: {e}");
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            let busy = Response::error(
                None,
                ErrorBody {
                    code: ErrorCode::Busy,
                    message: format!("more than {MAX_CONNECTIONS} control connections"),
                },
            );
            let _ = stream
                .write_all(format!("{}\n", busy.to_line()).as_bytes())
                .await;
            continue;
        };
        let reports = reports.clone();
        let commands = commands.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, reports, commands).await {
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

async fn connection(
    stream: UnixStream,
    mut reports: watch::Receiver<Option<Published>>,
    commands: mpsc::Sender<ControlCommand>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut buf = Vec::with_capacity(256);
    let mut watching = false;
    loop {
        tokio::select! {
            line = read_line(&mut reader, &mut buf) => {
                let Some(line) = line? else { return Ok(()) };
                let response = match line {
                    Err(len) => {
                        // The rest of an overlong line cannot be resynchronised
                        // reliably: answer and close.
                        let e = super::control::RequestError::TooLong { len };
                        let r = Response::error(None, ErrorBody::from(&e));
                        write.write_all(format!("{}\n", r.to_line()).as_bytes()).await?;
                        return Ok(());
                    }
                    Ok(()) => match parse_request(&buf) {
                        Err(e) => Response::error(None, ErrorBody::from(&e)),
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
                write.write_all(format!("{}\n", response.to_line()).as_bytes()).await?;
            }
            changed = reports.changed(), if watching => {
                if changed.is_err() {
                    return Ok(());
                }
                let latest = reports.borrow_and_update().clone();
                if let Some(p) = latest {
                    let event = Event { event: EventKind::Liveset, sequence: p.sequence, liveset: p.report };
                    write.write_all(format!("{}\n", event.to_line()).as_bytes()).await?;
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
