//! Performs the maintenance effects of `api::host_maint`
//! (docs/operations.md, "Maintenance"):
//!
//! - [`Effect::Evacuate`]: one `VM.pool_migrate` per VM, in the plan's
//!   order, each through the agent's ordinary call path (checked again
//!   against the database as it is then, performed, committed), so a
//!   process VM is stopped and started elsewhere and a QEMU VM takes
//!   whatever path `VM.pool_migrate` has for it. The first failure ends
//!   the evacuation with its error; the VMs moved so far stay moved.
//! - [`Effect::ShutdownHost`]: the VMs still on the host are shut down
//!   cleanly (`VM.clean_shutdown`), then the host itself stops: here, or
//!   on a member through the host-to-host call `host.peer_shutdown`.
//!   Stopping a host: if HA runs here, `xhad` is told `set-excluded` (so
//!   the pool never fences it and raises no `HA_HOST_FAILED`), then
//!   `disarm-fencing`, then, once the exclusion reached the peers
//!   ([`exclusion_settle`]), `stop`; the reply goes out, and after
//!   [`STOP_DELAY`] the agent exits with code 0 (shutdown) or executes
//!   itself again with the same arguments, keeping its pid (reboot: what a
//!   reboot means for a lab host; VMs were stopped as a real reboot stops
//!   them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use xha_control::Request;
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::Agent;
use super::membership;
use crate::api::{ApiError, Caller, Effect};
use crate::ha_link::state::HaState;
use crate::rpc::{Failure, Rpc};
use crate::value::Value;

/// How long a stopping agent waits after answering before it exits (xapi
/// waits 10 s; here only so that the reply is sent).
pub const STOP_DELAY: Duration = Duration::from_millis(500);

/// Performs an `Evacuate` or `ShutdownHost` effect.
pub fn perform(agent: &Arc<Agent>, caller: &Caller, effect: &Effect) -> Result<(), Failure> {
    match effect {
        Effect::Evacuate { host, moves } => {
            let started = Instant::now();
            for (i, m) in moves.iter().enumerate() {
                let args = [
                    Value::Ref(m.vm),
                    Value::Ref(m.target),
                    Value::Map(Vec::new()),
                ];
                agent.call_internal("VM.pool_migrate", &args).inspect_err(|e| {
                    tracing::warn!(%host, vm = %m.vm, error = ?e, moved = i, "evacuation stopped");
                })?;
                tracing::info!(%host, vm = %m.vm, target = %m.target, "evacuation: VM moved");
            }
            tracing::info!(%host, vms = moves.len(), elapsed_ms = started.elapsed().as_millis(), "host evacuated");
            Ok(())
        }
        Effect::ShutdownHost { host, reboot, vms } => {
            for vm in vms {
                agent.call_internal("VM.clean_shutdown", &[Value::Ref(*vm)])?;
            }
            if *host == caller.this_host {
                stop_this_host(agent, *reboot);
                Ok(())
            } else {
                membership::forward(agent, *host, effect)
            }
        }
        other => Err(ApiError::internal(&format!("not a maintenance effect: {other:?}")).into()),
    }
}

/// The member's side of `host.peer_shutdown(reboot)`.
pub fn peer_shutdown(agent: &Agent, args: &[Rpc]) -> Result<Rpc, Failure> {
    let reboot = matches!(args.first(), Some(Rpc::Bool(true)));
    stop_this_host(agent, reboot);
    Ok(Rpc::Str(String::new()))
}

/// Excludes this host in `xhad` (if HA runs here) and stops it, then ends
/// or restarts the agent after [`STOP_DELAY`].
fn stop_this_host(agent: &Agent, reboot: bool) {
    match HaState::load(&agent.facts().data_dir) {
        Ok(Some(state)) => {
            let socket = &state.control_socket;
            let settle = exclusion_settle(socket);
            for req in [Request::SetExcluded, Request::DisarmFencing, Request::Stop] {
                if matches!(req, Request::Stop) {
                    // The peers must learn of the exclusion before the
                    // daemon goes silent, or they count a failure.
                    std::thread::sleep(settle);
                }
                match client::request(socket, req, REQUEST_TIMEOUT) {
                    Ok(_) => tracing::info!(request = req.name(), "xhad accepted"),
                    Err(e) => {
                        tracing::warn!(request = req.name(), error = %e, "xhad did not accept the request");
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "the HA state record is unreadable"),
    }
    let what = if reboot { "reboot" } else { "shutdown" };
    tracing::info!("host {what}: the agent stops in {STOP_DELAY:?}");
    std::thread::spawn(move || {
        std::thread::sleep(STOP_DELAY);
        if reboot {
            restart_agent();
        }
        tracing::info!("host shutdown: agent exits (code 0)");
        std::process::exit(0);
    });
}

/// How long `xhad` keeps running after `set-excluded` before `stop`: one
/// statefile write interval and two heartbeat intervals of its timeouts,
/// so that its excluded slot is on the statefile and in a heartbeat the
/// peers heard (they then drop the host without counting a failure: no
/// `HA_HOST_FAILED`). At most [`EXCLUSION_SETTLE_MAX`]; 1 s when the daemon
/// does not answer.
fn exclusion_settle(socket: &std::path::Path) -> Duration {
    client::query_liveset(socket, REQUEST_TIMEOUT)
        .map_or(Duration::from_secs(1), |r| {
            Duration::from_millis(
                r.timeouts
                    .statefile_interval_ms
                    .saturating_add(r.timeouts.heartbeat_interval_ms.saturating_mul(2)),
            )
        })
        .min(EXCLUSION_SETTLE_MAX)
}

/// The longest [`exclusion_settle`].
const EXCLUSION_SETTLE_MAX: Duration = Duration::from_secs(10);

/// Executes this program again with the same arguments (same pid). Returns
/// only if that fails.
fn restart_agent() {
    use std::os::unix::process::CommandExt as _;
    let Ok(exe) = std::env::current_exe() else {
        tracing::error!("host reboot: the agent's executable is unknown: stopping instead");
        return;
    };
    tracing::info!(exe = %exe.display(), "host reboot: the agent starts again");
    let err = std::process::Command::new(&exe)
        .args(std::env::args_os().skip(1))
        .exec();
    tracing::error!(error = %err, "host reboot: executing the agent again failed: stopping instead");
}
