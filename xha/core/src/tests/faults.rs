//! One fault at a time: crashes, lost network or statefile, splits, reboots,
//! freezes and slow storage; each with its timing.

use super::*;

#[test]
fn a_crashed_host_is_removed_within_t_plus_five() {
    let mut c = formed(3);
    let fault = c.now;
    c.kill(2, Life::Crashed);
    c.run_for(Duration::from_secs(30));
    for h in [0, 1] {
        assert_eq!(c.liveset(h), set(&[0, 1]));
        let took = c.shrink_time(h, 2, fault).unwrap();
        assert!(took <= T + Duration::from_secs(5), "took {took:?}");
        // Never before the lease argument allows: the crashed host's last
        // write may precede the crash by one interval.
        let earliest = c.timeouts.peers_may_act - c.timeouts.statefile_interval;
        assert!(took >= earliest, "took {took:?}");
    }
    assert_eq!(c.fences(), 0);
}

#[test]
fn a_host_that_loses_only_the_network_fences() {
    let mut c = formed(3);
    let fault = c.now;
    c.hosts[1].net_ok = false;
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.hosts[1].life, Life::Fenced);
    for h in [0, 2] {
        assert_eq!(c.liveset(h), set(&[0, 2]));
        let took = c.shrink_time(h, 1, fault).unwrap();
        assert!(took <= T + Duration::from_secs(5), "took {took:?}");
    }
}

#[test]
fn a_host_that_loses_only_the_statefile_fences() {
    let mut c = formed(3);
    let fault = c.now;
    c.hosts[2].disk_ok = false;
    c.run_for(Duration::from_secs(30));
    // Reset at its lease end (it cannot read the survivors' request on the
    // statefile, so it does not fence on their word: core::fence_request).
    assert!(matches!(
        c.hosts[2].life,
        Life::Fenced | Life::WatchdogFired
    ));
    for h in [0, 1] {
        assert_eq!(c.liveset(h), set(&[0, 1]));
        let took = c.shrink_time(h, 2, fault).unwrap();
        assert!(took <= T + Duration::from_secs(5), "took {took:?}");
    }
}

#[test]
fn every_host_loses_the_statefile_and_nobody_fences() {
    let mut c = formed(3);
    for h in 0..3 {
        c.hosts[h].disk_ok = false;
    }
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.fences(), 0);
    for h in 0..3 {
        assert_eq!(c.liveset(h), HostSet::first_n(3));
        assert!(!c.node(h).has_statefile_access());
    }
    // The statefile comes back: still nobody fences.
    for h in 0..3 {
        c.hosts[h].disk_ok = true;
    }
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.fences(), 0);
}

#[test]
fn a_two_host_split_keeps_the_master() {
    let mut c = formed(2);
    c.hosts[1].net_ok = false;
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.hosts[1].life, Life::Fenced);
    assert_eq!(c.liveset(0), set(&[0]));
    assert_eq!(c.masters(), vec![0]);
}

#[test]
fn a_fenced_host_reboots_and_rejoins() {
    let mut c = formed(3);
    c.hosts[2].disk_ok = false;
    c.run_for(Duration::from_secs(30));
    // Reset at its lease end (it cannot read the survivors' request on the
    // statefile, so it does not fence on their word: core::fence_request).
    assert!(matches!(
        c.hosts[2].life,
        Life::Fenced | Life::WatchdogFired
    ));
    c.hosts[2].disk_ok = true;
    c.boot(2);
    c.run_for(Duration::from_secs(10));
    for h in 0..3 {
        assert_eq!(c.liveset(h), HostSet::first_n(3), "host {h}");
    }
    assert_eq!(c.masters(), vec![0]);
}

#[test]
fn a_host_rebooting_before_it_was_removed_waits_to_be_removed() {
    let mut c = formed(3);
    c.kill(2, Life::Crashed);
    c.run_for(Duration::from_secs(2));
    c.boot(2);
    c.run_for(Duration::from_secs(40));
    for h in 0..3 {
        assert_eq!(c.liveset(h), HostSet::first_n(3), "host {h}");
    }
    assert!(c.hosts[0].published.iter().any(|&(_, l)| !l.contains(2)));
}

#[test]
fn a_short_freeze_is_tolerated_and_a_long_one_fences() {
    let mut c = formed(3);
    // Freeze host 1 for T/2: its events wait, its watchdog keeps running.
    c.freeze(1);
    c.run_for(T / 2);
    assert!(c.up(1), "watchdog fired during a T/2 freeze");
    c.thaw(1);
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.fences(), 0);
    assert_eq!(c.liveset(0), HostSet::first_n(3));
    // A freeze longer than the lease ends with the watchdog.
    let fault = c.now;
    c.freeze(1);
    c.run_for(T);
    assert_eq!(c.hosts[1].life, Life::WatchdogFired);
    let died = c.hosts[1].died_at.unwrap().saturating_since(fault);
    assert!(died <= c.timeouts.lease, "watchdog fired after {died:?}");
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.liveset(0), set(&[0, 2]));
    let took = c.shrink_time(0, 1, fault).unwrap();
    assert!(took <= T + Duration::from_secs(5), "took {took:?}");
}

#[test]
fn slow_storage_under_half_t_warns_and_does_not_fence() {
    // Every statefile I/O of every host takes just under T/2.
    let mut c = formed(3);
    for h in 0..3 {
        c.hosts[h].io_latency = T / 2 - Duration::from_millis(20);
    }
    c.run_for(Duration::from_secs(120));
    assert_eq!(c.fences(), 0);
    for h in 0..3 {
        assert_eq!(c.liveset(h), HostSet::first_n(3));
        assert!(c.hosts[h].warnings > 0, "host {h} did not warn");
        assert!(c.node(h).has_statefile_access());
    }
    // ...and a crash is still handled, later by at most the I/O latency.
    let fault = c.now;
    c.kill(2, Life::Crashed);
    c.run_for(Duration::from_secs(40));
    assert_eq!(c.liveset(0), set(&[0, 1]));
    // Observation, proof read and liveset write each take one slow I/O.
    let took = c.shrink_time(0, 2, fault).unwrap();
    let bound = c.timeouts.peers_may_act + T / 2 * 4 + Duration::from_secs(1);
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
}

#[test]
fn sixty_four_hosts_one_crash() {
    let mut c = Cluster::new(64);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.liveset(5), HostSet::first_n(64));
    let fault = c.now;
    c.kill(40, Life::Crashed);
    c.run_for(Duration::from_secs(20));
    let took = c.shrink_time(0, 40, fault).unwrap();
    assert!(took <= T + Duration::from_secs(5), "took {took:?}");
    assert_eq!(c.fences(), 0);
}
