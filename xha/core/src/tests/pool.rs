//! The pool without faults: formation, the master lock, status events,
//! configuration and input checks.

use super::*;

#[test]
fn a_pool_forms_and_elects_the_lowest_index() {
    let c = formed(3);
    assert_eq!(c.pool.state, PoolState::Active);
    assert_eq!(c.pool.master, Some(c.uuids[0]));
    assert_eq!(c.pool.master_epoch, 1);
}

#[test]
fn no_faults_no_fences_for_two_minutes() {
    let mut c = formed(4);
    c.run_for(Duration::from_secs(120));
    assert_eq!(c.fences(), 0);
    for h in 0..4 {
        assert_eq!(c.liveset(h), HostSet::first_n(4));
    }
}

#[test]
fn status_changed_only_when_the_watched_status_changes() {
    let mut c = formed(3);
    let before: Vec<usize> = c.hosts.iter().map(|h| h.status_changes).collect();
    assert!(
        before.iter().all(|&n| n > 0),
        "joining changed nothing: {before:?}"
    );
    c.run_for(Duration::from_secs(60));
    let steady: Vec<usize> = c.hosts.iter().map(|h| h.status_changes).collect();
    assert_eq!(before, steady, "status changes without a fault");
    // Peer instants are in the status, not in the watched part.
    let st = c.node(0).status();
    assert_eq!(st.hosts[0].heard_at, None);
    let heard = st.hosts[1].heard_at.expect("host 1 heard");
    assert!(c.now.saturating_since(heard) <= c.timeouts.heartbeat_interval);
    assert!(st.hosts[2].slot_changed_at.is_some());
    let crash_at = c.now;
    c.kill(2, Life::Crashed);
    c.run_for(T + T / 2);
    for (h, &was) in steady.iter().enumerate().take(2) {
        assert!(
            c.hosts[h].status_changes > was,
            "host {h}: no StatusChanged"
        );
        let st = c.node(h).status();
        assert!(!st.hosts[2].heard);
        assert!(st.hosts[2].heard_at.is_some_and(|at| at <= crash_at));
    }
}

#[test]
fn the_master_crashes_and_a_new_one_takes_a_higher_epoch() {
    let mut c = formed(3);
    c.kill(0, Life::Crashed);
    c.run_for(Duration::from_secs(30));
    assert_eq!(c.masters(), vec![1]);
    assert_eq!(c.pool.master, Some(c.uuids[1]));
    assert_eq!(c.pool.master_epoch, 2);
}

/// The agent's lease (`Config::master_lease`): a master whose agent stops
/// repeating `propose-master true` stops asking for the lock, is reported
/// as no master, and the host whose agent then proposes takes the lock
/// with a newer epoch; the old master's agent coming back does not get it
/// back and its node names the new holder.
#[test]
fn a_lapsed_master_lease_frees_the_lock_for_a_new_epoch() {
    let lease = Duration::from_secs(3);
    let second = Duration::from_secs(1);
    let mut c = Cluster::agent_driven(3, lease);
    c.run_for(Duration::from_secs(5));
    assert!(c.masters().is_empty(), "nobody asks by itself");
    let propose = |c: &mut Cluster, h: usize| {
        c.handle(h, Input::Control(ControlRequest::ProposeMaster(true)));
    };
    for _ in 0..8 {
        propose(&mut c, 0);
        c.run_for(second);
    }
    assert_eq!(c.masters(), vec![0]);
    assert_eq!(c.pool.master_epoch, 1);
    for h in 0..3 {
        assert!(c.node(h).status().hosts[0].master, "host {h} reports 0");
    }
    // Host 0's agent dies: its node keeps running, the lease lapses.
    c.run_for(lease + second);
    assert!(c.masters().is_empty(), "the lapsed master gave the lock up");
    for h in 0..3 {
        let st = c.node(h).status();
        assert!(
            st.hosts.iter().all(|x| !x.master),
            "host {h} reports no master"
        );
        assert_eq!(st.liveset, HostSet::first_n(3), "nobody is removed");
    }
    // The members' agents propose (and renew); the lowest wins.
    for _ in 0..8 {
        propose(&mut c, 1);
        propose(&mut c, 2);
        c.run_for(second);
    }
    assert_eq!(c.masters(), vec![1]);
    assert_eq!((c.pool.master, c.pool.master_epoch), (Some(c.uuids[1]), 2));
    // Host 0's agent comes back and renews: the lock stays with host 1.
    for _ in 0..5 {
        propose(&mut c, 0);
        propose(&mut c, 1);
        c.run_for(second);
    }
    assert_eq!(c.masters(), vec![1]);
    let st = c.node(0).status();
    assert!(
        st.hosts[1].master && st.master_epoch == 2,
        "host 0 sees the new epoch"
    );
    assert_eq!(c.fences(), 0);
}

