//! Answers to the host-to-host calls (`pool::peer`, docs/pool.md) another
//! agent of the pool makes: the master's database pushes, forwarded VM
//! starts and stops, the handover, a new master's address, an eject (on a
//! member); a member's report of a stopped VM (on the master).

use std::sync::Arc;

use uuid::Uuid;

use super::agent::{Agent, LocalStore, wall_clock};
use super::membership::{internal, lock};
use super::role::Role;
use crate::api::bootstrap;
use crate::api::pool as pool_api;
use crate::api::{ApiError, Caller};
use crate::db::encode::{decode_delta, decode_snapshot};
use crate::db::{Change, Class, Database};
use crate::pool::peer::{self, code};
use crate::pool::secret::PoolSecret;
use crate::rpc::{Failure, Rpc};
use crate::value::{Key, Ref, Value};

fn param_str(args: &[Rpc], i: usize, name: &str) -> Result<String, Failure> {
    match args.get(i) {
        Some(Rpc::Str(s)) => Ok(s.clone()),
        _ => Err(ApiError::field_type_error(name).into()),
    }
}

fn not_a_member() -> Failure {
    ApiError::operation_not_allowed("this host is the pool master, not a member").into()
}

/// Answers a host-to-host call (the session was checked to be a
/// pool-secret one; `args` follow the session).
/// Answers a host-to-host call (the session was checked to be a
/// pool-secret one; `args` follow the session).
pub async fn handle_peer(agent: &Arc<Agent>, method: &str, args: Vec<Rpc>) -> Result<Rpc, Failure> {
    let agent = Arc::clone(agent);
    let method = method.to_owned();
    tokio::task::spawn_blocking(move || peer_blocking(&agent, &method, &args))
        .await
        .map_err(internal)?
}

fn peer_blocking(agent: &Arc<Agent>, method: &str, args: &[Rpc]) -> Result<Rpc, Failure> {
    match method {
        // hamulti: HA on N hosts (server::ha_hosts).
        peer::HA_PREPARE | peer::HA_ARM | peer::HA_DISARM => {
            super::ha_hosts::answer(agent, method, args)
        }
        peer::SYNC => sync(agent, args),
        // alerts: a member's messages, recorded on the master.
        peer::RAISE_MSGS => super::member_alerts::answer(agent, args),
        peer::SHUTDOWN => super::maintenance::peer_shutdown(agent, args),
        peer::START_VM => {
            let spec: xapi_vm::VmSpec = serde_json::from_str(&param_str(args, 0, "spec")?)
                .map_err(|e| Failure::from(ApiError::invalid_value("spec", &e.to_string())))?;
            if agent.is_master() {
                return Err(not_a_member());
            }
            super::start_guard::check(agent)?;
            let vms = agent
                .vm_host()
                .ok_or_else(|| internal("this agent runs no VM drivers"))?;
            let mut vms = lock(vms);
            lock(&agent.pool.requested_stops).remove(&spec.uuid);
            vms.start(&spec).map_err(internal)?;
            tracing::info!(vm = %spec.uuid, "started at the master's request");
            Ok(Rpc::Str(String::new()))
        }
        peer::STOP_VM => {
            let uuid = Uuid::parse_str(&param_str(args, 0, "vm_uuid")?)
                .map_err(|_| Failure::from(ApiError::field_type_error("vm_uuid")))?;
            let hard = matches!(args.get(1), Some(Rpc::Bool(true)));
            if agent.is_master() {
                return Err(not_a_member());
            }
            let vms = agent
                .vm_host()
                .ok_or_else(|| internal("this agent runs no VM drivers"))?;
            let mut vms = lock(vms);
            lock(&agent.pool.requested_stops).insert(uuid);
            vms.stop(uuid, hard).map_err(internal)?;
            tracing::info!(vm = %uuid, hard, "stopped at the master's request");
            Ok(Rpc::Str(String::new()))
        }
        peer::MIGRATE => super::live_migration::peer_step(agent, args),
        peer::VM_STOPPED => {
            let host_uuid = param_str(args, 0, "host_uuid")?;
            let vm_uuid = param_str(args, 1, "vm_uuid")?;
            let mut store = agent.store();
            if let Role::Slave(m) = agent.role() {
                return Err(ApiError::host_is_slave(&m).into());
            }
            let Some((Class::Host, host)) = store.database().by_uuid(&host_uuid) else {
                return Err(ApiError::uuid_invalid("host", &host_uuid).into());
            };
            let changes = crate::api::vm_power::stopped_by_itself(
                store.database(),
                wall_clock(),
                Uuid::new_v4(),
                host,
                &vm_uuid,
            );
            tracing::info!(vm = %vm_uuid, host = %host_uuid, "a member reports a VM stopped");
            agent.commit(&mut store, &changes)?;
            Ok(Rpc::Str(String::new()))
        }
        peer::TAKE_OVER => {
            let db =
                decode_snapshot(param_str(args, 0, "snapshot")?.as_bytes()).map_err(internal)?;
            let mut store = agent.store();
            if agent.is_master() {
                return Err(
                    ApiError::operation_not_allowed("this host is the master already").into(),
                );
            }
            let me = own_host(agent, &db)?;
            if pool_api::master(&db) != Some(me) {
                return Err(internal("the handed-over database names another master"));
            }
            store.install(db).map_err(internal)?;
            Role::Master
                .save(&agent.facts().data_dir)
                .map_err(internal)?;
            agent.set_membership(Role::Master, me, &store);
            tracing::info!("took over as the pool master");
            Ok(Rpc::Str(String::new()))
        }
        peer::SET_MASTER => {
            let address = param_str(args, 0, "master_address")?;
            let store = agent.store();
            if agent.is_master() {
                return Err(not_a_member());
            }
            follow_master(agent, &store, &address)?;
            Ok(Rpc::Str(String::new()))
        }
        peer::EJECT => {
            let mut store = agent.store();
            if agent.is_master() {
                return Err(ApiError::operation_not_allowed("Cannot eject the pool master").into());
            }
            forget_pool(agent, &mut store)?;
            Ok(Rpc::Str(String::new()))
        }
        other => Err(ApiError::method_unknown(other).into()),
    }
}

