//! A read-only look at whatever is on a metadata volume, reporting every
//! problem instead of stopping at the first: what `sr-heartbeat dump` and
//! `check` show. Only an I/O failure is an `Err`; everything found on the
//! device (corruption, torn records, foreign data) is part of the report.

use serde::Serialize;

use super::io::MetaIo;
use super::layout::{BLOCK, Layout};
use super::replay::ReplayStop;
use super::superblock::Superblock;
use super::volume::{MetaError, newest_superblock, read_superblock_pair, recover_with};

/// One superblock slot as found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SlotReport {
    /// "ok", or why the slot did not decode.
    pub status: String,
    pub generation: Option<u64>,
    pub epoch: Option<u64>,
    pub active_half: Option<u8>,
    pub snapshot_id: Option<u64>,
}

/// The committed snapshot and the log after it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogReport {
    pub half: u8,
    pub snapshot_id: u64,
    pub snapshot_bytes: u64,
    pub snapshot_base_seq: u64,
    pub deltas: u64,
    pub last_seq: u64,
    /// The newest epoch on the volume (superblock or records).
    pub epoch: u64,
    /// Why replay stopped, in words.
    pub stop: String,
    /// False when a torn, corrupt or stale record was ignored.
    pub clean: bool,
}

/// Everything `inspect` found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetadataInspection {
    pub size_bytes: u64,
    pub sector_size: usize,
    pub slots: Vec<SlotReport>,
    /// The slot in force (the newest valid one).
    pub in_force: Option<usize>,
    pub layout: Option<Layout>,
    pub volume_uuid: Option<String>,
    pub log: Option<LogReport>,
    /// Every problem, one line each; empty for a healthy volume.
    pub problems: Vec<String>,
}

fn slot_report(r: &Result<Superblock, super::DecodeError>) -> SlotReport {
    match r {
        Ok(sb) => SlotReport {
            status: "ok".into(),
            generation: Some(sb.generation),
            epoch: Some(sb.epoch),
            active_half: Some(sb.active_half),
            snapshot_id: Some(sb.snapshot_id),
        },
        Err(e) => SlotReport {
            status: e.to_string(),
            generation: None,
            epoch: None,
            active_half: None,
            snapshot_id: None,
        },
    }
}

fn describe(stop: &ReplayStop) -> String {
    match stop {
        ReplayStop::AreaEnd => "delta area full".into(),
        ReplayStop::Unwritten => "end of log".into(),
        ReplayStop::OtherLog { snapshot_id, .. } => {
            format!("end of log (next block belongs to snapshot {snapshot_id})")
        }
        ReplayStop::Torn(e) => format!("torn or corrupt record ignored: {e}"),
        ReplayStop::BrokenChain { sequence } => {
            format!("record {sequence} does not chain to the previous one: ignored")
        }
        ReplayStop::SequenceGap { expected, found } => {
            format!("record with sequence {found} where {expected} was expected: ignored")
        }
        ReplayStop::StaleEpoch {
            sequence,
            epoch,
            newer,
        } => format!("record {sequence} of stale epoch {epoch} (after epoch {newer}): ignored"),
    }
}

/// Inspects the volume on `io` without writing.
pub fn inspect<I: MetaIo>(io: &mut I) -> Result<MetadataInspection, MetaError> {
    let mut out = MetadataInspection {
        size_bytes: io.size_bytes(),
        sector_size: io.sector_size(),
        slots: Vec::new(),
        in_force: None,
        layout: None,
        volume_uuid: None,
        log: None,
        problems: Vec::new(),
    };
    if out.sector_size == 0 || !BLOCK.is_multiple_of(out.sector_size) {
        out.problems.push(format!(
            "sector size {} does not divide {BLOCK}",
            out.sector_size
        ));
        return Ok(out);
    }
    if out.size_bytes < 2 * BLOCK as u64 {
        out.problems.push(format!(
            "device of {} bytes holds no superblocks",
            out.size_bytes
        ));
        return Ok(out);
    }
    let pair = read_superblock_pair(io)?;
    out.slots = pair.slots.iter().map(slot_report).collect();
    let (sb, other) = match newest_superblock(&pair) {
        Ok(x) => x,
        Err(e) => {
            out.problems.push(e.to_string());
            return Ok(out);
        }
    };
    out.in_force = Some(sb.slot());
    out.layout = Some(sb.layout);
    out.volume_uuid = Some(sb.volume_uuid.to_string());
    if let Some(e) = other
        && !matches!(e, super::DecodeError::Blank { .. })
    {
        out.problems.push(format!(
            "superblock slot {} unusable (fell back or stale): {e}",
            1 - sb.slot()
        ));
    }
    if out.size_bytes < sb.layout.volume_bytes {
        out.problems.push(format!(
            "device of {} bytes is smaller than the volume's {} bytes",
            out.size_bytes, sb.layout.volume_bytes
        ));
        return Ok(out);
    }
    match recover_with(io, sb.clone(), None) {
        Ok(r) => {
            let clean = r.stop.is_clean();
            if !clean {
                out.problems.push(describe(&r.stop));
            }
            out.log = Some(LogReport {
                half: sb.active_half,
                snapshot_id: sb.snapshot_id,
                snapshot_bytes: r.snapshot.len() as u64,
                snapshot_base_seq: r.snapshot_base_seq,
                deltas: r.deltas.len() as u64,
                last_seq: r.last_seq,
                epoch: r.epoch,
                stop: describe(&r.stop),
                clean,
            });
        }
        Err(e @ MetaError::Io { .. }) => return Err(e),
        Err(e) => out.problems.push(e.to_string()),
    }
    Ok(out)
}
