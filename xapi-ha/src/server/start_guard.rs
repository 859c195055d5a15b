//! The rule the fence argument relies on, at the one place a VM starts:
//! while HA is on for this host, a VM starts here (or is started from here,
//! by the restart engine) only when this host's own `xhad` reports it
//! online in the liveset ([`failover::in_charge`]).
//!
//! Why (found by the fault campaign, docs/lab.md "What it found"): a host
//! that fenced and booted again within T is still in the survivors'
//! liveset as its old incarnation; the master, seeing the host's VMs
//! stopped, started one there, then marked the host dead when the old
//! incarnation left the liveset and started the VM elsewhere: two copies.
//! `xhad` lets the new incarnation join only once every member has dropped
//! the old one, so a host that runs VMs only while it is in its own liveset
//! never runs one the pool is about to restart elsewhere. Likewise a
//! rebooted old master must not restart VMs (or record liveness) before its
//! daemon is online: its restarts could race the new master's.
//!
//! The follower's flag answers at once; when it says no, the daemon is
//! asked directly (the flag may lag the daemon by one report, e.g. right
//! after HA was enabled).

use uuid::Uuid;
use xha_control::Request;
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::Agent;
use super::ha_ops::lock;
use crate::api::ApiError;
use crate::ha_link::failover;

/// `Ok` when this host may start a VM (HA off here, or its `xhad` reports
/// it online in the liveset); else `HOST_NOT_LIVE []` (xapi's error).
pub fn check(agent: &Agent) -> Result<(), ApiError> {
    let socket = match lock(&agent.ha().running).as_ref() {
        Some(r) => r.state.control_socket.clone(),
        None => return Ok(()),
    };
    if agent.pool.emergency.ha_in_charge() {
        return Ok(());
    }
    let me = Uuid::parse_str(&agent.facts().info.uuid).ok();
    let report = client::request(&socket, Request::QueryLiveset, REQUEST_TIMEOUT)
        .ok()
        .and_then(|r| r.result);
    match (report, me) {
        (Some(report), Some(me)) if failover::in_charge(&report, me) => Ok(()),
        (report, _) => {
            tracing::warn!(
                status = ?report.as_ref().map(|r| r.status),
                "refusing to start a VM: HA is on and this host's xhad does not report it in the liveset"
            );
            // xapi's error has no parameters; the log names the host.
            Err(ApiError::new("HOST_NOT_LIVE", Vec::<String>::new()))
        }
    }
}
