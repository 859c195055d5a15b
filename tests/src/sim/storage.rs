//! The simulated statefile and each host's path to it.
//!
//! The statefile image holds real encoded blocks (`Slot::encode`,
//! `PoolBlock::encode`), so a torn write leaves a block whose checksum really
//! fails and readers go through the real decoders.
//!
//! Each host reaches each statefile through an [`IoPath`]: requests served
//! in parallel (the daemon's worker threads), each with a latency from the
//! path's range, up to the daemon's capacity (`xha_driver::io_capacity`;
//! beyond it a request is refused at once). A hung path never completes the
//! requests in flight: the host learns of it only through its own deadline,
//! and the requests stay in the path, holding capacity as stuck workers do,
//! so a write may still land long after the writer gave up on it, or died,
//! and a read abandoned at its deadline completes late when the path
//! recovers.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::statefile::{PoolBlock, Slot, StatefileRead};
use uuid::Uuid;

use super::time::{MILLISECOND, Nanos};

pub const BLOCK: usize = 4096;

/// Which block of the statefile a write targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    Pool,
    Slot(usize),
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

    /// Decodes every block as it is on "disk" now, each on its own.
    #[must_use]
    pub fn read(&self) -> StatefileRead {
        StatefileRead {
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
    /// Requests in flight never complete until the mode changes.
    Hung,
}

/// What an I/O request does.
#[derive(Clone, Debug)]
pub enum IoKind {
    Read,
    Write { block: Block, bytes: Vec<u8> },
}

/// One request on a path.
#[derive(Clone, Debug)]
pub struct IoOp {
    /// Unique in the run.
    pub id: u64,
    /// The core's request id, echoed in the completion.
    pub request: u64,
    /// The host incarnation that issued it: completions for a dead
    /// incarnation are not reported to anyone.
    pub incarnation: u32,
    pub kind: IoKind,
    pub issued: Nanos,
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

/// A completion event to schedule: `(instant, op id, path epoch)`.
pub type Completion = (Nanos, u64, u64);

/// A host's path to one statefile: mode, latency, and the requests in
/// flight. Requests are served in parallel (O_DIRECT with several I/Os
/// outstanding), each with its own latency, so they may complete out of
/// order.
#[derive(Clone, Debug)]
pub struct IoPath {
    pub mode: PathMode,
    pub latency_min: Nanos,
    pub latency_max: Nanos,
    /// Probability that a write on a healthy path tears, in ppm.
    pub torn_ppm: u32,
    in_flight: Vec<IoOp>,
    /// The most requests in flight at once; beyond it a request is refused.
    capacity: usize,
    /// Completion events carry the epoch they were scheduled in; a hang
    /// bumps it, which cancels them.
    epoch: u64,
}

impl IoPath {
    /// A healthy LAN path holding at most `capacity` requests in flight.
    #[must_use]
    pub fn new(capacity: usize) -> IoPath {
        IoPath {
            mode: PathMode::Healthy,
            latency_min: MILLISECOND / 2,
            latency_max: 5 * MILLISECOND,
            torn_ppm: 0,
            in_flight: Vec::new(),
            capacity: capacity.max(1),
            epoch: 0,
        }
    }

    fn latency(&self, rng: &mut ChaCha8Rng) -> Nanos {
        if self.latency_max <= self.latency_min {
            self.latency_min
        } else {
            rng.gen_range(self.latency_min..=self.latency_max)
        }
    }

    /// Starts `op`. Returns `Err(op)` when the path is at capacity (the
    /// daemon refuses it at once), else the completion to schedule (none
    /// while the path is hung).
    pub fn submit(
        &mut self,
        op: IoOp,
        now: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Completion>, IoOp> {
        if self.in_flight.len() >= self.capacity {
            return Err(op);
        }
        let id = op.id;
        self.in_flight.push(op);
        if self.mode == PathMode::Hung {
            return Ok(None);
        }
        Ok(Some((now + self.latency(rng), id, self.epoch)))
    }

    /// Changes the mode. When a hung path recovers, every stuck request
    /// moves again: returns their completions.
    pub fn set_mode(
        &mut self,
        mode: PathMode,
        now: Nanos,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Completion> {
        let was_hung = self.mode == PathMode::Hung;
        self.mode = mode;
        match (was_hung, mode == PathMode::Hung) {
            (false, true) => {
                self.epoch += 1;
                Vec::new()
            }
            (true, false) => {
                self.epoch += 1;
                let ids: Vec<u64> = self.in_flight.iter().map(|o| o.id).collect();
                ids.into_iter()
                    .map(|id| (now + self.latency(rng), id, self.epoch))
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Request `id` completes (if `epoch` is current): returns it with its
    /// outcome, decided by the path's mode now.
    pub fn complete(
        &mut self,
        id: u64,
        epoch: u64,
        rng: &mut ChaCha8Rng,
    ) -> Option<(IoOp, IoOutcome)> {
        if epoch != self.epoch {
            return None;
        }
        let pos = self.in_flight.iter().position(|o| o.id == id)?;
        let op = self.in_flight.swap_remove(pos);
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
        Some((op, outcome))
    }

    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use sr_heartbeat::statefile::{PoolState, SlotError};

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
        let mut p = IoPath::new(2);
        let op = |id| IoOp {
            id,
            request: id,
            incarnation: 0,
            kind: IoKind::Read,
            issued: 0,
        };
        let (at, id, ep) = p.submit(op(1), 0, &mut rng).unwrap().unwrap();
        assert_eq!(id, 1);
        assert!(p.set_mode(PathMode::Hung, 1, &mut rng).is_empty());
        assert_eq!(p.submit(op(2), 2, &mut rng).unwrap(), None);
        // At capacity: refused at once, never started.
        assert_eq!(p.submit(op(3), 3, &mut rng).unwrap_err().id, 3);
        // The completion scheduled before the hang is stale now.
        assert!(p.complete(1, ep, &mut rng).is_none());
        let resumed = p.set_mode(PathMode::Healthy, 100, &mut rng);
        assert_eq!(resumed.len(), 2);
        for (t, id, ep) in resumed {
            assert!(t > 100 && at > 0);
            let (done, outcome) = p.complete(id, ep, &mut rng).unwrap();
            assert_eq!((done.id, outcome), (id, IoOutcome::Done));
        }
        assert_eq!(p.in_flight(), 0);
    }
}
