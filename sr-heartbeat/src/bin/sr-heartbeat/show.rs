//! `dump` and `check`: tell the volume kind by magic, print what is on it
//! (as a table or JSON), and list every problem.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use sr_heartbeat::io::{BlockIo, OpenMode};
use sr_heartbeat::le::get_u64;
use sr_heartbeat::metadata::MetadataInspection;
use sr_heartbeat::statefile::header::HEADER_SIZE;
use sr_heartbeat::statefile::{
    HEADER_MAGIC, Header, HeaderError, HostSet, Inspection, Phase, STATEFILE_SIZE, Slot, SlotError,
    inspect,
};
use sr_heartbeat::text::escape_control;

use crate::Res;
use crate::format::{holds_metadata_superblock, open_device};

/// What `dump` and `check` found on a device.
enum Found {
    Statefile(Inspection),
    Metadata(Box<MetadataInspection>),
}

/// Open read-only and tell a statefile from a metadata volume by magic
/// (either superblock slot for a metadata volume, so a damaged first one is
/// still recognised); anything else is refused with the reason.
fn inspect_path(path: &Path) -> Res<Found> {
    let mut dev = open_device(path, OpenMode::ReadOnly, STATEFILE_SIZE)?;
    let blocks = dev.read(0, 2 * HEADER_SIZE).map_err(|e| e.to_string())?;
    if get_u64(&blocks, 0) == HEADER_MAGIC {
        return inspect(&dev)
            .map(Found::Statefile)
            .map_err(|e| e.to_string());
    }
    if holds_metadata_superblock(&blocks) {
        return sr_heartbeat::metadata::inspect(&mut dev)
            .map(|m| Found::Metadata(Box::new(m)))
            .map_err(|e| e.to_string());
    }
    let why = match Header::decode(&blocks[..HEADER_SIZE]) {
        Err(HeaderError::BadMagic { found }) => format!(
            "not an HA statefile or metadata volume (bad magic {found:#018x}, expected \"XHASTATE\" or \"XHAMETA\")"
        ),
        Err(e) => e.to_string(),
        Ok(_) => "unrecognised content".into(),
    };
    Err(format!("{}: {why}", path.display()))
}

fn print_metadata(path: &Path, m: &MetadataInspection) {
    println!(
        "metadata volume {} ({} bytes, {}-byte sectors)",
        path.display(),
        m.size_bytes,
        m.sector_size
    );
    println!("volume uuid: {}", m.volume_uuid.as_deref().unwrap_or("-"));
    for (i, sb) in m.slots.iter().enumerate() {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        println!(
            "superblock {i}: {}, generation {}, epoch {}, active half {}, snapshot {}{}",
            sb.status,
            opt(sb.generation),
            opt(sb.epoch),
            sb.active_half.map_or("-".to_string(), |v| v.to_string()),
            opt(sb.snapshot_id),
            if m.in_force == Some(i) {
                "  (in force)"
            } else {
                ""
            }
        );
    }
    if let Some(layout) = &m.layout {
        println!("layout: {layout:?}");
    }
    match &m.log {
        Some(log) => println!(
            "log: half {}, snapshot {} ({} bytes, base seq {}), {} delta(s) to seq {}, epoch {}, stopped at: {}{}",
            log.half,
            log.snapshot_id,
            log.snapshot_bytes,
            log.snapshot_base_seq,
            log.deltas,
            log.last_seq,
            log.epoch,
            log.stop,
            if log.clean { "" } else { " (NOT clean)" }
        ),
        None => println!("log: -"),
    }
    for p in &m.problems {
        println!("problem: {p}");
    }
}

fn hex(set: HostSet) -> String {
    format!("{:#x}", set.0)
}

fn flags(s: &Slot) -> String {
    let mut f = String::new();
    for (on, c) in [
        (s.excluded, 'X'),
        (s.starting, 'S'),
        (s.fence_request, 'F'),
        (s.statefile_access, 'A'),
        (s.fencing_disarmed, 'D'),
    ] {
        f.push(if on { c } else { '-' });
    }
    f
}

fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Normal => "normal",
        Phase::Stabilising => "stabilising",
        Phase::Agreeing => "agreeing",
        Phase::Deciding => "deciding",
        Phase::Fencing => "fencing",
    }
}

