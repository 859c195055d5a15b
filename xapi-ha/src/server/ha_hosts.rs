//! HA on a pool of N hosts (docs/ha-enable.md, "Every host"): the per-host
//! steps of the enable and disable, done here for this host and, through
//! the internal host-to-host calls `host.ha_prepare`, `host.ha_arm` and
//! `host.ha_disarm` (`pool::peer`, pool-secret sessions only), on every
//! member. The master runs the sequence (`ha_ops`); a member answers the
//! calls here: it probes the SR directories, writes its own `xhad.toml`
//! (`ha_link::arm`) and secret, checks and starts its daemon through its
//! own launcher, records `ha-state.toml` (so a restarted agent re-attaches
//! to its running `xhad`) and follows its daemon; and undoes all of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;
use xha_control::Request;
use xha_control::client::{self, REQUEST_TIMEOUT};

use super::agent::Agent;
use super::ha_ops::{HaContext, Running, check_config, error, stop_daemon};
use super::membership::{block_on, internal, lock, text};
use super::peers::{self, CallError, Target};
use super::xhad_launcher::{self, Daemon, XhadPaths};
use super::xhad_watch;
use crate::api::ApiError;
use crate::api::ha_enable::EnableRequest;
use crate::api::pool as pool_api;
use crate::db::Class;
use crate::ha_link::arm::{ArmHost, ArmSpec, LocalPaths};
use crate::ha_link::files::{self, SECRET_FILE};
use crate::ha_link::state::HaState;
use crate::ha_link::xhad_config;
use crate::pool::peer;
use crate::rpc::{Failure, Rpc};
use crate::value::Ref;

/// Another host of the pool, as the master reaches it.
#[derive(Clone, Debug)]
pub struct Member {
    pub host: Ref,
    pub uuid: Uuid,
    target: Target,
}

/// The members among `hosts` (every host but `me`), with how to reach
/// each: `HOST_OFFLINE [host]` for one that cannot be called at all (no
/// recorded certificate, or this agent serves no TLS).
pub fn members(agent: &Agent, hosts: &[(Ref, Uuid)], me: Uuid) -> Result<Vec<Member>, ApiError> {
    let store = agent.store();
    let db = store.database();
    let mut out = Vec::new();
    for &(host, uuid) in hosts.iter().filter(|(_, u)| *u != me) {
        let offline = |why: &str| {
            tracing::error!(%host, %uuid, "{why}");
            ApiError::new("HOST_OFFLINE", [host.to_string()])
        };
        let port = agent
            .facts()
            .peer_port
            .ok_or_else(|| offline("this agent serves no TLS: it cannot call the host"))?;
        let fingerprint = pool_api::host_fingerprint(db, host)
            .ok_or_else(|| offline("the host has no recorded TLS fingerprint"))?;
        out.push(Member {
            host,
            uuid,
            target: Target {
                address: text(db, Class::Host, host, "address"),
                port,
                fingerprint: Some(fingerprint),
            },
        });
    }
    Ok(out)
}

/// Every host of the pool in the database now, as `(ref, uuid)`.
pub fn pool_hosts(agent: &Agent) -> Vec<(Ref, Uuid)> {
    let store = agent.store();
    let db = store.database();
    db.objects(Class::Host)
        .filter_map(|(r, o)| Uuid::parse_str(o.uuid()).ok().map(|u| (r, u)))
        .collect()
}

/// One host-to-host call to `m`: its API error as is; no answer is
/// `HOST_OFFLINE [host]` (the reason is logged).
fn call(agent: &Agent, m: &Member, method: &str, params: Vec<Rpc>) -> Result<Rpc, ApiError> {
    let secret = agent
        .pool
        .secret()
        .ok_or_else(|| ApiError::internal("this host has no pool secret"))?;
    block_on(peers::peer_call(&m.target, &secret, method, params)).map_err(|e| match e {
        CallError::Api(f) => {
            tracing::error!(host = %m.host, method, code = %f.code, "a member refused");
            ApiError::new(&f.code, f.params)
        }
        CallError::Peer(e) => {
            tracing::error!(host = %m.host, method, error = %e, "a member cannot be reached");
            ApiError::new("HOST_OFFLINE", [m.host.to_string()])
        }
    })
}

/// This host's probe of the heartbeat SRs: a `file` SR's directory is
/// writable; a `block` SR's device (any path that is not a directory)
/// holds its label.
fn probe_srs(dirs: &[PathBuf]) -> Result<(), ApiError> {
    for d in dirs {
        let probe = if d.is_dir() {
            files::check_writable_dir(d).map_err(|e| e.to_string())
        } else {
            sr_heartbeat::srlabel::device::read_label(d)
                .map(drop)
                .map_err(|e| e.to_string())
        };
        if let Err(e) = probe {
            tracing::error!(sr = %d.display(), error = %e, "heartbeat SR not reachable from this host");
            return Err(error("CANNOT_CREATE_STATE_FILE"));
        }
    }
    Ok(())
}

