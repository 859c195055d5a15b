//! The network heartbeat packet: a fixed, versioned, authenticated format.
//!
//! A packet carries the sender's current state as the first
//! [`SLOT_PREFIX_LEN`] bytes of its statefile slot block, encoded by
//! `Slot::encode` exactly as on disk (see `docs/on-disk-format.md`), with an
//! empty status text. So the network and the statefile carry the same views
//! by construction, and a field added to the slot travels in heartbeats
//! without a change here. Layout (integers little-endian; `docs/daemon.md`
//! has the same table):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0   | 8   | magic `"XHANET\0\0"` |
//! | 8   | 2   | format version (2) |
//! | 10  | 2   | sender host index |
//! | 12  | 4   | reserved, zero |
//! | 16  | 16  | pool generation UUID |
//! | 32  | 16  | sender host UUID |
//! | 48  | 8   | sender incarnation |
//! | 56  | 8   | packet sequence (within the incarnation) |
//! | 64  | 256 | bytes 0..256 of the sender's slot block (status length 0) |
//! | 320 | 32  | HMAC-SHA256 of bytes 0..320 under the pool secret |
//!
//! Checks, in order, each with its own [`DropReason`]: length, magic,
//! version, pool generation, MAC (constant-time), sender index and UUID
//! against the configuration, reserved bytes, then the embedded slot (decoded
//! by `Slot::decode` after padding to a block and stamping its checksum: its
//! magic, version, generation, index and field values must be valid, its
//! UUID must be the sender's, its status length zero); then the per-peer
//! replay floors of [`super::replay`] ([`ReplayFilter`] is their basic
//! rule alone). Fields are only interpreted once the MAC is verified,
//! so a forger learns nothing beyond "dropped".
//!
//! # Replay rejection across restarts
//!
//! Every packet carries `(incarnation, sequence)`. The sequence grows by one
//! per packet; the incarnation is chosen once per daemon start by
//! [`super::incarnation::next`]: `max(previous + 1, wall-clock microseconds)`,
//! persisted before the first packet. A receiver accepts a packet only if its
//! pair is strictly greater (lexicographically) than the last pair it accepted
//! from that peer. So a restarted peer is accepted at once (its incarnation
//! is greater), while a recorded packet of an older incarnation, or an older
//! packet of the current one, is rejected: incarnations never go back even if
//! the wall clock does, because the persisted value is the floor.
//!
//! One forged packet with a higher pair would raise the floor for good; an
//! incarnation too far ahead of this host's wall clock is therefore refused,
//! and the statefile (never the network) may lower a raised floor: see
//! [`super::replay`].
//!
//! Residual window, by design: a receiver that itself restarted has no floor
//! yet, so it accepts the first authentic packet of each peer it sees, which
//! could be a recording. It then accepts only newer ones, the real peer's
//! next packet (a newer incarnation or sequence) supersedes the recording
//! within one heartbeat interval, and the statefile, which no network
//! attacker can replay into, stays the authority for a peer's liveness.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sr_heartbeat::le::{get_u16, get_u64, get_uuid, put};
use sr_heartbeat::statefile::Slot;
use sr_heartbeat::statefile::slot::{SLOT_SIZE, block_crc, off as slot_off};
use uuid::Uuid;

use super::config::PoolSecret;
pub use super::replay::Receiver;
/// The counters are part of the control protocol (the liveset report).
pub use xha_control::{DropCounters, DropKind};

/// How much of the slot block a packet carries: every fixed field, up to
/// (not including) the status text.
pub const SLOT_PREFIX_LEN: usize = 256;
/// Total size of a packet.
pub const PACKET_LEN: usize = 352;
/// `"XHANET\0\0"` as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"XHANET\0\0");
/// Bumped on any incompatible change of the layout (1 carried the fields
/// one by one; 2 embeds the slot prefix).
pub const VERSION: u16 = 2;
/// Size of the receive buffer the daemon should use: larger than a packet,
/// so an oversized datagram is recognised as such instead of being cut to
/// a plausible length.
pub const RECV_BUFFER_LEN: usize = 2048;

/// Byte offsets of every field.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const SENDER_INDEX: usize = 10;
    pub const RESERVED: usize = 12;
    pub const GENERATION: usize = 16;
    pub const SENDER_UUID: usize = 32;
    pub const INCARNATION: usize = 48;
    pub const PACKET_SEQUENCE: usize = 56;
    pub const SLOT: usize = 64;
    pub const MAC: usize = 320;
}