pub(crate) fn print_table(ins: &Inspection) {
    println!(
        "statefile {} ({} bytes, {}-byte sectors)",
        ins.path.display(),
        ins.size_bytes,
        ins.device_sector_size
    );
    match &ins.header {
        Ok(h) => println!(
            "header: version 1, generation {}, {} host slots, {}-byte sectors, formatted at {} ms (unix)",
            h.generation, h.max_hosts, h.sector_size, h.format_time_ms
        ),
        Err(e) => println!("header: INVALID: {e}"),
    }
    let Some(read) = &ins.read else { return };
    match &read.pool {
        Ok(p) => println!(
            "pool:   state {}, master {}, master epoch {}, update seq {}",
            p.state,
            p.master.map_or("-".to_string(), |m| m.to_string()),
            p.master_epoch,
            p.update_seq
        ),
        Err(e) => println!("pool:   INVALID: {e}"),
    }
    println!(
        "{:>4}  {:<36}  {:>8}  {:<10} {:<10} {:<10} {:<10} {:<11} {:<5}  {:>5}  {:>5}  {:<8}  status",
        "slot",
        "host",
        "sequence",
        "heard",
        "seen",
        "liveset",
        "proposed",
        "phase",
        "flags",
        "epoch",
        "round",
        "checksum"
    );
    let mut never = Vec::new();
    for (i, slot) in read.slots.iter().enumerate() {
        match slot {
            Ok(s) => println!(
                "{:>4}  {:<36}  {:>8}  {:<10} {:<10} {:<10} {:<10} {:<11} {:<5}  {:>5}  {:>5}  {:<8}  {}",
                i,
                s.host_uuid.to_string(),
                s.sequence,
                hex(s.heard),
                hex(s.seen),
                hex(s.liveset),
                hex(s.proposed),
                phase_name(s.phase),
                flags(s),
                s.master_epoch,
                s.fault_round,
                "ok",
                escape_control(&s.status)
            ),
            Err(SlotError::NeverWritten) => never.push(i),
            Err(e) => println!("{i:>4}  INVALID: {}", escape_control(&e.to_string())),
        }
    }
    if !never.is_empty() {
        println!("never written: {} slot(s): {}", never.len(), ranges(&never));
    }
    println!(
        "flags: X excluded, S starting, F fence request, A statefile access, D fencing disarmed"
    );
}

/// `[0,1,2,5,7,8]` -> `"0-2, 5, 7-8"`.
fn ranges(v: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

fn to_json(ins: &Inspection) -> Value {
    let header = match &ins.header {
        Ok(h) => json!({"ok": true, "version": 1, "generation": h.generation,
            "max_hosts": h.max_hosts, "sector_size": h.sector_size,
            "format_time_ms": h.format_time_ms}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    };
    let (pool, slots) = match &ins.read {
        None => (Value::Null, Vec::new()),
        Some(read) => {
            let pool = match &read.pool {
                Ok(p) => json!({"ok": true, "state": p.state, "master": p.master,
                    "master_epoch": p.master_epoch, "update_seq": p.update_seq}),
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            };
            let slots = read
                .slots
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Ok(s) => json!({"index": i, "status": "ok", "slot": s}),
                    Err(SlotError::NeverWritten) => json!({"index": i, "status": "never_written"}),
                    Err(e) => json!({"index": i, "status": "invalid", "error": e.to_string()}),
                })
                .collect();
            (pool, slots)
        }
    };
    json!({
        "kind": "statefile",
        "path": ins.path,
        "size_bytes": ins.size_bytes,
        "device_sector_size": ins.device_sector_size,
        "header": header,
        "pool": pool,
        "slots": slots,
        "problems": ins.problems(),
    })
}

pub(crate) fn dump(path: &Path, as_json: bool) -> Res<ExitCode> {
    let value = match inspect_path(path)? {
        Found::Statefile(ins) if as_json => to_json(&ins),
        Found::Statefile(ins) => {
            print_table(&ins);
            return Ok(ExitCode::SUCCESS);
        }
        Found::Metadata(m) if as_json => {
            let mut v = serde_json::to_value(&*m).map_err(|e| e.to_string())?;
            if let Value::Object(map) = &mut v {
                map.insert("kind".into(), json!("metadata"));
                map.insert("path".into(), json!(path));
            }
            v
        }
        Found::Metadata(m) => {
            print_metadata(path, &m);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn check(path: &Path) -> Res<ExitCode> {
    let (problems, summary) = match inspect_path(path)? {
        Found::Statefile(ins) => {
            let written = ins
                .read
                .as_ref()
                .map_or(0, |r| r.slots.iter().filter(|s| s.is_ok()).count());
            (
                ins.problems(),
                format!("statefile ok ({written} slot(s) in use)"),
            )
        }
        Found::Metadata(m) => {
            let deltas = m.log.as_ref().map_or(0, |l| l.deltas);
            (
                m.problems.clone(),
                format!("metadata volume ok ({deltas} delta(s) after the snapshot)"),
            )
        }
    };
    if problems.is_empty() {
        println!("{}: {summary}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        println!("{}: {}", path.display(), escape_control(p));
    }
    println!("{}: {} problem(s)", path.display(), problems.len());
    Ok(ExitCode::from(1))
}
