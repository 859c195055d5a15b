//! The replay rule: which delta records after the committed snapshot belong to
//! the newest consistent state. Pure: it reads bytes through [`DeltaSource`]
//! (a slice in tests and fuzzing, the device in [`super::volume`]) and decides.
//!
//! Starting at offset 0 of the active half's delta area, a record is accepted
//! when all of these hold; replay stops at the first one that fails, and
//! nothing at or after it is applied:
//!
//! 1. it decodes (magic, length within the area, CRC32C, version);
//! 2. it carries this volume's uuid and the committed snapshot's id;
//! 3. its `prev_crc` equals the CRC of the record before it (for the first
//!    record: the CRC of the snapshot header);
//! 4. its sequence is exactly one more than the previous one (the first is
//!    `snapshot_base_seq + 1`);
//! 5. its epoch is not older than the previous record's (or the snapshot's)
//!    and, at or after the superblock's `epoch_start_seq`, not older than the
//!    superblock's epoch.
//!
//! A record newer than the superblock's epoch is accepted: it happens when a
//! corrupt newest superblock was fallen back from, and dropping the newer
//! master's records then would lose committed changes.

use std::convert::Infallible;

use uuid::Uuid;

use super::error::DecodeError;
use super::layout::BLOCK;
use super::record::DeltaRecord;

/// Reads bytes of one delta area. Offsets are relative to the area's start.
pub trait DeltaSource {
    type Error;
    /// Total bytes of the delta area.
    fn area_bytes(&self) -> u64;
    /// At least `len` bytes starting at `offset`; `offset + len` never
    /// exceeds [`DeltaSource::area_bytes`] and both are multiples of 4096.
    fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], Self::Error>;
}

impl DeltaSource for &[u8] {
    type Error = Infallible;
    fn area_bytes(&self) -> u64 {
        self.len() as u64
    }
    fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], Infallible> {
        let start = offset as usize;
        Ok(&self[start..start + len])
    }
}

/// What replay needs to know about the committed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayContext {
    pub volume_uuid: Uuid,
    pub snapshot_id: u64,
    /// CRC of the committed snapshot's header block: the chain's start.
    pub snapshot_header_crc: u32,
    pub snapshot_base_seq: u64,
    pub snapshot_epoch: u64,
    /// The superblock's (newest) epoch.
    pub volume_epoch: u64,
    pub epoch_start_seq: u64,
}

/// One accepted change, in sequence order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub sequence: u64,
    pub epoch: u64,
    pub payload: Vec<u8>,
}

/// Why replay stopped. The first three are the normal end of a log; the
/// others mean a torn, corrupt or stale record was found and ignored (with
/// everything after it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayStop {
    /// The delta area is full to its last block.
    AreaEnd,
    /// The next block was never written (all zero or not a record).
    Unwritten,
    /// The next record belongs to an earlier use of this half or an earlier
    /// format of the volume (other snapshot id or volume uuid).
    OtherLog { volume_uuid: Uuid, snapshot_id: u64 },
    /// The next record is torn or corrupt (checksum, length, version, field).
    Torn(DecodeError),
    /// The next record does not chain to the previous one: it was left
    /// beyond a point where the log was rewritten.
    BrokenChain { sequence: u64 },
    /// The next record's sequence is not the expected one.
    SequenceGap { expected: u64, found: u64 },
    /// The next record comes from a master older than one already seen or
    /// recorded in the superblock.
    StaleEpoch {
        sequence: u64,
        epoch: u64,
        newer: u64,
    },
}

impl ReplayStop {
    /// True for a normal end of the log (nothing was ignored).
    #[must_use]
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            ReplayStop::AreaEnd | ReplayStop::Unwritten | ReplayStop::OtherLog { .. }
        )
    }
}

/// The result of replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    pub deltas: Vec<Delta>,
    pub stop: ReplayStop,
    /// Offset in the area where the next record goes (end of the last accepted one).
    pub end_offset: u64,
    /// Sequence of the last accepted record, or the snapshot's base.
    pub last_seq: u64,
    /// CRC the next record must chain to.
    pub last_crc: u32,
    /// Epoch of the last accepted record, or the snapshot's.
    pub last_epoch: u64,
}

/// Checks the log rules 2 to 5 for a decoded record.
fn check(ctx: &ReplayContext, r: &Replay, rec: &DeltaRecord) -> Result<(), ReplayStop> {
    if rec.volume_uuid != ctx.volume_uuid || rec.snapshot_id != ctx.snapshot_id {
        return Err(ReplayStop::OtherLog {
            volume_uuid: rec.volume_uuid,
            snapshot_id: rec.snapshot_id,
        });
    }
    if rec.prev_crc != r.last_crc {
        return Err(ReplayStop::BrokenChain {
            sequence: rec.sequence,
        });
    }
    let expected = r.last_seq.wrapping_add(1);
    if rec.sequence != expected {
        return Err(ReplayStop::SequenceGap {
            expected,
            found: rec.sequence,
        });
    }
    let newer = if rec.sequence >= ctx.epoch_start_seq {
        ctx.volume_epoch
    } else {
        r.last_epoch
    };
    if rec.epoch < newer || rec.epoch < r.last_epoch {
        return Err(ReplayStop::StaleEpoch {
            sequence: rec.sequence,
            epoch: rec.epoch,
            newer: newer.max(r.last_epoch),
        });
    }
    Ok(())
}

