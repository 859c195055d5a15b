//! Emergency mode and the emergency calls (docs/operations.md, "Emergency
//! runbook"; docs/api.md, "Emergency calls"): the I/O around the pure
//! decision of `pool::emergency`.
//!
//! - A member probes its master every [`PROBE_INTERVAL`]; after
//!   [`PROBE_FAILURES`] probes in a row without an answer it is in
//!   emergency mode (one answer ends it). A host whose armed HA daemon was
//!   not running at start is in emergency mode too, until
//!   `host.emergency_ha_disable`.
//! - [`intercept`] runs first for every call: in emergency mode only the
//!   emergency calls (and host-to-host calls) are answered; the emergency
//!   calls this agent implements are answered here, on any session of this
//!   host (a host-local login, `session.slave_local_login_with_password`,
//!   root on the Unix socket, or another host's pool-secret login).
//! - `pool.emergency_transition_to_master` and
//!   `pool.emergency_reset_master` rewrite `pool.conf` and switch the
//!   running agent's role in place (xapi restarts itself instead);
//!   `pool.recover_slaves` (master) calls the latter on every other host.
//! - mfail: while this host's `xhad` is online in the liveset the probe
//!   stands down (its failures do not count): a master that leaves the
//!   liveset is replaced by the master failover (`master_failover`), and a
//!   member must keep answering `HOST_IS_SLAVE` meanwhile.

use std::net::ToSocketAddrs;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::agent::{Agent, Origin};
use super::membership::{block_on, internal, lock, target_of, text};
use super::peers::{self, Target};
use super::role::Role;
use crate::api::ApiError;
use crate::api::pool as pool_api;
use crate::db::{Change, Class};
use crate::ha_link::state::HaState;
use crate::pool::emergency::{self, HaFailure, Situation};
use crate::pool::peer::{self, PEER_USER};
use crate::rpc::{Call, Failure, Rpc};
use crate::value::{Ref, Value};

