//! `sr-heartbeat`: format, dump and check the volumes of the heartbeat SR.
//!
//! Exit codes: 0 success; 1 `check` found problems; 2 bad input or an I/O
//! failure (one line on stderr, nothing written).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use uuid::Uuid;

use sr_heartbeat::io::{BlockDevice, BlockIo, DeadlineIo, IoError, LatencyStats, OpenMode};
use sr_heartbeat::metadata::MetadataInspection;
use sr_heartbeat::metadata::superblock::SUPERBLOCK_MAGIC;
use sr_heartbeat::statefile::header::HEADER_SIZE;
use sr_heartbeat::statefile::{
    HEADER_MAGIC, Header, HeaderError, HostSet, Inspection, MAX_HOSTS_LIMIT, Phase, STATEFILE_SIZE,
    Slot, SlotError, Statefile, StatefileIo, inspect,
};
use sr_heartbeat::text::escape_control;

#[derive(Parser)]
#[command(
    name = "sr-heartbeat",
    version,
    about = "Format, dump and check the HA heartbeat SR volumes (statefile, metadata volume)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Format PATH as a 4 MiB statefile for a pool. A regular file that does
    /// not exist or is empty is created at 4 MiB; anything else must be at
    /// least 4 MiB, and a non-blank one is refused unless --force.
    FormatStatefile {
        path: PathBuf,
        /// The pool generation UUID of this HA enablement.
        #[arg(long)]
        pool_uuid: Uuid,
        /// Number of host slots (1 to 64).
        #[arg(long, default_value_t = MAX_HOSTS_LIMIT)]
        hosts: usize,
        /// Overwrite a device that holds something (another statefile, a
        /// filesystem, ...).
        #[arg(long)]
        force: bool,
    },
    /// Format PATH as a 256 MiB metadata volume (pool database redo log). A
    /// regular file that does not exist or is empty is created at 256 MiB; a
    /// non-blank device is refused unless --force.
    FormatMetadata {
        path: PathBuf,
        /// Overwrite a device that holds something.
        #[arg(long)]
        force: bool,
    },
    /// Print a statefile (header, pool block, every slot) or a metadata
    /// volume (superblocks, snapshot, log); the kind is read from the magic.
    Dump {
        path: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check a statefile or metadata volume; exit 1 and list the problems.
    Check { path: PathBuf },
    /// Format a statefile in a temporary directory, heartbeat three hosts
    /// through the deadline I/O path, dump it and print the I/O latencies.
    Demo {
        /// Where to create the temporary directory (needs O_DIRECT support).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

type Res<T> = Result<T, String>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FormatStatefile {
            path,
            pool_uuid,
            hosts,
            force,
        } => format_statefile(&path, pool_uuid, hosts, force),
        Command::FormatMetadata { path, force } => format_metadata(&path, force),
        Command::Dump { path, json } => dump(&path, json),
        Command::Check { path } => check(&path),
        Command::Demo { dir } => demo(dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("sr-heartbeat: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Refuse a regular file smaller than `need` before opening it, so a short
/// file gets "too small" rather than a sector-alignment complaint.
fn open_device(path: &Path, mode: OpenMode, need: u64) -> Res<BlockDevice> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
        && meta.len() < need
    {
        return Err(IoError::TooSmall {
            path: path.to_owned(),
            need,
            have: meta.len(),
        }
        .to_string());
    }
    let dev = BlockDevice::open(path, mode).map_err(|e| e.to_string())?;
    dev.require_size(need).map_err(|e| e.to_string())?;
    Ok(dev)
}

/// Create (or grow from empty) a regular file to `size` bytes. Returns true
/// if this call created or sized it, so a failed format can undo it.
fn prepare_file(path: &Path, size: u64) -> Res<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == 0 => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
            f.set_len(size)
                .map_err(|e| format!("{}: cannot size to {size} bytes: {e}", path.display()))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
            f.set_len(size)
                .map_err(|e| format!("{}: cannot size to {size} bytes: {e}", path.display()))?;
            Ok(true)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// What the first two blocks say about the device, for refusing to
/// overwrite it: `None` when both are all zero. Two blocks, because a
/// metadata volume may have written only its second superblock slot.
fn describe_existing(blocks: &[u8]) -> Option<String> {
    if blocks.iter().all(|&b| b == 0) {
        return None;
    }
    let magic_at = |at: usize| {
        let mut m = [0u8; 8];
        m.copy_from_slice(&blocks[at..at + 8]);
        u64::from_le_bytes(m)
    };
    if magic_at(0) == SUPERBLOCK_MAGIC || magic_at(HEADER_SIZE) == SUPERBLOCK_MAGIC {
        return Some("holds an HA metadata volume".into());
    }
    Some(match Header::decode(&blocks[..HEADER_SIZE]) {
        Ok(h) => format!("holds an HA statefile (generation {})", h.generation),
        Err(HeaderError::BadMagic { .. } | HeaderError::NotFormatted) => {
            "is not blank (it holds data of another kind)".into()
        }
        Err(e) => format!("holds a damaged HA statefile ({e})"),
    })
}

fn refuse_unless_blank(dev: &BlockDevice, force: bool) -> Res<()> {
    if force {
        return Ok(());
    }
    let blocks = dev.read(0, 2 * HEADER_SIZE).map_err(|e| e.to_string())?;
    match describe_existing(&blocks) {
        None => Ok(()),
        Some(what) => Err(format!(
            "{}: {what}; refusing to overwrite it without --force",
            dev.path().display()
        )),
    }
}

fn format_statefile(path: &Path, pool: Uuid, hosts: usize, force: bool) -> Res<ExitCode> {
    if hosts == 0 || hosts > MAX_HOSTS_LIMIT {
        return Err(format!("--hosts {hosts}: must be 1 to {MAX_HOSTS_LIMIT}"));
    }
    if pool.is_nil() {
        return Err("--pool-uuid: the nil UUID cannot name a pool".into());
    }
    let created = prepare_file(path, STATEFILE_SIZE)?;
    let result = (|| {
        let dev = open_device(path, OpenMode::ReadWrite, STATEFILE_SIZE)?;
        refuse_unless_blank(&dev, force)?;
        let sf = Statefile::format(dev, pool, hosts).map_err(|e| e.to_string())?;
        println!(
            "formatted {} as a statefile: generation {}, {} host slots, {}-byte sectors",
            path.display(),
            sf.generation(),
            sf.max_hosts(),
            sf.header().sector_size
        );
        Ok(ExitCode::SUCCESS)
    })();
    if result.is_err() && created {
        // Undo our own creation only: the file did not exist (or was empty).
        let _ = std::fs::remove_file(path);
    }
    result
}

fn format_metadata(path: &Path, force: bool) -> Res<ExitCode> {
    use sr_heartbeat::metadata::{MetadataVolume, STANDARD_VOLUME_BYTES};
    let created = prepare_file(path, STANDARD_VOLUME_BYTES)?;
    let result = (|| {
        let dev = open_device(path, OpenMode::ReadWrite, STANDARD_VOLUME_BYTES)?;
        refuse_unless_blank(&dev, force)?;
        let vol = MetadataVolume::format(dev).map_err(|e| e.to_string())?;
        println!(
            "formatted {} as a metadata volume: volume uuid {}",
            path.display(),
            vol.superblock().volume_uuid
        );
        Ok(ExitCode::SUCCESS)
    })();
    if result.is_err() && created {
        // Undo our own creation only: the file did not exist (or was empty).
        let _ = std::fs::remove_file(path);
    }
    result
}

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
    let magic_at = |at: usize| {
        let mut m = [0u8; 8];
        m.copy_from_slice(&blocks[at..at + 8]);
        u64::from_le_bytes(m)
    };
    if magic_at(0) == HEADER_MAGIC {
        return inspect(&dev)
            .map(Found::Statefile)
            .map_err(|e| e.to_string());
    }
    if magic_at(0) == SUPERBLOCK_MAGIC || magic_at(HEADER_SIZE) == SUPERBLOCK_MAGIC {
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

fn print_table(ins: &Inspection) {
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

fn dump(path: &Path, as_json: bool) -> Res<ExitCode> {
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

fn check(path: &Path) -> Res<ExitCode> {
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

fn fmt_opt(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.3} ms", d.as_secs_f64() * 1e3))
}

fn print_latency(what: &str, s: &LatencyStats) {
    println!(
        "{what}: {} I/Os, latency last {} min {} max {}; timeouts {}, busy {}, late completions {}, errors {}",
        s.completed,
        fmt_opt(s.last),
        fmt_opt(s.min),
        fmt_opt(s.max),
        s.timeouts,
        s.busy,
        s.late_completions,
        s.errors
    );
}

fn demo(dir: Option<&Path>) -> Res<ExitCode> {
    let base = dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let tmp = tempfile::Builder::new()
        .prefix("sr-heartbeat-demo-")
        .tempdir_in(&base)
        .map_err(|e| {
            format!(
                "{}: cannot create a temporary directory: {e}",
                base.display()
            )
        })?;
    let path = tmp.path().join("statefile");
    prepare_file(&path, STATEFILE_SIZE)?;
    let generation = Uuid::new_v4();
    println!(
        "1. format {} for pool generation {generation}",
        path.display()
    );
    let dev = BlockDevice::open(&path, OpenMode::ReadWrite).map_err(|e| e.to_string())?;
    drop(Statefile::format(dev, generation, MAX_HOSTS_LIMIT).map_err(|e| e.to_string())?);

    // The daemon's path: every I/O on the device's own thread, with a deadline.
    let deadline = Duration::from_secs(5);
    let dev = BlockDevice::open(&path, OpenMode::ReadWrite).map_err(|e| e.to_string())?;
    let io = DeadlineIo::spawn(dev, deadline).map_err(|e| e.to_string())?;
    let sf: StatefileIo = Statefile::open(io).map_err(|e| e.to_string())?;
    let hosts: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let rounds = 5u64;
    println!(
        "2. three hosts heartbeat {rounds} rounds through the I/O thread (deadline {deadline:?})"
    );
    for round in 1..=rounds {
        for (i, host) in hosts.iter().enumerate() {
            let index = u16::try_from(i).map_err(|e| e.to_string())?;
            let slot = Slot {
                host_uuid: *host,
                host_index: index,
                sequence: round,
                heard: HostSet::first_n(3),
                seen: HostSet::first_n(3),
                liveset: HostSet::first_n(3),
                proposed: HostSet::first_n(3),
                statefile_access: true,
                status: format!("demo round {round}"),
                diag_time_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                ..Slot::default()
            };
            sf.write_slot(&slot).map_err(|e| e.to_string())?;
        }
        let read = sf.read_all().map_err(|e| e.to_string())?;
        for (i, slot) in read.slots.iter().take(hosts.len()).enumerate() {
            match slot {
                Ok(s) if s.sequence == round => {}
                other => return Err(format!("slot {i} after round {round}: {other:?}")),
            }
        }
    }
    println!("   every round read back in one I/O: all three sequences advanced");

    println!("3. a stalled device: inject a 1.5 s stall, then read with a 300 ms deadline");
    let thread = sf.device().thread();
    thread.inject_delay(Duration::from_millis(1500));
    let t0 = Instant::now();
    let r = thread.read(0, HEADER_SIZE, Duration::from_millis(300));
    println!(
        "   -> after {:.0} ms: {}",
        t0.elapsed().as_secs_f64() * 1e3,
        r.err().map_or("completed".into(), |e| e.to_string())
    );
    let r = thread.read(0, HEADER_SIZE, Duration::from_millis(300));
    println!(
        "   -> next request at once: {}",
        r.err().map_or("completed".into(), |e| e.to_string())
    );
    let wait_until = Instant::now() + Duration::from_secs(30);
    while thread.latency().in_flight_for.is_some() && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = thread.read(0, HEADER_SIZE, deadline);
    println!(
        "   -> after the late completion: {}",
        r.err().map_or("read ok".into(), |e| e.to_string())
    );

    println!("4. dump");
    let dev = BlockDevice::open(&path, OpenMode::ReadOnly).map_err(|e| e.to_string())?;
    print_table(&inspect(&dev).map_err(|e| e.to_string())?);
    print_latency("I/O thread", &thread.latency());
    drop(sf);
    let where_ = tmp.path().display().to_string();
    tmp.close()
        .map_err(|e| format!("{where_}: cannot remove: {e}"))?;
    println!("removed {where_}");
    Ok(ExitCode::SUCCESS)
}
