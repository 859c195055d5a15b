//! Forged fence requests and the peer warnings of issue 9 (sections 4 and
//! 7), on the real core in the simulator at T = 10 s.
//!
//! - A heartbeat forged with the pool secret, claiming that the master is
//!   deciding and asking a healthy host to fence, does not fence it: the
//!   request is not on the requester's statefile slot and the host survives
//!   by its own views. It is counted and reported with its sender.
//! - A real loser (cut from the network, statefile reachable) still fences
//!   on the survivors' request, read from their slots, before its lease runs
//!   out.
//! - A host with fencing disarmed that dies is reported by its peers as
//!   "silent while fencing disarmed" (once), and stays in their livesets.
//! - A host that hears a peer which does not hear it warns (`NotHeardBy`).

use ha_tests::sim::cluster::Cluster;
use ha_tests::sim::scenario::elapsed_s;
use xha::core::fence_request::Refusal;
use xha::core::{HostIndex, HostSet, Phase, Slot, Warning};

fn set(hosts: &[usize]) -> HostSet {
    hosts.iter().copied().collect()
}

/// Host `q`'s slot as on the statefile now, turned into a fence request
/// against `victim`: what a forger would send (a plausible next sequence).
fn forged_request(c: &Cluster, q: usize, victim: usize) -> Slot {
    let mut slot = c.statefiles[0].read().slots[q]
        .clone()
        .expect("the requester's slot decodes");
    slot.sequence += 1;
    slot.phase = Phase::Deciding;
    slot.fence_request = true;
    let mut proposed = slot.liveset;
    proposed.remove(victim);
    slot.proposed = proposed;
    slot.status.clear();
    slot
}

/// One forged packet, then one every heartbeat interval for 2 T: the
/// healthy victim never fences, nobody does, the liveset stays whole, and
/// the victim counts and reports the refusals with their sender.
#[test]
fn a_forged_fence_request_does_not_fence_a_healthy_host() {
    let mut c = Cluster::with_hosts(3, 91);
    c.form();
    let all = set(&[0, 1, 2]);
    let q = c.master().expect("a master");
    let victim = (0..3).find(|&h| h != q).expect("a non-master");
    let fault = c.now();
    let forged = forged_request(&c, q, victim);
    c.inject_heartbeat(victim, q, forged);
    c.run_for(c.timeouts().heartbeat_interval);
    assert!(
        c.is_up(victim),
        "one forged packet fenced h{victim}\n{}",
        c.report("(forgery)")
    );
    let rounds = 2 * c.t().as_millis() / c.timeouts().heartbeat_interval.as_millis();
    for _ in 0..rounds {
        let forged = forged_request(&c, q, victim);
        c.inject_heartbeat(victim, q, forged);
        c.run_for(c.timeouts().heartbeat_interval);
    }
    c.run_for(c.t());
    assert_eq!(
        c.fenced_after(fault),
        HostSet::EMPTY,
        "{}",
        c.report("(forgery)")
    );
    for h in 0..3 {
        assert_eq!(c.liveset(h), Some(all), "h{h}");
    }
    let status = c.node(victim).expect("victim up").status();
    assert!(
        status.fence_requests_refused >= 1,
        "refusals counted: {}",
        status.fence_requests_refused
    );
    assert_eq!(
        status.last_fence_request_refused,
        Some((HostIndex(q), Refusal::NotOnStatefile))
    );
    let warned: Vec<_> = c
        .warnings_after(victim, fault)
        .into_iter()
        .filter(|w| matches!(w, Warning::FenceRequestRefused { .. }))
        .collect();
    assert!(
        warned.contains(&Warning::FenceRequestRefused {
            by: HostIndex(q),
            why: Refusal::NotOnStatefile
        }),
        "{warned:?}"
    );
    // Rate-limited: at most one warning per T for 3 T of forgery.
    assert!(warned.len() <= 4, "{} warnings", warned.len());
    println!(
        "forged request: {} refusals counted, {} warnings, nobody fenced",
        status.fence_requests_refused,
        warned.len()
    );
    c.assert_safe();
}

