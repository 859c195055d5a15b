//! Real-time scheduling and locked memory for the daemon.
//!
//! XenServer learned that threads starved of CPU miss heartbeats and fence
//! healthy hosts; the fix was real-time priority. The daemon asks for
//! `SCHED_RR` and `mlockall(MCL_CURRENT | MCL_FUTURE)` at start-up and warns
//! (does not fail) when refused, since a development machine may not allow
//! them. Call [`request`] on the main thread before starting the runtime:
//! Linux applies the policy per thread and new threads inherit it.

use nix::libc;
use nix::sys::mman::{MlockAllFlags, mlockall};

/// The round-robin priority the daemon asks for (1..=99): above ordinary
/// real-time helpers, below the kernel's own watchdog threads (99).
pub const PRIORITY: i32 = 50;

/// What was granted. Each field is `Err(text)` when refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealtimeReport {
    pub sched_rr: Result<(), String>,
    pub mlockall: Result<(), String>,
}

impl RealtimeReport {
    /// One warning per refusal, for the log and the liveset query.
    #[must_use]
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if let Err(e) = &self.sched_rr {
            w.push(format!(
                "real-time scheduling (SCHED_RR {PRIORITY}) refused: {e}; CPU starvation may delay heartbeats"
            ));
        }
        if let Err(e) = &self.mlockall {
            w.push(format!(
                "mlockall refused: {e}; paging may delay heartbeats"
            ));
        }
        w
    }
}

/// Ask for SCHED_RR for the calling thread and lock all memory.
#[must_use]
pub fn request() -> RealtimeReport {
    let param = libc::sched_param {
        sched_priority: PRIORITY,
    };
    // SAFETY: `param` is a valid sched_param that outlives the call; pid 0
    // means the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_RR, &param) };
    let sched_rr = if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    };
    let mlockall =
        mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE).map_err(|e| e.to_string());
    let report = RealtimeReport { sched_rr, mlockall };
    for w in report.warnings() {
        tracing::warn!("{w}");
    }
    report
}

/// The calling thread's scheduling policy (`libc::SCHED_*`).
#[must_use]
pub fn current_policy() -> i32 {
    // SAFETY: no pointers; pid 0 is the calling thread.
    unsafe { libc::sched_getscheduler(0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs in its own thread (the policy is per thread) and undoes both
    /// grants, so the rest of the test process is unaffected.
    #[test]
    fn granted_to_root_and_reported_otherwise() {
        std::thread::spawn(|| {
            let r = request();
            // SAFETY: geteuid has no preconditions and cannot fail.
            let root = unsafe { libc::geteuid() } == 0;
            if root {
                assert_eq!(r.sched_rr, Ok(()), "root may use SCHED_RR");
                assert_eq!(current_policy(), libc::SCHED_RR);
                assert!(r.warnings().len() <= 1, "{:?}", r.warnings());
            } else {
                eprintln!("not root: only checking that refusals become warnings");
                assert_eq!(
                    r.warnings().len(),
                    usize::from(r.sched_rr.is_err()) + usize::from(r.mlockall.is_err())
                );
            }
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `request`.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
            let _ = nix::sys::mman::munlockall();
        })
        .join()
        .unwrap();
    }
}
