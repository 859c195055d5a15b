//! The liveness checks after the safety phase (someone survives, not all
//! fenced, a bounded outage) and the measured times (fault to shrink,
//! outage to shrink), each judged against the schedule that ran.

use xha::core::HostSet;

use super::super::checker::{Invariant, Life};
use super::super::cluster::Cluster;
use super::super::fault::{Control, Fault};
use super::super::time::Nanos;

/// No change of conditions in the `window` before `last`.
pub(super) fn previous_quiet(
    schedule: &[(Nanos, Fault)],
    last: Option<Nanos>,
    window: Nanos,
    big_t: Nanos,
) -> bool {
    let Some(last) = last else { return true };
    schedule
        .iter()
        .filter(|(at, f)| changes_conditions(f, big_t) && *at < last)
        .all(|(at, _)| *at + window <= last)
}

/// Whether a schedule entry may change who can survive: every fault, and
/// also loss above 10% or storage latency above 0.4 T (beyond the "no
/// fault" envelope). Control requests do not.
pub(super) fn changes_conditions(f: &Fault, big_t: Nanos) -> bool {
    match f {
        Fault::Control { .. } => false,
        Fault::NetQuality { loss_ppm, .. } => *loss_ppm > 100_000,
        Fault::StorageLatency { max, .. } => *max > big_t * 2 / 5,
        _ => true,
    }
}

/// Invariant 6: after the last fault (with quiet before and after), if some
/// host that was a member at the fault, was not crashed or frozen by the
/// schedule, and reaches a majority of the statefiles with a fully connected
/// group, then somebody still runs.
pub(super) fn check_someone_survives(
    cluster: &Cluster,
    members: HostSet,
    fault_at: Nanos,
) -> Option<(Invariant, String)> {
    let candidates: HostSet = members
        .iter()
        .filter(|&h| {
            let crashed_or_frozen = cluster
                .deaths
                .iter()
                .any(|d| d.host == h && d.at >= fault_at && d.life == Life::Crashed)
                || cluster.life(h) == Life::Frozen
                || cluster
                    .deaths
                    .iter()
                    .any(|d| d.host == h && d.at >= fault_at && d.life == Life::WatchdogFired);
            !crashed_or_frozen && cluster.has_statefile_majority(h)
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    // The survival rules keep a fully connected group; any single host is
    // one, so the invariant reduces to: one of the candidates' partition runs.
    if members.iter().any(|h| cluster.is_up(h)) {
        return None;
    }
    Some((
        Invariant::SomeoneSurvives,
        format!(
            "every member fenced although {candidates} kept the statefile (network whole: {})",
            cluster.net.is_whole()
        ),
    ))
}

/// Whether the schedule leaves every host's statefiles reachable in time:
/// no crash, freeze, storage error or hang, torn write, latency above T/4,
/// restart or control request. Only the network (and packet loss) changes.
pub(super) fn statefile_kept_by_all(schedule: &[(Nanos, Fault)], big_t: Nanos) -> bool {
    schedule.iter().all(|(_, f)| match f {
        Fault::Isolate(_)
        | Fault::Partition(_)
        | Fault::OneWay { .. }
        | Fault::HealNetwork
        | Fault::NetQuality { .. } => true,
        Fault::StorageLatency { max, .. } => *max <= big_t / 4,
        Fault::Control {
            request: Control::ProposeMaster(_),
            ..
        } => true,
        _ => false,
    })
}

/// Invariant 7: in a schedule where every host keeps its statefiles (see
/// `statefile_kept_by_all`), whatever the network does, at least one host
/// that was a member when the first fault struck is still running as a
/// member at the end of the safety phase. (Every partition then has a
/// candidate, so the survival rules always pick one: a pool that fenced
/// every host lost although one could have survived.)
pub(super) fn check_not_all_fenced(
    cluster: &Cluster,
    first_fault: Nanos,
) -> Option<(Invariant, String)> {
    let n = cluster.hosts.len();
    let running = (0..n).any(|h| {
        cluster.life(h) == Life::Running
            && cluster.hosts[h].member
            && cluster.node(h).is_some_and(|c| c.is_member())
    });
    if running {
        return None;
    }
    let dead: Vec<String> = cluster
        .deaths
        .iter()
        .filter(|d| d.at >= first_fault)
        .map(|d| format!("h{}:{:?}@{:.3}s", d.host, d.life, d.at as f64 / 1e9))
        .collect();
    Some((
        Invariant::NotAllFenced,
        format!(
            "every host fenced although all kept the statefile: {}",
            dead.join(" ")
        ),
    ))
}

/// For a network outage that does not heal: exactly one host runs, the
/// master at the fault (every partition is one host; the tie-break keeps
/// the master's side, or the lowest index without a master), and a master
/// keeps the lock.
pub(super) fn check_outage(
    cluster: &Cluster,
    schedule: &[(Nanos, Fault)],
    master: Option<usize>,
) -> Option<(Invariant, String)> {
    if schedule
        .iter()
        .any(|(_, f)| matches!(f, Fault::HealNetwork))
    {
        return None;
    }
    let up = cluster.up_hosts();
    let expected = master.unwrap_or(0);
    let ok = up == HostSet::single(expected) && (master.is_none() || cluster.master() == master);
    if ok {
        return None;
    }
    Some((
        Invariant::NotAllFenced,
        format!(
            "after a whole-network outage hosts {up} run (master before it: {master:?}); expected exactly the master"
        ),
    ))
}

/// From the last cut of an outage that does not heal, with storage latency
/// within the LAN range, to the master publishing its singleton liveset.
pub(super) fn measure_outage(
    cluster: &Cluster,
    schedule: &[(Nanos, Fault)],
    master: Option<usize>,
) -> Option<Nanos> {
    let m = master.unwrap_or(0);
    let slow = schedule
        .iter()
        .any(|(_, f)| matches!(f, Fault::StorageLatency { .. } | Fault::HealNetwork));
    if slow {
        return None;
    }
    let last_cut = schedule
        .iter()
        .filter(|(_, f)| f.is_disruptive())
        .map(|(at, _)| *at)
        .max()?;
    let alone = HostSet::single(m);
    cluster
        .publications
        .iter()
        .find(|p| p.host == m && p.at >= last_cut && p.liveset == alone)
        .map(|p| p.at - last_cut)
}

/// Time from the single fault to every surviving member having published a
/// liveset smaller than the whole pool.
pub(super) fn measure_shrink(
    cluster: &Cluster,
    schedule: &[(Nanos, Fault)],
    hosts: usize,
) -> Option<Nanos> {
    let (fault_at, _) = schedule.iter().find(|(_, f)| f.is_disruptive())?;
    let survivors: Vec<usize> = (0..hosts)
        .filter(|&h| cluster.life(h) == Life::Running && cluster.hosts[h].member)
        .collect();
    if survivors.is_empty() || survivors.len() == hosts {
        return None;
    }
    let mut worst = 0;
    for h in survivors {
        let first = cluster
            .publications
            .iter()
            .find(|p| p.host == h && p.at >= *fault_at && p.liveset.len() < hosts)?;
        worst = worst.max(first.at - fault_at);
    }
    Some(worst)
}
