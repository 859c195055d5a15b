//! The UDP heartbeat transport: one task sends, one task receives, so a
//! slow receive path can never delay sending.
//!
//! The sending task takes the latest state to publish from a `watch`
//! channel (the main loop writes the slot of each `Action::SendHeartbeat`),
//! encodes it once and sends it by unicast to every peer. If sending falls
//! behind, intermediate states are skipped, never queued: only the newest
//! state matters to peers. The receiving task runs every datagram through
//! [`wire::Receiver`] (decode, authenticate, reject replays, count drops) and
//! passes accepted heartbeats to the main loop; the drop counters are
//! published on a `watch` channel for the liveset query.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use sr_heartbeat::statefile::Slot;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::incarnation;
use super::ratelimit::RateLimit;
use super::replay::SlotEvidence;
use super::wire::{self, DropCounters, DropReason, Heartbeat, RECV_BUFFER_LEN};
use crate::core::Instant;

/// Bind the heartbeat socket on this host's configured address.
pub async fn bind(local: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    Ok(Arc::new(UdpSocket::bind(local).await?))
}

/// Why an inherited heartbeat socket was refused.
#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error("descriptor {fd} is not open")]
    NotOpen { fd: RawFd },
    #[error("descriptor {fd} is not a UDP socket")]
    NotUdp { fd: RawFd },
    #[error("descriptor {fd} is bound to {found}, the configuration says {expected}")]
    WrongAddress {
        fd: RawFd,
        found: SocketAddr,
        expected: SocketAddr,
    },
    #[error("descriptor {fd}: {source}")]
    Io { fd: RawFd, source: std::io::Error },
}

/// Use an already-bound UDP socket inherited on descriptor `fd` (the
/// launcher bound it, so no other program can take the port between its
/// choice and the daemon's start). It must be bound to `expected`.
pub fn inherit(fd: RawFd, expected: SocketAddr) -> Result<Arc<UdpSocket>, InheritError> {
    use nix::sys::socket::{SockType, getsockopt, sockopt};
    // Check the descriptor before taking ownership of it.
    if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return Err(InheritError::NotOpen { fd });
    }
    // SAFETY: `fd` is open (checked above) and owned by nobody else in this
    // process: it was inherited across exec for this use alone and is
    // taken exactly once, at start-up.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match getsockopt(&owned, sockopt::SockType) {
        Ok(SockType::Datagram) => {}
        _ => return Err(InheritError::NotUdp { fd }),
    }
    let socket = std::net::UdpSocket::from(owned);
    let found = socket
        .local_addr()
        .map_err(|source| InheritError::Io { fd, source })?;
    if found != expected {
        return Err(InheritError::WrongAddress {
            fd,
            found,
            expected,
        });
    }
    socket
        .set_nonblocking(true)
        .map_err(|source| InheritError::Io { fd, source })?;
    let socket = UdpSocket::from_std(socket).map_err(|source| InheritError::Io { fd, source })?;
    Ok(Arc::new(socket))
}

/// Counters of the sending task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendStats {
    /// States sent (each to every peer).
    pub states_sent: u64,
    /// `send_to` calls that failed (e.g. no route); the next state is sent
    /// anyway.
    pub send_errors: u64,
}

/// Start the sending task. It ends when `states` closes.
pub fn spawn_sender(
    socket: Arc<UdpSocket>,
    peers: Vec<SocketAddr>,
    mut sender: wire::Sender,
    mut states: watch::Receiver<Option<Slot>>,
    stats: watch::Sender<SendStats>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut s = SendStats::default();
        while states.changed().await.is_ok() {
            let Some(slot) = states.borrow_and_update().clone() else {
                continue;
            };
            let packet = sender.packet(&slot);
            for peer in &peers {
                if let Err(e) = socket.send_to(&packet, peer).await {
                    s.send_errors += 1;
                    tracing::debug!(%peer, "heartbeat send failed: {e}");
                }
            }
            s.states_sent += 1;
            stats.send_replace(s);
        }
    })
}

/// What the receiving task needs for the replay rules (`daemon::replay`)
/// besides the socket.
pub struct ReceiveContext {
    /// The daemon's monotonic clock, in the core's time base.
    pub now: Box<dyn Fn() -> Instant + Send>,
    /// What the main loop last read of each peer's slot.
    pub evidence: watch::Receiver<Vec<Option<SlotEvidence>>>,
    /// Per peer: since when all its packets have been dropped as replayed
    /// (past the warning threshold), for the liveset query.
    pub dropping: watch::Sender<Vec<Option<Instant>>>,
    /// Repeated warnings of one kind are logged at most this often (T).
    pub warn_every: Duration,
}

/// Start the receiving task. It ends when `out` closes.
pub fn spawn_receiver(
    socket: Arc<UdpSocket>,
    mut receiver: wire::Receiver,
    out: mpsc::Sender<Heartbeat>,
    counters: watch::Sender<DropCounters>,
    mut ctx: ReceiveContext,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; RECV_BUFFER_LEN];
        // Repeated lines of one kind at most once per T, with a count.
        let mut limits = RateLimit::new(ctx.warn_every);
        loop {
            let (n, from) = tokio::select! {
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // Transient (e.g. an ICMP error reported on the
                        // socket): log, pause briefly, carry on.
                        tracing::warn!("heartbeat receive failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                () = out.closed() => return,
            };
            receiver.set_time((ctx.now)(), incarnation::wall_clock_us());
            if ctx.evidence.has_changed().unwrap_or(false) {
                receiver.set_evidence(&ctx.evidence.borrow_and_update());
            }
            let result = receiver.accept(&buf[..n]);
            for l in receiver.take_lowered() {
                if let Some(more) = limits.check("floor-lowered", (ctx.now)()) {
                    tracing::warn!(
                        host = l.from,
                        "replay floor of host {} lowered from {}/{} to {}/{}: its statefile slot (sequence {}) shows it alive and this packet current (slot sequence {}); a forged or replayed packet had raised the floor ({more} more lowered since the last such line)",
                        l.from,
                        l.old.0,
                        l.old.1,
                        l.new.0,
                        l.new.1,
                        l.evidence,
                        l.slot_sequence
                    );
                }
                counters.send_replace(receiver.counters());
            }
            if let Err(reason) = &result {
                tracing::debug!(%from, %reason, "heartbeat dropped");
                if matches!(reason, DropReason::FutureIncarnation { .. })
                    && let Some(more) = limits.check("future-incarnation", (ctx.now)())
                {
                    tracing::warn!(
                        %from,
                        "heartbeat refused: {reason} ({more} more since the last such line; counted as future-incarnation)"
                    );
                }
                counters.send_replace(receiver.counters());
                let now = (ctx.now)();
                for (p, since) in receiver.replay_warnings() {
                    tracing::warn!(
                        host = p,
                        "dropping host {p}'s packets as replayed for {:.1} s (its statefile slot gives no evidence to lower the floor; it does not hear this host)",
                        now.saturating_since(since).as_secs_f64()
                    );
                }
            }
            let dropping = receiver.dropping_since();
            ctx.dropping.send_if_modified(|d| {
                let changed = *d != dropping;
                if changed {
                    d.clone_from(&dropping);
                }
                changed
            });
            if let Ok(hb) = result
                && out.send(hb).await.is_err()
            {
                return;
            }
        }
    })
}
