//! The simulated statefile and each host's path to it.
//!
//! The statefile image holds real encoded blocks (`Slot::encode`,
//! `PoolBlock::encode`), so a torn write leaves a block whose checksum really
//! fails and readers go through the real decoders.
//!
//! Each host reaches each statefile through an [`IoPath`]: a FIFO of I/O
//! requests served one at a time (the daemon's I/O thread), with a latency
//! range and a mode. A hung path never completes the request in flight: the
//! host learns of it only through its own deadline, and the request stays in
//! the storage path, so a write may still land long after the writer gave up
//! on it, or died.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::statefile::{PoolBlock, Slot, SlotError};
use uuid::Uuid;

use super::time::{MILLISECOND, Nanos};

pub const BLOCK: usize = 4096;

/// Which block of the statefile a write targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    Pool,
    Slot(usize),
}

/// What a reader gets: the pool block and every slot, each decoded on its own.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub pool: Result<PoolBlock, SlotError>,
    pub slots: Vec<Result<Slot, SlotError>>,
}

/// The bytes of one statefile.
#[derive(Clone, Debug)]
pub struct StatefileImage {
    generation: Uuid,
    pool: Vec<u8>,
    slots: Vec<Vec<u8>>,
}

impl StatefileImage {
    /// A freshly formatted statefile for `hosts` hosts: the given pool block
    /// and never-written (all zero) slots.
    #[must_use]
    pub fn format(generation: Uuid, hosts: usize, pool: &PoolBlock) -> StatefileImage {
        StatefileImage {
            generation,
            pool: pool.to_bytes(generation),
            slots: vec![vec![0u8; BLOCK]; hosts],
        }
    }

    #[must_use]
    pub fn generation(&self) -> Uuid {
        self.generation
    }

    /// Decodes every block as it is on "disk" now.
    #[must_use]
    pub fn read(&self) -> Snapshot {
        Snapshot {
            pool: PoolBlock::decode(&self.pool, self.generation),
            slots: self
                .slots
                .iter()
                .enumerate()
                .map(|(i, b)| Slot::decode(b, self.generation, i as u16))
                .collect(),
        }
    }

    /// Lands the first `len` bytes of `bytes` on `block` (all of them for a
    /// complete write, fewer for a torn one).
    pub fn land(&mut self, block: Block, bytes: &[u8], len: usize) {
        assert_eq!(bytes.len(), BLOCK, "a write is one whole block");
        let len = len.min(BLOCK);
        let target = match block {
            Block::Pool => &mut self.pool,
            Block::Slot(i) => &mut self.slots[i],
        };
        target[..len].copy_from_slice(&bytes[..len]);
    }

    /// Raw bytes of a block (for tests of the model itself).
    #[must_use]
    pub fn raw(&self, block: Block) -> &[u8] {
        match block {
            Block::Pool => &self.pool,
            Block::Slot(i) => &self.slots[i],
        }
    }
}

/// How a host's path to a statefile behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathMode {
    /// Requests complete after the path latency.
    Healthy,
    /// Requests complete after the path latency with an I/O error.
    Failing,
    /// The request in flight never completes until the mode changes.
    Hung,
}

/// What an I/O request does.
#[derive(Clone, Debug)]
pub enum IoKind {
    Read,
    Write {
        block: Block,
        bytes: Vec<u8>,
        sequence: u64,
    },
}

/// One request on a path.
#[derive(Clone, Debug)]
pub struct IoOp {
    pub id: u64,
    /// The host incarnation that issued it: completions for a dead
    /// incarnation are not reported to anyone.
    pub incarnation: u32,
    pub kind: IoKind,
    pub issued: Nanos,
    /// Already reported to the host (as a timeout): the completion is not.
    pub reported: bool,
}

/// How a completed request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoOutcome {
    Done,
    Failed,
    /// Part of the block landed and the device reported an error.
    Torn {
        landed: usize,
    },
}

/// A completion to schedule: `(instant, token)`.
pub type Completion = (Nanos, u64);

/// A host's path to one statefile: mode, latency, and the queue of requests.
#[derive(Clone, Debug)]
pub struct IoPath {
    pub mode: PathMode,
    pub latency_min: Nanos,
    pub latency_max: Nanos,
    /// Probability that a write on a healthy path tears, in ppm.
    pub torn_ppm: u32,
    queue: VecDeque<IoOp>,
    /// Identifies the completion event of the request in flight; bumping it
    /// cancels a scheduled completion (the path hung meanwhile).
    token: u64,
    in_flight: bool,
}

/// The most requests a path queues; beyond it a request fails at once (the
/// daemon's bounded I/O queue).
pub const IO_QUEUE_MAX: usize = 16;

impl Default for IoPath {
    fn default() -> Self {
        IoPath {
            mode: PathMode::Healthy,
            latency_min: MILLISECOND / 2,
            latency_max: 5 * MILLISECOND,
            torn_ppm: 0,
            queue: VecDeque::new(),
            token: 0,
            in_flight: false,
        }
    }
}

