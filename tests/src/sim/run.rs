//! One randomised run from a seed: the seed picks the pool, a fault
//! schedule and its class; the run forms the pool, applies the schedule
//! (safety phase, invariants after every step), heals everything and checks
//! that the pool converges (liveness phase).

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xha::core::HostSet;

use super::checker::{Invariant, Life, Violation};
use super::cluster::{Cluster, ClusterConfig};
use super::fault::{Control, Fault};
use super::storage::PathMode;
use super::time::{MILLISECOND, Nanos};

/// What a run may choose.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// A fixed pool size, or `None` to draw one (mostly small, up to 64).
    pub hosts: Option<usize>,
    /// Upper bound on drawn pool sizes.
    pub max_hosts: usize,
    pub base_timeout: Duration,
    pub keep_full_trace: bool,
    /// Length of the safety phase, in units of T.
    pub safety_t: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            hosts: None,
            max_hosts: 64,
            base_timeout: Duration::from_secs(10),
            keep_full_trace: false,
            safety_t: 12,
        }
    }
}

/// The kind of schedule, which decides the extra invariants that apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Only latency below T/2, packet loss up to 10%, duplication, delay
    /// and drift: nobody may fence (invariant 4).
    Benign,
    /// Every host loses the statefile, the network stays whole: nobody may
    /// fence (invariant 5).
    AllLoseStatefile,
    /// One host fails (crash, long freeze, network loss, statefile loss,
    /// one-way cut): the rest shrink the liveset; the time is measured.
    SingleHost,
    /// Several random faults of every kind.
    Chaos,
    /// The switch fails: every link cut at once, or the network splitting
    /// into singletons one link at a time within T/10; storage stays
    /// reachable (latency up to T/4 in some); in some the network heals a
    /// little later. Exactly the master's singleton must survive when the
    /// network stays cut (invariant 7); the outage-to-shrink time is
    /// measured.
    NetworkOutage,
}

/// The result of one run.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub seed: u64,
    pub hosts: usize,
    pub class: Class,
    /// What the schedule did, for humans.
    pub schedule: Vec<(Nanos, Fault)>,
    pub violations: Vec<Violation>,
    pub fences: usize,
    /// For a single-host failure: from the fault to every survivor having
    /// published the smaller liveset.
    pub fault_to_shrink: Option<Nanos>,
    /// For a network outage that does not heal, with healthy storage: from
    /// the last cut to the master publishing itself alone.
    pub outage_to_shrink: Option<Nanos>,
    /// Hash of the whole trace (determinism check).
    pub trace_hash: u64,
    pub steps: u64,
    /// Violations, the last events and the replay command (on failure).
    pub report: Option<String>,
}

/// The command that replays `seed` with `opts`.
#[must_use]
pub fn replay_command(seed: u64, opts: &RunOptions) -> String {
    let mut s = format!(
        "cargo run --release -p ha_tests --bin ha-sim -- --seeds 1 --seed-start {seed} --timeout {}",
        opts.base_timeout.as_secs()
    );
    match opts.hosts {
        Some(h) => s.push_str(&format!(" --hosts {h}")),
        None if opts.max_hosts != 64 => s.push_str(&format!(" --max-hosts {}", opts.max_hosts)),
        None => {}
    }
    if opts.safety_t != 12 {
        s.push_str(&format!(" --safety-t {}", opts.safety_t));
    }
    s.push_str(" --verbose");
    s
}

fn draw_hosts(rng: &mut ChaCha8Rng, max: usize) -> usize {
    let n = match rng.gen_range(0..100) {
        0..=59 => rng.gen_range(2..=5),
        60..=84 => rng.gen_range(6..=12),
        85..=94 => rng.gen_range(13..=32),
        95..=96 => 1,
        _ => rng.gen_range(33..=64),
    };
    n.clamp(1, max.max(1))
}

