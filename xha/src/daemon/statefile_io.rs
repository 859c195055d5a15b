//! The daemon's statefile I/O: a small pool of worker threads per statefile,
//! so that several slot writes can be in flight on one statefile at once.
//!
//! The core's contract (`xha::core::Input::SlotWritten`) is that a write is
//! reported only once it can no longer land: completed, failed, or never
//! started. A write that has been handed to the kernel cannot be cancelled,
//! so a worker reports it when the system call returns, however late; the
//! core judges lateness itself (from the write's issue time) and keeps up to
//! `max_outstanding_writes` writes in flight on a slow path. Reads are
//! different: a read that misses its deadline cannot change anything on
//! disk, so the main loop reports it as `IoFailure::Timeout` at its deadline
//! and ignores the late completion.
//!
//! Each worker runs one O_DIRECT system call at a time on the shared
//! [`Statefile`] (`pread`/`pwrite` need no lock). Workers are started on
//! demand, up to [`StatefileWorkers::capacity`]; a request beyond that (the
//! path is hung and every worker is stuck in the kernel) is refused at once
//! with [`Refused`]: it was never started, so it cannot land, and the main
//! loop reports it as failed. Workers have small stacks: with `mlockall`
//! every page of every stack is locked.
//!
//! "Not ours": every read also reads the header and checks it against the
//! one read at start-up (`Statefile::read_all`), so the header is
//! re-validated every read interval (well under T). A header of another
//! generation, rewritten, or no longer decoding means the statefile was
//! reformatted under the pool: from then on every read fails and every write
//! is refused without touching the device, so to the core this statefile is
//! simply lost (and if every host sees the same, nobody fences, by the
//! statefile-lost rule). The change is logged once, as one warning, and
//! once more if the header ever becomes ours again. Pool-block writes are a
//! compare-and-set against the header in the same request
//! (`Statefile::write_pool`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sr_heartbeat::io::{BlockDevice, OpenMode, Region};
use sr_heartbeat::statefile::{Statefile, StatefileError};
use tokio::sync::mpsc;
use xha_driver::{Completion, Done, Op};

use crate::core::{RequestId, StatefileIndex};

/// Stack size of a worker: it only calls into `sr_heartbeat`, whose buffers
/// are on the heap.
const WORKER_STACK: usize = 128 * 1024;

/// A request for a worker.
#[derive(Debug)]
struct Job {
    request: RequestId,
    op: Op,
}

/// A finished operation, sent to the main loop: the driver's completion
/// and what only the daemon measures.
#[derive(Debug)]
pub struct Finished {
    pub completion: Completion,
    /// The operation failed, or was refused, because the statefile is not
    /// ours any more (already warned about once: log repeats at debug).
    pub not_ours: bool,
    /// From the moment a worker took the request to the system call's return.
    pub latency: Duration,
}

/// A request refused at once: every worker is stuck. It was never started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("statefile {statefile}: {stuck} requests are stuck in the kernel; {op} not started")]
pub struct Refused {
    pub statefile: usize,
    pub stuck: usize,
    pub op: &'static str,
}

/// Why a statefile could not be opened at start-up.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The device or file could not be opened or read.
    #[error("statefiles[{index}] {path}: {source}")]
    Access {
        index: usize,
        path: PathBuf,
        source: StatefileError,
    },
    /// Opening did not finish within the deadline (hung storage).
    #[error("statefiles[{index}] {path}: no answer within {deadline:?}")]
    Hung {
        index: usize,
        path: PathBuf,
        deadline: Duration,
    },
    /// The header is not a statefile header.
    #[error("statefiles[{index}] {path}: {source}")]
    Invalid {
        index: usize,
        path: PathBuf,
        source: StatefileError,
    },
    /// The statefile belongs to another HA enablement.
    #[error("statefiles[{index}] {path}: generation {found}, this pool is {expected}")]
    Generation {
        index: usize,
        path: PathBuf,
        found: uuid::Uuid,
        expected: uuid::Uuid,
    },
    /// The statefile has fewer slots than the pool has hosts.
    #[error("statefiles[{index}] {path}: {slots} slots, the pool has {hosts} hosts")]
    TooFewSlots {
        index: usize,
        path: PathBuf,
        slots: u16,
        hosts: usize,
    },
}

