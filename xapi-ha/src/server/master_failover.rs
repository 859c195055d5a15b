//! Master failover under HA (docs/master-failover.md): the I/O around the
//! pure decision of `ha_link::failover`, run by the `xhad` follower on
//! each report before the report is recorded (`xhad_watch`).
//!
//! - Every member asks its daemon for the master lock and keeps asking (a
//!   standby request, `propose-master true` renewed with the lease); while
//!   the master is live and asks, every grant is the master's. When the
//!   master leaves the liveset (or its agent's lease lapses), `xhad`'s lock
//!   picks one winner among the standing requests and gives it a new epoch.
//! - The winner takes over in place: it opens the database on the metadata
//!   volume under the new epoch (the newest consistent state; the redo log
//!   refuses the old master's writer from then on), records the epoch in
//!   its HA record and `master` in `pool.conf`, switches its role, commits
//!   `pool.master` and `POOL_MASTER_TRANSITION`, and tells the other live
//!   members to follow it (`pool.peer_set_master`). Hosts keep their
//!   `enabled` flag. The restart engine follows `is_master()`.
//! - A member that was not told follows the lock holder its own daemon
//!   reports; a master whose daemon names a newer holder steps down and
//!   becomes its member, on its local copy of the database.
//! - While this host's daemon is online in the liveset, the emergency
//!   probe of the master stands down ([`EmergencyState::set_ha_in_charge`]):
//!   the liveset, not the probe, says whether the master is there.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sr_heartbeat::metadata::Layout;
use uuid::Uuid;
use xha_control::client::{self, REQUEST_TIMEOUT};
use xha_control::{LivesetReport, Request};

use super::agent::{Agent, LOCAL_DB_FILE};
use super::ha_ops::lock;
use super::membership::{block_on, target_of};
use super::peers;
use super::role::Role;
use crate::alerts::catalog;
use crate::api::pool as pool_api;
use crate::db::store::Store;
use crate::db::{Change, Class, Database};
use crate::ha_link::failover::{self, Known, Step};
use crate::ha_link::state::HaState;
use crate::pool::peer;
use crate::rpc::Rpc;
use crate::value::{Ref, Value};

/// How long the new master waits for one member to accept it.
const TELL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the follower remembers between reports.
#[derive(Debug, Default)]
pub struct Tracker {
    /// This agent asked its daemon for the lock and did not withdraw
    /// (shared with the lease renewal, `master_lease`).
    proposed: Arc<AtomicBool>,
}

impl Tracker {
    /// A tracker whose `proposed` flag is `proposed`.
    #[must_use]
    pub fn new(proposed: Arc<AtomicBool>) -> Tracker {
        Tracker { proposed }
    }

    fn set_proposed(&self, on: bool) {
        self.proposed.store(on, Ordering::Relaxed);
    }
}

fn host_by_uuid(db: &Database, uuid: Uuid) -> Option<Ref> {
    match db.by_uuid(&uuid.hyphenated().to_string()) {
        Some((Class::Host, r)) => Some(r),
        _ => None,
    }
}

fn address_of(db: &Database, uuid: Uuid) -> Option<String> {
    let h = host_by_uuid(db, uuid)?;
    match db.field(Class::Host, h, "address") {
        Some(Value::String(a)) if !a.is_empty() => Some(a),
        _ => None,
    }
}

/// The host whose `address` is `address` in `db`.
fn uuid_at(db: &Database, address: &str) -> Option<Uuid> {
    db.objects(Class::Host)
        .find(|(h, _)| {
            matches!(db.field(Class::Host, *h, "address"), Some(Value::String(a)) if a == address)
        })
        .and_then(|(_, o)| Uuid::parse_str(o.uuid()).ok())
}