/// Standby requests (the agents' standing `propose-master true` on every
/// member): the master keeps the lock while it asks; when it crashes, the
/// lowest member takes it as soon as the survivors' grants arrive, without
/// a heartbeat timeout of freshness wait after the liveset shrank (its
/// request began long before).
#[test]
fn standby_requests_never_preempt_and_take_over_without_the_freshness_wait() {
    let lease = Duration::from_secs(4);
    let second = Duration::from_secs(1);
    let mut c = Cluster::agent_driven(3, lease);
    c.run_for(Duration::from_secs(5));
    let propose = |c: &mut Cluster, hosts: &[usize]| {
        for &h in hosts {
            c.handle(h, Input::Control(ControlRequest::ProposeMaster(true)));
        }
    };
    for _ in 0..8 {
        propose(&mut c, &[0]);
        c.run_for(second);
    }
    assert_eq!(c.masters(), vec![0]);
    for _ in 0..20 {
        propose(&mut c, &[0, 1, 2]);
        c.run_for(second);
    }
    assert_eq!(c.masters(), vec![0], "a standby request took the lock");
    assert_eq!(c.pool.master_epoch, 1);
    let crashed = c.now;
    c.kill(0, Life::Crashed);
    let step = Duration::from_millis(20);
    let mut since_renewal = Duration::ZERO;
    let mut master_at = None;
    while c.now < crashed + Duration::from_secs(30) && master_at.is_none() {
        if since_renewal >= second {
            propose(&mut c, &[1, 2]);
            since_renewal = Duration::ZERO;
        }
        c.run_for(step);
        since_renewal += step;
        if c.masters() == vec![1] {
            master_at = Some(c.now);
        }
    }
    let master_at = master_at.expect("host 1 took the lock");
    let shrunk = [1, 2]
        .iter()
        .filter_map(|&h| c.shrink_time(h, 0, crashed))
        .max()
        .expect("both survivors dropped host 0");
    let after_shrink = master_at.saturating_since(crashed).saturating_sub(shrunk);
    assert!(
        after_shrink < c.timeouts.heartbeat_timeout,
        "the new master took {after_shrink:?} after the shrink; the freshness wait is {:?}",
        c.timeouts.heartbeat_timeout
    );
    assert_eq!((c.pool.master, c.pool.master_epoch), (Some(c.uuids[1]), 2));
    assert_eq!(c.fences(), 0);
}

/// Without a lease (`None`) a single `propose-master true` holds for good.
#[test]
fn without_a_lease_one_proposal_holds() {
    let mut c = Cluster::configured(3, T, true, false, None);
    c.run_for(Duration::from_secs(5));
    c.handle(0, Input::Control(ControlRequest::ProposeMaster(true)));
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.masters(), vec![0]);
    assert_eq!(c.pool.master_epoch, 1);
}

#[test]
fn fencing_disarmed_nobody_fences_and_the_liveset_stays() {
    let mut c = formed(3);
    for h in 0..3 {
        c.handle(h, Input::Control(ControlRequest::DisarmFencing));
    }
    c.hosts[2].net_ok = false;
    c.run_for(Duration::from_secs(60));
    assert_eq!(c.fences(), 0);
    for h in 0..3 {
        assert_eq!(c.liveset(h), HostSet::first_n(3));
    }
}

#[test]
fn config_errors_are_specific() {
    let c = Cluster::new(2);
    let mut cfg = c.config(0);
    cfg.local = 5;
    assert!(matches!(
        Node::new(cfg, Instant(0)),
        Err(crate::ConfigError::LocalOutOfRange { local: 5, hosts: 2 })
    ));
    let mut cfg = c.config(0);
    cfg.hosts.swap(0, 1);
    assert!(matches!(
        Node::new(cfg, Instant(0)),
        Err(crate::ConfigError::HostsNotSorted(1))
    ));
    let mut cfg = c.config(0);
    cfg.statefiles = 0;
    assert!(Node::new(cfg, Instant(0)).is_err());
}

#[test]
#[should_panic(expected = "time went backwards")]
fn time_never_goes_backwards() {
    let c = Cluster::new(1);
    let mut n = Node::new(c.config(0), Instant(10)).unwrap();
    n.handle(Instant(5), Input::Tick);
}
