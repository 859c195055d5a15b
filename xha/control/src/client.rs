//! A small blocking client of the daemon's control socket (JSON lines, see
//! `docs/daemon.md`): one request per connection, and a `watch` stream read
//! by a background thread. The lab, `xe` and the pool agent share it.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{LivesetReport, Request, Response, ServerLine, parse_server_line};

/// How long one request may take (a frozen daemon must not hang the caller).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a watch thread looks at its stop flag while no line arrives.
const WATCH_POLL: Duration = Duration::from_millis(200);
/// Longest line read from the daemon (a 64-host report is about 25 kB).
const MAX_LINE: usize = 1 << 20;

/// Why a request got no usable answer (the caller adds host and request).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, writing or reading failed, or the daemon sent nonsense.
    #[error("{0}")]
    Transport(String),
    /// The daemon answered `ok: false`.
    #[error("refused ({code}): {message}")]
    Refused { code: String, message: String },
}

fn connect(socket: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| ClientError::Transport(format!("connect to {}: {e}", socket.display())))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| ClientError::Transport(format!("socket timeouts: {e}")))?;
    Ok(stream)
}

/// Read one line, up to `MAX_LINE` bytes; `Ok(None)` at end of stream.
/// Bytes read before a timeout stay in `buf` (`read_until` keeps them).
fn read_line(
    reader: &mut BufReader<UnixStream>,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    let n = reader.read_until(b'\n', buf)?;
    if n == 0 && buf.is_empty() {
        return Ok(None);
    }
    if buf.len() > MAX_LINE {
        return Err(std::io::Error::other("line too long"));
    }
    // `read_until` stops short of a newline only at the end of the stream.
    if buf.last() != Some(&b'\n') {
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "stream ended mid-line",
        ));
    }
    let line = String::from_utf8_lossy(buf).trim_end().to_owned();
    buf.clear();
    Ok(Some(line))
}

fn check(response: Response) -> Result<Response, ClientError> {
    if response.ok {
        return Ok(response);
    }
    let (code, message) = match &response.error {
        Some(e) => (
            serde_json::to_value(e.code)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", e.code)),
            e.message.clone(),
        ),
        None => ("unknown".to_owned(), "no error body".to_owned()),
    };
    Err(ClientError::Refused { code, message })
}

/// Send one request and read its response.
pub fn request(socket: &Path, req: Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut stream = connect(socket, timeout)?;
    let line = format!("{}\n", req.to_line(Some(1)));
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Transport(format!("send: {e}")))?;
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    let deadline = Instant::now() + timeout;
    loop {
        let got = read_line(&mut reader, &mut buf);
        match got {
            Ok(Some(line)) => match parse_server_line(&line) {
                Ok(ServerLine::Response(r)) => return check(r),
                // An event cannot come before the answer to a new
                // connection's first request; skip it if it does.
                Ok(ServerLine::Event(_)) => {}
                Err(e) => return Err(ClientError::Transport(e.to_string())),
            },
            Ok(None) => {
                return Err(ClientError::Transport(
                    "the daemon closed the connection without answering".into(),
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) && Instant::now() < deadline => {}
            Err(e) => {
                return Err(ClientError::Transport(format!(
                    "no answer within {timeout:?}: {e}"
                )));
            }
        }
    }
}

/// A `watch` stream: reports as they arrive, stamped with the arrival time.
pub struct Watcher {
    pub thread: JoinHandle<()>,
}

/// The daemon's current liveset report (`query-liveset`), or `None` when it
/// does not answer or answers with an error.
#[must_use]
pub fn query_liveset(socket: &Path, timeout: Duration) -> Option<LivesetReport> {
    request(socket, Request::QueryLiveset, timeout).ok()?.result
}

/// Start watching: the `watch` request is answered before this returns,
/// then a thread forwards every event's report until the stream ends, the
/// receiver is gone, or `stop` is raised.
pub fn watch(
    socket: &Path,
    stop: Arc<AtomicBool>,
) -> Result<(Watcher, Receiver<(Instant, LivesetReport)>), ClientError> {
    let mut stream = connect(socket, REQUEST_TIMEOUT)?;
    let line = format!("{}\n", Request::Watch.to_line(Some(1)));
    stream
        .write_all(line.as_bytes())
        .map_err(|e| ClientError::Transport(format!("send: {e}")))?;
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    let (tx, rx) = channel();
    // The answer first (events may follow it in the same read).
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match read_line(&mut reader, &mut buf) {
            Ok(Some(line)) => match parse_server_line(&line) {
                Ok(ServerLine::Response(r)) => {
                    check(r)?;
                    break;
                }
                Ok(ServerLine::Event(e)) => {
                    let _ = tx.send((Instant::now(), e.liveset));
                }
                Err(e) => return Err(ClientError::Transport(e.to_string())),
            },
            Ok(None) => {
                return Err(ClientError::Transport(
                    "the daemon closed the connection".into(),
                ));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) && Instant::now() < deadline => {}
            Err(e) => return Err(ClientError::Transport(format!("no answer to watch: {e}"))),
        }
    }
    reader
        .get_ref()
        .set_read_timeout(Some(WATCH_POLL))
        .map_err(|e| ClientError::Transport(format!("socket timeout: {e}")))?;
    let thread = std::thread::Builder::new()
        .name("lab-watch".into())
        .spawn(move || forward(reader, buf, &tx, &stop))
        .map_err(|e| ClientError::Transport(format!("start the watch thread: {e}")))?;
    Ok((Watcher { thread }, rx))
}

fn forward(
    mut reader: BufReader<UnixStream>,
    mut buf: Vec<u8>,
    tx: &Sender<(Instant, LivesetReport)>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match read_line(&mut reader, &mut buf) {
            Ok(Some(line)) => {
                let at = Instant::now();
                match parse_server_line(&line) {
                    Ok(ServerLine::Event(e)) => {
                        if tx.send((at, e.liveset)).is_err() {
                            return;
                        }
                    }
                    Ok(ServerLine::Response(_)) => {}
                    Err(e) => {
                        tracing::warn!("watch: {e}");
                        return;
                    }
                }
            }
            Ok(None) => return,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
