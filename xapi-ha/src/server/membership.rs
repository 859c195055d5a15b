//! The agent's side of pools (docs/pool.md): performing the pool effects
//! of `api::pool` (join, eject, master handover) and forwarded VM effects
//! over the host-to-host client, and answering the host-to-host calls
//! (`pool::peer`) another agent makes. The decisions are the pure
//! handlers'; this is the network and the files at the edge.
//!
//! Every pool operation holds the database lock from its first network
//! call to the role change, so no call commits on a host whose role is
//! changing; a call that waited for the lock then finds the new role (a
//! member answers a change with `HOST_IS_SLAVE`).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::agent::{Agent, LocalStore};
use super::peers::{self, CallError, Target};
use super::role::Role;
use crate::api::pool as pool_api;
use crate::api::{ApiError, Caller, Effect, Outcome};
use crate::db::encode::{decode_snapshot, encode_snapshot};
use crate::db::{Change, Class, Database};
use crate::pool::backlog::{Backlog, DEFAULT_BATCHES};
use crate::pool::peer;
use crate::pool::secret::PoolSecret;
use crate::rpc::convert::to_rpc;
use crate::rpc::{Failure, Rpc};
use crate::value::{Key, Ref, Value};

/// How often a member retries reporting stopped VMs to an unreachable master.
const REPORT_RETRY: Duration = Duration::from_secs(2);

/// The agent's pool bookkeeping.
pub struct PoolState {
    secret: Mutex<Option<PoolSecret>>,
    backlog: Mutex<Backlog>,
    /// Member: VMs that stopped by themselves, not yet reported to the master.
    pub(super) unreported: Mutex<Vec<Uuid>>,
    /// Member: when the last report failed.
    report_failed_at: Mutex<Option<Instant>>,
    /// Member: VMs stopped at the master's request (their stop is the
    /// master's to commit, not a report).
    pub(super) requested_stops: Mutex<HashSet<Uuid>>,
    /// emerg: probes of the master, HA failure (`emergency`).
    pub(super) emergency: super::emergency::EmergencyState,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PoolState {
    /// With the secret read from the data directory, if any.
    #[must_use]
    pub fn new(secret: Option<PoolSecret>) -> PoolState {
        PoolState {
            secret: Mutex::new(secret),
            backlog: Mutex::new(Backlog::new(DEFAULT_BATCHES)),
            unreported: Mutex::new(Vec::new()),
            report_failed_at: Mutex::new(None),
            requested_stops: Mutex::new(HashSet::new()),
            emergency: super::emergency::EmergencyState::default(),
        }
    }

    /// The pool secret.
    pub fn secret(&self) -> Option<PoolSecret> {
        lock(&self.secret).clone()
    }

    pub(super) fn set_secret(&self, s: PoolSecret) {
        *lock(&self.secret) = Some(s);
    }

    /// The master's backlog of committed batches.
    pub fn backlog(&self) -> MutexGuard<'_, Backlog> {
        lock(&self.backlog)
    }
}

/// Runs a future to its end from a blocking thread (the handlers' pool
/// work runs on tokio's blocking pool).
pub(super) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}

pub(super) fn internal(what: impl std::fmt::Display) -> Failure {
    ApiError::internal(&what.to_string()).into()
}

pub(super) fn text(db: &Database, class: Class, r: Ref, field: &str) -> String {
    db.field(class, r, field)
        .map(|v| crate::api::coerce::to_text(&v))
        .unwrap_or_default()
}

/// How to reach `host`: its address, the pool's port, its recorded
/// certificate fingerprint (required: hosts pin each other).
pub fn target_of(agent: &Agent, db: &Database, host: Ref) -> Result<Target, Failure> {
    let port = agent
        .facts()
        .peer_port
        .ok_or_else(|| internal("this agent serves no TLS listener: it cannot call other hosts"))?;
    let address = text(db, Class::Host, host, "address");
    let fingerprint = pool_api::host_fingerprint(db, host)
        .ok_or_else(|| internal(format!("host {host} has no recorded TLS fingerprint")))?;
    Ok(Target {
        address,
        port,
        fingerprint: Some(fingerprint),
    })
}

fn secret(agent: &Agent) -> Result<PoolSecret, Failure> {
    agent
        .pool
        .secret()
        .ok_or_else(|| internal("this host has no pool secret"))
}

