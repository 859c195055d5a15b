//! Master failover under HA (docs/master-failover.md): the pure decision
//! an agent takes on each of its `xhad`'s reports, from what the report
//! says of the master lock and the liveset and what the agent knows of its
//! own role. No clock, no socket: `server::master_failover` gathers the
//! facts and performs the step.
//!
//! Rules, in order (only while this host's daemon is `online`, for the
//! enablement the agent follows):
//! 1. The report names this host as the lock holder and the agent is a
//!    member: take over, under the report's epoch.
//! 2. The agent is the master but the report names another live holder
//!    with an epoch above the one this master wrote under: step down and
//!    follow it (an old master that comes back is never a second master).
//! 3. A member asks `xhad` for the lock and keeps asking (a standby
//!    request, renewed with the lease), once its copy of the database says
//!    HA is enabled (during the enable the master takes the first lock
//!    alone). While a live master asks for the lock every grant is the
//!    master's, so a standby request never takes it; but `xhad` counts a
//!    grant only from a heartbeat heard a heartbeat timeout (1.6 s at
//!    T = 10) after the request began, and a request made before the master
//!    went has that wait behind it: the lowest live member takes the lock
//!    as soon as the survivors' next heartbeats grant it. (Proposing only
//!    after the master left the liveset put those 1.6 s after the shrink.)
//! 4. A member whose report names another live holder follows it if it
//!    follows another.

use std::time::Duration;

use uuid::Uuid;
use xha_control::{LivesetReport, Status};

/// How long `xhad` keeps this agent's `propose-master true` without a
/// repetition (`master-lease-ms` in its configuration). While the agent is
/// master, or asks for the lock, it repeats the request every
/// [`RENEW_EVERY`]; when the agent dies or hangs the request lapses, its
/// `xhad` stops asking for the lock and reports no master, and the other
/// agents propose themselves (rule 3): a new master under a new epoch,
/// while the dead agent's host stays in the liveset and keeps its VMs.
pub const MASTER_LEASE: Duration = Duration::from_secs(4);
/// How often the agent repeats its request (four chances per lease).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Does the agent repeat `propose-master true` now? While it is master
/// (its claim on the lock) or asks for the lock and did not withdraw.
#[must_use]
pub fn renews(is_master: bool, proposed: bool) -> bool {
    is_master || proposed
}

/// What the agent knows of itself, beside the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// This host.
    pub me: Uuid,
    /// The agent runs as the master now.
    pub is_master: bool,
    /// Member: the host whose address the role names (`None` when the
    /// address is no host of its database copy).
    pub following: Option<Uuid>,
    /// The master epoch the agent wrote under (its HA record).
    pub epoch: u64,
    /// The agent asked its `xhad` for the lock and did not withdraw.
    pub proposed: bool,
    /// The agent's database says HA is enabled (a member's copy says so
    /// once the enable committed: before that, the master is still taking
    /// its first lock and no member may compete for it).
    pub ha_enabled: bool,
}

/// What to do about one report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to do.
    Stay,
    /// Ask `xhad` for the master lock (`propose-master true`), a standby
    /// request kept until this host holds it.
    Propose,
    /// This host holds the lock: become the master under `epoch`.
    TakeOver { epoch: u64 },
    /// Follow `master` (this agent is a member of another master).
    Follow { master: Uuid },
    /// Ask for the lock (standby) and follow `master`.
    ProposeAndFollow { master: Uuid },
    /// This master lost the lock to `master`: become its member.
    StepDown { master: Uuid },
}

/// Whether `report` (this host's own `xhad`'s) puts host `me` in charge:
/// online, in the liveset. Only then may the host act on HA's behalf: run
/// a VM, record liveness, restart VMs (the fence argument: a host out of
/// the liveset runs nothing, and a starting daemon's report, every host
/// "not live", is no evidence of anything).
#[must_use]
pub fn in_charge(report: &LivesetReport, me: Uuid) -> bool {
    report.status == Status::Online && report.liveset.contains(&me)
}