/// Replays the delta area read through `src`.
pub fn replay<S: DeltaSource>(ctx: &ReplayContext, src: &mut S) -> Result<Replay, S::Error> {
    let area = src.area_bytes();
    let mut r = Replay {
        deltas: Vec::new(),
        stop: ReplayStop::AreaEnd,
        end_offset: 0,
        last_seq: ctx.snapshot_base_seq,
        last_crc: ctx.snapshot_header_crc,
        last_epoch: ctx.snapshot_epoch,
    };
    // Every iteration accepts a record of at least one block or stops, so the
    // loop runs at most area / BLOCK times.
    loop {
        let left = area - r.end_offset;
        if left < BLOCK as u64 {
            r.stop = ReplayStop::AreaEnd;
            return Ok(r);
        }
        let head = src.bytes(r.end_offset, BLOCK)?;
        let disk = match DeltaRecord::peek_disk_bytes(head, left) {
            Ok(d) => d,
            Err(DecodeError::Blank { .. } | DecodeError::BadMagic { .. }) => {
                r.stop = ReplayStop::Unwritten;
                return Ok(r);
            }
            Err(e) => {
                r.stop = ReplayStop::Torn(e);
                return Ok(r);
            }
        };
        // disk <= left <= area, which the source could address: fits usize.
        let buf = src.bytes(r.end_offset, disk as usize)?;
        let (rec, crc, used) = match DeltaRecord::decode(buf) {
            Ok(x) => x,
            Err(e) => {
                r.stop = ReplayStop::Torn(e);
                return Ok(r);
            }
        };
        debug_assert_eq!(used, disk);
        if let Err(stop) = check(ctx, &r, &rec) {
            r.stop = stop;
            return Ok(r);
        }
        r.end_offset += used;
        r.last_seq = rec.sequence;
        r.last_crc = crc;
        r.last_epoch = rec.epoch;
        r.deltas.push(Delta {
            sequence: rec.sequence,
            epoch: rec.epoch,
            payload: rec.payload,
        });
    }
}

