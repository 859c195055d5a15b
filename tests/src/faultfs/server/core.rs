//! The fault queue shared by the session loop, the timer and the control
//! connections: each request is forwarded, failed, held or scheduled by the
//! mode in force.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use fuser::{ReplyData, ReplyEmpty, ReplyWrite};

use super::super::{Mode, Stats};

/// Requests held or delayed at once; beyond this a request fails with `EIO`
/// (each one is a blocked thread somewhere, so this is never reached by a
/// sane test, but the queue stays bounded).
pub const MAX_PENDING: usize = 4096;

/// One request for the fault queue, with the backing file it goes to.
pub(super) enum Op {
    Read {
        file: Arc<File>,
        offset: u64,
        size: u32,
        reply: ReplyData,
    },
    Write {
        file: Arc<File>,
        offset: u64,
        data: Vec<u8>,
        reply: ReplyWrite,
    },
    /// `fsync` of a file, or `fsyncdir` of a directory mount's root.
    Fsync { file: Arc<File>, reply: ReplyEmpty },
}

impl Op {
    fn fail(self, errno: i32) {
        match self {
            Op::Read { reply, .. } => reply.error(errno),
            Op::Write { reply, .. } => reply.error(errno),
            Op::Fsync { reply, .. } => reply.error(errno),
        }
    }
}

struct State {
    mode: Mode,
    /// Held requests with their arrival number, oldest first.
    held: Vec<(u64, Op)>,
    /// Scheduled requests by (due, arrival number).
    timed: BTreeMap<(Instant, u64), Op>,
    arrivals: u64,
    /// Requests being forwarded or failed right now (out of the queues,
    /// not yet answered): a stop waits for them too.
    running: u64,
    stats: Stats,
}

/// The fault state shared by the session loop, the timer and the control
/// connections.
pub(super) struct Core {
    state: Mutex<State>,
    wake: Condvar,
}