/// The step for `report`, given what the agent knows.
#[must_use]
pub fn decide(known: &Known, report: &LivesetReport) -> Step {
    if !in_charge(report, known.me) {
        return Step::Stay;
    }
    let holder = report
        .master
        .filter(|m| report.liveset.contains(m) && report.master_epoch > 0);
    match holder {
        Some(m) if m == known.me => {
            if known.is_master {
                Step::Stay
            } else {
                Step::TakeOver {
                    epoch: report.master_epoch,
                }
            }
        }
        Some(m) if known.is_master => {
            if report.master_epoch > known.epoch {
                Step::StepDown { master: m }
            } else {
                Step::Stay
            }
        }
        Some(m) => {
            let stand_by = !known.proposed && known.ha_enabled;
            match (stand_by, known.following == Some(m)) {
                (true, true) => Step::Propose,
                (true, false) => Step::ProposeAndFollow { master: m },
                (false, false) => Step::Follow { master: m },
                (false, true) => Step::Stay,
            }
        }
        None if known.is_master || known.proposed || !known.ha_enabled => Step::Stay,
        None => Step::Propose,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use xha_control::{DropCounters, Latency, TimeoutsReport};

    use super::*;

    fn u(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn report(status: Status, live: &[u128], master: Option<u128>, epoch: u64) -> LivesetReport {
        let t = xha_core::Timeouts::derive(Duration::from_secs(10)).unwrap();
        LivesetReport {
            status,
            pool_generation: u(99),
            local_host: u(2),
            local_index: 1,
            fencing_armed: true,
            watchdog: "supervisor".into(),
            master: master.map(u),
            master_epoch: epoch,
            liveset: live.iter().map(|n| u(*n)).collect(),
            hosts: Vec::new(),
            statefile_latency: Latency::default(),
            heartbeat_latency: Latency::default(),
            dropped_packets: DropCounters::default(),
            fence_requests_refused: 0,
            timeouts: TimeoutsReport::from(&t),
            warnings: Vec::new(),
        }
    }

    fn member(proposed: bool, following: Option<u128>) -> Known {
        Known {
            me: u(2),
            is_master: false,
            following: following.map(u),
            epoch: 0,
            proposed,
            ha_enabled: true,
        }
    }

    fn master(epoch: u64) -> Known {
        Known {
            me: u(2),
            is_master: true,
            following: None,
            epoch,
            proposed: true,
            ha_enabled: true,
        }
    }

    #[test]
    fn only_an_online_daemon_with_this_host_in_its_liveset_puts_it_in_charge() {
        assert!(in_charge(
            &report(Status::Online, &[1, 2, 3], Some(1), 1),
            u(2)
        ));
        // Starting: a rebooted host before it rejoined (every host "not live").
        assert!(!in_charge(&report(Status::Starting, &[], None, 0), u(2)));
        assert!(!in_charge(
            &report(Status::Starting, &[1, 2, 3], Some(1), 1),
            u(2)
        ));
        assert!(!in_charge(
            &report(Status::Fenced, &[1, 2, 3], Some(1), 1),
            u(2)
        ));
        assert!(!in_charge(
            &report(Status::Stopping, &[1, 2, 3], Some(1), 1),
            u(2)
        ));
        // Online, but the liveset it reports is not this host's.
        assert!(!in_charge(
            &report(Status::Online, &[1, 3], Some(1), 1),
            u(2)
        ));
    }

    #[test]
    fn table() {
        use Status::{Online, Starting};
        let rows: Vec<(&str, Known, LivesetReport, Step)> = vec![
            (
                "master live: a member stands by (asks for the lock)",
                member(false, Some(1)),
                report(Online, &[1, 2, 3], Some(1), 1),
                Step::Propose,
            ),
            (
                "master live, standing by already: stays",
                member(true, Some(1)),
                report(Online, &[1, 2, 3], Some(1), 1),
                Step::Stay,
            ),
            (
                "master left the liveset: propose",
                member(false, Some(1)),
                report(Online, &[2, 3], Some(1), 1),
                Step::Propose,
            ),
            (
                "no master at all: propose",
                member(false, Some(1)),
                report(Online, &[1, 2, 3], None, 0),
                Step::Propose,
            ),
            (
                "proposed already: wait for xhad",
                member(true, Some(1)),
                report(Online, &[2, 3], Some(1), 1),
                Step::Stay,
            ),
            (
                "won the lock: take over under its epoch",
                member(true, Some(1)),
                report(Online, &[2, 3], Some(2), 2),
                Step::TakeOver { epoch: 2 },
            ),
            (
                "another won: keep standing by, follow it",
                member(true, Some(1)),
                report(Online, &[2, 3], Some(3), 2),
                Step::Follow { master: u(3) },
            ),
            (
                "another won, followed already: stays",
                member(true, Some(3)),
                report(Online, &[2, 3], Some(3), 2),
                Step::Stay,
            ),
            (
                "not told of the new master: stand by and follow it",
                member(false, Some(1)),
                report(Online, &[2, 3], Some(3), 2),
                Step::ProposeAndFollow { master: u(3) },
            ),
            (
                "role names no known host: follow the holder",
                member(true, None),
                report(Online, &[1, 2, 3], Some(1), 1),
                Step::Follow { master: u(1) },
            ),
            (
                "enable still running (copy says HA off): follow, no request",
                Known {
                    ha_enabled: false,
                    ..member(false, None)
                },
                report(Online, &[1, 2, 3], Some(1), 1),
                Step::Follow { master: u(1) },
            ),
            (
                "not online yet: nothing",
                member(false, Some(1)),
                report(Starting, &[], None, 0),
                Step::Stay,
            ),
            (
                "out of the liveset (about to fence): nothing",
                member(false, Some(1)),
                report(Online, &[1, 3], Some(1), 1),
                Step::Stay,
            ),
            (
                "master holding the lock: stays",
                master(1),
                report(Online, &[1, 2, 3], Some(2), 1),
                Step::Stay,
            ),
            (
                "master came back, another holds a newer epoch: step down",
                master(1),
                report(Online, &[1, 2, 3], Some(3), 2),
                Step::StepDown { master: u(3) },
            ),
            (
                "master, holder of an older epoch named: stays",
                master(3),
                report(Online, &[1, 2, 3], Some(3), 2),
                Step::Stay,
            ),
            (
                "master, no holder reported: stays",
                master(1),
                report(Online, &[1, 2, 3], None, 0),
                Step::Stay,
            ),
            (
                "enable still running (copy says HA off): no competing",
                Known {
                    ha_enabled: false,
                    ..member(false, Some(1))
                },
                report(Online, &[1, 2, 3], None, 0),
                Step::Stay,
            ),
            (
                "holder with epoch 0 is no holder",
                member(false, Some(1)),
                report(Online, &[1, 2, 3], Some(1), 0),
                Step::Propose,
            ),
        ];
        for (what, known, r, want) in rows {
            assert_eq!(decide(&known, &r), want, "{what}");
        }
    }

    #[test]
    fn renewal_while_master_or_proposed() {
        assert!(renews(true, false));
        assert!(renews(false, true));
        assert!(!renews(false, false));
        assert!(
            MASTER_LEASE >= RENEW_EVERY * 3,
            "three renewals may be missed"
        );
    }

    /// One step of the slow-master model.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        /// The old master (epoch 1), slow past its lease, tries a commit.
        OldCommits,
        /// The old master handles its daemon's report naming the new
        /// holder (host 3, epoch 2): the real [`decide`].
        OldSeesReport,
        /// The new master opens the metadata volume under epoch 2.
        NewOpens,
        /// The new master commits (only once it opened).
        NewCommits,
    }

    /// Every interleaving of a slow old master's commits and its report
    /// with the new master's open and commits. The volume (as the redo
    /// log does) accepts a writer's commit only while no higher epoch
    /// opened it. Checked: no epoch has two committers, no commit of the
    /// old epoch lands after the new master opened, and the old master
    /// steps down on the report (never a second master).
    #[test]
    fn slow_master_model() {
        fn run(evs: &[Ev]) -> Result<(), String> {
            let mut old = master(1);
            let mut volume_epoch = 1u64;
            let mut new_opened = false;
            let mut committers: Vec<(u64, &str)> = Vec::new();
            let report = report(Status::Online, &[1, 2, 3], Some(3), 2);
            for ev in evs {
                match ev {
                    Ev::OldCommits if old.is_master => {
                        if old.epoch >= volume_epoch {
                            if new_opened {
                                return Err("an old-epoch commit after the new open".into());
                            }
                            committers.push((old.epoch, "old"));
                        }
                    }
                    Ev::OldCommits => {}
                    Ev::OldSeesReport => {
                        if decide(&old, &report) != (Step::StepDown { master: u(3) }) {
                            return Err("the old master did not step down".into());
                        }
                        old.is_master = false;
                    }
                    Ev::NewOpens => {
                        volume_epoch = volume_epoch.max(2);
                        new_opened = true;
                    }
                    Ev::NewCommits if new_opened => committers.push((2, "new")),
                    Ev::NewCommits => {}
                }
            }
            for e in [1, 2] {
                let mut who: Vec<_> = committers
                    .iter()
                    .filter(|c| c.0 == e)
                    .map(|c| c.1)
                    .collect();
                who.dedup();
                if who.len() > 1 {
                    return Err(format!("two masters committed in epoch {e}"));
                }
            }
            if old.is_master {
                return Err("the old master never stepped down".into());
            }
            Ok(())
        }
        fn each(rest: &mut Vec<Ev>, done: &mut Vec<Ev>, count: &mut usize) {
            if rest.is_empty() {
                *count += 1;
                if let Err(e) = run(done) {
                    panic!("{e}: {done:?}");
                }
                return;
            }
            for i in 0..rest.len() {
                let ev = rest.remove(i);
                done.push(ev);
                each(rest, done, count);
                done.pop();
                rest.insert(i, ev);
            }
        }
        let mut rest = vec![
            Ev::OldCommits,
            Ev::OldCommits,
            Ev::OldSeesReport,
            Ev::OldCommits,
            Ev::NewOpens,
            Ev::NewCommits,
            Ev::NewCommits,
        ];
        let mut count = 0;
        each(&mut rest, &mut Vec::new(), &mut count);
        assert_eq!(count, 5040);
    }
}
