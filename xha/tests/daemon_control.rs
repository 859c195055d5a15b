//! The control-socket server on a real Unix socket. The test plays the
//! daemon's main loop: it answers forwarded commands and publishes reports.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use uuid::Uuid;
use xha::core::{PoolState, Timeouts};
use xha::daemon::control::{
    ErrorBody, ErrorCode, EventKind, Latency, LivesetReport, Request, ServerLine, Status,
    TimeoutsReport, parse_server_line,
};
use xha::daemon::control_server::{self, ControlCommand, MAX_CONNECTIONS};
use xha::daemon::wire::DropCounters;

/// Generous: the machine may be loaded.
const WAIT: Duration = Duration::from_secs(30);

fn report(status: Status, epoch: u64) -> LivesetReport {
    LivesetReport {
        status,
        pool_generation: Uuid::from_u128(1),
        local_host: Uuid::from_u128(2),
        local_index: 0,
        fencing_armed: true,
        watchdog: "supervisor".into(),
        master: None,
        master_epoch: epoch,
        liveset: vec![],
        hosts: vec![],
        statefile_latency: Latency::default(),
        heartbeat_latency: Latency::default(),
        dropped_packets: DropCounters::default(),
        fence_requests_refused: 0,
        timeouts: TimeoutsReport::from(&Timeouts::derive(Duration::from_secs(10)).unwrap()),
        warnings: vec![],
    }
}

struct Client {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn connect(path: &std::path::Path) -> Client {
        let s = UnixStream::connect(path).await.expect("connect");
        let (r, w) = s.into_split();
        Client {
            lines: BufReader::new(r).lines(),
            write: w,
        }
    }
    async fn send(&mut self, line: &str) {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }
    async fn next(&mut self) -> ServerLine {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("reply in time")
            .expect("read")
            .expect("a line");
        parse_server_line(&line).expect("parse")
    }
    async fn response(&mut self) -> xha::daemon::control::Response {
        match self.next().await {
            ServerLine::Response(r) => r,
            ServerLine::Event(e) => panic!("expected a response, got {e:?}"),
        }
    }
}