const MAC_LEN: usize = 32;
const _: () = assert!(off::MAC + MAC_LEN == PACKET_LEN);
const _: () = assert!(off::SLOT + SLOT_PREFIX_LEN == off::MAC);
const _: () = assert!(RECV_BUFFER_LEN > PACKET_LEN);
// The prefix holds every fixed slot field and stops before the status text.
const _: () = assert!(slot_off::STATUS_TEXT == SLOT_PREFIX_LEN);
const _: () = assert!(SLOT_PREFIX_LEN < SLOT_SIZE);

type HmacSha256 = Hmac<Sha256>;

/// Why a received datagram was dropped. Every variant is counted separately.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    /// Shorter than a packet.
    #[error("truncated: {len} bytes, a packet is {PACKET_LEN}")]
    Truncated { len: usize },
    /// Longer than a packet.
    #[error("oversized: {len} bytes, a packet is {PACKET_LEN}")]
    Oversized { len: usize },
    /// Not a heartbeat packet at all.
    #[error("bad magic {found:#018x}")]
    BadMagic { found: u64 },
    /// A heartbeat of another format version.
    #[error("format version {found}, this build reads version {VERSION}")]
    WrongVersion { found: u16 },
    /// A heartbeat of another pool (or another HA enablement of this pool).
    #[error("pool generation {found}, expected {expected}")]
    ForeignPool { found: Uuid, expected: Uuid },
    /// The MAC does not verify under the pool secret: forged or corrupted.
    #[error("authentication failed (forged or corrupted packet)")]
    Forged,
    /// The sender index is not a configured host.
    #[error("sender index {index} is not below the host count {hosts}")]
    UnknownSender { index: u16, hosts: usize },
    /// The sender UUID is not the UUID configured at the sender index.
    #[error("sender index {index} carries UUID {found}, configured {expected}")]
    SenderMismatch {
        index: u16,
        found: Uuid,
        expected: Uuid,
    },
    /// The packet claims to come from this host.
    #[error("packet claims to come from this host (index {index})")]
    FromSelf { index: u16 },
    /// An authentic packet with a field value this build does not accept.
    #[error("field {field}: {reason}")]
    Malformed { field: &'static str, reason: String },
    /// An incarnation further ahead of this host's wall clock than any
    /// honest one can be (`daemon::replay`): refused, the floor unchanged.
    #[error(
        "incarnation {incarnation} is more than {} s ahead of this host's clock ({wall_us} us)",
        super::replay::INCARNATION_AHEAD_MAX / 1_000_000
    )]
    FutureIncarnation { incarnation: u64, wall_us: u64 },
    /// Not newer than the last packet accepted from that sender.
    #[error(
        "replayed: incarnation {incarnation} sequence {sequence} is not after {last_incarnation}/{last_sequence}"
    )]
    Replayed {
        incarnation: u64,
        sequence: u64,
        last_incarnation: u64,
        last_sequence: u64,
    },
}

impl DropReason {
    /// The counter this reason increments.
    #[must_use]
    pub fn kind(&self) -> DropKind {
        match self {
            DropReason::Truncated { .. } => DropKind::Truncated,
            DropReason::Oversized { .. } => DropKind::Oversized,
            DropReason::BadMagic { .. } => DropKind::BadMagic,
            DropReason::WrongVersion { .. } => DropKind::WrongVersion,
            DropReason::ForeignPool { .. } => DropKind::ForeignPool,
            DropReason::Forged => DropKind::Forged,
            DropReason::UnknownSender { .. }
            | DropReason::SenderMismatch { .. }
            | DropReason::FromSelf { .. } => DropKind::WrongSender,
            DropReason::Malformed { .. } => DropKind::Malformed,
            DropReason::Replayed { .. } => DropKind::Replayed,
            DropReason::FutureIncarnation { .. } => DropKind::FutureIncarnation,
        }
    }
}

/// A decoded, authenticated heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// Sender host index (checked against the configuration).
    pub from: usize,
    pub incarnation: u64,
    pub packet_sequence: u64,
    /// The sender's state; `status` is empty (the text travels only in the
    /// statefile).
    pub slot: Slot,
}