/// Called by the follower for each report of this host's daemon.
pub fn on_report(agent: &Arc<Agent>, tracker: &mut Tracker, report: &LivesetReport) {
    let (generation, epoch, socket) = match lock(&agent.ha().running).as_ref() {
        Some(r) => (
            r.state.generation,
            r.state.epoch,
            r.state.control_socket.clone(),
        ),
        None => return,
    };
    if generation != report.pool_generation {
        return;
    }
    let Ok(me) = Uuid::parse_str(&agent.facts().info.uuid) else {
        return;
    };
    agent
        .pool
        .emergency
        .set_ha_in_charge(failover::in_charge(report, me));
    let following = match agent.role() {
        Role::Slave(address) => uuid_at(agent.store().database(), &address),
        Role::Master => None,
    };
    let ha_enabled = {
        let store = agent.store();
        let db = store.database();
        pool_api::the_pool(db)
            .and_then(|p| db.field(Class::Pool, p, "ha_enabled"))
            .is_some_and(|v| v == Value::Bool(true))
    };
    let known = Known {
        me,
        is_master: agent.is_master(),
        following,
        epoch,
        proposed: tracker.proposed.load(Ordering::Relaxed),
        ha_enabled,
    };
    let step = failover::decide(&known, report);
    if step != Step::Stay {
        tracing::info!(?step, master = ?report.master, epoch = report.master_epoch, "master failover");
    }
    let result = match step {
        Step::Stay => Ok(()),
        Step::Propose => propose(&socket, true).map(|()| tracker.set_proposed(true)),
        Step::ProposeAndFollow { master } => propose(&socket, true)
            .map(|()| tracker.set_proposed(true))
            .and_then(|()| follow(agent, master)),
        Step::Follow { master } => follow(agent, master),
        Step::TakeOver { epoch } => {
            take_over(agent, epoch, report).map(|()| tracker.set_proposed(true))
        }
        Step::StepDown { master } => step_down(agent, master),
    };
    if let Err(e) = result {
        tracing::error!(?step, error = %e, "master failover step failed (tried again on the next report)");
    }
}

/// The follower lost its daemon: the emergency probe is back in charge.
pub fn daemon_gone(agent: &Agent) {
    agent.pool.emergency.set_ha_in_charge(false);
}

fn propose(socket: &Path, on: bool) -> Result<(), String> {
    client::request(socket, Request::ProposeMaster(on), REQUEST_TIMEOUT)
        .map(drop)
        .map_err(|e| format!("propose-master {on}: {e}"))
}

/// Member: follow `master` (its address from this host's copy).
fn follow(agent: &Agent, master: Uuid) -> Result<(), String> {
    let store = agent.store();
    let address = address_of(store.database(), master)
        .ok_or_else(|| format!("the lock holder {master} is no host of this copy"))?;
    let role = Role::Slave(address.clone());
    if agent.role() == role {
        return Ok(());
    }
    role.save(&agent.facts().data_dir)
        .map_err(|e| e.to_string())?;
    agent.set_membership(role, agent.host_ref(), &store);
    agent.pool.emergency.master_answered();
    tracing::warn!(master = %address, "following the holder of the master lock");
    Ok(())
}

/// This host holds the lock under `epoch`: become the master in place.
fn take_over(agent: &Arc<Agent>, epoch: u64, report: &LivesetReport) -> Result<(), String> {
    let data_dir = agent.facts().data_dir.clone();
    let mut state = lock(&agent.ha().running)
        .as_ref()
        .map(|r| r.state.clone())
        .ok_or("HA is not running here")?;
    state.epoch = epoch;
    // From here on the old master's writer is refused by the redo log.
    let (ha_store, opened) = super::ha_volumes::open_store(&state, epoch)
        .map_err(|e| format!("{}: {e}", state.metadata.display()))?;
    let me = match ha_store.database().by_uuid(&agent.facts().info.uuid) {
        Some((Class::Host, r)) => r,
        _ => return Err("the database on the metadata volume does not hold this host".into()),
    };
    let old = pool_api::master(ha_store.database());
    // The HA record first (a restart opens the volume under this epoch),
    // then the role: a crash in between leaves a member that takes over
    // again on its next report.
    state
        .save(&data_dir)
        .map_err(|e| format!("writing the HA record: {e}"))?;
    Role::Master
        .save(&data_dir)
        .map_err(|e| format!("writing pool.conf: {e}"))?;
    {
        let mut store = agent.store();
        *store = ha_store;
        agent.set_membership(Role::Master, me, &store);
        agent.pool.emergency.master_answered();
        let db = store.database();
        let pool = pool_api::the_pool(db).ok_or("the database has no pool object")?;
        let caller = agent.caller();
        let changes = vec![
            Change::set(Class::Pool, pool, "master", Value::Ref(me)),
            catalog::raise(
                db,
                caller.now,
                caller.seed,
                &catalog::master_transition(db, me),
            ),
        ];
        agent
            .commit(&mut store, &changes)
            .map_err(|f| format!("committing the new master: {f:?}"))?;
    }
    if let Some(r) = lock(&agent.ha().running).as_mut() {
        r.state.epoch = epoch;
    }
    tracing::warn!(
        epoch,
        old_master = ?old,
        deltas_replayed = opened.deltas_replayed,
        "took over as the pool master (HA master failover)"
    );
    tell_members(agent, me, report);
    Ok(())
}