/// This host's reference in `db` (found by its uuid).
fn own_host(agent: &Agent, db: &Database) -> Result<Ref, Failure> {
    match db.by_uuid(&agent.facts().info.uuid) {
        Some((Class::Host, r)) => Ok(r),
        _ => Err(internal("the pool database does not hold this host")),
    }
}

/// Member: rewrites `pool.conf` when the master's address changed.
fn follow_master(agent: &Agent, store: &LocalStore, address: &str) -> Result<(), Failure> {
    let role = Role::Slave(address.to_owned());
    if agent.role() == role {
        return Ok(());
    }
    role.save(&agent.facts().data_dir).map_err(internal)?;
    agent.set_membership(role, agent.host_ref(), store);
    tracing::info!(master = address, "following a new master");
    Ok(())
}

/// Member: applies what the master pushed; this copy's generation.
fn sync(agent: &Agent, args: &[Rpc]) -> Result<Rpc, Failure> {
    let master_address = param_str(args, 0, "master_address")?;
    let kind = param_str(args, 1, "kind")?;
    let payloads: Vec<String> = match args.get(2) {
        Some(Rpc::Array(items)) => items
            .iter()
            .map(|i| match i {
                Rpc::Str(s) => Ok(s.clone()),
                _ => Err(Failure::from(ApiError::field_type_error("payloads"))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::field_type_error("payloads").into()),
    };
    let mut store = agent.store();
    if agent.is_master() {
        return Err(not_a_member());
    }
    match kind.as_str() {
        peer::KIND_SNAPSHOT => {
            let [payload] = payloads.as_slice() else {
                return Err(
                    ApiError::invalid_value("payloads", "a snapshot is one payload").into(),
                );
            };
            let db = decode_snapshot(payload.as_bytes()).map_err(internal)?;
            let me = own_host(agent, &db)?;
            store.install(db).map_err(internal)?;
            agent.set_membership(agent.role(), me, &store);
        }
        peer::KIND_DELTA => {
            for p in &payloads {
                let delta = decode_delta(p.as_bytes()).map_err(internal)?;
                let at = store.database().generation();
                if delta.first_generation != at + 1 {
                    return Err(Failure::new(code::POOL_DB_OUT_OF_SYNC, [at.to_string()]));
                }
                let g = store.commit(&delta.changes).map_err(internal)?;
                agent.publish(g);
            }
        }
        other => return Err(ApiError::invalid_value("kind", other).into()),
    }
    follow_master(agent, &store, &master_address)?;
    let g = store.database().generation();
    Ok(Rpc::Int(i64::try_from(g).unwrap_or(i64::MAX)))
}

/// Ejected: a fresh database with this host the master of a pool of one,
/// a new secret, `pool.conf` = master (as xapi's ejected host starts
/// afresh).
fn forget_pool(agent: &Agent, store: &mut LocalStore) -> Result<(), Failure> {
    let facts = agent.facts();
    let mut db = Database::new();
    let caller = Caller {
        now: wall_clock(),
        seed: Uuid::new_v4(),
        this_host: Ref::NULL,
    };
    let (host, mut changes) = bootstrap::new_pool(&db, &caller, &facts.info);
    if let Some(fp) = &facts.tls_fingerprint {
        changes.push(Change::set(
            Class::Host,
            host,
            "other_config",
            Value::Map(vec![(
                Key::String(pool_api::TLS_FINGERPRINT_KEY.into()),
                Value::String(fp.clone()),
            )]),
        ));
    }
    let _kept = db.apply(&changes).map_err(internal)?;
    let secret = PoolSecret::generate();
    secret.save(&facts.data_dir).map_err(internal)?;
    store.install(db).map_err(internal)?;
    Role::Master.save(&facts.data_dir).map_err(internal)?;
    agent.pool.set_secret(secret);
    agent.set_membership(Role::Master, host, store);
    tracing::info!(host = %host, "ejected: master of a pool of one again, with a fresh database");
    Ok(())
}