/// How often a member probes its master.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// Probes in a row without an answer before a member is in emergency mode.
pub const PROBE_FAILURES: u32 = 3;
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The calls answered here (the others of the emergency list are either
/// answered by the dispatcher, such as the local logins, or not
/// implemented: `MESSAGE_METHOD_UNKNOWN`).
const HANDLED: &[&str] = &[
    "host.is_in_emergency_mode",
    "host.emergency_ha_disable",
    "pool.emergency_transition_to_master",
    "pool.emergency_reset_master",
    "pool.recover_slaves",
];

/// What the agent knows of its emergency: probes of the master, HA failure.
#[derive(Debug, Default)]
pub struct EmergencyState {
    /// Probes of the master in a row that got no answer.
    failed_probes: AtomicU32,
    /// HA is armed but did not start here.
    ha_failure: Mutex<Option<HaFailure>>,
    /// mfail: this host's `xhad` is online in the liveset: HA decides
    /// whether the master is there (`master_failover`), not the probe.
    ha_in_charge: AtomicBool,
}

impl EmergencyState {
    /// The master answered (or this host changed role): not cut off.
    pub fn master_answered(&self) {
        if self.failed_probes.swap(0, Ordering::Relaxed) >= PROBE_FAILURES {
            tracing::info!("the master answers again: leaving emergency mode");
        }
    }

    fn master_silent(&self) {
        let n = self.failed_probes.fetch_add(1, Ordering::Relaxed) + 1;
        if n == PROBE_FAILURES {
            tracing::warn!(
                probes = n,
                "the master does not answer: emergency mode (only the emergency calls are answered)"
            );
        }
    }

    /// mfail: whether this host's `xhad` is online in the liveset (the
    /// probe of the master stands down meanwhile).
    pub fn set_ha_in_charge(&self, on: bool) {
        self.ha_in_charge.store(on, Ordering::Relaxed);
    }

    /// Whether the follower last saw this host online in its `xhad`'s
    /// liveset.
    pub fn ha_in_charge(&self) -> bool {
        self.ha_in_charge.load(Ordering::Relaxed)
    }

    /// Records that HA did not start (or, `None`, no longer matters).
    pub fn set_ha_failure(&self, f: Option<HaFailure>) {
        *lock(&self.ha_failure) = f;
    }
}

impl Agent {
    fn emergency(&self) -> &EmergencyState {
        &self.pool.emergency
    }

    /// The facts `pool::emergency` decides on.
    pub fn situation(&self) -> Situation {
        let member = !self.is_master();
        Situation {
            member,
            master_unreachable: member
                && self.emergency().failed_probes.load(Ordering::Relaxed) >= PROBE_FAILURES,
            ha_failure: *lock(&self.emergency().ha_failure),
        }
    }

    /// `host.is_in_emergency_mode`.
    pub fn is_in_emergency_mode(&self) -> bool {
        emergency::emergency_error(&self.situation()).is_some()
    }

    /// HA is armed on this host (its local record exists).
    fn armed(&self) -> bool {
        matches!(HaState::load(&self.facts().data_dir), Ok(Some(_)) | Err(_))
    }
}

/// Member: probes the master's API (an unauthenticated
/// `system.listMethods`: no secret is sent to whatever now answers at that
/// address) for the agent's life.
pub async fn watch_master(agent: Arc<Agent>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let (Role::Slave(address), Some(port)) = (agent.role(), agent.facts().peer_port) else {
            agent.emergency().master_answered();
            continue;
        };
        // mfail: under HA the liveset says whether the master is there; a
        // dead master is replaced by the failover, not by emergency mode.
        if agent.emergency().ha_in_charge.load(Ordering::Relaxed) {
            agent.emergency().master_answered();
            continue;
        }
        let target = Target {
            address,
            port,
            fingerprint: None,
        };
        let probe = Call {
            method: "system.listMethods".to_owned(),
            params: Vec::new(),
        };
        match tokio::time::timeout(PROBE_TIMEOUT, peers::call(&target, &probe)).await {
            Ok(Ok(_)) => agent.emergency().master_answered(),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "probe of the master failed");
                agent.emergency().master_silent();
            }
            Err(_) => agent.emergency().master_silent(),
        }
    }
}

fn caller_of(method: &str, params: &[Rpc]) -> emergency::Caller {
    let peer_login = method == "session.login_with_password"
        && matches!(params.first(), Some(Rpc::Str(u)) if u == PEER_USER);
    if peer_login || peer::METHODS.contains(&method) {
        emergency::Caller::Peer
    } else {
        emergency::Caller::Client
    }
}

/// Runs before the dispatcher: the emergency error for a call this host
/// does not answer now, or the answer of an emergency call handled here;
/// `None` lets the dispatcher go on.
pub(super) async fn intercept(
    agent: &Arc<Agent>,
    method: &str,
    params: &[Rpc],
    _origin: Origin,
) -> Option<Result<Rpc, Failure>> {
    let situation = agent.situation();
    if let Err(code) = emergency::admit(method, caller_of(method, params), &situation) {
        return Some(Err(Failure::new(code, Vec::<String>::new())));
    }
    if !HANDLED.contains(&method) {
        return None;
    }
    let r = match params.first() {
        Some(Rpc::Str(s)) => s.clone(),
        _ => return Some(Err(ApiError::session_invalid("").into())),
    };
    if agent.session_of(&r).is_none() {
        return Some(Err(ApiError::session_invalid(&r).into()));
    }
    let agent = Arc::clone(agent);
    let method = method.to_owned();
    let args = params[1..].to_vec();
    Some(
        tokio::task::spawn_blocking(move || handle(&agent, &method, &args))
            .await
            .map_err(internal)
            .and_then(|r| r),
    )
}

