//! Named planner cases: each states the expected behaviour, builds the pool
//! by hand and checks the answer, its explanation and the restart plan.

use uuid::Uuid;
use xapi_ha::model::{Host, Pool, PowerState, RestartPriority, Vm};
use xapi_ha::planner::{
    self, MaxFailures, PlanError, PlanOutcome, RestartPlan, is_overcommitted, xenserver,
};

const GIB: u64 = 1 << 30;

fn id(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, name.as_bytes())
}

fn host(name: &str, gib: u64) -> Host {
    Host {
        uuid: id(name),
        name: name.to_string(),
        memory_total: gib * GIB,
        memory_overhead: 0,
        enabled: true,
        live: true,
    }
}

fn vm(name: &str, gib: u64, on: Option<&str>, priority: RestartPriority) -> Vm {
    Vm {
        uuid: id(name),
        name: name.to_string(),
        memory: gib * GIB,
        memory_overhead: 0,
        priority,
        order: 0,
        power_state: if on.is_some() {
            PowerState::Running
        } else {
            PowerState::Halted
        },
        resident_on: on.map(id),
        agile: true,
        affinity: None,
    }
}

fn protected(name: &str, gib: u64, on: &str) -> Vm {
    vm(name, gib, Some(on), RestartPriority::Restart)
}

fn pool(hosts: Vec<Host>, vms: Vec<Vm>) -> Pool {
    Pool {
        ha_host_failures_to_tolerate: 0,
        hosts,
        vms,
    }
}

fn ids(names: &[&str]) -> Vec<Uuid> {
    names.iter().map(|n| id(n)).collect()
}

fn outcome(plan: &RestartPlan, vm: &str) -> PlanOutcome {
    plan.entries
        .iter()
        .find(|e| e.vm == id(vm))
        .map(|e| e.outcome)
        .unwrap_or_else(|| panic!("{vm} not in the plan"))
}

fn max(pool: &Pool) -> MaxFailures {
    planner::max_host_failures(pool)
}

/// Without protected VMs every live host may fail.
#[test]
fn no_protected_vms() {
    let p = pool(
        vec![host("h1", 16), host("h2", 16), host("h3", 16)],
        vec![
            vm("a", 8, Some("h1"), RestartPriority::BestEffort),
            vm("b", 8, Some("h2"), RestartPriority::Unprotected),
        ],
    );
    let m = max(&p);
    assert_eq!(m.max_host_failures, 3);
    assert!(m.exact);
    assert!(m.limiting_failure_set.is_empty() && m.unplaced_vms.is_empty());
    assert_eq!(xenserver::max_host_failures(&p), 3);
}

/// A protected VM bigger than any other host's free memory: it runs, so 0
/// failures are fine, but losing its host leaves it nowhere to go.
#[test]
fn one_vm_too_big_for_any_host() {
    let p = pool(
        vec![host("h1", 64), host("h2", 32), host("h3", 32)],
        vec![protected("big", 48, "h1"), protected("small", 2, "h2")],
    );
    let m = max(&p);
    assert_eq!(m.max_host_failures, 0);
    assert!(m.exact);
    assert_eq!(m.limiting_failure_set, ids(&["h1"]));
    assert_eq!(m.unplaced_vms, ids(&["big"]));
    // A bigger VM meant to run with no live host: not even 0 failures.
    let mut homeless = p.clone();
    homeless.vms[0].resident_on = None;
    homeless.vms[0].memory = 80 * GIB;
    let m = max(&homeless);
    assert_eq!(m.max_host_failures, -1);
    assert!(m.exact && m.limiting_failure_set.is_empty());
    assert_eq!(m.unplaced_vms, ids(&["big"]));
}

