//! Shared pieces of the end-to-end tests (`tests/tests/e2e_*.rs`): where the
//! real binaries are, and the observations every fault test makes on a
//! running [`Lab`] of real `xhad` processes.
//!
//! The binaries `xhad` and `xha-supervisor` belong to the `xha` package;
//! `cargo test --workspace` builds them into the same target directory as
//! these tests (when only this package is tested, build them first with
//! `cargo build -p xha --bins`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::{Slot, Statefile};
use uuid::Uuid;
use xha::daemon::config::PoolSecret;
use xha::daemon::control::{LivesetReport, Status};
use xha::daemon::wire::Codec;
use xha_lab::{Lab, LabSpec};

/// The directory holding `xhad` and `xha-supervisor` for this test run:
/// the profile directory of this test binary (`target/<profile>/`).
///
/// # Panics
/// When the binaries are missing there (a setup failure, with the fix).
pub fn bin_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().expect("current_exe");
        let dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test binary is in target/<profile>/deps")
            .to_path_buf();
        if let Some(missing) = xha_lab::missing_bin(&dir) {
            panic!(
                "{} is missing: run `cargo test --workspace` (which builds the xha binaries) or `cargo build -p xha --bins` first",
                missing.display()
            );
        }
        dir
    })
    .clone()
}

/// A lab spec for `hosts` hosts with base timeout `t` seconds.
#[must_use]
pub fn spec(hosts: usize, t: u64) -> LabSpec {
    let mut s = LabSpec::new(hosts, t, &bin_dir());
    // Tests run on several threads; each lab lives on its test's thread.
    s.die_with_parent = true;
    s
}

/// Start a lab from `spec` and wait until every host is online and they
/// agree on a master; returns the lab and the master's index. Panics with
/// every host's log when that does not happen within [`online_bound`].
#[must_use]
pub fn start_online(spec: LabSpec) -> (Lab, usize) {
    let t = spec.timeout_s;
    let lab = Lab::start(spec).expect("start the lab");
    lab.wait_all_online(online_bound(t))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    let master = lab
        .wait_master(&lab.all(), online_bound(t))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    (lab, master)
}

/// A host of the lab other than `master`.
#[must_use]
pub fn non_master(lab: &Lab, master: usize) -> usize {
    lab.all()
        .into_iter()
        .find(|&i| i != master)
        .expect("a lab of two or more hosts")
}

/// Generous bound for a whole pool to come online (real processes on a
/// loaded 2-core machine): formation takes a few heartbeat rounds and a
/// settle time.
#[must_use]
pub fn online_bound(t: u64) -> Duration {
    Duration::from_secs(5 * t + 30)
}

/// The fault-to-shrink bound the core guarantees (`docs/fault-handling.md`:
/// about 1.45 T at worst in the simulator), with a generous margin for
/// real processes on a shared machine.
#[must_use]
pub fn shrink_bound(t: u64) -> Duration {
    Duration::from_secs(25 * t / 10)
}

/// The liveset of a report, sorted.
#[must_use]
pub fn liveset(r: &LivesetReport) -> Vec<Uuid> {
    let mut v = r.liveset.clone();
    v.sort();
    v
}