/// Encoder and decoder for one pool: knows the generation, the host list
/// and the pool secret.
#[derive(Clone)]
pub struct Codec {
    generation: Uuid,
    hosts: Vec<Uuid>,
    local: usize,
    mac: HmacSha256,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("generation", &self.generation)
            .field("hosts", &self.hosts.len())
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Codec {
    /// A codec for host `local` of a pool whose hosts, sorted, are `hosts`.
    /// Panics if `local` is not a host index (a configuration bug: the
    /// validated configuration guarantees it).
    #[must_use]
    pub fn new(generation: Uuid, hosts: Vec<Uuid>, local: usize, secret: &PoolSecret) -> Codec {
        assert!(local < hosts.len(), "local index outside the host list");
        assert!(hosts.len() <= usize::from(u16::MAX), "host list too long");
        // HMAC accepts keys of any length (longer ones are hashed first):
        // `new_from_slice` cannot fail for it.
        let mac = match <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()) {
            Ok(m) => m,
            Err(e) => unreachable!("HMAC takes keys of any length: {e}"),
        };
        Codec {
            generation,
            hosts,
            local,
            mac,
        }
    }

    /// Encode `slot` (this host's state; its status text is not sent) as
    /// packet `packet_sequence` of `incarnation`. Panics if the slot is not
    /// this host's (a bug).
    #[must_use]
    pub fn encode(&self, incarnation: u64, packet_sequence: u64, slot: &Slot) -> [u8; PACKET_LEN] {
        assert_eq!(
            usize::from(slot.host_index),
            self.local,
            "slot of another host"
        );
        assert_eq!(slot.host_uuid, self.hosts[self.local], "slot UUID mismatch");
        let mut block = vec![0u8; SLOT_SIZE];
        if slot.status.is_empty() {
            slot.encode(self.generation, &mut block);
        } else {
            let mut bare = slot.clone();
            bare.status.clear();
            bare.encode(self.generation, &mut block);
        }
        let mut b = [0u8; PACKET_LEN];
        put(&mut b, off::MAGIC, &MAGIC.to_le_bytes());
        put(&mut b, off::VERSION, &VERSION.to_le_bytes());
        put(&mut b, off::SENDER_INDEX, &slot.host_index.to_le_bytes());
        put(&mut b, off::GENERATION, self.generation.as_bytes());
        put(&mut b, off::SENDER_UUID, slot.host_uuid.as_bytes());
        put(&mut b, off::INCARNATION, &incarnation.to_le_bytes());
        put(&mut b, off::PACKET_SEQUENCE, &packet_sequence.to_le_bytes());
        put(&mut b, off::SLOT, &block[..SLOT_PREFIX_LEN]);
        let tag = self.tag(&b[..off::MAC]);
        put(&mut b, off::MAC, &tag);
        b
    }