/// The enable's checks on every host, before anything is created: each
/// member answers (`HOST_OFFLINE` otherwise) and reaches every SR
/// directory, as this host does. Every host's heartbeat address (this one
/// first) and the members.
pub fn prepare(
    agent: &Agent,
    ctx: &HaContext,
    req: &EnableRequest,
) -> Result<(Vec<ArmHost>, Vec<Member>), ApiError> {
    let hosts: Vec<(Ref, Uuid)> = req.hosts.iter().map(|h| (h.host, h.uuid)).collect();
    if !hosts.iter().any(|(_, u)| *u == ctx.host_uuid) {
        return Err(ApiError::internal("this host is not in the pool database"));
    }
    let members = members(agent, &hosts, ctx.host_uuid)?;
    let dirs: Vec<PathBuf> = req.srs.iter().map(|s| s.path.clone()).collect();
    probe_srs(&dirs)?;
    let mut out = vec![ArmHost {
        uuid: ctx.host_uuid,
        heartbeat: ctx.heartbeat_address()?,
    }];
    let dirs_json = serde_json::to_string(&dirs).map_err(|e| ApiError::internal(&e.to_string()))?;
    for m in &members {
        let reply = call(
            agent,
            m,
            peer::HA_PREPARE,
            vec![Rpc::Str(dirs_json.clone())],
        )?;
        let heartbeat = match &reply {
            Rpc::Str(s) => s.parse::<SocketAddr>().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            tracing::error!(host = %m.host, reply = ?reply, "a member named no heartbeat address");
            error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED")
        })?;
        out.push(ArmHost {
            uuid: m.uuid,
            heartbeat,
        });
    }
    Ok((out, members))
}

/// Arms member `m` with `spec` (a member that fails undoes its own part).
pub fn arm_member(agent: &Agent, m: &Member, spec: &ArmSpec) -> Result<(), ApiError> {
    call(agent, m, peer::HA_ARM, vec![Rpc::Str(spec.to_text())])?;
    tracing::info!(host = %m.host, "member armed: its xhad runs");
    Ok(())
}

/// Tells every member to disarm (and with `stop`, to stop its daemon and
/// remove its files); a member that cannot be reached is logged.
pub fn disarm_members(agent: &Agent, members: &[Member], stop: bool) {
    for m in members {
        match call(agent, m, peer::HA_DISARM, vec![Rpc::Bool(stop)]) {
            Ok(_) => tracing::info!(host = %m.host, stop, "member disarmed"),
            Err(e) => {
                tracing::warn!(host = %m.host, stop, code = %e.code, "disarming a member failed")
            }
        }
    }
}

/// Writes this host's secret and `xhad.toml` from `spec`, runs `xhad
/// --check` and starts the daemon; on failure removes what it wrote.
pub fn arm_here(ctx: &HaContext, spec: &ArmSpec) -> Result<(Daemon, XhadPaths), ApiError> {
    let paths = XhadPaths::new(&ctx.launcher, &ctx.config_dir);
    match arm_steps(ctx, spec, &paths) {
        Ok(d) => Ok((d, paths)),
        Err(e) => {
            files::remove_all(&paths.created_files());
            Err(e)
        }
    }
}

fn arm_steps(ctx: &HaContext, spec: &ArmSpec, paths: &XhadPaths) -> Result<Daemon, ApiError> {
    let startup = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "preparing xhad failed");
        error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED")
    };
    files::make_private_dir(&paths.dir).map_err(|e| startup(&e))?;
    if let Some(d) = &paths.state_dir {
        files::make_private_dir(d).map_err(|e| startup(&e))?;
    }
    let secret_file = paths.dir.join(SECRET_FILE);
    let secret = spec.secret_bytes().map_err(|e| startup(&e))?;
    files::write_atomic(&secret_file, &secret).map_err(|e| startup(&e))?;
    let local = LocalPaths {
        secret_file,
        control_socket: paths.control_socket_key.clone(),
        state_dir: paths.state_dir.clone(),
        fencing: paths.fencing.clone(),
    };
    let config = spec
        .config_for(ctx.host_uuid, &local)
        .map_err(|e| startup(&e))?;
    let text = xhad_config::text(&config).map_err(|e| startup(&e))?;
    files::write_atomic(&paths.config, text.as_bytes()).map_err(|e| startup(&e))?;
    // xhad's own start-up checks, before anything runs.
    check_config(&ctx.xhad_path, &paths.config)?;
    let daemon =
        xhad_launcher::start(&ctx.launcher, &ctx.xhad_path, paths).map_err(|e| startup(&e))?;
    tracing::info!(daemon = ?daemon, generation = %spec.generation, "xhad started");
    Ok(daemon)
}

fn ctx_of(agent: &Agent) -> Result<&HaContext, Failure> {
    agent
        .ha()
        .ctx
        .get()
        .ok_or_else(|| internal("this agent has no HA configuration"))
}

