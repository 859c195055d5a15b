//! `HA_HOST_WAS_FENCED` and our `HA_HOST_FENCE_REASON` on the next boot of
//! a fenced host (docs/alerts.md): when the agent starts with HA armed, it
//! reads `xhad`'s fence records from the daemon's state directory
//! (`ha_link::fence_report` decides which are new) and raises their
//! messages pool-wide (`member_alerts`: on the master, or sent to it from a
//! member, retried until the master has them). The key of the last record
//! reported is kept in `<data.dir>/fence-reported`, written only once the
//! master recorded the messages, so a restart raises nothing twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::agent::Agent;
use super::membership::lock;
use crate::ha_link::fence_report::{
    self, DEFAULT_STATE_DIR, EARLIER_RECORD_FILE, FenceRecord, RECORD_FILE, REPORTED_FILE,
};
use crate::ha_link::files::write_atomic;

/// The longest wait between two attempts to reach the master.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The fence records in `state_dir` (unreadable or corrupt ones are logged
/// and left out).
fn read_records(state_dir: &Path) -> Vec<FenceRecord> {
    let mut out = Vec::new();
    for name in [EARLIER_RECORD_FILE, RECORD_FILE] {
        let path = state_dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => match fence_report::parse(&text) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "fence record ignored")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "fence record unreadable"),
        }
    }
    out
}

/// At start-up with HA armed: raises the messages of the fence records not
/// yet reported (a task, retrying until the master has them).
pub fn spawn(agent: &Arc<Agent>) {
    let state_dir: PathBuf = {
        let running = lock(&agent.ha().running);
        let Some(r) = running.as_ref() else {
            return;
        };
        r.paths
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    };
    let reported_file = agent.facts().data_dir.join(REPORTED_FILE);
    let last = std::fs::read_to_string(&reported_file).ok();
    let records = fence_report::to_report(read_records(&state_dir), last.as_deref());
    if records.is_empty() {
        return;
    }
    let host_uuid = agent.facts().info.uuid.clone();
    let mut batches = Vec::new();
    {
        let store = agent.store();
        for r in &records {
            match fence_report::alerts(store.database(), &host_uuid, r) {
                Some(items) => batches.push((r.key(), items)),
                None => tracing::error!("this host is not in its database: fence not reported"),
            }
        }
    }
    let weak = Arc::downgrade(agent);
    tokio::spawn(async move { report(weak, batches, reported_file).await });
}

async fn report(
    agent: Weak<Agent>,
    batches: Vec<(String, Vec<(uuid::Uuid, crate::alerts::Alert)>)>,
    reported_file: PathBuf,
) {
    for (key, items) in batches {
        let mut wait = Duration::from_secs(1);
        loop {
            let Some(a) = agent.upgrade() else {
                return;
            };
            match super::member_alerts::raise(&a, items.clone()).await {
                Ok(()) => {
                    tracing::warn!(record = %key, "reported this host's fence to the pool");
                    if let Err(e) = write_atomic(&reported_file, format!("{key}\n").as_bytes()) {
                        tracing::error!(error = %e, "cannot remember the fence reported");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(record = %key, error = %e, "reporting this host's fence failed; will retry");
                }
            }
            drop(a);
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_RETRY);
        }
    }
}