fn draw_class(rng: &mut ChaCha8Rng) -> Class {
    match rng.gen_range(0..100) {
        0..=19 => Class::Benign,
        20..=29 => Class::AllLoseStatefile,
        // Carved out of the single-host range so that every other seed keeps
        // its class and schedule (the regression seeds replay unchanged).
        30..=54 => Class::SingleHost,
        55..=64 => Class::NetworkOutage,
        _ => Class::Chaos,
    }
}

/// Duration helper in nanoseconds.
fn ns(d: Duration) -> Nanos {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX / 4)
}

/// Runs one seed.
#[must_use]
pub fn run_seed(seed: u64, opts: &RunOptions) -> RunOutcome {
    // Separate streams: the schedule does not shift when the simulation
    // consumes a different amount of randomness.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5c4e_d01e);
    let hosts = opts
        .hosts
        .unwrap_or_else(|| draw_hosts(&mut rng, opts.max_hosts));
    let class = draw_class(&mut rng);
    let mut config = ClusterConfig::new(hosts, seed);
    config.base_timeout = opts.base_timeout;
    config.keep_full_trace = opts.keep_full_trace;
    config.statefiles = if rng.gen_range(0..10) == 0 { 3 } else { 1 };
    if class == Class::Chaos && rng.gen_bool(0.5) {
        // Fenced hosts reboot during the safety phase and rejoin.
        let t = ns(opts.base_timeout);
        config.reboot_after = Some((t / 2, 6 * t));
    }
    let mut cluster = Cluster::new(config);
    let t = *cluster.timeouts();
    let big_t = ns(t.base);

    // Formation: no faults; every host must join within the bound.
    let formed = cluster.run_until_pred(Duration::from_nanos(6 * big_t), |c| {
        let all = HostSet::first_n(hosts);
        (0..hosts).all(|h| c.liveset(h) == Some(all))
    });
    let mut outcome = RunOutcome {
        seed,
        hosts,
        class,
        schedule: Vec::new(),
        violations: Vec::new(),
        fences: 0,
        fault_to_shrink: None,
        outage_to_shrink: None,
        trace_hash: 0,
        steps: 0,
        report: None,
    };
    if formed.is_none() {
        let views: Vec<String> = (0..hosts)
            .map(|h| format!("h{h}:{:?}", cluster.liveset(h)))
            .collect();
        let msg = format!("the pool did not form within 6T: {}", views.join(" "));
        return finish(
            cluster,
            outcome,
            opts,
            Some((Invariant::LivesetEvolution, msg)),
        );
    }

    let t0 = cluster.now();
    let safety = opts.safety_t.max(6) * big_t;
    let schedule = build_schedule(
        &mut rng,
        class,
        hosts,
        cluster.config.statefiles,
        big_t,
        t0,
        safety,
    );
    if matches!(class, Class::Benign) {
        cluster.forbid_fencing(Some(Invariant::NoFaultNoFence));
    }
    if matches!(class, Class::AllLoseStatefile) {
        cluster.forbid_fencing(Some(Invariant::StatefileLostNoFence));
    }
    for (at, f) in &schedule {
        cluster.schedule(*at, f.clone());
    }
    outcome.schedule = schedule.clone();

    // Invariant 6 after the last disruptive fault, if the pool stayed quiet.
    // Any change of conditions counts here (latency beyond the deadline or
    // heavy loss are faults too), so the check only runs after a quiet 4T.
    let last_fault = schedule
        .iter()
        .filter(|(_, f)| changes_conditions(f, big_t))
        .map(|(at, _)| *at)
        .max();
    let check6_at = t0 + safety;
    let mut members_at_fault = None;
    let first_fault = schedule
        .iter()
        .find(|(_, f)| f.is_disruptive())
        .map(|(at, _)| *at);
    if let Some(ff) = first_fault {
        cluster.run_until(ff.saturating_sub(1));
    }
    let master_at_fault = cluster.master();
    if let Some(lf) = last_fault {
        cluster.run_until(lf.saturating_sub(1));
        members_at_fault = Some(
            (0..hosts)
                .filter(|&h| cluster.is_up(h) && cluster.hosts[h].member)
                .collect::<HostSet>(),
        );
    }
    cluster.run_until(check6_at);
    let quiet = last_fault.is_some_and(|lf| check6_at >= lf + 4 * big_t)
        && previous_quiet(&schedule, last_fault, 4 * big_t, big_t);
    let mut liveness_failure = None;
    if let (true, Some(members)) = (quiet, members_at_fault) {
        liveness_failure = check_someone_survives(&cluster, members, last_fault.unwrap_or(0));
    }
    if liveness_failure.is_none() && statefile_kept_by_all(&schedule, big_t) {
        liveness_failure = check_not_all_fenced(&cluster, first_fault.unwrap_or(t0));
    }
    if liveness_failure.is_none() && class == Class::NetworkOutage {
        liveness_failure = check_outage(&cluster, &schedule, master_at_fault);
        if liveness_failure.is_none() {
            outcome.outage_to_shrink = measure_outage(&cluster, &schedule, master_at_fault);
        }
    }

    if class == Class::SingleHost {
        outcome.fault_to_shrink = measure_shrink(&cluster, &schedule, hosts);
    }
    cluster.forbid_fencing(None);

    // Liveness: heal everything, restart the dead, and converge.
    if liveness_failure.is_none() {
        heal_all(&mut cluster, &mut rng, big_t);
        let bound = Duration::from_nanos(10 * big_t);
        let converged = cluster.run_until_pred(bound, converged);
        if converged.is_none() {
            let views: Vec<String> = (0..hosts)
                .map(|h| {
                    format!(
                        "h{h}:{:?}/{:?}/master={}",
                        cluster.life(h),
                        cluster.liveset(h),
                        cluster.node(h).is_some_and(|n| n.is_master())
                    )
                })
                .collect();
            liveness_failure = Some((
                Invariant::LivesetEvolution,
                format!(
                    "no convergence within 10T after healing (all hosts up, one liveset of all, one master): {}",
                    views.join(" ")
                ),
            ));
        }
    }
    finish(cluster, outcome, opts, liveness_failure)
}