/// Replays a delta area held in memory. The area is used up to its last
/// whole block.
#[must_use]
pub fn replay_slice(ctx: &ReplayContext, area: &[u8]) -> Replay {
    let whole = &area[..area.len() - area.len() % BLOCK];
    let mut src: &[u8] = whole;
    match replay(ctx, &mut src) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::record::record_disk_bytes;
    use proptest::prelude::*;

    fn ctx() -> ReplayContext {
        ReplayContext {
            volume_uuid: Uuid::from_u128(1),
            snapshot_id: 4,
            snapshot_header_crc: 0x1234,
            snapshot_base_seq: 10,
            snapshot_epoch: 2,
            volume_epoch: 3,
            epoch_start_seq: 14,
        }
    }

    /// Builds an area from (epoch, payload) records written by a well-behaved writer.
    fn write_log(ctx: &ReplayContext, recs: &[(u64, Vec<u8>)], area_bytes: usize) -> Vec<u8> {
        let mut area = vec![0u8; area_bytes];
        let (mut off, mut seq, mut crc) = (0usize, ctx.snapshot_base_seq, ctx.snapshot_header_crc);
        for (epoch, payload) in recs {
            seq += 1;
            let rec = DeltaRecord {
                volume_uuid: ctx.volume_uuid,
                snapshot_id: ctx.snapshot_id,
                epoch: *epoch,
                sequence: seq,
                prev_crc: crc,
                payload: payload.clone(),
            };
            let (b, c) = rec.to_bytes();
            area[off..off + b.len()].copy_from_slice(&b);
            off += b.len();
            crc = c;
        }
        area
    }

    #[test]
    fn accepts_a_clean_log_and_stops_at_unwritten() {
        let c = ctx();
        let recs = vec![(2, b"a".to_vec()), (3, vec![7; 5000]), (3, vec![])];
        let area = write_log(&c, &recs, 64 * 1024);
        let r = replay_slice(&c, &area);
        assert_eq!(r.stop, ReplayStop::Unwritten);
        assert_eq!(r.deltas.len(), 3);
        assert_eq!(r.last_seq, 13);
        assert_eq!(r.end_offset, 4096 * 4);
        assert_eq!(r.deltas[1].payload, vec![7; 5000]);
    }

    #[test]
    fn stops_at_area_end() {
        let c = ctx();
        let recs = vec![(2, b"a".to_vec()), (2, b"b".to_vec())];
        let area = write_log(&c, &recs, 8192);
        let r = replay_slice(&c, &area);
        assert_eq!((r.deltas.len(), r.stop), (2, ReplayStop::AreaEnd));
    }

    #[test]
    fn torn_record_is_ignored_with_everything_after_it() {
        let c = ctx();
        let recs = vec![(2, b"a".to_vec()), (2, vec![1; 6000]), (2, b"c".to_vec())];
        let mut area = write_log(&c, &recs, 64 * 1024);
        // The second block of record 2 is garbage (a torn two-block write).
        area[8192..12288].fill(0x5a);
        let r = replay_slice(&c, &area);
        assert_eq!(r.deltas.len(), 1);
        assert!(matches!(
            r.stop,
            ReplayStop::Torn(DecodeError::ChecksumMismatch { .. })
        ));
        assert_eq!(r.end_offset, 4096);
    }

    #[test]
    fn old_epoch_after_newer_is_stale() {
        let c = ctx();
        // seq 11 epoch 3, seq 12 epoch 2: older after newer.
        let area = write_log(&c, &[(3, b"a".to_vec()), (2, b"b".to_vec())], 64 * 1024);
        let r = replay_slice(&c, &area);
        assert_eq!(r.deltas.len(), 1);
        assert_eq!(
            r.stop,
            ReplayStop::StaleEpoch {
                sequence: 12,
                epoch: 2,
                newer: 3
            }
        );
        // From epoch_start_seq (14) on, only the superblock's epoch counts,
        // even if no epoch-3 record was written before.
        let area = write_log(
            &c,
            &[(2, vec![]), (2, vec![]), (2, vec![]), (2, vec![])],
            64 * 1024,
        );
        let r = replay_slice(&c, &area);
        assert_eq!(r.deltas.len(), 3);
        assert!(matches!(
            r.stop,
            ReplayStop::StaleEpoch { sequence: 14, .. }
        ));
        // Older than the snapshot's epoch.
        let area = write_log(&c, &[(1, vec![])], 64 * 1024);
        assert!(matches!(
            replay_slice(&c, &area).stop,
            ReplayStop::StaleEpoch { .. }
        ));
        // Newer than the superblock (after a fallback to an older one): accepted.
        let area = write_log(&c, &[(4, vec![]), (4, vec![])], 64 * 1024);
        assert_eq!(replay_slice(&c, &area).deltas.len(), 2);
    }

    #[test]
    fn leftovers_from_other_logs_and_rewrites_are_not_replayed() {
        let c = ctx();
        let mut other = c.clone();
        other.snapshot_id = 2;
        let area = write_log(&other, &[(2, vec![])], 64 * 1024);
        assert!(matches!(
            replay_slice(&c, &area).stop,
            ReplayStop::OtherLog { snapshot_id: 2, .. }
        ));
        // Record 2 rewritten with a new payload: the old record 3 no longer chains.
        let old = write_log(&c, &[(2, vec![1]), (2, vec![2]), (2, vec![3])], 64 * 1024);
        let new = write_log(&c, &[(2, vec![1]), (2, vec![9])], 64 * 1024);
        let mut area = old.clone();
        area[..8192].copy_from_slice(&new[..8192]);
        let r = replay_slice(&c, &area);
        assert_eq!(r.deltas.len(), 2);
        assert_eq!(r.stop, ReplayStop::BrokenChain { sequence: 13 });
    }

    #[test]
    fn corrupt_length_is_torn_not_a_panic() {
        let c = ctx();
        let mut area = write_log(&c, &[(2, vec![1])], 16384);
        area[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        let r = replay_slice(&c, &area);
        assert!(matches!(
            r.stop,
            ReplayStop::Torn(DecodeError::Truncated { .. })
        ));
        assert!(r.deltas.is_empty());
    }

    proptest! {
        #[test]
        fn prop_random_logs_replay_fully(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6000), 0..12)
        ) {
            let c = ctx();
            let recs: Vec<(u64, Vec<u8>)> = payloads.iter().map(|p| (3, p.clone())).collect();
            let total: u64 = recs.iter().map(|(_, p)| record_disk_bytes(p.len() as u64)).sum();
            let area = write_log(&c, &recs, total as usize + 4096);
            let r = replay_slice(&c, &area);
            prop_assert_eq!(r.stop, ReplayStop::Unwritten);
            let got: Vec<Vec<u8>> = r.deltas.into_iter().map(|d| d.payload).collect();
            prop_assert_eq!(got, payloads);
        }

        #[test]
        fn prop_any_corruption_keeps_a_prefix(
            n in 1usize..8, at in 0usize..40000, val in any::<u8>()
        ) {
            let c = ctx();
            let recs: Vec<(u64, Vec<u8>)> = (0..n).map(|i| (3, vec![i as u8; 3000 + i * 700])).collect();
            let mut area = write_log(&c, &recs, 48 * 1024);
            let clean = replay_slice(&c, &area);
            let at = at % area.len();
            area[at] = val;
            let r = replay_slice(&c, &area);
            // Whatever was hit, the result is a prefix of the clean log.
            prop_assert!(r.deltas.len() <= clean.deltas.len());
            prop_assert_eq!(&r.deltas[..], &clean.deltas[..r.deltas.len()]);
        }

        #[test]
        fn prop_replay_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20000)) {
            let _ = replay_slice(&ctx(), &bytes);
        }
    }
}
