//! Encoding and checking heartbeat packets for one pool (generation, host
//! list, pool secret): every check in the order of the module comment.

use hmac::Mac;
use sr_heartbeat::le::{get_u16, get_u64, get_uuid, put};
use sr_heartbeat::statefile::Slot;
use sr_heartbeat::statefile::slot::{SLOT_SIZE, block_crc, off as slot_off};
use uuid::Uuid;

use super::{
    DropReason, Heartbeat, HmacSha256, MAC_LEN, MAGIC, PACKET_LEN, SLOT_PREFIX_LEN, VERSION, off,
};
use crate::daemon::config::PoolSecret;

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

    pub(super) fn tag(&self, body: &[u8]) -> [u8; MAC_LEN] {
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