/// The main loop's stand-in: records requests, refuses set-pool-state.
async fn main_loop(mut rx: mpsc::Receiver<ControlCommand>, seen: mpsc::UnboundedSender<Request>) {
    while let Some(cmd) = rx.recv().await {
        let _ = seen.send(cmd.request);
        let reply = match cmd.request {
            Request::QueryLiveset => Ok(Some(report(Status::Online, 1))),
            Request::SetPoolState(_) => Err(ErrorBody {
                code: ErrorCode::NotMaster,
                message: "only the master may set the pool state".into(),
            }),
            _ => Ok(None),
        };
        let _ = cmd.reply.send(reply);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_watch_and_errors_over_a_real_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run/control.sock");
    let listener = control_server::bind(&path).await.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second daemon cannot take the socket over.
    assert!(control_server::bind(&path).await.is_err());

    let (publisher, reports, commands, command_rx) = control_server::channels();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(main_loop(command_rx, seen_tx));
    tokio::spawn(control_server::serve(listener, reports, commands));

    let mut c = Client::connect(&path).await;
    c.send(r#"{"request":"query-liveset","id":1}"#).await;
    let r = c.response().await;
    assert_eq!((r.id, r.ok), (Some(1), true));
    assert_eq!(r.result.unwrap().status, Status::Online);

    // A bad line is answered precisely and the connection stays usable.
    c.send(r#"{"request":"stop","force":true}"#).await;
    let r = c.response().await;
    let e = r.error.unwrap();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("unknown key \"force\""), "{}", e.message);
    c.send("not json").await;
    assert_eq!(
        c.response().await.error.unwrap().code,
        ErrorCode::BadRequest
    );

    c.send(r#"{"request":"propose-master","value":true,"id":2}"#)
        .await;
    assert!(c.response().await.ok);
    c.send(r#"{"request":"set-pool-state","state":"active"}"#)
        .await;
    assert_eq!(c.response().await.error.unwrap().code, ErrorCode::NotMaster);
    let forwarded: Vec<Request> = (0..3).map(|_| seen.try_recv().unwrap()).collect();
    assert_eq!(
        forwarded,
        vec![
            Request::QueryLiveset,
            Request::ProposeMaster(true),
            Request::SetPoolState(PoolState::Active)
        ]
    );

    // Watch: the current report at once, then each change as it happens;
    // an unchanged report is not sent again.
    assert!(publisher.publish(report(Status::Starting, 0)));
    let mut w = Client::connect(&path).await;
    w.send(r#"{"request":"watch","id":9}"#).await;
    assert_eq!(w.response().await.id, Some(9));
    let ServerLine::Event(e) = w.next().await else {
        panic!("expected an event")
    };
    assert_eq!(
        (e.event, e.sequence, e.liveset.status),
        (EventKind::Liveset, 1, Status::Starting)
    );
    assert!(!publisher.publish(report(Status::Starting, 0)));
    assert!(publisher.publish(report(Status::Online, 4)));
    let ServerLine::Event(e) = w.next().await else {
        panic!("expected an event")
    };
    assert_eq!(
        (e.sequence, e.liveset.status, e.liveset.master_epoch),
        (2, Status::Online, 4)
    );
    // A watcher can still send requests.
    w.send(r#"{"request":"stop"}"#).await;
    assert!(w.response().await.ok);
    assert_eq!(seen.recv().await, Some(Request::Stop));

    // An overlong line is refused and the connection closed.
    let mut l = Client::connect(&path).await;
    l.send(&"x".repeat(5000)).await;
    assert_eq!(
        l.response().await.error.unwrap().code,
        ErrorCode::BadRequest
    );
    assert!(l.lines.next_line().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_told_busy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let listener = control_server::bind(&path).await.unwrap();
    let (_publisher, reports, commands, command_rx) = control_server::channels();
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    tokio::spawn(main_loop(command_rx, seen_tx));
    tokio::spawn(control_server::serve(listener, reports, commands));
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut c = Client::connect(&path).await;
        // A round trip proves the server counted this connection.
        c.send(r#"{"request":"clear-excluded"}"#).await;
        assert!(c.response().await.ok);
        held.push(c);
    }
    let mut extra = Client::connect(&path).await;
    assert_eq!(extra.response().await.error.unwrap().code, ErrorCode::Busy);
    drop(held.pop());
    // The freed slot is usable again (the server notices the close soon).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = Client::connect(&path).await;
        // A refused connection may already be closed: the write can fail,
        // the busy line is still readable.
        let _ = c.write.write_all(b"{\"request\":\"set-excluded\"}\n").await;
        let r = c.response().await;
        if r.ok {
            break;
        }
        assert_eq!(r.error.unwrap().code, ErrorCode::Busy);
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The socket is created under a restrictive umask: a watcher that stats
/// the path as fast as it can never sees it with group or other bits, even
/// with the process umask at 0 (before, bind created it 0777 & !umask and a
/// chmod followed: a window where anyone could connect). A regression guard:
/// the old window was short, so it was caught only by racing, not always.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_never_accessible_to_others() {
    use nix::sys::stat::{Mode, umask};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let old = umask(Mode::empty());
    let mut seen = Vec::new();
    for round in 0..50 {
        let path = dir.path().join(format!("c{round}.sock"));
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut modes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(m) = std::fs::symlink_metadata(&path) {
                        modes.push(m.permissions().mode() & 0o777);
                    }
                }
                modes
            })
        };
        let listener = control_server::bind(&path).await.unwrap();
        // Let the watcher see the final mode too.
        tokio::time::sleep(Duration::from_millis(2)).await;
        stop.store(true, Ordering::Relaxed);
        seen.extend(watcher.join().unwrap());
        drop(listener);
    }
    umask(old);
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|&m| m & 0o077 == 0),
        "modes seen: {:?}",
        seen.iter()
            .filter(|&&m| m & 0o077 != 0)
            .take(5)
            .collect::<Vec<_>>()
    );
}
