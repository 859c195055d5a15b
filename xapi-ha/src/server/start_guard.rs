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
//! asked directly, every 100 ms for up to [`JOIN_WAIT`]: right after HA
//! was enabled a member's daemon publishes its first liveset a moment after
//! the master's, and a rebooted host that joins meanwhile joined only after
//! every member dropped its old incarnation, so starting then is safe.

use std::time::{Duration, Instant};

use uuid::Uuid;
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::Agent;
use super::ha_ops::lock;
use crate::api::ApiError;
use crate::ha_link::failover;

/// How long a start waits for this host's daemon to be online in its
/// liveset before it is refused.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);

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
    let deadline = Instant::now() + JOIN_WAIT;
    loop {
        let report = client::query_liveset(&socket, REQUEST_TIMEOUT);
        let in_charge = match (&report, me) {
            (Some(report), Some(me)) => failover::in_charge(report, me),
            _ => false,
        };
        if in_charge {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return refuse(report.as_ref());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn refuse(report: Option<&xha_control::LivesetReport>) -> Result<(), ApiError> {
    tracing::warn!(
        status = ?report.map(|r| r.status),
        "refusing to start a VM: HA is on and this host's xhad does not report it in the liveset"
    );
    // xapi's error has no parameters; the log says why.
    Err(ApiError::new("HOST_NOT_LIVE", Vec::<String>::new()))
}
