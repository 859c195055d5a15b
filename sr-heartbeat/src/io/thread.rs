//! Deadlines: every request runs on one dedicated thread per device, and the
//! caller waits for the reply at most until its deadline.
//!
//! A request that misses its deadline is reported as [`IoError::Timeout`] but
//! keeps running: an `O_DIRECT` request already submitted to the kernel cannot
//! be cancelled and may still land. The I/O thread owns the request's buffer
//! until the late completion, then frees it; nothing is leaked and nothing is
//! written from freed memory.
//!
//! The queue is bounded, so a hung device cannot make memory grow:
//! - at most [`QUEUE_DEPTH`] requests wait behind the running one; one more is
//!   refused at once with [`IoError::Busy`];
//! - while the running request is past its own deadline (the device looks
//!   stuck), every new request is refused at once with [`IoError::Busy`]
//!   instead of queueing behind it;
//! - a queued request whose deadline passes before it starts is never
//!   executed (its caller has already been told `Timeout`), so a stale write
//!   can not land after a newer one.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{AlignedBuf, BlockDevice, BlockIo, IoError, IoOp};

/// Requests that may wait behind the running one.
pub const QUEUE_DEPTH: usize = 4;

/// Latency of completed requests, and counts of what went wrong. Serialises
/// to JSON (durations as `{secs, nanos}`) for status reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LatencyStats {
    /// Requests that completed (successfully or with an I/O error).
    pub completed: u64,
    /// Latency of the most recent completion (queueing excluded).
    pub last: Option<Duration>,
    pub min: Option<Duration>,
    pub max: Option<Duration>,
    /// Completions that returned an I/O error.
    pub errors: u64,
    /// Callers that gave up at their deadline.
    pub timeouts: u64,
    /// Requests that completed after their caller's deadline.
    pub late_completions: u64,
    /// Queued requests dropped unexecuted because their deadline passed.
    pub expired_unrun: u64,
    /// Requests refused with `Busy`.
    pub busy: u64,
    /// Age of the request running now, if any (a large value = a stuck device).
    pub in_flight_for: Option<Duration>,
}

impl LatencyStats {
    fn record(&mut self, latency: Duration, ok: bool) {
        self.completed += 1;
        self.last = Some(latency);
        self.min = Some(self.min.map_or(latency, |m| m.min(latency)));
        self.max = Some(self.max.map_or(latency, |m| m.max(latency)));
        if !ok {
            self.errors += 1;
        }
    }
}

struct InFlight {
    op: IoOp,
    offset: u64,
    started: Instant,
    expires: Instant,
}

#[derive(Default)]
struct Shared {
    in_flight: Option<InFlight>,
    stats: LatencyStats,
    inject_delay: Option<Duration>,
}

type Reply<T> = Sender<Result<T, IoError>>;

enum Request {
    Read {
        buf: AlignedBuf,
        reply: Reply<AlignedBuf>,
    },
    Write {
        buf: AlignedBuf,
        reply: Reply<()>,
    },
}

struct Job {
    offset: u64,
    deadline: Duration,
    expires: Instant,
    request: Request,
}