fn finish(
    mut cluster: Cluster,
    mut outcome: RunOutcome,
    opts: &RunOptions,
    extra: Option<(Invariant, String)>,
) -> RunOutcome {
    if let Some((inv, msg)) = extra {
        let now = cluster.now();
        cluster.fail_liveness(inv, now, msg);
    }
    outcome.violations = cluster.violations().to_vec();
    outcome.fences = cluster.fence_count();
    outcome.trace_hash = cluster.trace.hash();
    outcome.steps = cluster.steps();
    if !outcome.violations.is_empty() {
        let mut r = format!(
            "seed {} ({} hosts, {:?}, {} statefile(s))\nschedule:\n",
            outcome.seed, outcome.hosts, outcome.class, cluster.config.statefiles
        );
        for (at, f) in &outcome.schedule {
            r.push_str(&format!("  {:>10.3} s  {f:?}\n", *at as f64 / 1e9));
        }
        r.push_str(&cluster.report(&replay_command(outcome.seed, opts)));
        if opts.keep_full_trace {
            r.push_str("--- full trace:\n");
            r.push_str(&cluster.trace.render_all());
        }
        outcome.report = Some(r);
    }
    outcome
}

/// No change of conditions in the `window` before `last`.
fn previous_quiet(
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
fn changes_conditions(f: &Fault, big_t: Nanos) -> bool {
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
fn check_someone_survives(
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
fn statefile_kept_by_all(schedule: &[(Nanos, Fault)], big_t: Nanos) -> bool {
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
fn check_not_all_fenced(cluster: &Cluster, first_fault: Nanos) -> Option<(Invariant, String)> {
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
fn check_outage(
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
fn measure_outage(
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
fn measure_shrink(cluster: &Cluster, schedule: &[(Nanos, Fault)], hosts: usize) -> Option<Nanos> {
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

/// Every host up, every live core holding the same liveset of all hosts,
/// exactly one master.
fn converged(c: &Cluster) -> bool {
    let n = c.hosts.len();
    let all = HostSet::first_n(n);
    (0..n).all(|h| c.life(h) == Life::Running && c.liveset(h) == Some(all)) && c.master().is_some()
}

fn heal_all(cluster: &mut Cluster, rng: &mut ChaCha8Rng, big_t: Nanos) {
    // A host that fences while the pool heals (it lost before the heal)
    // reboots too, as a real host would.
    cluster.config.reboot_after = Some((big_t / 10, big_t));
    cluster.inject(Fault::HealNetwork);
    cluster.inject(Fault::NetQuality {
        loss_ppm: 0,
        dup_ppm: 0,
        delay_min: MILLISECOND / 10,
        delay_max: 2 * MILLISECOND,
    });
    cluster.inject(Fault::HealStorage);
    let now = cluster.now();
    for h in 0..cluster.hosts.len() {
        // An operator who told a host not to be master changes their mind:
        // otherwise a pool of such hosts rightly has no master.
        if cluster.hosts[h].declined_master {
            cluster.inject(Fault::Control {
                host: h,
                request: Control::ProposeMaster(true),
            });
        }
        match cluster.life(h) {
            Life::Frozen => cluster.inject(Fault::Thaw(h)),
            Life::Running => {}
            _ => {
                let at = now + rng.gen_range(0..big_t);
                cluster.schedule(at, Fault::Restart(h));
            }
        }
    }
}

/// Background network noise within the "no fault" envelope.
fn noise(rng: &mut ChaCha8Rng, max_loss_ppm: u32) -> Fault {
    let delay_max = rng.gen_range(1..=30) * MILLISECOND;
    Fault::NetQuality {
        loss_ppm: rng.gen_range(0..=max_loss_ppm),
        dup_ppm: rng.gen_range(0..=50_000),
        delay_min: MILLISECOND / 10,
        delay_max,
    }
}

fn build_schedule(
    rng: &mut ChaCha8Rng,
    class: Class,
    hosts: usize,
    statefiles: usize,
    big_t: Nanos,
    t0: Nanos,
    safety: Nanos,
) -> Vec<(Nanos, Fault)> {
    let mut s = Vec::new();
    let at = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| {
        t0 + rng.gen_range((safety as f64 * lo) as u64..(safety as f64 * hi) as u64)
    };
    match class {
        Class::Benign => {
            s.push((t0, noise(rng, 100_000)));
            for _ in 0..rng.gen_range(0..=hosts.min(6)) {
                let host = rng.gen_range(0..hosts);
                let max = big_t * 49 / 100;
                let lo = rng.gen_range(0..max);
                let when = at(rng, 0.0, 0.8);
                s.push((
                    when,
                    Fault::StorageLatency {
                        host,
                        sf: rng.gen_range(0..statefiles),
                        min: lo,
                        max: rng.gen_range(lo..=max),
                    },
                ));
            }
            if rng.gen_bool(0.5) {
                let host = rng.gen_range(0..hosts);
                let when = at(rng, 0.1, 0.6);
                s.push((
                    when,
                    Fault::Control {
                        host,
                        request: Control::ProposeMaster(true),
                    },
                ));
            }
        }
        Class::AllLoseStatefile => {
            s.push((t0, noise(rng, 20_000)));
            let when = at(rng, 0.05, 0.3);
            let mode = if rng.gen_bool(0.5) {
                PathMode::Failing
            } else {
                PathMode::Hung
            };
            for host in 0..hosts {
                for sf in 0..statefiles {
                    s.push((when, Fault::Storage { host, sf, mode }));
                }
            }
        }
        Class::SingleHost => {
            s.push((t0, noise(rng, 20_000)));
            let v = rng.gen_range(0..hosts);
            let when = at(rng, 0.05, 0.3);
            let fault = match rng.gen_range(0..6) {
                0 => vec![Fault::Crash(v)],
                1 => vec![Fault::Freeze(v)],
                2 => vec![Fault::Isolate(v)],
                3 | 4 => {
                    let mode = if rng.gen_bool(0.5) {
                        PathMode::Failing
                    } else {
                        PathMode::Hung
                    };
                    (0..statefiles)
                        .map(|sf| Fault::Storage { host: v, sf, mode })
                        .collect()
                }
                _ => (0..hosts)
                    .filter(|&p| p != v)
                    .map(|p| Fault::OneWay {
                        from: v,
                        to: p,
                        up: false,
                    })
                    .collect(),
            };
            for f in fault {
                s.push((when, f));
            }
        }
        Class::NetworkOutage => {
            s.push((t0, noise(rng, 20_000)));
            let when = at(rng, 0.05, 0.15);
            if rng.gen_bool(0.5) {
                // The switch fails: every link at one instant.
                s.push((when, Fault::Partition(Vec::new())));
            } else {
                // Singletons, one link (both directions) at a time within T/10.
                for a in 0..hosts {
                    for b in a + 1..hosts {
                        let cut = when + rng.gen_range(0..big_t / 10);
                        s.push((
                            cut,
                            Fault::OneWay {
                                from: a,
                                to: b,
                                up: false,
                            },
                        ));
                        s.push((
                            cut,
                            Fault::OneWay {
                                from: b,
                                to: a,
                                up: false,
                            },
                        ));
                    }
                }
            }
            if rng.gen_bool(0.4) {
                // Slow storage during the cut, up to T/4 on every host.
                let max = rng.gen_range(big_t / 50..=big_t / 4);
                for host in 0..hosts {
                    for sf in 0..statefiles {
                        let min = rng.gen_range(0..=max);
                        s.push((when, Fault::StorageLatency { host, sf, min, max }));
                    }
                }
            }
            if rng.gen_bool(0.25) {
                // The switch comes back, before or after the losers fence.
                let heal = when + big_t / 10 + rng.gen_range(big_t / 10..2 * big_t);
                s.push((heal, Fault::HealNetwork));
            }
        }
        Class::Chaos => {
            s.push((t0, noise(rng, 150_000)));
            if rng.gen_bool(0.3) {
                s.push((
                    t0,
                    Fault::TornWrites {
                        ppm: rng.gen_range(1_000..=100_000),
                    },
                ));
            }
            for _ in 0..rng.gen_range(2..=8) {
                let when = at(rng, 0.0, 0.6);
                let h = rng.gen_range(0..hosts);
                let f = match rng.gen_range(0..14) {
                    0 => Fault::Crash(h),
                    1 => Fault::Freeze(h),
                    2 => Fault::Thaw(h),
                    3 => Fault::Restart(h),
                    4 => Fault::Isolate(h),
                    5 => {
                        let mut order: Vec<usize> = (0..hosts).collect();
                        order.shuffle(rng);
                        let cut = rng.gen_range(0..=hosts);
                        Fault::Partition(vec![
                            order[..cut].iter().copied().collect(),
                            order[cut..].iter().copied().collect(),
                        ])
                    }
                    6 => Fault::OneWay {
                        from: h,
                        to: rng.gen_range(0..hosts),
                        up: false,
                    },
                    7 => Fault::HealNetwork,
                    8 => Fault::Storage {
                        host: h,
                        sf: rng.gen_range(0..statefiles),
                        mode: PathMode::Failing,
                    },
                    9 => Fault::Storage {
                        host: h,
                        sf: rng.gen_range(0..statefiles),
                        mode: PathMode::Hung,
                    },
                    10 => Fault::HealStorage,
                    11 => {
                        let lo = rng.gen_range(0..big_t);
                        Fault::StorageLatency {
                            host: h,
                            sf: rng.gen_range(0..statefiles),
                            min: lo,
                            max: lo + rng.gen_range(0..big_t),
                        }
                    }
                    12 => Fault::Control {
                        host: h,
                        request: Control::ProposeMaster(rng.gen_bool(0.7)),
                    },
                    _ => noise(rng, 300_000),
                };
                s.push((when, f));
            }
        }
    }
    s.sort_by_key(|(at, _)| *at);
    s
}
