//! The I/O loop of `xha-supervisor run` around the pure [`Supervision`]:
//! the listening socket, the one client, termination signals, the reaper
//! (`supervisor_reaper`) and the kill. Single-threaded, one `poll(2)`.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::fence;
use super::supervisor::{FenceCause, MAX_LINE, Outcome, ServeOptions, Supervision, SupervisorExit};
use super::supervisor_peer::{self, Policy};
use super::supervisor_reaper::{self, Reaper};

/// Bind the socket (mode 0600). A stale socket file (nobody listening) is
/// replaced; a live one, or a path that is not a socket, is an error.
fn bind(path: &Path) -> std::io::Result<UnixListener> {
    super::socket_path::clear_stale(path)?;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
}

/// Everything the loop owns besides the state machine.
struct Io {
    listener: UnixListener,
    signals: SignalFd,
    pgid: i32,
    policy: Policy,
    /// `None` only between a reaper's death and a successful restart.
    reaper: Option<Reaper>,
    client: Option<Client>,
}

/// Run the supervisor until the host is killed or stops cleanly.
pub fn serve(opts: &ServeOptions) -> SupervisorExit {
    if opts.pgid < 2 {
        tracing::error!(pgid = opts.pgid, "refusing: not a host process group");
        return SupervisorExit::BadArguments;
    }
    if nix::unistd::getpgrp().as_raw() == opts.pgid {
        tracing::error!(
            pgid = opts.pgid,
            "refusing: the supervisor must not be in the group it kills"
        );
        return SupervisorExit::BadArguments;
    }
    // Signals are taken over before the socket appears: callers treat the
    // socket as "ready", and a SIGTERM sent then must be handled (logged,
    // refused while armed), not kill the supervisor by its default action.
    let signals = match termination_signals() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot set up signal handling: {e}");
            return SupervisorExit::SystemError;
        }
    };
    let listener = match bind(&opts.socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(socket = %opts.socket.display(), "cannot listen: {e}");
            return SupervisorExit::SystemError;
        }
    };
    // A starved supervisor would fence late: ask for real-time priority and
    // locked memory like the daemon (refusals are logged as warnings).
    let _ = super::realtime::request();
    let exit = match setup(listener, signals, opts) {
        Ok(mut io) => {
            tracing::info!(
                socket = %opts.socket.display(),
                pgid = opts.pgid,
                "supervisor listening"
            );
            serve_on(&mut io, opts.connect_timeout)
        }
        Err(e) => {
            tracing::error!("{e}");
            SupervisorExit::SystemError
        }
    };
    let _ = std::fs::remove_file(&opts.socket);
    exit
}

fn setup(listener: UnixListener, signals: SignalFd, opts: &ServeOptions) -> Result<Io, String> {
    // Without a reaper the death of this process would leave an armed host
    // unwatched: refuse to supervise at all.
    let reaper = Reaper::spawn(opts.pgid, false)
        .map_err(|e| format!("cannot start the reaper process: {e}"))?;
    Ok(Io {
        listener,
        signals,
        pgid: opts.pgid,
        policy: Policy {
            pgid: opts.pgid,
            own_uid: nix::unistd::geteuid().as_raw(),
            extra_uid: opts.uid,
        },
        reaper: Some(reaper),
        client: None,
    })
}

/// Block SIGTERM, SIGINT and SIGHUP and receive them through a descriptor
/// polled with the sockets (the supervisor is single-threaded).
fn termination_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(sig);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}

fn on_signal(sup: &mut Supervision, signals: &SignalFd) -> Outcome {
    let Ok(Some(info)) = signals.read_signal() else {
        return Outcome::Continue;
    };
    let name = Signal::try_from(info.ssi_signo as i32).map_or("a signal", |s| s.as_str());
    let outcome = sup.terminate();
    if outcome == Outcome::Continue {
        tracing::warn!("{name} ignored: the countdown is armed (disarm first)");
    } else {
        tracing::info!("{name} received while disarmed");
    }
    outcome
}

/// What `poll` reported.
#[derive(Default)]
struct Ready {
    listener: bool,
    signal: bool,
    client: bool,
    reaper_gone: bool,
}