/// Two equal hosts, each half full: either can take the other's VMs.
#[test]
fn two_equal_hosts() {
    let p = pool(
        vec![host("h1", 32), host("h2", 32)],
        vec![
            protected("a", 10, "h1"),
            protected("b", 6, "h1"),
            protected("c", 12, "h2"),
        ],
    );
    let m = max(&p);
    assert_eq!(m.max_host_failures, 1);
    assert!(m.exact);
    assert_eq!(m.limiting_failure_set.len(), 2);
    // One more VM on h2: h1's 16 GiB no longer fit in h2's 14 GiB left, nor
    // h2's 18 GiB in h1's 16: either host is a limiting set.
    let mut fuller = p.clone();
    fuller.vms.push(protected("d", 6, "h2"));
    let m = max(&fuller);
    assert_eq!(m.max_host_failures, 0);
    assert_eq!(m.limiting_failure_set.len(), 1);
    assert_eq!(m.unplaced_vms.len(), 1);
}

/// One 20 GiB VM among twenty 1 GiB VMs on four 40 GiB hosts: placing them
/// exactly tolerates 2 failures; treating every VM as 20 GiB (XenServer's
/// approximation) tolerates none once it is used.
#[test]
fn one_big_vm_among_many_small() {
    let mut vms = vec![protected("big", 20, "h1")];
    for i in 0..20 {
        vms.push(protected(
            &format!("s{i}"),
            1,
            ["h1", "h2", "h3", "h4"][i % 4],
        ));
    }
    let p = pool((1..=4).map(|i| host(&format!("h{i}"), 40)).collect(), vms);
    let m = max(&p);
    // Any 2 fail: at most 20 + 10 GiB to place into 2 hosts with >= 15 GiB free each.
    // 3 fail (incl. h1): 20 + 15 GiB into one host with 35 free: fits! All 4: no.
    assert_eq!(m.max_host_failures, 3);
    assert!(m.exact);
    // XenServer's approximation: slots of 20 GiB per host: 1 each; the 3 hosts
    // with most VMs hold 16 VMs: the approximation fails at once.
    assert!(
        !xenserver::plan_exists(&p, 3)
            || xenserver::heuristic_for(4, 3) == xenserver::Heuristic::Exhaustive
    );
    assert!(xenserver::max_host_failures(&p) <= m.max_host_failures);
}

/// Non-agile protected VMs are not planned; the answer lists them.
#[test]
fn non_agile_vms_are_excluded() {
    let mut pinned = protected("pinned", 30, "h1");
    pinned.agile = false;
    let p = pool(
        vec![host("h1", 32), host("h2", 32)],
        vec![pinned, protected("a", 1, "h1")],
    );
    let m = max(&p);
    assert_eq!(
        m.max_host_failures, 1,
        "the 30 GiB pinned VM does not count"
    );
    assert_eq!(m.excluded_non_agile_vms, ids(&["pinned"]));
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    assert_eq!(outcome(&plan, "pinned"), PlanOutcome::NotAgile);
    assert_eq!(outcome(&plan, "a"), PlanOutcome::Destination(id("h2")));
}

/// A disabled host takes no restarts, but its own VMs need a place when it
/// fails.
#[test]
fn disabled_hosts() {
    let mut h3 = host("h3", 64);
    h3.enabled = false;
    let p = pool(
        vec![host("h1", 16), host("h2", 16), h3],
        vec![protected("a", 12, "h1"), protected("b", 2, "h3")],
    );
    // h1 fails: 12 GiB fits only in h2 (h3 disabled). h1 and h2 fail: nowhere.
    let m = max(&p);
    assert_eq!(m.max_host_failures, 1);
    assert!(m.exact);
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    assert_eq!(outcome(&plan, "a"), PlanOutcome::Destination(id("h2")));
    let plan = planner::restart_plan(&p, &ids(&["h3"])).expect("valid");
    assert!(matches!(outcome(&plan, "b"), PlanOutcome::Destination(h) if h != id("h3")));
}

