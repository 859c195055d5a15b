//! `demo`: a statefile on a temporary file, written and read through the
//! deadline I/O thread, with the latency figures printed.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use uuid::Uuid;

use sr_heartbeat::io::{BlockDevice, DeadlineIo, LatencyStats, OpenMode};
use sr_heartbeat::statefile::header::HEADER_SIZE;
use sr_heartbeat::statefile::{
    HostSet, MAX_HOSTS_LIMIT, STATEFILE_SIZE, Slot, Statefile, StatefileIo, inspect,
};

use crate::Res;
use crate::format::prepare_file;
use crate::show::print_table;

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

pub(crate) fn demo(dir: Option<&Path>) -> Res<ExitCode> {
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
