//! The agent's claim on the master lock, renewed (docs/master-failover.md,
//! "The master's agent dies"): a thread repeats `propose-master true` to
//! this host's `xhad` every `failover::RENEW_EVERY` while `wants()` says
//! so. `xhad` lets the request lapse `failover::MASTER_LEASE` after the
//! last repetition, so an agent that dies or hangs stops holding the lock
//! while its host (and its `xhad`) live on.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use xha_control::Request;
use xha_control::client::{self, REQUEST_TIMEOUT};

use crate::ha_link::failover::RENEW_EVERY;

/// A running renewal; stops (and is joined) when dropped or when its stop
/// flag is set.
pub struct Renewer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Renewer {
    /// Renews on `socket` while `wants()`, until `stop` is set or the
    /// renewer is dropped.
    pub fn start(
        socket: PathBuf,
        stop: Arc<AtomicBool>,
        wants: impl Fn() -> bool + Send + 'static,
    ) -> Renewer {
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("master-lease".into())
            .spawn(move || run(&socket, &flag, &wants))
            .map_err(|e| tracing::error!(error = %e, "cannot start the master-lease renewal"))
            .ok();
        Renewer { stop, thread }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn run(socket: &std::path::Path, stop: &AtomicBool, wants: &dyn Fn() -> bool) {
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        if wants() {
            match client::request(socket, Request::ProposeMaster(true), REQUEST_TIMEOUT) {
                Ok(_) if failing => {
                    tracing::info!("renewing the master claim works again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "renewing the master claim with xhad failed (retrying)");
                    failing = true;
                }
                Err(_) => {}
            }
        }
        let step = Duration::from_millis(50);
        let mut left = RENEW_EVERY;
        while !left.is_zero() && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(step.min(left));
            left = left.saturating_sub(step);
        }
    }
}