fn arity(
    method: &str,
    args: &[Rpc],
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), Failure> {
    if range.contains(&args.len()) {
        Ok(())
    } else {
        // Counted with the session, as the dispatcher counts.
        Err(ApiError::parameter_count_mismatch(method, range.end() + 1, args.len() + 1).into())
    }
}

fn handle(agent: &Arc<Agent>, method: &str, args: &[Rpc]) -> Result<Rpc, Failure> {
    match method {
        "host.is_in_emergency_mode" => {
            arity(method, args, 0..=0)?;
            Ok(Rpc::Bool(agent.is_in_emergency_mode()))
        }
        "host.emergency_ha_disable" => {
            arity(method, args, 0..=1)?;
            let soft = match args.first() {
                None => false,
                Some(Rpc::Bool(b)) => *b,
                Some(_) => return Err(ApiError::field_type_error("soft").into()),
            };
            agent.emergency_ha_disable(soft)?;
            Ok(Rpc::Str(String::new()))
        }
        "pool.emergency_transition_to_master" => {
            arity(method, args, 0..=0)?;
            transition_to_master(agent)?;
            Ok(Rpc::Str(String::new()))
        }
        "pool.emergency_reset_master" => {
            arity(method, args, 1..=1)?;
            let Some(Rpc::Str(address)) = args.first() else {
                return Err(ApiError::field_type_error("master_address").into());
            };
            reset_master(agent, address)?;
            Ok(Rpc::Str(String::new()))
        }
        "pool.recover_slaves" => {
            arity(method, args, 0..=0)?;
            recover_slaves(agent)
        }
        other => Err(ApiError::method_unknown(other).into()),
    }
}

fn refuse_if_armed(agent: &Agent) -> Result<(), Failure> {
    if agent.armed() {
        return Err(ApiError::ha_is_enabled().into());
    }
    Ok(())
}

/// This host's reference in its copy of the database (by its uuid).
fn own_host(agent: &Agent, db: &crate::db::Database) -> Result<Ref, Failure> {
    match db.by_uuid(&agent.facts().info.uuid) {
        Some((Class::Host, r)) => Ok(r),
        _ => Err(internal(
            "this host's database copy does not hold this host",
        )),
    }
}

/// `pool.emergency_transition_to_master`: this host becomes the master of
/// its copy of the database, at once (pool.conf first, then the role, then
/// `pool.master`, committed here as the first change of the new master).
fn transition_to_master(agent: &Agent) -> Result<(), Failure> {
    refuse_if_armed(agent)?;
    let mut store = agent.store();
    if agent.is_master() {
        tracing::info!("emergency transition to master: this host is the master already");
        return Ok(());
    }
    let me = own_host(agent, store.database())?;
    let pool = pool_api::the_pool(store.database())
        .ok_or_else(|| internal("the database copy has no pool object"))?;
    Role::Master
        .save(&agent.facts().data_dir)
        .map_err(internal)?;
    agent.set_membership(Role::Master, me, &store);
    agent.emergency().master_answered();
    agent.commit(
        &mut store,
        &[Change::set(Class::Pool, pool, "master", Value::Ref(me))],
    )?;
    tracing::warn!("emergency transition: this host is now the pool master");
    Ok(())
}

/// `pool.emergency_reset_master(address)`: this host becomes a member of
/// the master at `address` (resolved first), at once.
fn reset_master(agent: &Agent, address: &str) -> Result<(), Failure> {
    refuse_if_armed(agent)?;
    let bad = || Failure::from(ApiError::invalid_value("master_address", address));
    let Some(role) = Role::parse(&format!("slave:{address}")) else {
        return Err(bad());
    };
    if address == agent.facts().info.address {
        return Err(ApiError::operation_not_allowed("Host cannot become slave of itself").into());
    }
    let port = agent.facts().peer_port.unwrap_or(443);
    if (address, port)
        .to_socket_addrs()
        .map_or(true, |mut a| a.next().is_none())
    {
        tracing::warn!(
            address,
            "emergency reset master: the address does not resolve"
        );
        return Err(bad());
    }
    let recorded = {
        let store = agent.store();
        role.save(&agent.facts().data_dir).map_err(internal)?;
        agent.set_membership(role, agent.host_ref(), &store);
        agent.emergency().master_answered();
        tracing::warn!(
            master = address,
            "emergency reset: this host is now a member of that master"
        );
        text(store.database(), Class::Host, agent.host_ref(), "address")
    };
    let mine = agent.facts().info.address.clone();
    if let Some(mine) = emergency::address_to_record(&recorded, &mine) {
        record_address(agent, address, port, mine);
    }
    Ok(())
}

