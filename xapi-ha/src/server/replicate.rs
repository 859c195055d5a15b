//! The master's push of the pool database to every member (docs/pool.md,
//! "Database copies"): one task per member follows the database
//! generation and sends what the member lacks, the committed batches from
//! the backlog (the redo-log delta format) or, when its copy's generation
//! is unknown (it was down, a push failed) or too old, a full snapshot.
//! The member stores it durably in its own redo log. Pushes are
//! asynchronous: a call is acknowledged once durable on the master; a
//! member is usually one batch behind for a few milliseconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use super::agent::Agent;
use super::membership::target_of;
use super::peers::{self, CallError, Target};
use crate::db::Class;
use crate::db::encode::encode_snapshot;
use crate::pool::backlog::Catchup;
use crate::pool::peer::{self, PEER_USER, code};
use crate::rpc::Rpc;
use crate::value::Ref;

/// Most batches sent in one push.
const MAX_BATCHES_PER_PUSH: usize = 256;
/// First wait after a failed push; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between attempts to reach a member that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Keeps one push task per member while this agent is the master (runs
/// for the agent's life; the role may change under it).
pub async fn run(agent: Arc<Agent>) {
    let mut tasks: HashMap<Ref, JoinHandle<()>> = HashMap::new();
    let mut rx = agent.watch_generation();
    loop {
        let members: Vec<Ref> = if agent.is_master() {
            let me = agent.host_ref();
            agent
                .store()
                .database()
                .objects(Class::Host)
                .map(|(h, _)| h)
                .filter(|h| *h != me)
                .collect()
        } else {
            Vec::new()
        };
        tasks.retain(|h, t| {
            let keep = members.contains(h) && !t.is_finished();
            if !keep {
                t.abort();
            }
            keep
        });
        for h in members {
            tasks
                .entry(h)
                .or_insert_with(|| tokio::spawn(push_loop(Arc::clone(&agent), h)));
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), rx.changed()).await;
    }
}

/// What one push sends.
struct Push {
    target: Target,
    kind: &'static str,
    payloads: Vec<String>,
}

/// The next push to `host` whose copy is at `acked`, or `None` when it is
/// current; `Err` ends the task (no longer master, host gone).
fn next_push(agent: &Agent, host: Ref, acked: Option<u64>) -> Result<Option<Push>, ()> {
    if !agent.is_master() {
        return Err(());
    }
    let store = agent.store();
    let db = store.database();
    if db.get(Class::Host, host).is_none() {
        return Err(());
    }
    let target = target_of(agent, db, host).map_err(|e| {
        tracing::warn!(%host, error = ?e, "cannot push the database to this member");
    })?;
    let catchup = agent
        .pool
        .backlog()
        .catchup(acked, db.generation(), MAX_BATCHES_PER_PUSH);
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    Ok(match catchup {
        Catchup::Current => None,
        Catchup::Deltas { payloads, .. } => Some(Push {
            target,
            kind: peer::KIND_DELTA,
            payloads: payloads.into_iter().map(text).collect(),
        }),
        Catchup::Snapshot => Some(Push {
            target,
            kind: peer::KIND_SNAPSHOT,
            payloads: vec![text(encode_snapshot(db))],
        }),
    })
}

async fn push_loop(agent: Arc<Agent>, host: Ref) {
    let mut rx = agent.watch_generation();
    let mut acked: Option<u64> = None;
    let mut session: Option<String> = None;
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        let a = Arc::clone(&agent);
        let push = match tokio::task::spawn_blocking(move || next_push(&a, host, acked)).await {
            Ok(Ok(p)) => p,
            Ok(Err(())) | Err(_) => return,
        };
        let Some(push) = push else {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx.changed()).await;
            continue;
        };
        let master_address = agent.facts().info.address.clone();
        let result = send(&agent, &mut session, &push, master_address).await;
        match result {
            Ok(generation) => {
                if failing {
                    tracing::info!(%host, member = %push.target, "member reachable again: its copy is current");
                }
                tracing::debug!(%host, generation, kind = push.kind, "pushed the database");
                acked = Some(generation);
                backoff = MIN_BACKOFF;
                failing = false;
            }
            Err(CallError::Api(f)) if f.code == code::POOL_DB_OUT_OF_SYNC => {
                tracing::info!(%host, member_generation = ?f.params, "member copy out of step: sending a snapshot");
                acked = None;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(%host, member = %push.target, error = %e, "pushing the database failed; retrying (a snapshot once it answers)");
                }
                failing = true;
                acked = None;
                session = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Sends one push on the cached session (logging in with the pool secret
/// when there is none or it expired); the member's generation after it.
async fn send(
    agent: &Agent,
    session: &mut Option<String>,
    push: &Push,
    master_address: String,
) -> Result<u64, CallError> {
    let secret = agent.pool.secret().ok_or_else(|| {
        CallError::Api(crate::rpc::Failure::new(
            "INTERNAL_ERROR",
            ["this host has no pool secret".to_owned()],
        ))
    })?;
    let params = vec![
        Rpc::Str(master_address),
        Rpc::Str(push.kind.to_owned()),
        Rpc::Array(push.payloads.iter().cloned().map(Rpc::Str).collect()),
    ];
    for attempt in 0..2 {
        if session.is_none() {
            let (s, _) = peers::login(&push.target, PEER_USER, secret.expose()).await?;
            *session = Some(s);
        }
        let s = session.clone().unwrap_or_default();
        match peers::call_with(&push.target, &s, peer::SYNC, params.clone()).await {
            // XML-RPC carries integers as text (xapi's style, docs/api.md).
            Ok(Rpc::Int(g)) => return Ok(u64::try_from(g).unwrap_or(0)),
            Ok(Rpc::Str(g)) if g.parse::<u64>().is_ok() => return Ok(g.parse().unwrap_or(0)),
            Ok(other) => {
                return Err(CallError::Api(crate::rpc::Failure::new(
                    "INTERNAL_ERROR",
                    [format!("the member answered {other:?}")],
                )));
            }
            Err(CallError::Api(f)) if f.code == "SESSION_INVALID" && attempt == 0 => {
                *session = None;
            }
            Err(e) => return Err(e),
        }
    }
    Err(CallError::Api(crate::rpc::Failure::new(
        "SESSION_INVALID",
        Vec::<String>::new(),
    )))
}