impl IoPath {
    /// Queues `op`. Returns `Err(op)` when the queue is full, or the
    /// completion to schedule `(instant, token)` when the path was idle.
    pub fn submit(
        &mut self,
        op: IoOp,
        now: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Completion>, IoOp> {
        if self.queue.len() >= IO_QUEUE_MAX {
            return Err(op);
        }
        self.queue.push_back(op);
        if self.in_flight {
            return Ok(None);
        }
        Ok(self.start_head(now, rng))
    }

    fn start_head(&mut self, now: Nanos, rng: &mut ChaCha8Rng) -> Option<Completion> {
        if self.queue.is_empty() {
            self.in_flight = false;
            return None;
        }
        self.in_flight = true;
        self.token += 1;
        if self.mode == PathMode::Hung {
            return None;
        }
        let lat = if self.latency_max <= self.latency_min {
            self.latency_min
        } else {
            rng.gen_range(self.latency_min..=self.latency_max)
        };
        Some((now + lat, self.token))
    }

    /// Changes the mode. Returns a completion to schedule when a hung
    /// request starts moving again.
    pub fn set_mode(
        &mut self,
        mode: PathMode,
        now: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> Option<Completion> {
        let was = self.mode;
        self.mode = mode;
        match (was == PathMode::Hung, mode == PathMode::Hung) {
            // Cancel the scheduled completion: the request is now stuck.
            (false, true) => {
                self.token += 1;
                None
            }
            (true, false) if self.in_flight => self.start_head(now, rng),
            _ => None,
        }
    }

    /// The request in flight completes (if `token` is current): returns it
    /// with its outcome, and the next completion to schedule.
    pub fn complete(
        &mut self,
        token: u64,
        now: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> Option<(IoOp, IoOutcome, Option<Completion>)> {
        if token != self.token || !self.in_flight {
            return None;
        }
        let op = self.queue.pop_front()?;
        let outcome = match (&op.kind, self.mode) {
            (_, PathMode::Failing) => IoOutcome::Failed,
            (IoKind::Write { .. }, _) if super::net::chance(rng, self.torn_ppm) => {
                // A sector-granular prefix lands: 512 B .. 3.5 KiB.
                IoOutcome::Torn {
                    landed: 512 * rng.gen_range(1..8usize),
                }
            }
            _ => IoOutcome::Done,
        };
        let next = self.start_head(now, rng);
        Some((op, outcome, next))
    }

    /// The request with `id` if it is still queued or in flight.
    pub fn find_mut(&mut self, id: u64) -> Option<&mut IoOp> {
        self.queue.iter_mut().find(|o| o.id == id)
    }

    /// The host died: requests not yet started vanish with it; the one in
    /// flight stays in the storage path and may still land.
    pub fn host_died(&mut self) {
        if self.in_flight {
            self.queue.truncate(1);
        } else {
            self.queue.clear();
        }
    }

    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use sr_heartbeat::statefile::PoolState;

    fn pool() -> PoolBlock {
        PoolBlock {
            state: PoolState::Init,
            master: None,
            master_epoch: 0,
            update_seq: 0,
        }
    }

    #[test]
    fn torn_slot_write_fails_its_checksum() {
        let g = Uuid::from_u128(5);
        let mut sf = StatefileImage::format(g, 3, &pool());
        assert_eq!(sf.read().slots[1], Err(SlotError::NeverWritten));
        let slot = Slot {
            host_index: 1,
            sequence: 1,
            ..Slot::default()
        };
        sf.land(Block::Slot(1), &slot.to_bytes(g), BLOCK);
        assert_eq!(sf.read().slots[1].as_ref().ok(), Some(&slot));
        let newer = Slot {
            sequence: 2,
            status: "x".repeat(200),
            ..slot.clone()
        };
        sf.land(Block::Slot(1), &newer.to_bytes(g), 512);
        assert!(matches!(
            sf.read().slots[1],
            Err(SlotError::ChecksumMismatch { .. })
        ));
    }

    #[test]
    fn hung_path_holds_requests_until_it_recovers() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut p = IoPath::default();
        let op = |id| IoOp {
            id,
            incarnation: 0,
            kind: IoKind::Read,
            issued: 0,
            reported: false,
        };
        let (at, tok) = p.submit(op(1), 0, &mut rng).unwrap().unwrap();
        assert_eq!(p.submit(op(2), 0, &mut rng).unwrap(), None);
        assert!(p.set_mode(PathMode::Hung, 1, &mut rng).is_none());
        // The completion scheduled before the hang is stale now.
        assert!(p.complete(tok, at, &mut rng).is_none());
        let (at2, tok2) = p.set_mode(PathMode::Healthy, 100, &mut rng).unwrap();
        assert!(at2 > 100);
        let (done, outcome, next) = p.complete(tok2, at2, &mut rng).unwrap();
        assert_eq!((done.id, outcome), (1, IoOutcome::Done));
        assert!(next.is_some());
        assert_eq!(p.queued(), 1);
    }
}
