//! One randomised run from a seed: the seed picks the pool, a fault
//! schedule and its class; the run forms the pool, applies the schedule
//! (safety phase, invariants after every step), heals everything and checks
//! that the pool converges (liveness phase).
//!
//! Parts: this file draws the run and drives its phases; `schedule` builds
//! the fault schedule of each class; `checks` holds the liveness checks and
//! the measurements taken after the safety phase.

mod checks;
mod schedule;

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use xha::core::HostSet;

use super::checker::{Invariant, Life, Violation};
use super::cluster::{Cluster, ClusterConfig};
use super::fault::{Control, Fault};
use super::time::{MILLISECOND, Nanos};
use checks::{
    changes_conditions, check_not_all_fenced, check_outage, check_someone_survives, measure_outage,
    measure_shrink, previous_quiet, statefile_kept_by_all,
};
use schedule::build_schedule;

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
