//! `xha-stamp`: the stamp workload of a process VM. Every 200 ms it writes a
//! record (VM, host, boot, sequence, time) to its slot of its disk with
//! O_DIRECT (docs/vm-drivers.md, "Stamps"). Defaults come from the
//! environment the process driver sets (`XHA_VM_UUID`, `XHA_HOST`, the first
//! of `XHA_VM_DISKS` and of `XHA_VM_DISK_REGIONS`, `XHA_STAMP_SLOT`). Runs
//! until killed. A write that fails (the host's storage returns errors) is
//! reported on stderr and the workload goes on with the next record, as a
//! guest goes on when its disk reports an error (QEMU's default
//! `werror=enospc`, `rerror=report`): a storage fault does not crash it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use uuid::Uuid;
use xapi_vm::stamp::{DiskArea, StampRecord, StampWriter};

#[derive(Parser)]
#[command(about = "Write a VM's stamp records every 200 ms")]
struct Args {
    /// The stamp disk (default: the first of $XHA_VM_DISKS).
    #[arg(long)]
    disk: Option<PathBuf>,
    /// The disk's byte offset on its device, when it is a region of a block
    /// SR (default: the first of $XHA_VM_DISK_REGIONS, else 0).
    #[arg(long)]
    offset: Option<u64>,
    /// The disk's length in bytes, when it is a region (default: the first
    /// of $XHA_VM_DISK_REGIONS, else up to the end of the device).
    #[arg(long)]
    length: Option<u64>,
    /// The VM (default: $XHA_VM_UUID).
    #[arg(long)]
    vm: Option<Uuid>,
    /// This host (default: $XHA_HOST).
    #[arg(long)]
    host: Option<String>,
    /// The VM's slot on the disk (default: $XHA_STAMP_SLOT, else 0).
    #[arg(long)]
    slot: Option<u64>,
    #[arg(long, default_value_t = 200)]
    interval_ms: u64,
    /// The boot id (default: a new random one; tests choose it to place the
    /// boot's records in the ring).
    #[arg(long)]
    boot: Option<Uuid>,
    /// Stop after this many records (default: run until killed).
    #[arg(long)]
    count: Option<u64>,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("${name} is not set and no flag gives it"))
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let from_env = a.disk.is_none();
    let disk = match a.disk {
        Some(d) => d,
        None => PathBuf::from(env("XHA_VM_DISKS")?.split(':').next().unwrap_or_default()),
    };
    let mut area = DiskArea::default();
    if from_env && let Ok(regions) = std::env::var("XHA_VM_DISK_REGIONS") {
        let first = regions.split(':').next().unwrap_or_default();
        area = DiskArea::parse(first).map_err(anyhow::Error::msg)?;
    }
    if let Some(o) = a.offset {
        area.base = o;
    }
    if let Some(l) = a.length {
        area.len = Some(l);
    }
    let vm = match a.vm {
        Some(v) => v,
        None => Uuid::try_parse(&env("XHA_VM_UUID")?).context("$XHA_VM_UUID")?,
    };
    let host = match a.host {
        Some(h) => h,
        None => env("XHA_HOST")?,
    };
    let slot = match a.slot {
        Some(s) => s,
        None => std::env::var("XHA_STAMP_SLOT")
            .ok()
            .map(|s| s.parse())
            .transpose()
            .context("$XHA_STAMP_SLOT")?
            .unwrap_or(0),
    };
    let mut w = StampWriter::open_in(&disk, area, slot)?;
    let boot = a.boot.unwrap_or_else(Uuid::new_v4);
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let mut next = Instant::now();
    for seq in 0.. {
        if a.count.is_some_and(|c| seq >= c) {
            break;
        }
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let record = StampRecord {
            vm,
            host: host.clone(),
            boot,
            seq,
            time_ms,
        };
        if let Err(e) = w.write(&record) {
            eprintln!("xha-stamp: record {seq} not written: {e}");
        }
        // A fixed schedule: a slow write delays one record, not all later ones.
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(())
}
