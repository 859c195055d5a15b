//! Following `xhad` through `watch` (never polling): a thread holds a
//! `watch` connection and commits each report's changes
//! (`Agent::apply_liveset`, `ha_link::translate`) the moment it arrives.
//! When the stream ends (the daemon restarted, or is gone) it connects
//! again, waiting a little longer each time up to [`MAX_BACKOFF`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use xha_control::client;

use super::agent::Agent;
use super::master_lease::Renewer;
use crate::ha_link::failover;

/// Longest wait between two attempts to connect.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A running follower; [`Follower::stop`] ends it.
pub struct Follower {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// mfail: renews the agent's claim on the master lock while it is
    /// master or proposes (stops with the follower).
    _lease: Renewer,
}

impl Follower {
    /// Stops following and waits for the thread (at most one watch poll
    /// interval or one backoff step).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Never join from the thread itself (the agent dropped there at exit).
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

/// Starts following the daemon on `socket` for `agent`.
pub fn follow(agent: Weak<Agent>, socket: PathBuf) -> Follower {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // mfail: the failover's host-to-host calls need the runtime.
    let runtime = tokio::runtime::Handle::try_current().ok();
    let proposed = Arc::new(AtomicBool::new(false));
    let lease = {
        let agent = agent.clone();
        let proposed = Arc::clone(&proposed);
        Renewer::start(socket.clone(), Arc::clone(&stop), move || {
            agent
                .upgrade()
                .is_some_and(|a| failover::renews(a.is_master(), proposed.load(Ordering::Relaxed)))
        })
    };
    let thread = std::thread::Builder::new()
        .name("xhad-watch".into())
        .spawn(move || {
            let _entered = runtime.as_ref().map(tokio::runtime::Handle::enter);
            run(&agent, &socket, &flag, proposed);
        })
        .map_err(|e| tracing::error!(error = %e, "cannot start the xhad follower"))
        .ok();
    Follower {
        stop,
        thread,
        _lease: lease,
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() && !stop.load(Ordering::Relaxed) {
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
}

fn run(agent: &Weak<Agent>, socket: &Path, stop: &Arc<AtomicBool>, proposed: Arc<AtomicBool>) {
    let mut backoff = FIRST_BACKOFF;
    let mut said_down = false;
    let mut failover = super::master_failover::Tracker::new(proposed);
    while !stop.load(Ordering::Relaxed) {
        match client::watch(socket, Arc::clone(stop)) {
            Ok((_watcher, rx)) => {
                tracing::info!(socket = %socket.display(), "following xhad");
                said_down = false;
                backoff = FIRST_BACKOFF;
                for (_, report) in rx.iter() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Some(a) = agent.upgrade() else {
                        return;
                    };
                    // mfail: master failover first, then the record.
                    super::master_failover::on_report(&a, &mut failover, &report);
                    a.apply_liveset(&report);
                }
                if let Some(a) = agent.upgrade() {
                    super::master_failover::daemon_gone(&a);
                }
                if !stop.load(Ordering::Relaxed) {
                    tracing::warn!("xhad's watch stream ended: connecting again");
                }
            }
            Err(e) => {
                if !said_down {
                    tracing::warn!(socket = %socket.display(), error = %e, "xhad does not answer: retrying");
                    said_down = true;
                }
            }
        }
        sleep_unless_stopped(backoff, stop);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