/// Open and check one statefile: O_DIRECT, header valid, generation and
/// slot count as configured. Runs on a helper thread so that hung storage
/// is reported after `deadline` instead of hanging start-up.
pub fn open(
    index: usize,
    path: &Path,
    region: Option<Region>,
    generation: uuid::Uuid,
    hosts: usize,
    deadline: Duration,
) -> Result<Statefile, OpenError> {
    let (tx, rx) = std_mpsc::channel();
    let p = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name(format!("statefile-open-{index}"))
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let dev = match region {
                Some(r) => BlockDevice::open_region(&p, OpenMode::ReadWrite, r),
                None => BlockDevice::open(&p, OpenMode::ReadWrite),
            };
            let r = dev.map_err(StatefileError::from).and_then(Statefile::open);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return Err(OpenError::Access {
            index,
            path: path.to_path_buf(),
            source: StatefileError::Io(sr_heartbeat::io::IoError::Open {
                path: path.to_path_buf(),
                source: e,
            }),
        });
    }
    let file = match rx.recv_timeout(deadline) {
        Ok(Ok(f)) => f,
        Ok(Err(
            e @ (StatefileError::Header { .. } | StatefileError::SectorSizeMismatch { .. }),
        )) => {
            return Err(OpenError::Invalid {
                index,
                path: path.to_path_buf(),
                source: e,
            });
        }
        Ok(Err(e)) => {
            return Err(OpenError::Access {
                index,
                path: path.to_path_buf(),
                source: e,
            });
        }
        Err(_) => {
            return Err(OpenError::Hung {
                index,
                path: path.to_path_buf(),
                deadline,
            });
        }
    };
    if file.generation() != generation {
        return Err(OpenError::Generation {
            index,
            path: path.to_path_buf(),
            found: file.generation(),
            expected: generation,
        });
    }
    if usize::from(file.max_hosts()) < hosts {
        return Err(OpenError::TooFewSlots {
            index,
            path: path.to_path_buf(),
            slots: file.max_hosts(),
            hosts,
        });
    }
    Ok(file)
}

/// Whether a statefile is still ours, shared by its workers: `Some(reason)`
/// once a read (or a pool write's header check) found its header foreign.
#[derive(Debug, Default)]
struct NotOurs {
    reason: Mutex<Option<String>>,
}

impl NotOurs {
    /// The reason writes are refused, if they are.
    fn reason(&self) -> Option<String> {
        self.reason.lock().map_or(None, |r| r.clone())
    }

    /// Record what an operation found; logs only the transitions.
    fn observe(&self, index: usize, result: &Result<(), &StatefileError>) {
        let Ok(mut cur) = self.reason.lock() else {
            return;
        };
        match result {
            Err(e) if e.is_not_ours() => {
                if cur.is_none() {
                    tracing::warn!(
                        statefile = index,
                        "{e}; treating this statefile as lost: no more writes to it, reads fail (warned once)"
                    );
                    *cur = Some(e.to_string());
                }
            }
            Ok(()) => {
                if cur.take().is_some() {
                    tracing::warn!(
                        statefile = index,
                        "statefile header is ours again: using this statefile again"
                    );
                }
            }
            // Other errors say nothing about whose statefile this is.
            Err(_) => {}
        }
    }
}

/// The worker pool of one statefile.
pub struct StatefileWorkers {
    index: usize,
    file: Arc<Statefile>,
    not_ours: Arc<NotOurs>,
    jobs: std_mpsc::Sender<Job>,
    queue: Arc<Mutex<std_mpsc::Receiver<Job>>>,
    /// Requests submitted and not yet completed (queued or in a worker).
    outstanding: Arc<AtomicUsize>,
    threads: usize,
    capacity: usize,
    out: mpsc::UnboundedSender<Finished>,
}

impl StatefileWorkers {
    /// Workers for statefile `index`, sending completions to `out`. At most
    /// `capacity` requests run at once (the core's `max_outstanding_writes`
    /// plus room for a read and pool writes).
    #[must_use]
    pub fn new(
        index: usize,
        file: Statefile,
        capacity: usize,
        out: mpsc::UnboundedSender<Finished>,
    ) -> StatefileWorkers {
        let (jobs, rx) = std_mpsc::channel();
        StatefileWorkers {
            index,
            file: Arc::new(file),
            not_ours: Arc::new(NotOurs::default()),
            jobs,
            queue: Arc::new(Mutex::new(rx)),
            outstanding: Arc::new(AtomicUsize::new(0)),
            threads: 0,
            capacity: capacity.max(1),
            out,
        }
    }

