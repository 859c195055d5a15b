//! Named fault scenarios, each a short spec, a script and assertions of who
//! survives, who fences and within what time. All run the real xha core in
//! the deterministic simulator at T = 10 s (so "T + 5 s" is 15 s), with 1%
//! clock drift and hosts booting within one second of each other.
//!
//! Each test prints its measured times (`--nocapture`); the table in
//! `docs/fault-handling.md` ("Scenarios") is taken from them.

use std::time::Duration;

use ha_tests::sim::checker::Life;
use ha_tests::sim::cluster::{Cluster, ClusterConfig};
use ha_tests::sim::scenario::elapsed_s;
use xha::core::{HostSet, Warning};

fn set(hosts: &[usize]) -> HostSet {
    hosts.iter().copied().collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The speed goal of issue 3: survivors publish the smaller liveset
/// within T + 5 s of a single-host fault.
const SHRINK_BOUND_S: f64 = 15.0;

/// Runs until every host of `survivors` publishes `expected` (bounded by
/// 3T); returns seconds since `fault`. Panics with the trace otherwise.
fn wait_shrink(c: &mut Cluster, survivors: HostSet, expected: HostSet, fault: u64) -> f64 {
    let limit = c.t() * 3;
    let done = c.run_until_pred(limit, |c| {
        c.published_by(survivors, expected, fault).is_some()
    });
    match done {
        Some(_) => {
            let at = c.published_by(survivors, expected, fault).unwrap_or(fault);
            elapsed_s(fault, at)
        }
        None => panic!(
            "{survivors} did not publish {expected} within 3T\n{}",
            c.report("(scenario)")
        ),
    }
}

/// A host crashes: the others shrink the liveset within T + 5 s; nobody
/// else fences.
#[test]
fn a_host_crashes() {
    let mut c = Cluster::with_hosts(4, 1);
    c.form();
    let fault = c.now();
    c.host(2).crash();
    let took = wait_shrink(&mut c, set(&[0, 1, 3]), set(&[0, 1, 3]), fault);
    println!("a_host_crashes: shrink after {took:.3} s");
    assert!(took <= SHRINK_BOUND_S, "took {took} s");
    c.run_for(c.t() * 3);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    assert_eq!(c.survivors(), set(&[0, 1, 3]));
    c.assert_safe();
}

/// The master crashes: the others shrink the liveset and a new master is
/// elected with a higher epoch.
#[test]
fn the_master_crashes() {
    let mut c = Cluster::with_hosts(4, 2);
    c.form();
    let m = c.master().expect("a master after formation");
    let epoch = c.master_epoch(m).unwrap_or(0);
    let fault = c.now();
    c.host(m).crash();
    let rest: HostSet = (0..4).filter(|&h| h != m).collect();
    let took = wait_shrink(&mut c, rest, rest, fault);
    let elected = c.run_until_pred(c.t() * 3, |c| c.master().is_some_and(|n| n != m));
    let new = c.master().expect("a new master");
    let new_epoch = c.master_epoch(new).unwrap_or(0);
    println!(
        "the_master_crashes: h{m} crashed; shrink after {took:.3} s, h{new} master (epoch {epoch} -> {new_epoch}) after {:.3} s",
        elapsed_s(fault, elected.unwrap_or(fault))
    );
    assert!(took <= SHRINK_BOUND_S);
    assert!(new_epoch > epoch, "epoch {epoch} -> {new_epoch}");
    assert!(rest.contains(new));
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    c.assert_safe();
}

/// One host loses only the network: it fences (it is the smaller
/// partition); the rest shrink within T + 5 s.
#[test]
fn one_host_loses_only_the_network() {
    let mut c = Cluster::with_hosts(4, 3);
    c.form();
    let fault = c.now();
    c.host(3).isolate();
    let took = wait_shrink(&mut c, set(&[0, 1, 2]), set(&[0, 1, 2]), fault);
    let d = c.fenced_since(3, fault).expect("h3 fenced");
    println!(
        "one_host_loses_only_the_network: h3 fenced after {:.3} s, shrink after {took:.3} s",
        elapsed_s(fault, d.at)
    );
    assert!(took <= SHRINK_BOUND_S);
    assert!(d.at <= fault + 15 * 1_000_000_000);
    assert_eq!(c.fenced_after(fault), set(&[3]));
    c.assert_safe();
}

/// One host loses only the statefile: it fences; the rest shrink.
#[test]
fn one_host_loses_only_the_statefile() {
    let mut c = Cluster::with_hosts(4, 4);
    c.form();
    let fault = c.now();
    c.host(1).storage().fail();
    let took = wait_shrink(&mut c, set(&[0, 2, 3]), set(&[0, 2, 3]), fault);
    let d = c.fenced_since(1, fault).expect("h1 fenced");
    println!(
        "one_host_loses_only_the_statefile: h1 fenced after {:.3} s ({:?}), shrink after {took:.3} s",
        elapsed_s(fault, d.at),
        d.life
    );
    assert!(took <= SHRINK_BOUND_S);
    assert_eq!(c.fenced_after(fault), set(&[1]));
    c.assert_safe();
}

/// A host's storage hangs (I/O never completes): same outcome as an
/// error, found by deadlines and the watchdog, not by an error code.
#[test]
fn one_host_storage_hangs() {
    let mut c = Cluster::with_hosts(3, 5);
    c.form();
    let fault = c.now();
    c.host(0).storage().hang();
    let took = wait_shrink(&mut c, set(&[1, 2]), set(&[1, 2]), fault);
    let d = c.fenced_since(0, fault).expect("h0 fenced");
    println!(
        "one_host_storage_hangs: h0 fenced after {:.3} s ({:?}), shrink after {took:.3} s",
        elapsed_s(fault, d.at),
        d.life
    );
    assert!(took <= SHRINK_BOUND_S);
    c.assert_safe();
}

/// Every host loses the statefile, the network is whole: nobody fences,
/// the liveset stays, and every host warns that it lost the statefile.
#[test]
fn every_host_loses_the_statefile() {
    let mut c = Cluster::with_hosts(4, 6);
    c.form();
    let fault = c.now();
    for h in 0..4 {
        c.host(h).storage().fail();
    }
    c.run_for(c.t() * 10);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    for h in 0..4 {
        assert_eq!(c.liveset(h), Some(HostSet::first_n(4)), "h{h}");
        assert!(
            c.node(h).is_some_and(|n| !n.has_statefile_access()),
            "h{h} still claims statefile access"
        );
        assert!(
            c.warnings_after(h, fault)
                .iter()
                .any(|w| matches!(w, Warning::StatefileLost)),
            "h{h} did not warn that it lost the statefile"
        );
    }
    println!("every_host_loses_the_statefile: nobody fenced in 10T");
    c.assert_safe();
}

/// A 2-host pool splits: exactly one side survives (the master's, the
/// documented tie-break); the other fences.
#[test]
fn two_host_split() {
    let mut c = Cluster::with_hosts(2, 7);
    c.form();
    let m = c.master().expect("master");
    let other = 1 - m;
    let fault = c.now();
    c.network().partition(&[&[0], &[1]]);
    let took = wait_shrink(&mut c, set(&[m]), set(&[m]), fault);
    let d = c.fenced_since(other, fault).expect("the other host fenced");
    println!(
        "two_host_split: master h{m} survives after {took:.3} s, h{other} fenced after {:.3} s",
        elapsed_s(fault, d.at)
    );
    assert!(took <= SHRINK_BOUND_S);
    assert_eq!(c.survivors(), set(&[m]));
    c.assert_safe();
}

/// 5 hosts split 2 / 3: the 3 survive, the 2 fence.
#[test]
fn three_two_split_of_five() {
    let mut c = Cluster::with_hosts(5, 8);
    c.form();
    let fault = c.now();
    c.network().partition(&[&[0, 1], &[2, 3, 4]]);
    let took = wait_shrink(&mut c, set(&[2, 3, 4]), set(&[2, 3, 4]), fault);
    println!("three_two_split_of_five: {{2,3,4}} shrink after {took:.3} s");
    assert!(took <= SHRINK_BOUND_S);
    c.run_for(c.t());
    assert_eq!(c.fenced_after(fault), set(&[0, 1]));
    assert_eq!(c.survivors(), set(&[2, 3, 4]));
    c.assert_safe();
}

/// An asymmetric link: h0 hears h1 but h1 does not hear h0. The survivors
/// form a fully connected set: h2 with one of h0, h1; the other fences.
#[test]
fn asymmetric_link() {
    let mut c = Cluster::with_hosts(3, 9);
    c.form();
    let fault = c.now();
    c.network().cut_one_way(0, 1);
    let done = c.run_until_pred(c.t() * 4, |c| {
        let up = c.survivors();
        up.len() == 2
            && (0..3)
                .filter(|&h| up.contains(h))
                .all(|h| c.liveset(h) == Some(up))
    });
    let up = c.survivors();
    println!(
        "asymmetric_link: {up} survive, shrink after {:.3} s",
        elapsed_s(fault, done.unwrap_or(fault))
    );
    assert!(
        done.is_some(),
        "no fully connected survivor set\n{}",
        c.report("(scenario)")
    );
    assert!(up.contains(2) && !(up.contains(0) && up.contains(1)));
    assert!(elapsed_s(fault, done.unwrap_or(fault)) <= SHRINK_BOUND_S);
    c.assert_safe();
}

/// A host freezes for longer than T: it cannot fence itself, so its
/// watchdog (kicked at most up to its lease end) resets it; the others
/// shrink within T + 5 s.
#[test]
fn freeze_longer_than_t() {
    let mut c = Cluster::with_hosts(3, 10);
    c.form();
    let fault = c.now();
    c.host(1).freeze();
    let took = wait_shrink(&mut c, set(&[0, 2]), set(&[0, 2]), fault);
    assert_eq!(c.life(1), Life::WatchdogFired);
    let d = c.fenced_since(1, fault).expect("h1 reset");
    let lease = c.timeouts().lease.as_secs_f64();
    println!(
        "freeze_longer_than_t: watchdog reset h1 after {:.3} s (lease {lease} s), shrink after {took:.3} s",
        elapsed_s(fault, d.at)
    );
    // The watchdog fires by the lease end (on the host's drifting clock).
    assert!(elapsed_s(fault, d.at) <= lease * 1.02);
    assert!(took <= SHRINK_BOUND_S);
    c.assert_safe();
}

/// A host freezes for T/2 (shorter than its remaining lease, 0.7 T minus
/// one write interval), then resumes: nothing happens, no fence, no
/// liveset change. (A freeze beyond the remaining lease is a
/// `freeze_longer_than_t`: the lease, not T, is the freeze tolerance.)
#[test]
fn short_freeze_changes_nothing() {
    let mut c = Cluster::with_hosts(3, 11);
    c.form();
    let fault = c.now();
    let pause = c.t() / 2;
    c.host(1).freeze();
    c.run_for(pause);
    c.host(1).thaw();
    c.run_for(c.t() * 5);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    for h in 0..3 {
        assert_eq!(c.liveset(h), Some(HostSet::first_n(3)));
    }
    println!("short_freeze_changes_nothing: {pause:?} freeze, nothing happened in 5T");
    c.assert_safe();
}

/// Storage latency just under T/2 on every host: latency warnings, no
/// fence, liveset unchanged.
#[test]
fn storage_latency_just_under_half_t() {
    let mut c = Cluster::with_hosts(3, 12);
    c.form();
    let fault = c.now();
    let slow = c.t() * 48 / 100;
    for h in 0..3 {
        c.host(h).storage().latency(slow, slow);
    }
    c.run_for(c.t() * 10);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    for h in 0..3 {
        assert_eq!(c.liveset(h), Some(HostSet::first_n(3)));
        assert!(
            c.warnings_after(h, fault)
                .iter()
                .any(|w| matches!(w, Warning::StatefileLatency { .. })),
            "h{h} did not warn about latency"
        );
    }
    println!("storage_latency_just_under_half_t: {slow:?} latency, warnings, no fence in 10T");
    c.assert_safe();
}

/// A host that fenced reboots and rejoins the liveset.
#[test]
fn fenced_host_reboots_and_rejoins() {
    let mut c = Cluster::with_hosts(3, 13);
    c.form();
    let fault = c.now();
    c.host(2).isolate();
    wait_shrink(&mut c, set(&[0, 1]), set(&[0, 1]), fault);
    assert!(c.fenced_since(2, fault).is_some());
    c.network().heal();
    let boot = c.now();
    c.host(2).restart();
    let all = HostSet::first_n(3);
    let joined = c.run_until_pred(c.t() * 6, |c| (0..3).all(|h| c.liveset(h) == Some(all)));
    println!(
        "fenced_host_reboots_and_rejoins: rejoined {:.3} s after reboot",
        elapsed_s(boot, joined.unwrap_or(boot))
    );
    assert!(
        joined.is_some(),
        "h2 did not rejoin\n{}",
        c.report("(scenario)")
    );
    c.assert_safe();
}

/// Fencing disarmed on every host, then a partition: nobody fences and
/// the liveset does not shrink.
#[test]
fn fencing_disarmed_during_a_partition() {
    let mut c = Cluster::with_hosts(3, 14);
    c.form();
    for h in 0..3 {
        c.host(h).disarm_fencing();
    }
    c.run_for(secs(1));
    let fault = c.now();
    c.network().partition(&[&[0, 1], &[2]]);
    c.run_for(c.t() * 6);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    assert_eq!(c.survivors(), HostSet::first_n(3));
    for h in 0..3 {
        assert_eq!(c.liveset(h), Some(HostSet::first_n(3)), "h{h}");
    }
    println!("fencing_disarmed_during_a_partition: nobody fenced in 6T");
    c.assert_safe();
}

/// 64 hosts, one crashes: the other 63 shrink within T + 5 s.
#[test]
fn sixty_four_hosts_one_crash() {
    let mut config = ClusterConfig::new(64, 15);
    config.boot_spread = 2_000_000_000;
    let mut c = Cluster::new(config);
    c.form();
    let fault = c.now();
    c.host(37).crash();
    let rest = HostSet::first_n(64).difference(set(&[37]));
    let took = wait_shrink(&mut c, rest, rest, fault);
    println!("sixty_four_hosts_one_crash: 63 hosts shrink after {took:.3} s");
    assert!(took <= SHRINK_BOUND_S);
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    c.assert_safe();
}

/// Three statefiles: a host that loses one of them keeps a majority and
/// nothing happens; a host that loses two (one failing, one hung) fences
/// and the rest shrink within T + 5 s.
#[test]
fn three_statefiles_majority() {
    use ha_tests::sim::fault::Fault;
    use ha_tests::sim::storage::PathMode;
    let mut config = ClusterConfig::new(3, 16);
    config.statefiles = 3;
    let mut c = Cluster::new(config);
    c.form();
    let fault = c.now();
    c.inject(Fault::Storage {
        host: 1,
        sf: 0,
        mode: PathMode::Failing,
    });
    c.run_for(c.t() * 5);
    assert_eq!(
        c.fenced_after(fault),
        HostSet::EMPTY,
        "{}",
        c.report("(scenario)")
    );
    assert_eq!(c.liveset(0), Some(HostSet::first_n(3)));
    let second = c.now();
    c.inject(Fault::Storage {
        host: 1,
        sf: 2,
        mode: PathMode::Hung,
    });
    let took = wait_shrink(&mut c, set(&[0, 2]), set(&[0, 2]), second);
    let d = c.fenced_since(1, second).expect("h1 fenced");
    println!(
        "three_statefiles_majority: one lost: nothing in 5T; two lost: h1 fenced after {:.3} s, shrink after {took:.3} s",
        elapsed_s(second, d.at)
    );
    // Lease anchors are kept per statefile: the loser's writes to the one
    // statefile it still reaches do not delay its removal.
    assert!(took <= SHRINK_BOUND_S, "took {took} s");
    c.assert_safe();
}

/// A host leaves cleanly (excluded, then its daemon stops and it powers
/// off): nobody fences, the others carry on with their master; when it
/// boots again it rejoins. Stopping an armed member that is not excluded
/// is refused.
#[test]
fn clean_shutdown_and_return() {
    let mut c = Cluster::with_hosts(3, 17);
    c.form();
    let start = c.now();
    c.host(2).stop();
    assert!(
        matches!(c.hosts[2].replies.last(), Some((_, Err(_)))),
        "stop of a non-excluded member must be refused"
    );
    assert!(c.is_up(2));
    c.host(2).set_excluded();
    c.run_for(secs(1));
    c.host(2).stop();
    assert_eq!(c.life(2), Life::ShutDown);
    c.run_for(c.t() * 3);
    assert_eq!(c.fenced_after(start), HostSet::EMPTY);
    assert_eq!(c.survivors(), set(&[0, 1]));
    assert!(c.master().is_some_and(|m| m < 2));
    let live0 = c.liveset(0);
    let boot = c.now();
    c.host(2).restart();
    let all = HostSet::first_n(3);
    let back = c.run_until_pred(c.t() * 6, |c| (0..3).all(|h| c.liveset(h) == Some(all)));
    println!(
        "clean_shutdown_and_return: h0's liveset 3T after the shutdown {live0:?}; rejoined {:.3} s after boot",
        elapsed_s(boot, back.unwrap_or(boot))
    );
    assert!(
        back.is_some(),
        "h2 did not rejoin\n{}",
        c.report("(scenario)")
    );
    c.assert_safe();
}

/// 32 hosts with 2% packet loss, then every host's storage hangs: the
/// network is whole, so nobody fences (the situation of ha-sim seed
/// 7100024, where every host of a 32-host pool was reset by its watchdog
/// before the core's fix).
#[test]
fn every_host_loses_the_statefile_in_a_lossy_32_host_pool() {
    let mut c = Cluster::with_hosts(32, 18);
    c.form();
    c.network().loss_percent(2);
    c.run_for(secs(2));
    let fault = c.now();
    for h in 0..32 {
        c.host(h).storage().hang();
    }
    c.run_for(c.t() * 4);
    assert_eq!(
        c.fenced_after(fault),
        HostSet::EMPTY,
        "{}",
        c.report("(scenario)")
    );
    assert_eq!(c.survivors(), HostSet::first_n(32));
    println!("every_host_loses_the_statefile_in_a_lossy_32_host_pool: nobody fenced in 4T");
    c.assert_safe();
}

/// A host's watchdog backend fails while armed (the supervisor dies): the
/// daemon's next kick fails, the core fences it at once (decided, not by a
/// watchdog that no longer exists) and the others shrink. A host whose
/// watchdog is not armed (fencing disarmed) loses it without effect.
#[test]
fn a_host_loses_its_watchdog() {
    let mut c = Cluster::with_hosts(4, 17);
    c.form();
    let fault = c.now();
    c.host(2).lose_watchdog();
    let took = wait_shrink(&mut c, set(&[0, 1, 3]), set(&[0, 1, 3]), fault);
    let d = c.fenced_since(2, fault).expect("h2 fenced");
    println!(
        "a_host_loses_its_watchdog: h2 fenced after {:.3} s ({:?}), shrink after {took:.3} s",
        elapsed_s(fault, d.at),
        d.life
    );
    assert_eq!(d.life, Life::Fenced, "decided by the core, not a watchdog");
    let kick = c.timeouts().kick_interval;
    assert!(
        elapsed_s(fault, d.at) <= 2.0 * kick.as_secs_f64(),
        "fenced at the next kick, not after {:.3} s",
        elapsed_s(fault, d.at)
    );
    assert!(took <= SHRINK_BOUND_S, "took {took} s");
    assert_eq!(c.fenced_after(fault), set(&[2]));
    c.host(0).disarm_fencing();
    c.run_for(c.t());
    let second = c.now();
    c.host(0).lose_watchdog();
    c.run_for(c.t() * 3);
    assert!(c.is_up(0), "{}", c.report("(scenario)"));
    assert_eq!(c.fenced_after(second), HostSet::EMPTY);
    c.assert_safe();
}

/// One host's path to one of three statefiles hangs for 3T, then recovers:
/// the host keeps a majority and nobody fences. Meanwhile the daemon's I/O
/// paths run: reads are abandoned at their deadline, requests beyond the
/// path's capacity are refused at once, and the stuck reads complete late
/// after the recovery and are ignored.
#[test]
fn a_statefile_path_hangs_and_recovers() {
    use ha_tests::sim::fault::Fault;
    use ha_tests::sim::storage::PathMode;
    let mut config = ClusterConfig::new(3, 18);
    config.statefiles = 3;
    let mut c = Cluster::new(config);
    c.form();
    let fault = c.now();
    let path = |mode| Fault::Storage {
        host: 1,
        sf: 0,
        mode,
    };
    c.inject(path(PathMode::Hung));
    c.run_for(c.t() * 3);
    c.inject(path(PathMode::Healthy));
    c.run_for(c.t() * 2);
    let io = c.hosts[1].io;
    println!("a_statefile_path_hangs_and_recovers: h1 {io:?}, nobody fenced in 5T");
    assert_eq!(
        c.fenced_after(fault),
        HostSet::EMPTY,
        "{}",
        c.report("(scenario)")
    );
    assert_eq!(c.liveset(0), Some(HostSet::first_n(3)));
    assert!(io.abandoned > 0 && io.refused > 0 && io.late > 0, "{io:?}");
    c.assert_safe();
}
