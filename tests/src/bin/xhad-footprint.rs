//! `xhad-footprint`: steady-state CPU and memory of real `xhad` daemons.
//!
//! Starts a lab pool of N hosts on loopback (`xha_lab`, the same as
//! `xe lab`), waits until every host is online and a settle period has
//! passed, then samples every daemon's CPU time (`/proc/PID/stat`
//! utime + stime) and resident memory (`/proc/PID/status` VmRSS) over a
//! window, and prints one line per pool size (or JSON with `--json`).
//!
//! ```text
//! cargo build --release --bins
//! target/release/xhad-footprint --hosts 3,16 --timeout 10 --window 60
//! ```
//!
//! Figures are per daemon: mean and max over the pool. CPU is the share of
//! one core over the window. With root, `xhad` locks all its memory
//! (`mlockall`), so VmRSS is everything it maps.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use xha_lab::{Lab, LabSpec};

struct Args {
    hosts: Vec<usize>,
    timeout_s: u64,
    window: Duration,
    settle: Duration,
    bin_dir: PathBuf,
    json: bool,
}

fn parse_args() -> Result<Args> {
    let exe = std::env::current_exe()?;
    let mut a = Args {
        hosts: vec![3, 16],
        timeout_s: 10,
        window: Duration::from_secs(60),
        settle: Duration::from_secs(20),
        bin_dir: xha_lab::bin_dir(exe.parent().context("exe dir")?),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag}: missing value"));
        match flag.as_str() {
            "--hosts" => {
                a.hosts = value()?
                    .split(',')
                    .map(|h| h.parse().with_context(|| format!("--hosts: {h:?}")))
                    .collect::<Result<_>>()?;
            }
            "--timeout" => a.timeout_s = value()?.parse().context("--timeout")?,
            "--window" => a.window = Duration::from_secs(value()?.parse().context("--window")?),
            "--settle" => a.settle = Duration::from_secs(value()?.parse().context("--settle")?),
            "--bin-dir" => a.bin_dir = PathBuf::from(value()?),
            "--json" => a.json = true,
            other => bail!(
                "unknown argument {other:?}; usage: xhad-footprint [--hosts 3,16] [--timeout 10] [--window S] [--settle S] [--bin-dir DIR] [--json]"
            ),
        }
    }
    Ok(a)
}

/// CPU time (user + system) of a process, in seconds.
fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command may hold spaces: fields start after the last ')'.
    let rest = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the state.
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / hz.max(1) as f64)
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()?)
}

struct Figures {
    hosts: usize,
    cpu_mean: f64,
    cpu_max: f64,
    rss_mean_kib: f64,
    rss_max_kib: u64,
}

fn measure(a: &Args, hosts: usize) -> Result<Figures> {
    let lab = Lab::start(LabSpec::new(hosts, a.timeout_s, &a.bin_dir))?;
    lab.wait_all_online(Duration::from_secs(5 * a.timeout_s + 60))?;
    std::thread::sleep(a.settle);
    let pids: Vec<i32> = lab
        .all()
        .into_iter()
        .map(|i| lab.pgid(i).context("daemon not running"))
        .collect::<Result<_>>()?;
    let before: Vec<f64> = pids
        .iter()
        .map(|&p| cpu_seconds(p))
        .collect::<Result<_>>()?;
    let start = Instant::now();
    let mut rss_max = vec![0u64; pids.len()];
    let mut rss_sum = vec![0u64; pids.len()];
    let mut samples = 0u64;
    while start.elapsed() < a.window {
        for (k, &p) in pids.iter().enumerate() {
            let r = rss_kib(p)?;
            rss_max[k] = rss_max[k].max(r);
            rss_sum[k] += r;
        }
        samples += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    let secs = start.elapsed().as_secs_f64();
    let after: Vec<f64> = pids
        .iter()
        .map(|&p| cpu_seconds(p))
        .collect::<Result<_>>()?;
    let shares: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) / secs * 100.0)
        .collect();
    // Every host must still be online: a measurement of a broken pool is void.
    lab.wait_all_online(Duration::from_secs(5))?;
    lab.stop()?;
    let n = pids.len() as f64;
    Ok(Figures {
        hosts,
        cpu_mean: shares.iter().sum::<f64>() / n,
        cpu_max: shares.iter().copied().fold(0.0, f64::max),
        rss_mean_kib: rss_sum.iter().sum::<u64>() as f64 / (n * samples.max(1) as f64),
        rss_max_kib: rss_max.iter().copied().max().unwrap_or(0),
    })
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let mut all = Vec::new();
    for &h in &a.hosts {
        eprintln!(
            "measuring {h} hosts at T = {} s: settle {:?}, window {:?}",
            a.timeout_s, a.settle, a.window
        );
        let f = measure(&a, h)?;
        if !a.json {
            println!(
                "{:>3} hosts: CPU per daemon mean {:.2}% max {:.2}% of one core; RSS mean {:.1} MiB max {:.1} MiB",
                f.hosts,
                f.cpu_mean,
                f.cpu_max,
                f.rss_mean_kib / 1024.0,
                f.rss_max_kib as f64 / 1024.0
            );
        }
        all.push(f);
    }
    if a.json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|f| {
                serde_json::json!({
                    "hosts": f.hosts,
                    "timeout_s": a.timeout_s,
                    "cpu_percent_mean": f.cpu_mean,
                    "cpu_percent_max": f.cpu_max,
                    "rss_kib_mean": f.rss_mean_kib,
                    "rss_kib_max": f.rss_max_kib,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    }
    Ok(())
}