/// The affinity host is used when it has room, another host otherwise.
#[test]
fn affinity() {
    let mut a = protected("a", 4, "h1");
    a.affinity = Some(id("h3"));
    let mut b = protected("b", 4, "h1");
    b.affinity = Some(id("h2"));
    let p = pool(
        vec![host("h1", 16), host("h2", 6), host("h3", 16)],
        vec![a, b, protected("filler", 4, "h2")],
    );
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    assert_eq!(outcome(&plan, "a"), PlanOutcome::Destination(id("h3")));
    // h2 has 2 GiB left: b goes elsewhere.
    assert_eq!(outcome(&plan, "b"), PlanOutcome::Destination(id("h3")));
}

/// Changing priorities hypothetically: unprotecting the big VM raises the
/// answer; bad changes are refused.
#[test]
fn hypothetical_priority_changes() {
    let p = pool(
        vec![host("h1", 64), host("h2", 32), host("h3", 32)],
        vec![protected("big", 48, "h1"), protected("small", 2, "h2")],
    );
    assert_eq!(max(&p).max_host_failures, 0);
    let m =
        planner::hypothetical_max_host_failures(&p, &[(id("big"), RestartPriority::BestEffort)])
            .expect("valid change");
    assert_eq!(m.max_host_failures, 2);
    let m = planner::hypothetical_max_host_failures(
        &p,
        &[
            (id("big"), RestartPriority::Unprotected),
            (id("small"), RestartPriority::Restart),
        ],
    )
    .expect("valid change");
    assert_eq!(m.max_host_failures, 2);
    assert_eq!(
        planner::hypothetical_max_host_failures(&p, &[(id("nope"), RestartPriority::Restart)]),
        Err(PlanError::UnknownVm(id("nope")))
    );
    assert_eq!(
        planner::hypothetical_max_host_failures(
            &p,
            &[
                (id("big"), RestartPriority::Restart),
                (id("big"), RestartPriority::BestEffort)
            ]
        ),
        Err(PlanError::DuplicateVm(id("big")))
    );
    // The pool itself is unchanged.
    assert_eq!(max(&p).max_host_failures, 0);
}

/// The target above the maximum is overcommitted; at or below it is not.
#[test]
fn target_above_max_is_overcommitted() {
    let mut p = pool(
        vec![host("h1", 32), host("h2", 32), host("h3", 32)],
        vec![protected("a", 20, "h1"), protected("b", 20, "h2")],
    );
    let m = max(&p);
    assert_eq!(m.max_host_failures, 1);
    p.ha_host_failures_to_tolerate = 1;
    assert!(!is_overcommitted(&p, &m));
    p.ha_host_failures_to_tolerate = 2;
    assert!(is_overcommitted(&p, &m));
}

/// Protected VMs restart in ascending order; when room runs out, the lower
/// order wins; best-effort VMs only get what is left; unprotected never.
#[test]
fn restart_plan_order_and_priorities() {
    let mut late = protected("late", 8, "h1");
    late.order = 2;
    let mut early = protected("early", 8, "h1");
    early.order = 1;
    let p = pool(
        vec![host("h1", 32), host("h2", 10)],
        vec![
            late,
            early,
            vm("be", 1, Some("h1"), RestartPriority::BestEffort),
            vm("none", 1, Some("h1"), RestartPriority::Unprotected),
            vm("stays", 1, Some("h2"), RestartPriority::Restart),
        ],
    );
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    let names: Vec<_> = plan.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["early", "late", "be", "none"],
        "running VMs elsewhere are never moved"
    );
    assert_eq!(outcome(&plan, "early"), PlanOutcome::Destination(id("h2")));
    assert_eq!(outcome(&plan, "late"), PlanOutcome::NoRoom);
    assert_eq!(outcome(&plan, "be"), PlanOutcome::Destination(id("h2")));
    assert_eq!(outcome(&plan, "none"), PlanOutcome::Unprotected);
}