fn wait(io: &Io, timeout: PollTimeout) -> nix::Result<Ready> {
    let mut fds = vec![
        PollFd::new(io.listener.as_fd(), PollFlags::POLLIN),
        PollFd::new(io.signals.as_fd(), PollFlags::POLLIN),
    ];
    // POLLERR on a pipe's write end: the reader (the reaper) is gone.
    let reaper_at = io.reaper.as_ref().map(|r| {
        fds.push(PollFd::new(r.pipe_fd(), PollFlags::empty()));
        fds.len() - 1
    });
    let client_at = io.client.as_ref().map(|c| {
        fds.push(PollFd::new(c.stream.as_fd(), PollFlags::POLLIN));
        fds.len() - 1
    });
    poll(&mut fds, timeout)?;
    let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
    Ok(Ready {
        listener: ready(&fds[0]),
        signal: ready(&fds[1]),
        client: client_at.is_some_and(|i| ready(&fds[i])),
        reaper_gone: reaper_at.is_some_and(|i| supervisor_reaper::reader_gone(fds[i].revents())),
    })
}

fn serve_on(io: &mut Io, connect_timeout: Duration) -> SupervisorExit {
    let mut sup = Supervision::new(Instant::now(), connect_timeout);
    loop {
        let now = Instant::now();
        if let Some(exit) = act(sup.tick(now), io) {
            return exit;
        }
        // Wake at the next deadline, and at least once a second.
        let wait_for = sup
            .next_deadline()
            .map_or(Duration::from_secs(1), |d| d.saturating_duration_since(now))
            .min(Duration::from_secs(1));
        let timeout = PollTimeout::try_from(wait_for).unwrap_or(PollTimeout::ZERO);
        let ready = match wait(io, timeout) {
            Ok(r) => r,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("poll failed: {e}");
                return SupervisorExit::SystemError;
            }
        };
        // Check the deadline before reading: kicks that arrive after it
        // must not revive a host that already missed it.
        if let Some(exit) = act(sup.tick(Instant::now()), io) {
            return exit;
        }
        if ready.reaper_gone || io.reaper.is_none() {
            restart_reaper(io, sup.is_armed());
        }
        if ready.client
            && let Some(exit) = read_client(&mut sup, io)
        {
            return exit;
        }
        if ready.listener {
            accept(&mut sup, io);
        }
        if ready.signal
            && let Some(exit) = act(on_signal(&mut sup, &io.signals), io)
        {
            return exit;
        }
    }
}

/// Replace a dead reaper (retried at every wake-up until it works).
fn restart_reaper(io: &mut Io, armed: bool) {
    let result = match io.reaper.take() {
        Some(old) => old.replace(),
        None => Reaper::spawn(io.pgid, armed),
    };
    match result {
        Ok(r) => io.reaper = Some(r),
        Err(e) => tracing::error!("cannot start a new reaper: {e}; retrying"),
    }
}

/// Tell the reaper the countdown's state. A failure means the reaper died;
/// the loop replaces it (with the state then current) at its next wake-up.
fn tell_reaper(io: &mut Io, armed: bool) {
    if let Some(r) = io.reaper.as_mut()
        && let Err(e) = r.set_armed(armed)
    {
        tracing::error!(pid = r.pid(), "cannot reach the reaper: {e}");
    }
}

fn accept(sup: &mut Supervision, io: &mut Io) {
    let stream = match io.listener.accept() {
        Ok((s, _)) => s,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return,
        Err(e) => {
            tracing::warn!("accept failed: {e}");
            return;
        }
    };
    // Only the host's own daemon: checked before the state machine sees
    // the connection, so a refused client changes nothing.
    let verdict = supervisor_peer::peer_of(&stream).and_then(|p| io.policy.check(&p).map(|()| p));
    let result = match verdict {
        Ok(peer) => sup.connect().map(|()| peer),
        Err(refusal) => Err(refusal.to_string()),
    };
    match result {
        Ok(peer) => {
            if let Err(e) = stream.set_nonblocking(true) {
                tracing::warn!("cannot make the connection non-blocking: {e}");
            }
            tracing::info!(pid = peer.pid, uid = peer.uid, "daemon connected");
            io.client = Some(Client {
                stream,
                buf: Vec::new(),
            });
        }
        Err(reason) => {
            tracing::warn!("connection refused: {reason}");
            let mut s = stream;
            let _ = s.write_all(format!("error {reason}\n").as_bytes());
        }
    }
}

