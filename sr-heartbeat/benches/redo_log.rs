//! Cost of one redo-log delta append (a 512-byte payload: one 4 KiB record)
//! through the real path, beside a baseline measured in the same run: the
//! same record bytes written at the same offsets with buffered `std::fs`
//! `write_all_at` + `sync_all` (fsync).
//!
//! Rows per device (a regular file; loop devices with 512- and 4096-byte
//! sectors when root):
//! - `fs write + fsync`: the baseline.
//! - `append_delta, O_DIRECT|O_DSYNC`: `MetadataWriter` on `BlockDevice`.
//! - `append_delta, I/O thread`: the daemon's path, `ThreadedIo` with the 2 s
//!   delta deadline.
//!
//! Run: `cargo bench -p sr_heartbeat --bench redo_log` (env `REDO_BENCH_OPS`,
//! default 1000 appends per measurement; 3 rounds, interleaved, median kept).

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::metadata::record::DeltaRecord;
use sr_heartbeat::metadata::{Layout, MetaIo, MetadataVolume, ThreadedIo};

const PAYLOAD_BYTES: usize = 512;
const VOLUME_BYTES: u64 = 64 << 20;
const ROUNDS: usize = 3;

fn ops() -> usize {
    std::env::var("REDO_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// `n` appends through a fresh writer on `io`; returns the elapsed time.
fn appends<I: MetaIo>(io: I, n: usize) -> Duration {
    let layout = Layout::for_volume(VOLUME_BYTES).expect("layout");
    let vol = MetadataVolume::format_with_layout(io, layout).expect("format");
    let (mut w, _) = vol.into_writer(1).expect("writer");
    let payload = vec![0x42u8; PAYLOAD_BYTES];
    assert!(w.max_payload_bytes() >= PAYLOAD_BYTES as u64);
    let start = Instant::now();
    for _ in 0..n {
        w.append_delta(&payload).expect("append");
    }
    start.elapsed()
}

/// The baseline: the same record bytes, buffered write + fsync each.
fn baseline(path: &Path, n: usize) -> Duration {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open baseline");
    let layout = Layout::for_volume(VOLUME_BYTES).expect("layout");
    let rec = DeltaRecord {
        volume_uuid: uuid::Uuid::from_u128(1),
        snapshot_id: 1,
        epoch: 1,
        sequence: 1,
        prev_crc: 0,
        payload: vec![0x42u8; PAYLOAD_BYTES],
    };
    let (bytes, _) = rec.to_bytes();
    let base = layout.delta_offset(0);
    let start = Instant::now();
    for i in 0..n {
        f.write_all_at(&bytes, base + (i * bytes.len()) as u64)
            .expect("write");
        f.sync_all().expect("fsync");
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct LoopDevice(PathBuf);
impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

fn attach(image: &Path, sector: usize) -> Option<LoopDevice> {
    let out = Command::new("losetup")
        .args(["--find", "--show", "--sector-size", &sector.to_string()])
        .arg(image)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("losetup failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(LoopDevice(PathBuf::from(
        String::from_utf8_lossy(&out.stdout).trim(),
    )))
}

fn image(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("image");
    f.set_len(VOLUME_BYTES).expect("size");
    p
}

fn row(device: &str, what: &str, n: usize, t: Duration, base: Duration) {
    let ops_s = n as f64 / t.as_secs_f64();
    let us = t.as_secs_f64() * 1e6 / n as f64;
    let ratio = base.as_secs_f64() / t.as_secs_f64();
    println!("{device:<28} {what:<34} {ops_s:>10.0} {us:>10.1} {ratio:>9.2}x");
}

fn main() {
    let n = ops();
    let dir = tempfile::tempdir_in(std::env::temp_dir()).expect("temp dir");
    let mut devices = vec![("regular file".to_string(), image(dir.path(), "file.img"))];
    let mut loops = Vec::new();
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        for sector in [512, 4096] {
            let img = image(dir.path(), &format!("loop{sector}.img"));
            if let Some(l) = attach(&img, sector) {
                devices.push((format!("loop, {sector}-byte sectors"), l.0.clone()));
                loops.push(l);
            }
        }
    } else {
        println!("loop devices skipped: needs root for losetup");
    }
    println!(
        "redo-log delta append, {PAYLOAD_BYTES}-byte payload (one 4 KiB record), {n} appends per run, median of {ROUNDS} interleaved rounds"
    );
    println!(
        "{:<28} {:<34} {:>10} {:>10} {:>10}",
        "device", "path", "ops/s", "us/op", "vs base"
    );
    for (name, path) in &devices {
        let (mut b, mut d, mut t) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            b.push(baseline(path, n));
            let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("open");
            d.push(appends(dev, n));
            let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("open");
            t.push(appends(ThreadedIo::spawn(dev).expect("thread"), n));
        }
        let base = median(b);
        row(name, "fs write + fsync (baseline)", n, base, base);
        row(name, "append_delta, O_DIRECT|O_DSYNC", n, median(d), base);
        row(name, "append_delta, I/O thread (2 s)", n, median(t), base);
    }
    drop(loops);
}
