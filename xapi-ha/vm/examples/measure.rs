//! Measures, per driver, the time from `start` to the VM's first stamp on
//! its disk (10 starts: median and max) and each VM's RSS and CPU while it
//! stamps. Figures go to docs/vm-drivers.md ("Measured").
//!
//!   cargo build -p xapi_vm --bins --examples && target/debug/examples/measure [process|qemu]...
//!
//! QEMU needs the test guest (tests/guest/build.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use uuid::Uuid;
use xapi_vm::process::ProcessDriver;
use xapi_vm::procfs;
use xapi_vm::qemu::{QemuConfig, QemuDriver};
use xapi_vm::stamp::read_region;
use xapi_vm::stamp::region::REGION_BYTES;
use xapi_vm::{DriverContext, StopMode, VmDriver, VmSpec};

const RUNS: usize = 10;
const SAMPLE: Duration = Duration::from_secs(3);

fn main() -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let which: Vec<String> = std::env::args().skip(1).collect();
    let which = if which.is_empty() {
        vec!["process".into(), "qemu".into()]
    } else {
        which
    };
    let guest = PathBuf::from(
        std::env::var("XHA_TEST_GUEST_DIR").unwrap_or("/var/cache/xha-test-guest".into()),
    )
    .join("current");
    for driver in which {
        let tmp = tempfile::tempdir()?;
        let ctx = DriverContext {
            host: "measure".into(),
            run_dir: tmp.path().join("run"),
            keeper: bin_dir.join("xha-vm-keeper"),
        };
        let mut d: Box<dyn VmDriver> = match driver.as_str() {
            "process" => Box::new(ProcessDriver::new(ctx)),
            "qemu" => Box::new(QemuDriver::new(ctx, QemuConfig::default())),
            other => anyhow::bail!("unknown driver {other}"),
        };
        let (mut first, mut rss, mut cpu, mut period) = (vec![], vec![], vec![], vec![]);
        for i in 0..RUNS {
            let disk = tmp.path().join(format!("disk{i}"));
            std::fs::File::create(&disk)?.set_len(REGION_BYTES)?;
            let mut config = BTreeMap::new();
            if driver == "process" {
                config.insert(
                    "command".into(),
                    format!("exec {}", bin_dir.join("xha-stamp").display()),
                );
            } else {
                config.insert("kernel".into(), guest.join("vmlinux").display().to_string());
                config.insert(
                    "initrd".into(),
                    guest.join("initrd.gz").display().to_string(),
                );
            }
            let spec = VmSpec {
                uuid: Uuid::new_v4(),
                name: format!("measure-{i}"),
                memory_bytes: 128 << 20,
                vcpus: 1,
                driver: driver.clone(),
                config,
                disks: vec![disk.clone()],
                disk_regions: Vec::new(),
            };
            let t0 = Instant::now();
            let vm = d.start(&spec)?;
            loop {
                if read_region(&disk, 0).is_ok_and(|r| !r.records.is_empty()) {
                    break;
                }
                anyhow::ensure!(
                    t0.elapsed() < Duration::from_secs(120),
                    "no stamp after 120 s"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            first.push(t0.elapsed());
            let c0 = procfs::stat(vm.pid).map(|s| s.cpu_ticks).unwrap_or(0);
            let s0 = Instant::now();
            std::thread::sleep(SAMPLE);
            let c1 = procfs::stat(vm.pid).map(|s| s.cpu_ticks).unwrap_or(0);
            cpu.push(
                (c1 - c0) as f64 / procfs::ticks_per_second() as f64 / s0.elapsed().as_secs_f64()
                    * 100.0,
            );
            rss.push(d.memory_used(spec.uuid)? as f64 / (1 << 20) as f64);
            let mut recs = read_region(&disk, 0)?.records;
            recs.sort();
            recs.dedup();
            if let (Some(a), Some(b)) = (recs.first(), recs.last())
                && b.seq > a.seq
            {
                period.push((b.time_ms - a.time_ms) as f64 / (b.seq - a.seq) as f64);
            }
            d.stop(spec.uuid, StopMode::Hard)?;
            d.poll_events();
            eprintln!("{driver} run {i}: first stamp {:?}", first[i]);
        }
        first.sort();
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.total_cmp(b));
            v[v.len() / 2]
        };
        println!(
            "{driver}: first stamp median {:.0} ms, max {:.0} ms (of {RUNS}); RSS median {:.1} MiB; CPU median {:.1} % of a core; stamp period median {:.0} ms",
            first[RUNS / 2].as_secs_f64() * 1000.0,
            first[RUNS - 1].as_secs_f64() * 1000.0,
            med(&mut rss),
            med(&mut cpu),
            med(&mut period),
        );
    }
    Ok(())
}