    /// The number of hosts of the pool.
    #[must_use]
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(body);
        m.finalize().into_bytes().into()
    }

    /// Decode and authenticate one datagram. Never panics, whatever `b`.
    /// Does not check replay: see [`Receiver`].
    pub fn decode(&self, b: &[u8]) -> Result<Heartbeat, DropReason> {
        if b.len() < PACKET_LEN {
            return Err(DropReason::Truncated { len: b.len() });
        }
        if b.len() > PACKET_LEN {
            return Err(DropReason::Oversized { len: b.len() });
        }
        let magic = get_u64(b, off::MAGIC);
        if magic != MAGIC {
            return Err(DropReason::BadMagic { found: magic });
        }
        let version = get_u16(b, off::VERSION);
        if version != VERSION {
            return Err(DropReason::WrongVersion { found: version });
        }
        let found = get_uuid(b, off::GENERATION);
        if found != self.generation {
            return Err(DropReason::ForeignPool {
                found,
                expected: self.generation,
            });
        }
        let mut m = self.mac.clone();
        m.update(&b[..off::MAC]);
        // Constant-time comparison inside `verify_slice`.
        if m.verify_slice(&b[off::MAC..]).is_err() {
            return Err(DropReason::Forged);
        }
        let index = get_u16(b, off::SENDER_INDEX);
        let from = usize::from(index);
        if from >= self.hosts.len() {
            return Err(DropReason::UnknownSender {
                index,
                hosts: self.hosts.len(),
            });
        }
        let uuid = get_uuid(b, off::SENDER_UUID);
        if uuid != self.hosts[from] {
            return Err(DropReason::SenderMismatch {
                index,
                found: uuid,
                expected: self.hosts[from],
            });
        }
        if from == self.local {
            return Err(DropReason::FromSelf { index });
        }
        if b[off::RESERVED..off::GENERATION].iter().any(|&x| x != 0) {
            return Err(DropReason::Malformed {
                field: "reserved",
                reason: "reserved bytes are not zero".into(),
            });
        }
        let slot = self.decode_slot(&b[off::SLOT..off::MAC], uuid, index)?;
        Ok(Heartbeat {
            from,
            incarnation: get_u64(b, off::INCARNATION),
            packet_sequence: get_u64(b, off::PACKET_SEQUENCE),
            slot,
        })
    }

    /// Rebuild the slot block from its prefix (zero padding, fresh checksum:
    /// the MAC already covers the bytes) and decode it with the statefile's
    /// own decoder.
    fn decode_slot(&self, prefix: &[u8], uuid: Uuid, index: u16) -> Result<Slot, DropReason> {
        let status_len = get_u16(prefix, slot_off::STATUS_LEN);
        if status_len != 0 {
            return Err(DropReason::Malformed {
                field: "slot.status_len",
                reason: format!("{status_len}, a heartbeat carries no status text"),
            });
        }
        let mut block = vec![0u8; SLOT_SIZE];
        block[..SLOT_PREFIX_LEN].copy_from_slice(prefix);
        let crc = block_crc(&block);
        put(&mut block, slot_off::CRC, &crc.to_le_bytes());
        let slot =
            Slot::decode(&block, self.generation, index).map_err(|e| DropReason::Malformed {
                field: "slot",
                reason: e.to_string(),
            })?;
        if slot.host_uuid != uuid {
            return Err(DropReason::Malformed {
                field: "slot.host_uuid",
                reason: format!("{} in the slot, {uuid} in the header", slot.host_uuid),
            });
        }
        Ok(slot)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use sr_heartbeat::statefile::{HostSet, Phase};

    fn hosts() -> Vec<Uuid> {
        (1..=3).map(|i| Uuid::from_u128(i * 0x1111)).collect()
    }
    fn secret(b: u8) -> PoolSecret {
        PoolSecret::new(vec![b; 32]).unwrap()
    }
    fn gen_uuid() -> Uuid {
        Uuid::from_u128(0xabcdef)
    }
    /// A subset of the fields plus defaults, so that fields the slot gains
    /// keep their defaults without touching this test.
    fn slot_of(index: u16) -> Slot {
        Slot {
            host_uuid: hosts()[usize::from(index)],
            host_index: index,
            sequence: 42,
            heard: HostSet(0b111),
            seen: HostSet(0b101),
            liveset: HostSet(0b111),
            proposed: HostSet(0b011),
            lock_request: HostSet(0b001),
            lock_grant: HostSet(0b001),
            master_epoch: 9,
            fault_round: 2,
            phase: Phase::Agreeing,
            starting: true,
            fence_request: true,
            statefile_access: true,
            net_round: 4,
            diag_time_ms: 1_700_000_000_000,
            ..Slot::default()
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
        let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
        let p = tx.encode(7, 8, &slot_of(1));
        assert_eq!(&p[..8], b"XHANET\0\0");
        assert_eq!(get_u16(&p, off::SENDER_INDEX), 1);
        let hb = rx.decode(&p).unwrap();
        assert_eq!(hb.from, 1);
        assert_eq!((hb.incarnation, hb.packet_sequence), (7, 8));
        assert_eq!(hb.slot, slot_of(1));
        // The status text is not sent.
        let mut with_text = slot_of(1);
        with_text.status = "busy".into();
        assert_eq!(
            rx.decode(&tx.encode(7, 9, &with_text)).unwrap().slot,
            slot_of(1)
        );
    }

    #[test]
    fn each_check_has_its_reason() {
        let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
        let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
        let p = tx.encode(7, 8, &slot_of(1));
        assert_eq!(
            rx.decode(&p[..100]),
            Err(DropReason::Truncated { len: 100 })
        );
        let mut big = p.to_vec();
        big.push(0);
        assert_eq!(
            rx.decode(&big),
            Err(DropReason::Oversized {
                len: PACKET_LEN + 1
            })
        );
        let mut q = p;
        q[0] ^= 1;
        assert!(matches!(rx.decode(&q), Err(DropReason::BadMagic { .. })));
        let mut q = p;
        q[off::VERSION] = 1;
        assert_eq!(rx.decode(&q), Err(DropReason::WrongVersion { found: 1 }));
        let foreign = Codec::new(Uuid::from_u128(5), hosts(), 1, &secret(1));
        assert!(matches!(
            rx.decode(&foreign.encode(1, 1, &slot_of(1))),
            Err(DropReason::ForeignPool { .. })
        ));
        let other_key = Codec::new(gen_uuid(), hosts(), 1, &secret(2));
        assert_eq!(
            rx.decode(&other_key.encode(1, 1, &slot_of(1))),
            Err(DropReason::Forged)
        );
        // From host 0 to itself.
        let own = rx.encode(1, 1, &slot_of(0));
        assert_eq!(rx.decode(&own), Err(DropReason::FromSelf { index: 0 }));
        // A host list where index 1 has another UUID.
        let mut wrong_hosts = hosts();
        wrong_hosts[1] = Uuid::from_u128(0x9999);
        let liar = Codec::new(gen_uuid(), wrong_hosts.clone(), 1, &secret(1));
        let mut s = slot_of(1);
        s.host_uuid = wrong_hosts[1];
        assert!(matches!(
            rx.decode(&liar.encode(1, 1, &s)),
            Err(DropReason::SenderMismatch { index: 1, .. })
        ));
        // Index 3 in a 3-host pool (sender believes in 4 hosts).
        let mut four = hosts();
        four.push(Uuid::from_u128(0xffff));
        let extra = Codec::new(gen_uuid(), four.clone(), 3, &secret(1));
        let mut s = slot_of(0);
        s.host_index = 3;
        s.host_uuid = four[3];
        assert_eq!(
            rx.decode(&extra.encode(1, 1, &s)),
            Err(DropReason::UnknownSender { index: 3, hosts: 3 })
        );
    }

    fn resign(c: &Codec, p: &mut [u8; PACKET_LEN]) {
        let t = c.tag(&p[..off::MAC]);
        p[off::MAC..].copy_from_slice(&t);
    }

    #[test]
    fn authentic_but_malformed_fields() {
        let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
        let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
        let corrupt = |at: usize, v: u8| {
            let mut p = tx.encode(1, 1, &slot_of(1));
            p[at] = v;
            resign(&tx, &mut p);
            rx.decode(&p)
        };
        assert!(matches!(
            corrupt(off::SLOT + slot_off::PHASE, 9),
            Err(DropReason::Malformed { field: "slot", .. })
        ));
        assert!(matches!(
            corrupt(off::SLOT + slot_off::FLAGS, 0x80),
            Err(DropReason::Malformed { field: "slot", .. })
        ));
        assert!(matches!(
            corrupt(off::SLOT + slot_off::HOST_INDEX, 2),
            Err(DropReason::Malformed { field: "slot", .. })
        ));
        assert!(matches!(
            corrupt(off::SLOT + slot_off::HOST_UUID, 0xee),
            Err(DropReason::Malformed {
                field: "slot.host_uuid",
                ..
            })
        ));
        assert!(matches!(
            corrupt(off::SLOT + slot_off::STATUS_LEN, 1),
            Err(DropReason::Malformed {
                field: "slot.status_len",
                ..
            })
        ));
        assert!(matches!(
            corrupt(off::RESERVED + 3, 1),
            Err(DropReason::Malformed {
                field: "reserved",
                ..
            })
        ));
    }

    #[test]
    fn replay_filter_orders_incarnations_then_sequences() {
        let mut f = ReplayFilter::default();
        assert!(f.check(100, 1).is_ok());
        assert!(f.check(100, 2).is_ok());
        assert!(matches!(f.check(100, 2), Err(DropReason::Replayed { .. })));
        assert!(matches!(f.check(100, 1), Err(DropReason::Replayed { .. })));
        // A restarted peer: new incarnation, sequence starts again.
        assert!(f.check(200, 1).is_ok());
        // A recording of the old incarnation, even with a high sequence.
        assert!(matches!(
            f.check(100, 999),
            Err(DropReason::Replayed { .. })
        ));
        assert_eq!(f.last(), Some((200, 1)));
    }

    #[test]
    fn receiver_counts_every_reason() {
        let mut tx = Sender::new(Codec::new(gen_uuid(), hosts(), 1, &secret(1)), 50);
        let mut rx = Receiver::new(Codec::new(gen_uuid(), hosts(), 0, &secret(1)));
        let p1 = tx.packet(&slot_of(1));
        let p2 = tx.packet(&slot_of(1));
        assert!(rx.accept(&p1).is_ok());
        assert!(rx.accept(&p2).is_ok());
        assert!(matches!(rx.accept(&p1), Err(DropReason::Replayed { .. })));
        assert!(rx.accept(&[1, 2, 3]).is_err());
        let mut forged = p2;
        forged[off::SLOT + slot_off::LIVESET] ^= 4;
        assert_eq!(rx.accept(&forged), Err(DropReason::Forged));
        let c = rx.counters();
        assert_eq!((c.replayed, c.truncated, c.forged, c.total()), (1, 1, 1, 3));
        // A restarted sender is accepted at once.
        let mut tx2 = Sender::new(Codec::new(gen_uuid(), hosts(), 1, &secret(1)), 51);
        assert!(rx.accept(&tx2.packet(&slot_of(1))).is_ok());
        assert!(matches!(rx.accept(&p2), Err(DropReason::Replayed { .. })));
    }
}