/// The other live members follow this master at once (one that misses the
/// call follows its own daemon's report, or this master's next push).
fn tell_members(agent: &Agent, me: Ref, report: &LivesetReport) {
    if tokio::runtime::Handle::try_current().is_err() {
        tracing::error!("no runtime for host-to-host calls: the members follow their own daemons");
        return;
    }
    let Some(secret) = agent.pool.secret() else {
        tracing::error!("this host has no pool secret: the members follow their own daemons");
        return;
    };
    let address = agent.facts().info.address.clone();
    let targets: Vec<(Ref, _)> = {
        let store = agent.store();
        let db = store.database();
        report
            .liveset
            .iter()
            .filter_map(|u| host_by_uuid(db, *u))
            .filter(|h| *h != me)
            .map(|h| (h, target_of(agent, db, h)))
            .collect()
    };
    for (h, target) in targets {
        let told = target.map_err(|f| format!("{f:?}")).and_then(|t| {
            block_on(tokio::time::timeout(
                TELL_TIMEOUT,
                peers::peer_call(
                    &t,
                    &secret,
                    peer::SET_MASTER,
                    vec![Rpc::Str(address.clone())],
                ),
            ))
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|e| e.to_string())
        });
        match told {
            Ok(_) => tracing::info!(host = %h, "member follows the new master"),
            Err(e) => tracing::warn!(host = %h, error = %e, "telling a member failed"),
        }
    }
}

/// This master lost the lock to `master`: become its member on the local
/// copy of the database (the new master pushes it a full snapshot).
fn step_down(agent: &Agent, master: Uuid) -> Result<(), String> {
    let data_dir = agent.facts().data_dir.clone();
    let address = address_of(agent.store().database(), master)
        .ok_or_else(|| format!("the lock holder {master} is no host of the database"))?;
    let (local, _) = Store::open_file(&data_dir.join(LOCAL_DB_FILE), Layout::standard(), 0)
        .map_err(|e| format!("opening the local copy: {e}"))?;
    let me = match local.database().by_uuid(&agent.facts().info.uuid) {
        Some((Class::Host, r)) => r,
        _ => return Err("the local copy does not hold this host".into()),
    };
    let role = Role::Slave(address.clone());
    role.save(&data_dir).map_err(|e| e.to_string())?;
    let mut store = agent.store();
    *store = local;
    agent.set_membership(role, me, &store);
    tracing::warn!(master = %address, "another host holds the master lock: this host is now its member");
    Ok(())
}

/// How long a master's agent with HA armed waits at start-up for its
/// `xhad` to be online with this host in the liveset (a host that fenced
/// and booted again joins only after every member dropped its old
/// incarnation): three timeouts, at least 30 s, at most 5 minutes.
#[must_use]
pub fn start_wait(state: &HaState) -> Duration {
    Duration::from_secs(state.timeout_s.saturating_mul(3).clamp(30, 300))
}

/// At start-up of a master with HA armed: waits (up to [`start_wait`]) for
/// this host's daemon to be in charge (online, this host in its liveset);
/// when it then names another live lock holder with a newer epoch than the
/// record's, the agent starts as its member (its address from the local
/// copy) and `pool.conf` says so. `None`: keep the role (if the daemon
/// never answered in charge, the redo log refuses the stale epoch when
/// another host took over and the agent exits with 75 to be started again:
/// never a second master). Before this wait, an old master that booted
/// before its daemon rejoined exited with 4, which systemd does not restart
/// (campaign finding 2, docs/lab.md).
pub fn role_at_start(data_dir: &Path, state: &HaState, me: Uuid) -> Option<Role> {
    let deadline = std::time::Instant::now() + start_wait(state);
    let mut waiting_logged = false;
    let report = loop {
        match client::query_liveset(&state.control_socket, REQUEST_TIMEOUT) {
            Some(r) if r.pool_generation != state.generation => return None,
            Some(r) if failover::in_charge(&r, me) => break r,
            _ if std::time::Instant::now() >= deadline => {
                tracing::warn!(
                    waited_s = start_wait(state).as_secs(),
                    "this host's xhad is not online with this host in its liveset: \
                     starting under the recorded role"
                );
                return None;
            }
            answer => {
                if !waiting_logged {
                    waiting_logged = true;
                    tracing::info!(
                        daemon_answers = answer.is_some(),
                        "waiting for this host's xhad to rejoin the liveset before choosing \
                         master or member"
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    };
    let known = Known {
        me,
        is_master: true,
        following: None,
        epoch: state.epoch,
        proposed: true,
        ha_enabled: true,
    };
    let Step::StepDown { master } = failover::decide(&known, &report) else {
        return None;
    };
    let (local, _) = Store::open_file(&data_dir.join(LOCAL_DB_FILE), Layout::standard(), 0).ok()?;
    let address = address_of(local.database(), master)?;
    let role = Role::Slave(address);
    if let Err(e) = role.save(data_dir) {
        tracing::error!(error = %e, "writing pool.conf failed");
        return None;
    }
    tracing::warn!(
        ?role,
        "another host took the master lock while this agent was down: starting as its member"
    );
    Some(role)
}