/// A failure set must name live hosts of the pool, once each.
#[test]
fn restart_plan_rejects_bad_failure_sets() {
    let mut dead = host("dead", 8);
    dead.live = false;
    let p = pool(vec![host("h1", 8), dead], vec![]);
    assert_eq!(
        planner::restart_plan(&p, &ids(&["x"])),
        Err(PlanError::UnknownHost(id("x")))
    );
    assert_eq!(
        planner::restart_plan(&p, &ids(&["dead"])),
        Err(PlanError::HostNotLive(id("dead")))
    );
    assert_eq!(
        planner::restart_plan(&p, &ids(&["h1", "h1"])),
        Err(PlanError::DuplicateHost(id("h1")))
    );
    let plan = planner::restart_plan(&p, &[]).expect("empty set is valid");
    assert!(plan.entries.is_empty());
}

/// A protected VM meant to run whose host is dead needs a place with no
/// further failure, and the empty failure set plans it.
#[test]
fn protected_vm_on_dead_host_needs_a_place() {
    let mut dead = host("dead", 64);
    dead.live = false;
    let p = pool(
        vec![host("h1", 16), host("h2", 16), dead],
        vec![protected("orphan", 12, "dead"), protected("a", 2, "h1")],
    );
    let m = max(&p);
    // h1 fails: orphan 12 + a 2 into h2 (16): fits. Both fail: nowhere.
    assert_eq!(m.max_host_failures, 1);
    let plan = planner::restart_plan(&p, &[]).expect("valid");
    assert!(matches!(
        outcome(&plan, "orphan"),
        PlanOutcome::Destination(_)
    ));
}

/// The JSON field names are the ones the CLI prints.
#[test]
fn json_field_names() {
    let p = pool(vec![host("h1", 8)], vec![protected("a", 4, "h1")]);
    let v = serde_json::to_value(max(&p)).expect("serialises");
    for key in [
        "max_host_failures",
        "exact",
        "limiting_failure_set",
        "unplaced_vms",
        "excluded_non_agile_vms",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["max_host_failures"], 0);
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    let v = serde_json::to_value(plan).expect("serialises");
    assert_eq!(v["entries"][0]["outcome"], "no_room");
}

/// Extreme inputs never panic: no hosts, huge and zero sizes, repeated UUIDs,
/// VMs on unknown hosts.
#[test]
fn extreme_values_do_not_panic() {
    let empty = pool(vec![], vec![]);
    assert_eq!(max(&empty).max_host_failures, 0);
    let orphan = pool(vec![], vec![protected("a", 1, "nowhere")]);
    let m = max(&orphan);
    assert_eq!(m.max_host_failures, -1);
    assert_eq!(m.unplaced_vms, ids(&["a"]));

    let mut huge = host("huge", 0);
    huge.memory_total = u64::MAX;
    let mut big = protected("big", 0, "h1");
    big.memory = u64::MAX;
    big.memory_overhead = u64::MAX;
    let zero = protected("zero", 0, "h1");
    let p = pool(vec![host("h1", 8), huge.clone(), huge], vec![big, zero]);
    let m = max(&p);
    // The footprint saturates at u64::MAX, which fits the u64::MAX host.
    assert_eq!(m.max_host_failures, 1);
    let plan = planner::restart_plan(&p, &ids(&["h1"])).expect("valid");
    assert_eq!(outcome(&plan, "big"), PlanOutcome::Destination(id("huge")));
    assert!(matches!(
        outcome(&plan, "zero"),
        PlanOutcome::Destination(_)
    ));
    assert_eq!(xenserver::max_host_failures(&p), 1);

    // Only zero-sized VMs: any surviving enabled host takes them.
    let p = pool(
        vec![host("h1", 0), host("h2", 0)],
        vec![protected("z1", 0, "h1"), protected("z2", 0, "h2")],
    );
    assert_eq!(max(&p).max_host_failures, 1);
    assert_eq!(xenserver::max_host_failures(&p), 1);
}