    /// Most requests in flight at once.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Requests submitted and not completed.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::SeqCst)
    }

    /// Worker threads started so far.
    #[must_use]
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Start `op`; its completion arrives on the channel given to `new`.
    pub fn submit(&mut self, request: RequestId, op: Op) -> Result<(), Refused> {
        let busy = self.outstanding.fetch_add(1, Ordering::SeqCst);
        if busy >= self.capacity {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused {
                statefile: self.index,
                stuck: busy,
                op: op.name(),
            });
        }
        if busy >= self.threads && self.threads < self.capacity {
            // Every started worker is busy: start one more. If the thread
            // cannot be created the job still waits for a running worker.
            if let Err(e) = self.spawn_worker() {
                tracing::warn!(
                    statefile = self.index,
                    "cannot start a statefile worker: {e}"
                );
            }
        }
        if self.threads == 0 || self.jobs.send(Job { request, op }).is_err() {
            self.outstanding.fetch_sub(1, Ordering::SeqCst);
            return Err(Refused {
                statefile: self.index,
                stuck: busy,
                op: "request (no worker)",
            });
        }
        Ok(())
    }

    fn spawn_worker(&mut self) -> std::io::Result<()> {
        let index = self.index;
        let file = Arc::clone(&self.file);
        let not_ours = Arc::clone(&self.not_ours);
        let queue = Arc::clone(&self.queue);
        let outstanding = Arc::clone(&self.outstanding);
        let out = self.out.clone();
        std::thread::Builder::new()
            .name(format!("statefile-{index}-{}", self.threads))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let shared = Shared {
                    index,
                    file: &file,
                    not_ours: &not_ours,
                };
                worker(&shared, &queue, &outstanding, &out);
            })?;
        self.threads += 1;
        Ok(())
    }
}

/// What every worker of one statefile shares.
struct Shared<'a> {
    index: usize,
    file: &'a Statefile,
    not_ours: &'a NotOurs,
}

impl Shared<'_> {
    /// Perform `op`; also says whether a failure is the statefile not
    /// being ours.
    fn perform(&self, op: &Op) -> (Done, bool) {
        let refused = |reason: String| Err(format!("not written: {reason}"));
        match op {
            Op::WriteSlot(slot) => match self.not_ours.reason() {
                Some(reason) => (Done::SlotWritten(refused(reason)), true),
                None => {
                    let r = self.file.write_slot(slot);
                    let not_ours = r.as_ref().is_err_and(StatefileError::is_not_ours);
                    (Done::SlotWritten(r.map_err(|e| e.to_string())), not_ours)
                }
            },
            Op::ReadAll => {
                let r = self.file.read_all();
                self.not_ours.observe(self.index, &r.as_ref().map(drop));
                let not_ours = r.as_ref().is_err_and(StatefileError::is_not_ours);
                (Done::Read(r.map_err(|e| e.to_string())), not_ours)
            }
            Op::WritePool(block) => match self.not_ours.reason() {
                Some(reason) => (Done::PoolWritten(refused(reason)), true),
                None => {
                    let r = self.file.write_pool(block);
                    if let Err(e) = &r {
                        self.not_ours.observe(self.index, &Err(e));
                    }
                    let not_ours = r.as_ref().is_err_and(StatefileError::is_not_ours);
                    (Done::PoolWritten(r.map_err(|e| e.to_string())), not_ours)
                }
            },
        }
    }
}

fn worker(
    shared: &Shared<'_>,
    queue: &Mutex<std_mpsc::Receiver<Job>>,
    outstanding: &AtomicUsize,
    out: &mpsc::UnboundedSender<Finished>,
) {
    loop {
        let job = {
            let Ok(rx) = queue.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let started = Instant::now();
        let (done, not_ours) = shared.perform(&job.op);
        let latency = started.elapsed();
        outstanding.fetch_sub(1, Ordering::SeqCst);
        let done = Finished {
            completion: Completion {
                statefile: StatefileIndex(shared.index),
                request: job.request,
                done,
            },
            not_ours,
            latency,
        };
        if out.send(done).is_err() {
            return;
        }
    }
}