/// A host cut from the network (statefile reachable) loses by its own views
/// and stops writing; the survivors decide and ask it to fence, and it
/// fences on that request (read from their slots) before its lease ends.
#[test]
fn a_real_partitioned_loser_still_fences_on_request() {
    let mut c = Cluster::with_hosts(3, 92);
    c.form();
    let fault = c.now();
    let loser = 2;
    c.host(loser).isolate();
    let fenced = c.run_until_pred(c.t() * 2, |c| c.fenced_since(loser, fault).is_some());
    assert!(
        fenced.is_some(),
        "h2 did not fence\n{}",
        c.report("(forgery)")
    );
    let tail = c.trace.render_tail();
    assert!(
        tail.contains("FENCE FenceRequested"),
        "h2 should fence on request, not by its lease:\n{tail}"
    );
    let d = c.fenced_since(loser, fault).expect("fenced");
    println!(
        "partitioned loser fenced on request after {:.3} s",
        elapsed_s(fault, d.at)
    );
    // Before its lease ends (0.7 T after its last write, which was at or
    // after the cut).
    assert!(elapsed_s(fault, d.at) < c.t().as_secs_f64() * 0.7 + 2.0);
    c.run_for(c.t() * 2);
    assert_eq!(c.fenced_after(fault), set(&[loser]));
    assert_eq!(c.liveset(0), Some(set(&[0, 1])));
    c.assert_safe();
}

/// A host with fencing disarmed crashes: its peers never remove it (its
/// lease proves nothing), and each reports it silent while disarmed, once,
/// within T plus a few intervals of the crash, for as long as it lasts.
#[test]
fn a_dead_disarmed_host_is_reported_silent() {
    let mut c = Cluster::with_hosts(3, 93);
    c.form();
    let all = set(&[0, 1, 2]);
    c.host(2).disarm_fencing();
    c.run_for(c.timeouts().heartbeat_interval * 5);
    let fault = c.now();
    c.host(2).crash();
    let silent = |c: &Cluster, h: usize| {
        c.node(h)
            .is_some_and(|n| n.status().hosts[2].silent_disarmed)
    };
    let bound = c.t() + c.t() / 2;
    let at = c.run_until_pred(bound, |c| silent(c, 0) && silent(c, 1));
    let at = at.unwrap_or_else(|| panic!("not reported silent\n{}", c.report("(forgery)")));
    println!(
        "disarmed host reported silent after {:.3} s",
        elapsed_s(fault, at)
    );
    c.run_for(c.t() * 4);
    for h in [0, 1] {
        assert!(silent(&c, h), "h{h} still reports it");
        assert_eq!(c.liveset(h), Some(all), "h{h} never removes it");
        let n = c
            .warnings_after(h, fault)
            .into_iter()
            .filter(|w| *w == Warning::SilentWhileDisarmed { host: HostIndex(2) })
            .count();
        assert_eq!(n, 1, "h{h} raised it {n} times");
    }
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
}

/// h1 hears h0 but h0 does not hear h1 (one-way link): h1 warns that h0
/// does not hear it, within the heartbeat timeout plus half of it.
#[test]
fn a_host_not_heard_by_a_peer_warns() {
    let mut c = Cluster::with_hosts(3, 94);
    c.form();
    let fault = c.now();
    c.network().cut_one_way(1, 0);
    let t = *c.timeouts();
    let bound = t.heartbeat_timeout * 2;
    let warned = c.run_until_pred(bound, |c| {
        c.warnings_after(1, fault).iter().any(|w| {
            matches!(
                w,
                Warning::NotHeardBy {
                    host: HostIndex(0),
                    ..
                }
            )
        })
    });
    let at = warned.unwrap_or_else(|| panic!("h1 did not warn\n{}", c.report("(forgery)")));
    println!("one-way link warned after {:.3} s", elapsed_s(fault, at));
    assert!(
        !c.warnings_after(0, fault)
            .iter()
            .any(|w| matches!(w, Warning::NotHeardBy { .. })),
        "h0 hears nothing from h1: no one-way warning there"
    );
}

/// A forged heartbeat claiming a slot sequence far beyond the sender's
/// (what a forger holding the secret can put in the slot it signs): the
/// real sender's next heartbeats, which carry a sequence at least the one on
/// its statefile slot, replace it at once, so the receiver never stops
/// hearing the real sender (before, they were ignored as "older" until the
/// heartbeat timeout, and the sender dropped out of the network view).
#[test]
fn an_inflated_slot_sequence_does_not_silence_the_real_sender() {
    let mut c = Cluster::with_hosts(3, 95);
    c.form();
    let fault = c.now();
    let mut forged = c.statefiles[0].read().slots[0]
        .clone()
        .expect("h0's slot decodes");
    forged.sequence = u64::MAX / 2;
    forged.status.clear();
    c.inject_heartbeat(2, 0, forged);
    let heard = |c: &Cluster| c.node(2).is_some_and(|n| n.status().hosts[0].heard);
    let lost = c.run_until_pred(c.t() / 2, |c| !heard(c));
    assert!(
        lost.is_none(),
        "h2 stopped hearing h0 {:.3} s after the forged packet",
        elapsed_s(fault, lost.unwrap_or(fault))
    );
    assert_eq!(c.fenced_after(fault), HostSet::EMPTY);
    c.assert_safe();
}