/// A failed call to another host: its API error as is; no answer is
/// `CANNOT_CONTACT_HOST [host]` (the reason is logged).
fn contact_error(host: Ref) -> impl Fn(CallError) -> Failure {
    move |e| match e {
        CallError::Api(f) => f,
        CallError::Peer(e) => {
            tracing::warn!(%host, error = %e, "host-to-host call failed");
            Failure::new("CANNOT_CONTACT_HOST", [host.to_string()])
        }
    }
}

/// Performs a forwarded VM effect on `host`'s agent (blocking thread).
pub fn forward(agent: &Agent, host: Ref, effect: &Effect) -> Result<(), Failure> {
    let target = target_of(agent, agent.store().database(), host)?;
    let secret = secret(agent)?;
    let (method, params) = match effect {
        Effect::StartVm { spec, .. } => (
            peer::START_VM,
            vec![Rpc::Str(serde_json::to_string(spec).map_err(internal)?)],
        ),
        Effect::StopVm { uuid, hard, .. } => (
            peer::STOP_VM,
            vec![Rpc::Str(uuid.hyphenated().to_string()), Rpc::Bool(*hard)],
        ),
        // maint: host.shutdown / host.reboot of a member.
        Effect::ShutdownHost { reboot, .. } => (peer::SHUTDOWN, vec![Rpc::Bool(*reboot)]),
        other => return Err(internal(format!("cannot forward {other:?}"))),
    };
    tracing::info!(%host, target = %target, method, "forwarding");
    block_on(peers::peer_call(&target, &secret, method, params))
        .map(|_| ())
        .map_err(contact_error(host))
}

/// A host-to-host call `method(params)` on `host`'s agent; its answer
/// (blocking thread).
pub fn call_host(agent: &Agent, host: Ref, method: &str, params: Vec<Rpc>) -> Result<Rpc, Failure> {
    let target = target_of(agent, agent.store().database(), host)?;
    let secret = secret(agent)?;
    tracing::info!(%host, target = %target, method, "host-to-host call");
    block_on(peers::peer_call(&target, &secret, method, params)).map_err(contact_error(host))
}

/// The reply to `pool.admit` on the master, right after its commit: the new
/// host, the pool secret and the database copy (which holds the host).
pub fn admit_reply(agent: &Agent, store: &LocalStore, result: &Value) -> Result<Rpc, Failure> {
    let secret = secret(agent)?;
    let snapshot = String::from_utf8(encode_snapshot(store.database())).map_err(internal)?;
    Ok(Rpc::Struct(
        [
            ("host".to_owned(), to_rpc(result)),
            ("secret".to_owned(), Rpc::Str(secret.expose().to_owned())),
            ("snapshot".to_owned(), Rpc::Str(snapshot)),
        ]
        .into_iter()
        .collect(),
    ))
}

/// Performs a call's pool effects with the database held, then commits its
/// changes; the call's result.
pub fn run_pool_effects(
    agent: &Agent,
    store: &mut LocalStore,
    caller: &Caller,
    outcome: Outcome,
) -> Result<Rpc, Failure> {
    for effect in &outcome.effects {
        match effect {
            Effect::JoinPool {
                master_address,
                username,
                password,
            } => join(agent, store, master_address, username, password)?,
            Effect::EjectHost { host } => {
                let target = target_of(agent, store.database(), *host)?;
                block_on(peers::peer_call(
                    &target,
                    &secret(agent)?,
                    peer::EJECT,
                    Vec::new(),
                ))
                .map_err(contact_error(*host))?;
                tracing::info!(host = %host, "ejected from the pool");
            }
            Effect::HandOverMaster { host } => {
                return hand_over(agent, store, caller, *host, &outcome.changes)
                    .map(|()| to_rpc(&outcome.result));
            }
            other => return Err(internal(format!("not a pool effect: {other:?}"))),
        }
    }
    agent.commit(store, &outcome.changes)?;
    Ok(to_rpc(&outcome.result))
}

fn struct_str(v: &Rpc, name: &str) -> Result<String, Failure> {
    match v {
        Rpc::Struct(m) => match m.get(name) {
            Some(Rpc::Str(s)) => Ok(s.clone()),
            _ => Err(internal(format!(
                "the master's pool.admit reply has no {name}"
            ))),
        },
        _ => Err(internal("the master's pool.admit reply is not a struct")),
    }
}