fn param(args: &[Rpc], name: &str) -> Result<String, Failure> {
    match args.first() {
        Some(Rpc::Str(s)) => Ok(s.clone()),
        _ => Err(ApiError::field_type_error(name).into()),
    }
}

/// Answers `host.ha_prepare`, `host.ha_arm`, `host.ha_disarm` on a member.
pub fn answer(agent: &Arc<Agent>, method: &str, args: &[Rpc]) -> Result<Rpc, Failure> {
    if agent.is_master() {
        return Err(ApiError::operation_not_allowed(
            "this host is the pool master: it arms itself",
        )
        .into());
    }
    let ctx = ctx_of(agent)?;
    match method {
        peer::HA_PREPARE => {
            let dirs: Vec<PathBuf> = serde_json::from_str(&param(args, "sr_dirs")?)
                .map_err(|e| Failure::from(ApiError::invalid_value("sr_dirs", &e.to_string())))?;
            if lock(&agent.ha().running).is_some() {
                return Err(ApiError::ha_is_enabled().into());
            }
            probe_srs(&dirs)?;
            Ok(Rpc::Str(ctx.heartbeat_address()?.to_string()))
        }
        peer::HA_ARM => {
            let spec = ArmSpec::parse(&param(args, "spec")?).map_err(|e| {
                Failure::from(ApiError::invalid_value(
                    &format!("spec:{}", e.field),
                    &e.reason,
                ))
            })?;
            arm_member_here(agent, ctx, &spec)?;
            Ok(Rpc::Str(String::new()))
        }
        peer::HA_DISARM => {
            let stop = matches!(args.first(), Some(Rpc::Bool(true)));
            disarm_here(agent, ctx, stop).map_err(internal)?;
            Ok(Rpc::Str(String::new()))
        }
        other => Err(ApiError::method_unknown(other).into()),
    }
}

/// A member arms itself: daemon started, `ha-state.toml` written, the
/// daemon followed.
fn arm_member_here(agent: &Arc<Agent>, ctx: &HaContext, spec: &ArmSpec) -> Result<(), ApiError> {
    let ha = agent.ha();
    let _busy = ha.begin("enable")?;
    if lock(&ha.running).is_some() {
        return Err(ApiError::ha_is_enabled());
    }
    let (daemon, paths) = arm_here(ctx, spec)?;
    let state = HaState {
        generation: spec.generation,
        timeout_s: spec.timeout_s,
        metadata: spec.metadata.clone(),
        epoch: 0,
        statefiles: spec.statefiles.clone(),
        control_socket: paths.control_socket.clone(),
        metadata_region: spec.metadata_region.clone(),
        statefile_regions: spec.region_volumes(),
    };
    if let Err(e) = state.save(&ctx.data_dir) {
        tracing::error!(error = %e, "writing the HA state record failed");
        stop_daemon(&daemon, &paths.control_socket);
        files::remove_all(&paths.created_files());
        return Err(error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED"));
    }
    let follower = xhad_watch::follow(Arc::downgrade(agent), paths.control_socket.clone());
    *lock(&ha.running) = Some(Running {
        state,
        paths,
        daemon: Some(daemon),
        follower,
    });
    tracing::info!(generation = %spec.generation, "HA armed on this member");
    Ok(())
}

/// A member disarms: `disarm-fencing`; with `stop` the daemon is stopped
/// (killed if it does not end), its files and `ha-state.toml` removed.
/// Idempotent: with nothing running it still asks whatever answers on the
/// control socket and removes what is left.
fn disarm_here(agent: &Agent, ctx: &HaContext, stop: bool) -> Result<(), String> {
    let ha = agent.ha();
    if !stop {
        let socket = lock(&ha.running).as_ref().map_or_else(
            || XhadPaths::new(&ctx.launcher, &ctx.config_dir).control_socket,
            |r| r.state.control_socket.clone(),
        );
        if let Err(e) = client::request(&socket, Request::DisarmFencing, REQUEST_TIMEOUT) {
            tracing::warn!(error = %e, "xhad did not accept disarm-fencing");
        }
        return Ok(());
    }
    let running = lock(&ha.running).take();
    let paths = running.as_ref().map_or_else(
        || XhadPaths::new(&ctx.launcher, &ctx.config_dir),
        |r| r.paths.clone(),
    );
    if let Some(r) = &running {
        r.follower.stop();
    }
    let daemon = running
        .and_then(|r| r.daemon)
        .or_else(|| xhad_launcher::find(&ctx.launcher, &ctx.xhad_path, &paths));
    match &daemon {
        Some(d) => stop_daemon(d, &paths.control_socket),
        None => {
            for r in [Request::DisarmFencing, Request::Stop] {
                let _ = client::request(&paths.control_socket, r, REQUEST_TIMEOUT);
            }
        }
    }
    files::remove_all(&paths.created_files());
    HaState::remove(&ctx.data_dir).map_err(|e| e.to_string())?;
    tracing::info!("HA disarmed and stopped on this member");
    Ok(())
}
