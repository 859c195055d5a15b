//! Stopping the lab (`stop` and `Drop`): disarm and stop every daemon, wait
//! up to `STOP_GRACE`, kill what is left, reap every child, remove the
//! directory.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use xha_control::Request;

use crate::process::{self, Proc};
use crate::{Lab, LabError, STOP_GRACE, SUPERVISOR, XHAD};

impl Lab {
    /// Stop the lab: see the module documentation. `Err(Unclean)` names
    /// what did not stop cleanly (it was killed; nothing is left either way).
    pub fn stop(mut self) -> Result<(), LabError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), LabError> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.stop_watchers.store(true, Ordering::Relaxed);
        let mut unclean = Vec::new();
        // Hosts to stop gracefully: daemon running and not frozen.
        let live: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| {
                let running = self.pgid(i).is_some();
                if running && is_stopped(self.hosts[i].daemon.as_ref().map_or(0, Proc::pid)) {
                    unclean.push(format!("host {i}: frozen (SIGSTOP), killed"));
                    return false;
                }
                running
            })
            .collect();
        let timeout = Duration::from_secs(1);
        for req in [Request::DisarmFencing, Request::Stop] {
            for &i in &live {
                match self.request_with(i, req, timeout) {
                    Ok(_) => {}
                    // A daemon may exit before its answer to `stop` is
                    // written; its exit status below says whether it
                    // stopped cleanly.
                    Err(LabError::Control { .. }) if req == Request::Stop => {}
                    Err(e) => unclean.push(e.to_string()),
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for &i in &live {
            let host = &self.hosts[i];
            for (what, proc) in [(XHAD, &host.daemon), (SUPERVISOR, &host.supervisor)] {
                let Some(p) = proc else { continue };
                let left = deadline.saturating_duration_since(Instant::now());
                match p.wait_timeout(left) {
                    Some(s) if s.success() => {}
                    Some(s) => unclean.push(format!(
                        "host {i}: {what} {} after stop",
                        process::describe(s)
                    )),
                    None => unclean.push(format!(
                        "host {i}: {what} still running {STOP_GRACE:?} after stop, killed"
                    )),
                }
            }
        }
        for host in &mut self.hosts {
            for p in [host.daemon.as_mut(), host.supervisor.as_mut()]
                .into_iter()
                .flatten()
            {
                p.kill_and_reap();
            }
        }
        let watchers = std::mem::take(
            &mut *self
                .watchers
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for w in watchers {
            let _ = w.join();
        }
        if !self.keep_dir
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            unclean.push(format!("remove {}: {e}", self.dir.display()));
        }
        if unclean.is_empty() {
            tracing::info!("lab stopped cleanly");
            Ok(())
        } else {
            Err(LabError::Unclean(unclean.join("; ")))
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::warn!("lab: {e}");
        }
    }
}

/// Whether process `pid` is stopped (state `T` in `/proc/PID/stat`).
fn is_stopped(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name is in parentheses and may contain spaces.
    stat.rfind(')')
        .and_then(|i| stat.get(i + 2..i + 3))
        .is_some_and(|s| s == "T" || s == "t")
}
