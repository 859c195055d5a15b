//! The watchdog's reset, at once. The lab's supervisor fences a host by
//! killing its `xhad` group only; a real watchdog resets the whole host, VMs
//! included, at that instant. This thread SIGKILLs what is left of a
//! watched host as soon as its `xhad` or its supervisor is gone (an `xhad`
//! blocked in a held storage request outlives its SIGKILL until the reset
//! fails that request: `run::storage`); the runner's own fence
//! handling (`Runner::watch_fences`, between steps) keeps the books. Before
//! it, a step that blocked (a boot waiting for its `xhad`) let a fenced
//! host's VMs run on for seconds after the survivors had restarted them:
//! false double runs in seeds 7028 and 8024 (docs/lab.md).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::super::hosts::running_in;
use super::storage::{Views, reset};

/// How often the thread looks.
const EVERY: Duration = Duration::from_millis(20);

/// One host as the thread sees it: its directory, name and `xhad`
/// directory (with the daemon's and the supervisor's pidfiles).
pub(super) struct Watched {
    pub dir: PathBuf,
    pub name: String,
    pub xhad_dir: PathBuf,
}

/// Per host: watched, and when the thread reset it (wall ms).
type Armed = Arc<Mutex<Vec<(bool, Option<u64>)>>>;

/// The reset thread; stopped on drop.
pub(super) struct Watchdog {
    armed: Armed,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Watches `hosts` (none armed yet); `vms` are the VM uuids whose
    /// processes belong to a host when they run there; `views`, the hosts'
    /// views of the SR when storage faults are on.
    pub(super) fn start(
        hosts: Vec<Watched>,
        vms: Vec<String>,
        views: Option<Arc<Views>>,
    ) -> Watchdog {
        let armed: Armed = Arc::new(Mutex::new(vec![(false, None); hosts.len()]));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (armed, stop) = (Arc::clone(&armed), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut armed = armed.lock().unwrap_or_else(PoisonError::into_inner);
                        for (i, h) in hosts.iter().enumerate() {
                            if armed[i].0 && !running_in(&h.xhad_dir) {
                                let kill = || xha_lab::power::kill_host(&h.dir, &h.name, &vms);
                                let killed = reset(views.as_deref(), i, kill);
                                let at =
                                    killed.map_or_else(|_| xha_lab::power::wall_ms(), |(_, at)| at);
                                armed[i] = (false, Some(at));
                            }
                        }
                    }
                    std::thread::sleep(EVERY);
                }
            })
        };
        Watchdog {
            armed,
            stop,
            thread: Some(thread),
        }
    }

    /// Host `i` is watched (its `xhad` runs and a fence is a reset) or not
    /// (cut on purpose, down, booting). Serialised with the thread's check.
    pub(super) fn arm(&self, i: usize, on: bool) {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(a) = armed.get_mut(i) {
            *a = (on, None);
        }
    }

    /// When the thread reset host `i` (wall ms), if it did since it was
    /// last armed; forgets it.
    pub(super) fn take_reset(&self, i: usize) -> Option<u64> {
        let mut armed = self.armed.lock().unwrap_or_else(PoisonError::into_inner);
        armed.get_mut(i).and_then(|a| a.1.take())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