impl Core {
    /// A queue in mode `ok`.
    pub(super) fn new() -> Core {
        Core {
            state: Mutex::new(State {
                mode: Mode::Ok,
                held: Vec::new(),
                timed: BTreeMap::new(),
                arrivals: 0,
                running: 0,
                stats: Stats::zero(Mode::Ok),
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking thread cannot leave the queues half-updated in a way
        // that matters more than losing the mount, so keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A FUSE read of `file` at `offset` (negative: `EINVAL`), queued.
    pub(super) fn read(&self, file: Arc<File>, offset: i64, size: u32, reply: ReplyData) {
        match u64::try_from(offset) {
            Ok(offset) => self.submit(Op::Read {
                file,
                offset,
                size,
                reply,
            }),
            Err(_) => reply.error(libc::EINVAL),
        }
    }

    /// A FUSE write to `file` at `offset` (negative: `EINVAL`), queued.
    pub(super) fn write(&self, file: Arc<File>, offset: i64, data: &[u8], reply: ReplyWrite) {
        match u64::try_from(offset) {
            Ok(offset) => self.submit(Op::Write {
                file,
                offset,
                data: data.to_vec(),
                reply,
            }),
            Err(_) => reply.error(libc::EINVAL),
        }
    }

    pub(super) fn submit(&self, op: Op) {
        let mut st = self.lock();
        match op {
            Op::Read { .. } => st.stats.reads += 1,
            Op::Write { .. } => st.stats.writes += 1,
            Op::Fsync { .. } => st.stats.fsyncs += 1,
        }
        st.arrivals += 1;
        let arrival = st.arrivals;
        let full = st.held.len() + st.timed.len() >= MAX_PENDING;
        match st.mode {
            _ if full => {
                st.stats.errors += 1;
                drop(st);
                tracing::warn!("{MAX_PENDING} requests pending: failing one more");
                op.fail(libc::EIO);
            }
            Mode::Ok => {
                st.running += 1;
                drop(st);
                self.execute(op);
                self.lock().running -= 1;
            }
            Mode::Error => {
                st.stats.errors += 1;
                drop(st);
                op.fail(libc::EIO);
            }
            Mode::Hang => st.held.push((arrival, op)),
            Mode::Delay(d) => {
                st.timed.insert((Instant::now() + d, arrival), op);
                self.wake.notify_all();
            }
        }
    }

    /// Switch mode; the new mode applies to every unanswered request too:
    /// `ok` and `error` answer them now (oldest first), `hang` holds the
    /// delayed ones, `delay` answers the held ones that long from now.
    pub(super) fn set_mode(&self, mode: Mode) {
        let mut st = self.lock();
        st.mode = mode;
        let now = Instant::now();
        match mode {
            Mode::Ok | Mode::Error => {
                let timed = std::mem::take(&mut st.timed);
                let held = std::mem::take(&mut st.held);
                let all = timed.into_iter().map(|((_, a), op)| (a, op)).chain(held);
                st.timed = all.map(|(a, op)| ((now, a), op)).collect();
            }
            Mode::Hang => {
                let timed = std::mem::take(&mut st.timed);
                st.held
                    .extend(timed.into_iter().map(|((_, a), op)| (a, op)));
                st.held.sort_by_key(|(a, _)| *a);
            }
            Mode::Delay(d) => {
                for (a, op) in std::mem::take(&mut st.held) {
                    st.timed.insert((now + d, a), op);
                }
            }
        }
        st.stats.mode = mode;
        drop(st);
        self.wake.notify_all();
    }

    /// No request is waiting or being answered.
    pub(super) fn idle(&self) -> bool {
        let st = self.lock();
        st.held.is_empty() && st.timed.is_empty() && st.running == 0
    }

    pub(super) fn stats(&self) -> Stats {
        let st = self.lock();
        Stats {
            held: st.held.len() as u64,
            delayed: st.timed.len() as u64,
            ..st.stats
        }
    }

    /// Answer scheduled requests as they fall due, for ever.
    pub(super) fn timer_loop(&self) {
        let mut st = self.lock();
        loop {
            let now = Instant::now();
            let due = st.timed.first_key_value().map(|(k, _)| k.0);
            match due {
                Some(due) if due <= now => {
                    let Some(((_, arrival), op)) = st.timed.pop_first() else {
                        continue;
                    };
                    let mode = st.mode;
                    if mode == Mode::Hang {
                        st.held.push((arrival, op));
                        continue;
                    }
                    st.running += 1;
                    if mode == Mode::Error {
                        st.stats.errors += 1;
                    }
                    drop(st);
                    match mode {
                        Mode::Error => op.fail(libc::EIO),
                        _ => self.execute(op),
                    }
                    st = self.lock();
                    st.running -= 1;
                }
                Some(due) => {
                    st = self
                        .wake
                        .wait_timeout(st, due - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                None => st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    /// Forward one request to its backing file and answer it.
    fn execute(&self, op: Op) {
        let failed = |e: std::io::Error| {
            tracing::warn!("backing file: {e}");
            self.lock().stats.errors += 1;
            e.raw_os_error().unwrap_or(libc::EIO)
        };
        match op {
            Op::Read {
                file,
                offset,
                size,
                reply,
            } => {
                let mut buf = vec![0u8; size as usize];
                match read_full(&file, &mut buf, offset) {
                    Ok(n) => reply.data(&buf[..n]),
                    Err(e) => reply.error(failed(e)),
                }
            }
            Op::Write {
                file,
                offset,
                data,
                reply,
            } => match file.write_all_at(&data, offset) {
                // FUSE writes are at most max_write (far below 4 GiB) long.
                Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
                Err(e) => reply.error(failed(e)),
            },
            Op::Fsync { file, reply } => match file.sync_data() {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(failed(e)),
            },
        }
    }
}

/// Read until `buf` is full or end of file; the byte count read.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
