//! End-to-end: the statefile reformatted under a live pool (issue 9,
//! section 6). Real `xhad` processes on loopback, one shared file-backed
//! statefile, T = 10 s.
//!
//! Formatting the statefile with a new generation (what
//! `sr-heartbeat format-statefile --force` does) makes it "not ours" to every
//! daemon: each re-validates the header with every read (several times per
//! T), logs one warning, and from then on treats the statefile as lost. Every
//! host sees the same, so nobody fences (statefile-lost rule). The old pool
//! never writes its pool block over the new one: after its master is killed
//! (SIGKILL), the new statefile's pool block is still the one the format
//! wrote.

use std::path::Path;
use std::time::{Duration, Instant};

use ha_tests::e2e::{assert_stable, logs, spec, start_online};
use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::{PoolState, Statefile};
use uuid::Uuid;
use xha::daemon::control::WarningKind;
use xha_lab::{Lab, Signal};

const T: u64 = 10;

/// The one warning each daemon logs when the header is no longer ours. Its
/// first half says what the read found: usually "this statefile is not
/// ours" (another generation), but a read that lands while the format is
/// still writing finds "not formatted (header block is all zero)"; both are
/// the same verdict.
const NOT_OURS: &str = "treating this statefile as lost";

fn reformat(path: &Path, generation: Uuid, hosts: usize) {
    let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("open the statefile");
    Statefile::format(dev, generation, hosts).expect("reformat the statefile");
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Wait until every host of `hosts` has logged `needle`.
fn wait_logged(lab: &Lab, hosts: &[usize], needle: &str, bound: Duration) {
    let start = Instant::now();
    while !hosts.iter().all(|&i| lab.log(i).contains(needle)) {
        assert!(
            start.elapsed() < bound,
            "not every host logged {needle:?} within {bound:?}\n{}",
            logs(lab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn reformatted_statefile_is_lost_to_the_old_pool_and_never_written_by_it() {
    let (lab, master) = start_online(spec(3, T));
    let all = lab.all();
    let path = lab.statefile().to_path_buf();
    let old = lab.pool_generation();
    let new = Uuid::new_v4();
    reformat(&path, new, 3);

    // Every daemon notices within one read interval; T is a generous bound.
    wait_logged(&lab, &all, NOT_OURS, Duration::from_secs(T));
    for &i in &all {
        let start = Instant::now();
        while !lab.query(i).is_ok_and(|r| {
            r.warnings
                .iter()
                .any(|w| w.kind == WarningKind::StatefileLost)
        }) {
            assert!(
                start.elapsed() < Duration::from_secs(T),
                "host {i} should report statefile-lost\n{}",
                logs(&lab)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Nobody fences: every host lost the statefile the same way.
    assert_stable(&lab, &all, Duration::from_secs(2 * T));
    // One warning each, not a flood (the reads go on five times a second).
    for &i in &all {
        let log = lab.log(i);
        assert_eq!(
            count(&log, NOT_OURS),
            1,
            "host {i} should warn exactly once\n{log}"
        );
        assert!(
            count(&log, "pool block is corrupt") <= 1,
            "host {i} floods its log\n{log}"
        );
    }

    // Kill the old pool's master. The survivors cannot tell a dead host
    // from a partition without a statefile (they may fence when their
    // network rounds stop completing), but none may write the new pool's
    // statefile: wait well past the point where, before the fix, a new
    // master wrote its pool block (T after the kill), then read it.
    lab.kill_host(master, Signal::SIGKILL)
        .expect("kill the master");
    std::thread::sleep(Duration::from_secs(2 * T));
    let sf = Statefile::open(BlockDevice::open(&path, OpenMode::ReadOnly).expect("open"))
        .expect("the new statefile still opens");
    assert_eq!(sf.generation(), new);
    let pool = sf.read_pool().unwrap_or_else(|e| {
        panic!(
            "the new pool block must decode as the new generation's (old generation {old}): {e}\n{}",
            logs(&lab)
        )
    });
    assert_eq!(
        (pool.state, pool.master, pool.master_epoch, pool.update_seq),
        (PoolState::Init, None, 0, 0),
        "the new pool block must be as formatted\n{}",
        logs(&lab)
    );
    eprintln!(
        "after the kill: {}",
        all.iter()
            .map(|&i| format!(
                "host {i} supervisor {:?}",
                lab.supervisor_exit(i, Duration::ZERO)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(lab);
}
