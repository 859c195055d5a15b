//! Packet order: the sender numbers its packets within its incarnation, and
//! a receiver accepts a peer's `(incarnation, sequence)` pairs only in
//! increasing order (the basic rule; `daemon::replay` adds the floors).

use sr_heartbeat::statefile::Slot;

use super::{Codec, DropReason, PACKET_LEN};

/// Per-peer replay rejection: accepts `(incarnation, sequence)` pairs only
/// in strictly increasing lexicographic order (see the module comment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayFilter {
    last: Option<(u64, u64)>,
}

impl ReplayFilter {
    /// Accept and remember the pair, or say why not. A rejected packet
    /// changes nothing.
    pub fn check(&mut self, incarnation: u64, sequence: u64) -> Result<(), DropReason> {
        if let Some((li, ls)) = self.last
            && (incarnation, sequence) <= (li, ls)
        {
            return Err(DropReason::Replayed {
                incarnation,
                sequence,
                last_incarnation: li,
                last_sequence: ls,
            });
        }
        self.last = Some((incarnation, sequence));
        Ok(())
    }

    /// The last accepted pair.
    #[must_use]
    pub fn last(&self) -> Option<(u64, u64)> {
        self.last
    }
}

/// The send side of one host: numbers packets within its incarnation.
#[derive(Clone, Debug)]
pub struct Sender {
    codec: Codec,
    incarnation: u64,
    next_sequence: u64,
}

impl Sender {
    /// `incarnation` must come from [`super::incarnation::next`] so that it
    /// exceeds every earlier incarnation of this host.
    #[must_use]
    pub fn new(codec: Codec, incarnation: u64) -> Sender {
        Sender {
            codec,
            incarnation,
            next_sequence: 1,
        }
    }

    /// The next packet carrying `slot`.
    #[must_use]
    pub fn packet(&mut self, slot: &Slot) -> [u8; PACKET_LEN] {
        let seq = self.next_sequence;
        // 2^64 packets at one per millisecond is 584 million years.
        self.next_sequence = seq.saturating_add(1);
        self.codec.encode(self.incarnation, seq, slot)
    }

    #[must_use]
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
}
