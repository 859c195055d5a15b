//! Cost of one heartbeat cycle on the statefile: write my slot (4 KiB) and
//! read the pool block and all 64 slots (one 260 KiB read, decoded), through
//! the real O_DIRECT path, beside a baseline measured in the same run: the
//! same bytes at the same offsets with buffered `std::fs` (`write_all_at` +
//! `sync_all` (fsync) for the write, a plain `read_exact_at` for the read).
//!
//! Rows per device (a regular file; loop devices with 512- and 4096-byte
//! sectors when root):
//! - `std::fs buffered + fsync`: the baseline (ratio 1.00).
//! - `O_DIRECT|O_DSYNC, BlockDevice`: `Statefile<BlockDevice>`, blocking.
//! - `O_DIRECT|O_DSYNC, I/O thread`: `StatefileIo`, the daemon's path (each
//!   request handed to the device's thread, with a deadline).
//!
//! The baseline's reads are served from the page cache, so it is not a
//! correct heartbeat on shared storage (it would not see other hosts'
//! writes); the ratio is the price of reading the device for real.
//!
//! Ratio = cycles/s of the row / cycles/s of the baseline on the same device
//! (above 1 = faster than the baseline). Rounds are interleaved and the
//! median kept, so a burst of load on the machine hits every row alike.
//!
//! Run: `cargo bench -p sr_heartbeat --bench io` (env `IO_BENCH_CYCLES`,
//! default 300 cycles per measurement; `IO_BENCH_DIR` for the file's
//! directory, default the system temp dir).

#[path = "../tests/io_support/mod.rs"]
mod io_support;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use sr_heartbeat::io::{BlockDevice, DeadlineIo, OpenMode};
use sr_heartbeat::statefile::{HostSet, STATEFILE_SIZE, Slot, Statefile, StatefileIo};
use uuid::Uuid;

const ROUNDS: usize = 3;
const HOSTS: usize = 64;
const MY_INDEX: u16 = 17;

fn cycles() -> usize {
    std::env::var("IO_BENCH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

fn my_slot(generation: Uuid, seq: u64) -> Vec<u8> {
    slot(seq).to_bytes(generation)
}

fn slot(seq: u64) -> Slot {
    Slot {
        host_uuid: Uuid::from_u128(0x17),
        host_index: MY_INDEX,
        sequence: seq,
        heard: HostSet::first_n(HOSTS),
        seen: HostSet::first_n(HOSTS),
        liveset: HostSet::first_n(HOSTS),
        proposed: HostSet::first_n(HOSTS),
        statefile_access: true,
        status: "bench".into(),
        ..Slot::default()
    }
}

/// Baseline: buffered write + fsync, then a plain read of the same range.
fn baseline(path: &Path, generation: Uuid, n: usize) -> Duration {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open baseline");
    let slot_offset = 8192 + 4096 * u64::from(MY_INDEX);
    let mut all = vec![0u8; 4096 * (1 + HOSTS)];
    let start = Instant::now();
    for seq in 1..=n as u64 {
        f.write_all_at(&my_slot(generation, seq), slot_offset)
            .expect("write");
        f.sync_all().expect("fsync");
        f.read_exact_at(&mut all, 4096).expect("read");
        std::hint::black_box(&all);
    }
    start.elapsed()
}

fn direct(path: &Path, n: usize) -> Duration {
    let sf = Statefile::open(BlockDevice::open(path, OpenMode::ReadWrite).expect("open"))
        .expect("statefile");
    let start = Instant::now();
    for seq in 1..=n as u64 {
        sf.write_slot(&slot(seq)).expect("write");
        std::hint::black_box(sf.read_all().expect("read"));
    }
    start.elapsed()
}

fn threaded(path: &Path, n: usize) -> Duration {
    let io = DeadlineIo::spawn(
        BlockDevice::open(path, OpenMode::ReadWrite).expect("open"),
        Duration::from_secs(30),
    )
    .expect("spawn");
    let sf: StatefileIo = Statefile::open(io).expect("statefile");
    let start = Instant::now();
    for seq in 1..=n as u64 {
        sf.write_slot(&slot(seq)).expect("write");
        std::hint::black_box(sf.read_all().expect("read"));
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn row(device: &str, what: &str, n: usize, t: Duration, base: Duration) {
    let per_s = n as f64 / t.as_secs_f64();
    let us = t.as_secs_f64() * 1e6 / n as f64;
    let ratio = base.as_secs_f64() / t.as_secs_f64();
    println!("{device:<26} {what:<32} {per_s:>10.0} {us:>12.1} {ratio:>9.2}x");
}

fn bench_device(device: &str, path: &Path, n: usize) {
    let generation = Uuid::new_v4();
    drop(
        Statefile::format(
            BlockDevice::open(path, OpenMode::ReadWrite).expect("open"),
            generation,
            HOSTS,
        )
        .expect("format"),
    );
    let (mut b, mut d, mut t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        b.push(baseline(path, generation, n));
        d.push(direct(path, n));
        t.push(threaded(path, n));
    }
    let base = median(b);
    row(device, "std::fs buffered + fsync", n, base, base);
    row(device, "O_DIRECT|O_DSYNC, BlockDevice", n, median(d), base);
    row(device, "O_DIRECT|O_DSYNC, I/O thread", n, median(t), base);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n = cycles();
    let base_dir = std::env::var_os("IO_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(base_dir).expect("tempdir");
    println!(
        "heartbeat cycle = write own slot (4 KiB) + read pool block and {HOSTS} slots (260 KiB, one read); {n} cycles x {ROUNDS} rounds, median"
    );
    println!(
        "{:<26} {:<32} {:>10} {:>12} {:>10}",
        "device", "path", "cycles/s", "us/cycle", "vs base"
    );
    println!(
        "note: the baseline's reads come from the page cache (no device I/O); on shared storage such a read would not see other hosts' writes, which is why the product reads with O_DIRECT"
    );
    let file = io_support::image(dir.path(), "statefile", STATEFILE_SIZE);
    bench_device("file (4096)", &file, n);
    if !io_support::is_root() {
        println!("loop devices skipped: needs root for losetup");
        return;
    }
    for sector in [512u32, 4096] {
        let img = io_support::image(dir.path(), &format!("img{sector}"), STATEFILE_SIZE);
        match io_support::LoopDevice::attach(&img, sector) {
            Ok(lo) => bench_device(&format!("loop ({sector})"), &lo.path, n),
            Err(e) => println!("loop ({sector}) skipped: {e}"),
        }
    }
}
