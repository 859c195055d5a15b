//! End-to-end storage faults per host: every host reaches the one shared
//! statefile through its own `faultfs` mount of it (`ha_tests::faultfs`), so
//! one host's path can fail, hang or slow down while the others still reach
//! the file. Needs FUSE (root in CI); otherwise each test prints why it skips.
//!
//! Cases (T = 10 s): one host's storage errors (it fences, the others
//! live); one host's storage hangs (its deadline fires, it fences, and its
//! daemon answers the control socket meanwhile); every host loses storage
//! with the network whole (nobody fences, each warns); one host's storage is
//! slow but under T/2 (a latency warning, no fence).

use std::path::Path;
use std::time::{Duration, Instant};

use ha_tests::e2e::{
    assert_fenced, assert_stable, logs, non_master, others, shrink_bound, wait_shrunk,
};
use ha_tests::faultfs::{Mode, fuse_available};
use ha_tests::storage_lab::StorageLab;
use xha::daemon::control::WarningKind;
use xha_lab::Lab;

const T: u64 = 10;

fn skip() -> bool {
    match fuse_available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("skipping: {why}");
            true
        }
    }
}

fn start(hosts: usize) -> (StorageLab, usize) {
    StorageLab::start(hosts, T, Path::new(env!("CARGO_BIN_EXE_faultfs")))
}

fn has_warning(lab: &Lab, i: usize, kind: WarningKind) -> bool {
    lab.query(i)
        .is_ok_and(|r| r.warnings.iter().any(|w| w.kind == kind))
}

/// Wait until host `i` reports a warning of `kind`.
fn wait_warning(lab: &Lab, i: usize, kind: WarningKind, bound: Duration) {
    let start = Instant::now();
    while !has_warning(lab, i, kind) {
        assert!(
            start.elapsed() < bound,
            "host {i} raised no {kind:?} warning within {bound:?}: {:?}\n{}",
            lab.query(i).map(|r| r.warnings),
            logs(lab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A 3-host storage lab with `mode` set on one non-master host's mount:
/// the lab, that host, and when the fault began.
fn start_and_fault_one(mode: Mode) -> (StorageLab, usize, Instant) {
    let (s, master) = start(3);
    let victim = non_master(&s.lab, master);
    let t0 = Instant::now();
    s.mounts[victim].set_mode(mode).expect("set the fault mode");
    (s, victim, t0)
}

/// The others publish the liveset without `victim` within the bound and
/// its supervisor fenced it; returns the fault-to-shrink time.
fn assert_fenced_and_shrunk(s: &StorageLab, victim: usize, t0: Instant) -> Duration {
    let survivors = others(&s.lab, &[victim]);
    let shrink = wait_shrunk(&s.lab, &survivors, t0, shrink_bound(T));
    assert_fenced(&s.lab, victim, shrink_bound(T));
    shrink
}

#[test]
fn one_host_storage_errors_fences_it() {
    if skip() {
        return;
    }
    let (s, victim, t0) = start_and_fault_one(Mode::Error);
    let shrink = assert_fenced_and_shrunk(&s, victim, t0);
    eprintln!("storage errors on host {victim}: shrink after {shrink:?}");
    s.mounts[victim].set_mode(Mode::Ok).expect("ok mode");
    s.stop();
}

#[test]
fn one_host_storage_hangs_fences_it_and_the_daemon_stays_responsive() {
    if skip() {
        return;
    }
    let (s, victim, t0) = start_and_fault_one(Mode::Hang);
    // While its I/O hangs, the daemon still answers at once.
    let mut answered = 0;
    while t0.elapsed() < Duration::from_secs(T) * 4 / 10 {
        let asked = Instant::now();
        let r = s.lab.query(victim);
        assert!(
            r.is_ok() && asked.elapsed() < Duration::from_secs(2),
            "the hung host's daemon should answer: {r:?} after {:?}",
            asked.elapsed()
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answered >= 5);
    let shrink = assert_fenced_and_shrunk(&s, victim, t0);
    eprintln!(
        "storage hang on host {victim}: shrink after {shrink:?}, {answered} queries answered"
    );
    let log = s.lab.log(victim);
    assert!(
        log.contains("missed its deadline"),
        "the hung host should report its read deadline firing:\n{log}"
    );
    // A process blocked in a hung FUSE request cannot die, even by SIGKILL,
    // until the request is answered (as on a real hung SAN path, which is
    // why fencing resets the machine): let the held requests through so the
    // killed daemon can exit. Its late writes land in its slot, which the
    // survivors no longer count on.
    s.mounts[victim].set_mode(Mode::Ok).expect("ok mode");
    let status = s.lab.daemon_exit(victim, Duration::from_secs(10));
    assert!(
        status.is_some_and(|st| std::os::unix::process::ExitStatusExt::signal(&st) == Some(9)),
        "the fenced daemon should end by SIGKILL once its I/O is released: {status:?}"
    );
    s.stop();
}

#[test]
fn all_hosts_losing_storage_with_the_network_whole_fence_nobody() {
    if skip() {
        return;
    }
    let (s, _master) = start(3);
    for m in &s.mounts {
        m.set_mode(Mode::Error).expect("error mode");
    }
    for i in s.lab.all() {
        wait_warning(
            &s.lab,
            i,
            WarningKind::StatefileLost,
            Duration::from_secs(2 * T),
        );
    }
    assert_stable(&s.lab, &s.lab.all(), Duration::from_secs(2 * T));
    for m in &s.mounts {
        m.set_mode(Mode::Ok).expect("ok mode");
    }
    assert_stable(&s.lab, &s.lab.all(), Duration::from_secs(T));
    s.stop();
}

#[test]
fn slow_storage_under_half_t_warns_without_fencing() {
    if skip() {
        return;
    }
    let (s, master) = start(3);
    let victim = non_master(&s.lab, master);
    // Above the warning threshold (2T/5), below the deadline (T/2).
    let latency = Duration::from_secs(T) * 44 / 100;
    s.mounts[victim]
        .set_mode(Mode::Delay(latency))
        .expect("delay mode");
    wait_warning(
        &s.lab,
        victim,
        WarningKind::StatefileApproachingTimeout,
        Duration::from_secs(2 * T),
    );
    assert_stable(&s.lab, &s.lab.all(), Duration::from_secs(2 * T));
    let r = s.lab.query(victim).expect("query");
    let max = r.statefile_latency.max_ms.unwrap_or(0.0);
    assert!(
        max >= latency.as_secs_f64() * 1e3 * 0.95,
        "the reported latency {max} ms should show the delay of {latency:?}"
    );
    s.mounts[victim].set_mode(Mode::Ok).expect("ok mode");
    s.stop();
}
