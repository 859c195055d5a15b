//! Issue 9, section 2, in a real pool: a host whose watchdog dies must be
//! gone, workload included, before the survivors remove it. Three real
//! `xhad` hosts on loopback (T = 10 s), each with its `xha-supervisor`; a
//! `sleep` in one host's process group stands in for a VM. Before the fix,
//! killing that host's supervisor made its daemon exit 4 without fencing:
//! the survivors removed the host about 13 s later and the workload was
//! still running 28 s after that.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ha_tests::e2e::{liveset, logs, non_master, others, shrink_bound, spec, start_online};
use uuid::Uuid;
use xha::daemon::control::Status;
use xha_lab::{Lab, Signal};

const T: u64 = 10;

/// Poll until the workload has exited and the survivors have all published
/// the smaller liveset; returns (workload gone, liveset shrunk) after `t0`.
fn race(lab: &Lab, workload: &mut Child, survivors: &[usize], t0: Instant) -> (Duration, Duration) {
    let mut want: Vec<Uuid> = survivors.iter().map(|&i| lab.uuid(i)).collect();
    want.sort();
    let mut gone = None;
    let mut shrunk = vec![None; survivors.len()];
    while gone.is_none() || shrunk.iter().any(Option::is_none) {
        assert!(
            t0.elapsed() < shrink_bound(T),
            "after {:?}: workload gone {gone:?}, survivors shrunk {shrunk:?}\n{}",
            t0.elapsed(),
            logs(lab)
        );
        if gone.is_none()
            && let Some(s) = workload.try_wait().expect("try_wait")
        {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&s),
                Some(9),
                "{s:?}"
            );
            gone = Some(t0.elapsed());
        }
        for (k, &i) in survivors.iter().enumerate() {
            if shrunk[k].is_none()
                && let Ok(r) = lab.query(i)
                && r.status == Status::Online
                && liveset(&r) == want
            {
                shrunk[k] = Some(t0.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_shrink = shrunk.iter().flatten().min().copied().unwrap_or_default();
    (gone.unwrap_or_default(), first_shrink)
}

fn watchdog_dies(fault: impl FnOnce(&Lab, usize)) {
    let (lab, master) = start_online(spec(3, T));
    let victim = non_master(&lab, master);
    let survivors = others(&lab, &[victim]);
    let mut workload = Workload(
        lab.spawn_in_host(victim, Command::new("sleep").arg("600"))
            .expect("workload"),
    );
    let t0 = Instant::now();
    fault(&lab, victim);
    let (gone, shrunk) = race(&lab, &mut workload.0, &survivors, t0);
    eprintln!(
        "host {victim}: workload gone after {gone:?}, first survivor shrank after {shrunk:?}"
    );
    assert!(
        gone < shrunk,
        "the workload ({gone:?}) outlived the host's membership ({shrunk:?})\n{}",
        logs(&lab)
    );
    assert!(
        lab.daemon_exit(victim, Duration::from_secs(30)).is_some(),
        "the victim's xhad survived\n{}",
        logs(&lab)
    );
    lab.stop().expect("clean stop");
}

/// SIGKILL one host's supervisor: its group (daemon and workload) is gone
/// before any survivor removes it.
#[test]
fn killed_supervisor_takes_its_host_down_before_the_shrink() {
    watchdog_dies(|lab, victim| {
        lab.signal_supervisor(victim, Signal::SIGKILL)
            .expect("SIGKILL supervisor");
    });
}

/// SIGKILL one host's supervisor and daemon together: the reaper kills the
/// workload before any survivor removes the host.
#[test]
fn killed_supervisor_and_daemon_take_the_workload_down_before_the_shrink() {
    // Daemon first: the other order races with the reaper, which may have
    // killed (and the lab reaped) the daemon before the second signal.
    watchdog_dies(|lab, victim| {
        lab.signal_daemon(victim, Signal::SIGKILL)
            .expect("SIGKILL daemon");
        lab.signal_supervisor(victim, Signal::SIGKILL)
            .expect("SIGKILL supervisor");
    });
}

/// Kills the stand-in workload if a test fails before the host took it down
/// (before the fix, nothing else would).
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