impl Job {
    fn op(&self) -> IoOp {
        match self.request {
            Request::Read { .. } => IoOp::Read,
            Request::Write { .. } => IoOp::Write,
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A poisoned lock only means another thread panicked while holding it;
    // the counters inside stay meaningful, so keep going.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// A device served by its own I/O thread.
///
/// Dropping the `IoThread` closes the queue; the thread finishes the request
/// it is running (possibly much later, on a hung device) and exits. It is
/// never joined, so dropping never blocks.
pub struct IoThread {
    tx: SyncSender<Job>,
    shared: Arc<Mutex<Shared>>,
    sector_size: usize,
    size_bytes: u64,
    path: std::path::PathBuf,
}

impl IoThread {
    /// Move `dev` to a new I/O thread.
    pub fn spawn(dev: BlockDevice) -> Result<IoThread, IoError> {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE_DEPTH);
        let shared = Arc::new(Mutex::new(Shared::default()));
        let sector_size = dev.sector_size();
        let size_bytes = dev.size_bytes();
        let path = dev.path().to_owned();
        let worker_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("sr-heartbeat-io".into())
            .spawn(move || serve(&dev, &rx, &worker_shared))
            .map_err(|source| IoError::Spawn { source })?;
        Ok(IoThread {
            tx,
            shared,
            sector_size,
            size_bytes,
            path,
        })
    }

    pub fn sector_size(&self) -> usize {
        self.sector_size
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Read `len` bytes at `offset`; `Timeout` once `deadline` has passed.
    pub fn read(&self, offset: u64, len: usize, deadline: Duration) -> Result<AlignedBuf, IoError> {
        self.submit_read(offset, len, deadline)?.wait()
    }

    /// Write `buf` at `offset`; `Timeout` once `deadline` has passed (the
    /// write may still land later).
    pub fn write(&self, offset: u64, buf: AlignedBuf, deadline: Duration) -> Result<(), IoError> {
        self.submit_write(offset, buf, deadline)?.wait()
    }

    /// Queue a read and return at once; the reply is collected from the
    /// [`Pending`] (blocking with [`Pending::wait`] or polling with
    /// [`Pending::try_wait`], which suits an event loop).
    pub fn submit_read(
        &self,
        offset: u64,
        len: usize,
        deadline: Duration,
    ) -> Result<Pending<AlignedBuf>, IoError> {
        let buf = AlignedBuf::new(len)?;
        let (reply, rx) = mpsc::channel();
        self.submit(offset, deadline, Request::Read { buf, reply }, rx)
    }

    /// Queue a write and return at once (see [`IoThread::submit_read`]).
    pub fn submit_write(
        &self,
        offset: u64,
        buf: AlignedBuf,
        deadline: Duration,
    ) -> Result<Pending<()>, IoError> {
        let (reply, rx) = mpsc::channel();
        self.submit(offset, deadline, Request::Write { buf, reply }, rx)
    }

    fn submit<T>(
        &self,
        offset: u64,
        deadline: Duration,
        request: Request,
        rx: Receiver<Result<T, IoError>>,
    ) -> Result<Pending<T>, IoError> {
        let now = Instant::now();
        let job = Job {
            offset,
            deadline,
            expires: now + deadline,
            request,
        };
        let op = job.op();
        let mut shared = lock(&self.shared);
        let stuck = shared
            .in_flight
            .as_ref()
            .filter(|f| now > f.expires)
            .map(|f| {
                format!(
                    "{} at offset {} has been running for {:?}, past its deadline",
                    f.op,
                    f.offset,
                    now - f.started
                )
            });
        if let Some(reason) = stuck {
            shared.stats.busy += 1;
            return Err(IoError::Busy { op, offset, reason });
        }
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::TrySendError::Full(_)) => {
                shared.stats.busy += 1;
                return Err(IoError::Busy {
                    op,
                    offset,
                    reason: format!("{QUEUE_DEPTH} requests already queued"),
                });
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(IoError::ThreadGone),
        }
        drop(shared);
        Ok(Pending {
            rx,
            op,
            offset,
            deadline,
            expires: now + deadline,
            shared: Arc::clone(&self.shared),
            finished: false,
        })
    }

    /// Latency of completed requests and counts of timeouts, errors, ...
    pub fn latency(&self) -> LatencyStats {
        let shared = lock(&self.shared);
        let mut stats = shared.stats.clone();
        stats.in_flight_for = shared.in_flight.as_ref().map(|f| f.started.elapsed());
        stats
    }

    /// Fault injection: the next request to start waits `delay` before its
    /// system call, exactly as on a device that is slow to answer (the delay
    /// counts in its latency, and a delay past the deadline makes the caller
    /// time out while the I/O thread stays busy). For tests, the `demo`
    /// command and fault-injection harnesses; the product never calls it.
    pub fn inject_delay(&self, delay: Duration) {
        lock(&self.shared).inject_delay = Some(delay);
    }
}

/// A request that has been queued; its reply is collected once.
pub struct Pending<T> {
    rx: Receiver<Result<T, IoError>>,
    op: IoOp,
    offset: u64,
    deadline: Duration,
    expires: Instant,
    shared: Arc<Mutex<Shared>>,
    finished: bool,
}

impl<T> Pending<T> {
    fn timed_out(&mut self) -> IoError {
        self.finished = true;
        lock(&self.shared).stats.timeouts += 1;
        IoError::Timeout {
            op: self.op,
            offset: self.offset,
            deadline: self.deadline,
        }
    }

    /// Block until the reply or the deadline, whichever comes first.
    pub fn wait(mut self) -> Result<T, IoError> {
        let left = self.expires.saturating_duration_since(Instant::now());
        match self.rx.recv_timeout(left) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(self.timed_out()),
            Err(RecvTimeoutError::Disconnected) => Err(IoError::ThreadGone),
        }
    }

    /// Poll: `None` while the request runs and its deadline has not passed;
    /// then the reply, or `Timeout` once the deadline has passed. After it
    /// has returned `Some`, it returns `None` for ever.
    pub fn try_wait(&mut self) -> Option<Result<T, IoError>> {
        if self.finished {
            return None;
        }
        match self.rx.try_recv() {
            Ok(result) => {
                self.finished = true;
                Some(result)
            }
            Err(TryRecvError::Empty) if Instant::now() >= self.expires => {
                Some(Err(self.timed_out()))
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.finished = true;
                Some(Err(IoError::ThreadGone))
            }
        }
    }

    /// When the caller's deadline passes.
    pub fn expires(&self) -> Instant {
        self.expires
    }
}

/// The I/O thread: run jobs in order until the queue is closed.
fn serve(dev: &BlockDevice, rx: &Receiver<Job>, shared: &Mutex<Shared>) {
    while let Ok(job) = rx.recv() {
        let started = Instant::now();
        if started >= job.expires {
            // The caller has been told `Timeout` already: running the request
            // now could land a stale write after a newer one.
            lock(shared).stats.expired_unrun += 1;
            let err = IoError::Timeout {
                op: job.op(),
                offset: job.offset,
                deadline: job.deadline,
            };
            match job.request {
                Request::Read { reply, .. } => drop(reply.send(Err(err))),
                Request::Write { reply, .. } => drop(reply.send(Err(err))),
            }
            continue;
        }
        let delay = {
            let mut s = lock(shared);
            s.in_flight = Some(InFlight {
                op: job.op(),
                offset: job.offset,
                started,
                expires: job.expires,
            });
            s.inject_delay.take()
        };
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let offset = job.offset;
        let expires = job.expires;
        let finish = |ok: bool| {
            let done = Instant::now();
            let mut s = lock(shared);
            s.in_flight = None;
            s.stats.record(done - started, ok);
            if done > expires {
                s.stats.late_completions += 1;
            }
        };
        // A send fails only when the caller dropped its `Pending`; the buffer
        // is then freed here, after the device has finished with it.
        match job.request {
            Request::Read { mut buf, reply } => {
                let result = dev.read_at(offset, &mut buf).map(|()| buf);
                finish(result.is_ok());
                drop(reply.send(result));
            }
            Request::Write { buf, reply } => {
                let result = dev.write_at(offset, &buf);
                finish(result.is_ok());
                drop(reply.send(result));
                drop(buf);
            }
        }
    }
}

/// An [`IoThread`] with a fixed deadline per request: the [`BlockIo`] the
/// daemon hands to the statefile and metadata code.
pub struct DeadlineIo {
    thread: IoThread,
    deadline: Duration,
}

impl DeadlineIo {
    pub fn new(thread: IoThread, deadline: Duration) -> DeadlineIo {
        DeadlineIo { thread, deadline }
    }

    /// Open `dev` on a new I/O thread with this per-request deadline.
    pub fn spawn(dev: BlockDevice, deadline: Duration) -> Result<DeadlineIo, IoError> {
        Ok(DeadlineIo::new(IoThread::spawn(dev)?, deadline))
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn set_deadline(&mut self, deadline: Duration) {
        self.deadline = deadline;
    }

    pub fn thread(&self) -> &IoThread {
        &self.thread
    }
}

impl BlockIo for DeadlineIo {
    fn sector_size(&self) -> usize {
        self.thread.sector_size
    }
    fn size_bytes(&self) -> u64 {
        self.thread.size_bytes
    }
    fn path(&self) -> &std::path::Path {
        &self.thread.path
    }
    fn read(&self, offset: u64, len: usize) -> Result<AlignedBuf, IoError> {
        self.thread.read(offset, len, self.deadline)
    }
    fn write(&self, offset: u64, buf: AlignedBuf) -> Result<(), IoError> {
        self.thread.write(offset, buf, self.deadline)
    }
}