/// Wait until every one of `survivors` reports `online` with exactly the
/// survivors in its liveset; returns the time since `since` at which the
/// last one did. Panics with every host's log on timeout.
pub fn wait_shrunk(lab: &Lab, survivors: &[usize], since: Instant, bound: Duration) -> Duration {
    let mut want: Vec<Uuid> = survivors.iter().map(|&i| lab.uuid(i)).collect();
    want.sort();
    let mut done = vec![None; survivors.len()];
    loop {
        for (k, &i) in survivors.iter().enumerate() {
            if done[k].is_some() {
                continue;
            }
            if let Ok(r) = lab.query(i)
                && r.status == Status::Online
                && liveset(&r) == want
            {
                done[k] = Some(since.elapsed());
            }
        }
        if done.iter().all(Option::is_some) {
            return done.iter().flatten().copied().max().unwrap_or_default();
        }
        if since.elapsed() > bound {
            panic!(
                "the survivors {survivors:?} did not publish the liveset {want:?} within {bound:?}\n{}",
                logs(lab)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every host's daemon and supervisor log tails, for failure messages.
#[must_use]
pub fn logs(lab: &Lab) -> String {
    (0..lab.len())
        .map(|i| {
            format!(
                "----- host {i} xhad -----\n{}\n----- host {i} supervisor -----\n{}",
                lab.log(i),
                lab.supervisor_log(i)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The hosts of the lab other than `out`.
#[must_use]
pub fn others(lab: &Lab, out: &[usize]) -> Vec<usize> {
    lab.all().into_iter().filter(|i| !out.contains(i)).collect()
}

/// Assert that host `i`'s supervisor fenced it (exit status 3) within
/// `bound`.
pub fn assert_fenced(lab: &Lab, i: usize, bound: Duration) {
    let status = lab.supervisor_exit(i, bound);
    let code = status.and_then(|s| s.code());
    assert_eq!(
        code,
        Some(3),
        "host {i}'s supervisor should have fenced it (exit 3), got {status:?}\n{}",
        logs(lab)
    );
    assert!(
        lab.supervisor_log(i).contains("FENCED"),
        "host {i}'s supervisor log should say FENCED\n{}",
        lab.supervisor_log(i)
    );
}

/// Assert that no host of `hosts` fenced and each is still online with all
/// of `hosts` in its liveset, checking repeatedly for `during`.
pub fn assert_stable(lab: &Lab, hosts: &[usize], during: Duration) {
    let mut want: Vec<Uuid> = hosts.iter().map(|&i| lab.uuid(i)).collect();
    want.sort();
    let start = Instant::now();
    while start.elapsed() < during {
        for &i in hosts {
            let r = lab
                .query(i)
                .unwrap_or_else(|e| panic!("host {i} does not answer: {e}\n{}", logs(lab)));
            assert!(
                r.status == Status::Online && liveset(&r) == want,
                "host {i} should stay online with {want:?}, reports {:?} {:?}\n{}",
                r.status,
                r.liveset,
                logs(lab)
            );
            assert!(
                lab.supervisor_exit(i, Duration::ZERO).is_none(),
                "host {i}'s supervisor exited\n{}",
                logs(lab)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What a forger holding the pool secret needs to speak for host `q`: a
/// codec signing as `q`, `q`'s running incarnation, and `q`'s slot as on
/// the statefile `statefile` now (a plausible state to alter). For the
/// forgery tests (`e2e_loopback.rs`, `e2e_replay.rs`).
pub fn forger(lab: &Lab, q: usize, statefile: &Path) -> (Codec, u64, Slot) {
    let secret = std::fs::read(lab.dir().join("pool-secret")).expect("read the lab secret");
    let secret = PoolSecret::new(secret).expect("secret");
    let hosts: Vec<_> = lab.all().into_iter().map(|i| lab.uuid(i)).collect();
    let codec = Codec::new(lab.pool_generation(), hosts, q, &secret);
    let incarnation: u64 = std::fs::read_to_string(lab.info(q).dir.join("state/incarnation"))
        .expect("the incarnation file")
        .trim()
        .parse()
        .expect("a number");
    let dev = BlockDevice::open(statefile, OpenMode::ReadOnly).expect("open the statefile");
    let sf = Statefile::open(dev).expect("a valid statefile");
    let index = u16::try_from(q).expect("small index");
    let mut slot = sf
        .read_slot(index)
        .expect("read")
        .expect("the slot decodes");
    slot.status.clear();
    (codec, incarnation, slot)
}

/// Poll host `i`'s report until `pred` holds or `bound` passes.
pub fn poll_report(
    lab: &Lab,
    i: usize,
    bound: Duration,
    mut pred: impl FnMut(&LivesetReport) -> bool,
) -> Option<LivesetReport> {
    let deadline = Instant::now() + bound;
    loop {
        if let Ok(r) = lab.query(i)
            && pred(&r)
        {
            return Some(r);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