fn read_client(sup: &mut Supervision, io: &mut Io) -> Option<SupervisorExit> {
    let mut chunk = [0u8; 512];
    let n = {
        let c = io.client.as_mut()?;
        match c.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                return None;
            }
            Err(e) => {
                tracing::warn!("read from daemon failed: {e}");
                0
            }
        }
    };
    if n == 0 {
        return close_client(sup, io);
    }
    let mut lines = Vec::new();
    if let Some(c) = io.client.as_mut() {
        c.buf.extend_from_slice(&chunk[..n]);
        while let Some(pos) = c.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = c.buf.drain(..=pos).collect();
            lines.push(line[..line.len() - 1].to_vec());
        }
        if c.buf.len() > MAX_LINE {
            // Feed the overlong fragment so it is refused like any bad line.
            lines.push(std::mem::take(&mut c.buf));
        }
    }
    for line in lines {
        let was_armed = sup.is_armed();
        let outcome = sup.line(Instant::now(), &line);
        // The reaper learns the new state before the daemon hears `ok`.
        if was_armed != sup.is_armed() {
            tell_reaper(io, sup.is_armed());
        }
        match (was_armed, sup.is_armed()) {
            (false, true) => tracing::info!("countdown armed"),
            (true, false) if matches!(outcome, Outcome::Reply(_)) => {
                tracing::info!("countdown disarmed");
            }
            _ => {}
        }
        if let Some(exit) = act(outcome, io) {
            return Some(exit);
        }
        if io.client.is_none() {
            return close_client(sup, io);
        }
    }
    None
}

fn close_client(sup: &mut Supervision, io: &mut Io) -> Option<SupervisorExit> {
    io.client = None;
    let armed = sup.is_armed();
    let outcome = sup.disconnect();
    if armed {
        tracing::warn!("daemon disconnected while armed: the countdown keeps running");
    } else if outcome == Outcome::Continue {
        tracing::info!("connection closed; waiting for the daemon");
    } else {
        tracing::info!("daemon disconnected while disarmed");
    }
    act(outcome, io)
}

/// Carry out an outcome; `Some` when the supervisor must exit.
fn act(outcome: Outcome, io: &mut Io) -> Option<SupervisorExit> {
    match outcome {
        Outcome::Continue => None,
        Outcome::Reply(line) => {
            send(&mut io.client, &line);
            None
        }
        Outcome::ReplyAndClose(line) => {
            tracing::warn!("protocol error from daemon: {line}");
            send(&mut io.client, &line);
            io.client = None;
            None
        }
        Outcome::Fence(cause) => {
            if cause == FenceCause::Requested {
                // Confirm before the kill (the requester may be outside
                // the host group and wait for it).
                send(&mut io.client, "ok");
            }
            let exit = kill_host(io.pgid, cause);
            if exit == SupervisorExit::Fenced {
                // Done: the reaper must not kill the group id again later.
                tell_reaper(io, false);
            }
            Some(exit)
        }
        Outcome::Exit(exit) => {
            match exit {
                SupervisorExit::CleanStop => tracing::info!("host stopped cleanly; exiting"),
                SupervisorExit::NoClient => {
                    tracing::error!("no daemon connected in time; exiting");
                }
                _ => {}
            }
            Some(exit)
        }
    }
}

fn send(client: &mut Option<Client>, line: &str) {
    if let Some(c) = client.as_mut() {
        // Replies are a few bytes on an idle socket: they fit its buffer.
        if let Err(e) = c.stream.write_all(format!("{line}\n").as_bytes()) {
            tracing::warn!("cannot reply to daemon: {e}");
        }
    }
}

fn kill_host(pgid: i32, cause: FenceCause) -> SupervisorExit {
    let why = match cause {
        FenceCause::Expired {
            timeout,
            since_last_kick,
        } => format!("no kick for {since_last_kick:?} (timeout {timeout:?})"),
        FenceCause::Requested => "the daemon requested it".to_owned(),
    };
    match fence::kill_process_group(pgid) {
        Ok(()) => {
            // Members vanish once reaped by their parent; say which we saw.
            let deadline = Instant::now() + Duration::from_secs(2);
            while fence::group_exists(pgid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let gone = if fence::group_exists(pgid) {
                "signalled; members remain until their parent reaps them"
            } else {
                "group gone"
            };
            tracing::error!(
                pgid,
                "FENCED host process group {pgid} with SIGKILL: {why}; {gone}"
            );
            SupervisorExit::Fenced
        }
        Err(e) => {
            tracing::error!(
                pgid,
                "FAILED to fence host process group {pgid} ({why}): {e}"
            );
            SupervisorExit::SystemError
        }
    }
}