/// `pool.join` on this (joining) host: log in to the master (trusting its
/// certificate on this first contact and pinning it after), be admitted,
/// then keep the secret, install the copy and become a member.
fn join(
    agent: &Agent,
    store: &mut LocalStore,
    master_address: &str,
    username: &str,
    password: &str,
) -> Result<(), Failure> {
    let facts = agent.facts();
    let port = facts
        .peer_port
        .ok_or_else(|| internal("this agent serves no TLS listener: it cannot join a pool"))?;
    let fingerprint = facts
        .tls_fingerprint
        .clone()
        .ok_or_else(|| internal("this agent has no TLS certificate"))?;
    let unreachable = |e: CallError| match e {
        CallError::Api(f) => f,
        CallError::Peer(e) => {
            tracing::warn!(master = master_address, error = %e, "pool.join: master unreachable");
            Failure::new("JOINING_HOST_CONNECTION_FAILED", Vec::<String>::new())
        }
    };
    let first = Target {
        address: master_address.to_owned(),
        port,
        fingerprint: None,
    };
    let (session, seen) =
        block_on(peers::login(&first, username, password)).map_err(unreachable)?;
    tracing::info!(master = %first, fingerprint = %seen, "pool.join: logged in to the master (certificate trusted on first use, pinned from now on)");
    let pinned = Target {
        fingerprint: Some(seen.clone()),
        ..first
    };
    if seen == fingerprint {
        // Our own certificate: this host itself (its database is locked
        // by this very call, so it could not admit itself anyway).
        let _ = block_on(peers::call_with(
            &pinned,
            &session,
            "session.logout",
            Vec::new(),
        ));
        return Err(ApiError::operation_not_allowed("Host cannot become slave of itself").into());
    }
    let mut record = pool_api::admit_record(&facts.info, &fingerprint);
    // blocksr: this host's halted VMs go with it (api::pool_import).
    if let Value::Map(pairs) = &mut record {
        pairs.push((
            Key::String(crate::api::pool_import::VMS_KEY.into()),
            crate::api::pool_import::halted_vms(store.database()),
        ));
    }
    let reply = block_on(peers::call_with(
        &pinned,
        &session,
        "pool.admit",
        vec![to_rpc(&record)],
    ));
    let _ = block_on(peers::call_with(
        &pinned,
        &session,
        "session.logout",
        Vec::new(),
    ));
    let reply = reply.map_err(unreachable)?;
    let host = Ref::parse(&struct_str(&reply, "host")?)
        .ok_or_else(|| internal("the master's pool.admit reply names no host"))?;
    let secret = PoolSecret::parse(&struct_str(&reply, "secret")?, "the master's pool secret")
        .map_err(internal)?;
    let db = decode_snapshot(struct_str(&reply, "snapshot")?.as_bytes()).map_err(internal)?;
    if text(&db, Class::Host, host, "uuid") != facts.info.uuid {
        return Err(internal(
            "the master's database copy does not hold this host",
        ));
    }
    let master = pool_api::master(&db).ok_or_else(|| internal("the pool has no master"))?;
    if pool_api::host_fingerprint(&db, master).as_deref() != Some(seen.as_str()) {
        return Err(internal(format!(
            "the master presented certificate {seen}, not the one its record holds"
        )));
    }
    // The secret first: a member without it could not be told anything.
    let dir = &facts.data_dir;
    secret.save(dir).map_err(internal)?;
    store.install(db).map_err(internal)?;
    let role = Role::Slave(master_address.to_owned());
    role.save(dir).map_err(internal)?;
    agent.pool.set_secret(secret);
    agent.set_membership(role, host, store);
    tracing::info!(master = master_address, host = %host, "joined the pool: this host is a member");
    Ok(())
}