/// Records `mine` as this host's `address` on the master at `master` (a
/// host-to-host login, then `host.set_address`), so that the master and
/// the HA enable reach this host where it now is. A failure is logged:
/// the reset itself stands, and `xe host-param-set address=` on the
/// master does the same by hand.
fn record_address(agent: &Agent, master: &str, port: u16, mine: &str) {
    let (fingerprint, me) = {
        let store = agent.store();
        let db = store.database();
        let at = db
            .objects(Class::Host)
            .map(|(h, _)| h)
            .find(|h| text(db, Class::Host, *h, "address") == master)
            .or_else(|| pool_api::master(db));
        (
            at.and_then(|h| pool_api::host_fingerprint(db, h)),
            agent.host_ref(),
        )
    };
    let Some(secret) = agent.pool.secret() else {
        tracing::error!(
            "this host has no pool secret: its new address is not recorded on the master"
        );
        return;
    };
    let target = Target {
        address: master.to_owned(),
        port,
        fingerprint,
    };
    let r = block_on(tokio::time::timeout(
        PROBE_TIMEOUT,
        peers::peer_call(
            &target,
            &secret,
            "host.set_address",
            vec![Rpc::Str(me.to_string()), Rpc::Str(mine.to_owned())],
        ),
    ));
    match r {
        Ok(Ok(_)) => tracing::warn!(
            address = mine,
            master,
            "recorded this host's new address on the master"
        ),
        Ok(Err(e)) => {
            tracing::error!(error = %e, master, "recording this host's address on the master failed")
        }
        Err(_) => tracing::error!(
            master,
            "recording this host's address on the master: no answer in time"
        ),
    }
}

/// `pool.recover_slaves` on the master: `pool.emergency_reset_master(<this
/// host's address>)` on every other host of the database (over a
/// pool-secret login, no liveness check); the hosts that accepted.
fn recover_slaves(agent: &Agent) -> Result<Rpc, Failure> {
    if let Role::Slave(m) = agent.role() {
        return Err(ApiError::host_is_slave(&m).into());
    }
    let secret = agent
        .pool
        .secret()
        .ok_or_else(|| internal("this host has no pool secret"))?;
    let (mine, others) = {
        let store = agent.store();
        let db = store.database();
        let me = agent.host_ref();
        let others: Vec<(Ref, Result<Target, Failure>)> = db
            .objects(Class::Host)
            .map(|(h, _)| h)
            .filter(|h| *h != me)
            .map(|h| (h, target_of(agent, db, h)))
            .collect();
        (text(db, Class::Host, me, "address"), others)
    };
    let mut recovered = Vec::new();
    for (h, target) in others {
        let r = target.and_then(|t| {
            block_on(peers::peer_call(
                &t,
                &secret,
                "pool.emergency_reset_master",
                vec![Rpc::Str(mine.clone())],
            ))
            .map_err(|e| internal(e.to_string()))
        });
        match r {
            Ok(_) => {
                tracing::info!(host = %h, "recovered: the host follows this master");
                recovered.push(Rpc::Str(h.to_string()));
            }
            Err(e) => tracing::warn!(host = %h, error = ?e, "recovering a host failed"),
        }
    }
    Ok(Rpc::Array(recovered))
}
