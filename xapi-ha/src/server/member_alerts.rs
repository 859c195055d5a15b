//! Messages raised on a member reach the master (docs/alerts.md,
//! `alerts::forward`): the master records them in the pool database, where
//! the mailer sees them; a member sends them with
//! `host.peer_raise_messages` on a pool-secret session. The alerts carry
//! their own uuids, so a retry records nothing twice.

use std::sync::Arc;

use uuid::Uuid;

use super::agent::{Agent, wall_clock};
use super::peers::{self, Target};
use super::role::Role;
use crate::alerts::Alert;
use crate::alerts::forward;
use crate::api::ApiError;
use crate::api::pool as pool_api;
use crate::pool::peer;
use crate::rpc::{Failure, Rpc};

/// Master: records `items` (those not yet recorded) in one commit.
pub fn record(agent: &Agent, items: &[(Uuid, Alert)]) -> Result<usize, Failure> {
    let mut store = agent.store();
    if let Role::Slave(m) = agent.role() {
        return Err(ApiError::host_is_slave(&m).into());
    }
    let changes = forward::changes(store.database(), wall_clock(), items)?;
    let n = changes.len();
    agent.commit(&mut store, &changes)?;
    Ok(n)
}

/// Answers `host.peer_raise_messages(host_uuid, messages)` on the master.
pub fn answer(agent: &Arc<Agent>, args: &[Rpc]) -> Result<Rpc, Failure> {
    let text = |i: usize, name: &str| match args.get(i) {
        Some(Rpc::Str(s)) => Ok(s.clone()),
        _ => Err(Failure::from(ApiError::field_type_error(name))),
    };
    let host_uuid = text(0, "host_uuid")?;
    let items = forward::decode(&text(1, "messages")?)?;
    let n = record(agent, &items)?;
    for (u, a) in &items {
        tracing::info!(host = %host_uuid, message = %u, name = %a.name, "a member raised a message");
    }
    Ok(Rpc::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

/// How a member reaches its master: the address it follows, the pool's
/// port, the master's recorded certificate fingerprint.
fn master_target(agent: &Agent, address: String) -> Result<Target, String> {
    let port = agent
        .facts()
        .peer_port
        .ok_or("this agent serves no TLS listener: it cannot call the master")?;
    let store = agent.store();
    let db = store.database();
    let fingerprint = pool_api::master(db).and_then(|m| pool_api::host_fingerprint(db, m));
    Ok(Target {
        address,
        port,
        fingerprint,
    })
}

/// Raises `items` pool-wide: recorded here on the master, sent to the
/// master from a member. An error says why (the caller retries).
pub async fn raise(agent: &Arc<Agent>, items: Vec<(Uuid, Alert)>) -> Result<(), String> {
    if items.is_empty() {
        return Ok(());
    }
    match agent.role() {
        Role::Master => {
            let a = Arc::clone(agent);
            tokio::task::spawn_blocking(move || record(&a, &items).map(|_| ()))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|f| format!("{f:?}"))
        }
        Role::Slave(address) => {
            let target = master_target(agent, address)?;
            let secret = agent.pool.secret().ok_or("this host has no pool secret")?;
            let host_uuid = agent.facts().info.uuid.clone();
            peers::peer_call(
                &target,
                &secret,
                peer::RAISE_MSGS,
                vec![Rpc::Str(host_uuid), Rpc::Str(forward::encode(&items))],
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("{target}: {e}"))
        }
    }
}