/// `pool.designate_new_master` on the master: the new master gets the
/// database with the call's changes and takes over; then this host commits
/// the same changes (its copy stays equal), becomes a member, and tells the
/// other members. The database stays locked throughout, so no change is
/// acknowledged here that the new master lacks.
fn hand_over(
    agent: &Agent,
    store: &mut LocalStore,
    caller: &Caller,
    host: Ref,
    changes: &[Change],
) -> Result<(), Failure> {
    let db = store.database();
    let target = target_of(agent, db, host)?;
    let secret = secret(agent)?;
    let mut next = db.clone();
    let _kept = next.apply(changes).map_err(internal)?;
    let snapshot = String::from_utf8(encode_snapshot(&next)).map_err(internal)?;
    let address = text(db, Class::Host, host, "address");
    let others: Vec<Ref> = db
        .objects(Class::Host)
        .map(|(h, _)| h)
        .filter(|h| *h != host && *h != caller.this_host)
        .collect();
    block_on(peers::peer_call(
        &target,
        &secret,
        peer::TAKE_OVER,
        vec![Rpc::Str(snapshot)],
    ))
    .map_err(contact_error(host))?;
    tracing::info!(new_master = %address, "handed the master role over");
    if let Err(e) = agent.commit(store, changes) {
        // The new master has the changes; our copy catches up by its push.
        tracing::error!(error = ?e, "committing the handover here failed");
    }
    let role = Role::Slave(address.clone());
    if let Err(e) = role.save(&agent.facts().data_dir) {
        tracing::error!(error = %e, "writing pool.conf failed");
    }
    agent.set_membership(role, caller.this_host, store);
    for h in others {
        let told = target_of(agent, store.database(), h).and_then(|t| {
            block_on(peers::peer_call(
                &t,
                &secret,
                peer::SET_MASTER,
                vec![Rpc::Str(address.clone())],
            ))
            .map_err(contact_error(h))
        });
        if let Err(e) = told {
            // Its next push from the new master names the master too.
            tracing::warn!(host = %h, error = ?e, "telling a member about the new master failed");
        }
    }
    Ok(())
}

/// Member: queues the VMs recorded running here that the drivers do not
/// run (found at agent start), to report them stopped to the master.
pub fn queue_missing(agent: &Agent, db: &Database, running: &[Uuid]) {
    let here = agent.host_ref();
    let mut q = lock(&agent.pool.unreported);
    for (vm, obj) in db.objects(Class::Vm) {
        let on_here = db
            .field(Class::Vm, vm, "resident_on")
            .and_then(|v| v.as_ref())
            == Some(here);
        let Ok(uuid) = Uuid::parse_str(obj.uuid()) else {
            continue;
        };
        if on_here && text(db, Class::Vm, vm, "power_state") != "Halted" && !running.contains(&uuid)
        {
            q.push(uuid);
        }
    }
}

/// Member: reports VMs that stopped by themselves to the master (those it
/// stopped at the master's request excepted), retrying those not yet
/// reported at most every [`REPORT_RETRY`] (blocking thread).
pub fn report_stopped(agent: &Agent, stopped: Vec<Uuid>) {
    {
        let mut requested = lock(&agent.pool.requested_stops);
        let mut q = lock(&agent.pool.unreported);
        for u in stopped {
            if !requested.remove(&u) && !q.contains(&u) {
                q.push(u);
            }
        }
        if q.is_empty() {
            return;
        }
    }
    if lock(&agent.pool.report_failed_at).is_some_and(|t| t.elapsed() < REPORT_RETRY) {
        return;
    }
    let Role::Slave(master_address) = agent.role() else {
        return;
    };
    let (target, host_uuid) = {
        let store = agent.store();
        let db = store.database();
        let fingerprint = pool_api::master(db).and_then(|m| pool_api::host_fingerprint(db, m));
        let Some(port) = agent.facts().peer_port else {
            return;
        };
        (
            Target {
                address: master_address,
                port,
                fingerprint,
            },
            text(db, Class::Host, agent.host_ref(), "uuid"),
        )
    };
    let Some(secret) = agent.pool.secret() else {
        return;
    };
    let pending: Vec<Uuid> = lock(&agent.pool.unreported).clone();
    for vm in pending {
        let r = block_on(peers::peer_call(
            &target,
            &secret,
            peer::VM_STOPPED,
            vec![
                Rpc::Str(host_uuid.clone()),
                Rpc::Str(vm.hyphenated().to_string()),
            ],
        ));
        match r {
            Ok(_) => {
                lock(&agent.pool.unreported).retain(|u| *u != vm);
                *lock(&agent.pool.report_failed_at) = None;
            }
            Err(e) => {
                tracing::warn!(vm = %vm, error = %e, "reporting a stopped VM to the master failed; will retry");
                *lock(&agent.pool.report_failed_at) = Some(Instant::now());
                return;
            }
        }
    }
}

pub use super::peer_calls::handle_peer;
