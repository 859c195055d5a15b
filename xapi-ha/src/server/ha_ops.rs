//! The enable and disable sequences (docs/ha-enable.md): the I/O around
//! the pure checks of `api::ha_enable`, with every step undone when a later
//! one fails, on every host of the pool. The per-host work (files, `xhad`
//! configuration, starting and stopping the daemon) is `ha_hosts`': done
//! here for this host and through internal host-to-host calls on members.
//!
//! About 600 lines on purpose: the two sequences, their rollback and the
//! start-up clean-up share their steps and read best side by side.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use sr_heartbeat::metadata::Layout;
use sr_heartbeat::statefile::{PoolState, STATEFILE_SIZE};
use uuid::Uuid;
use xha_control::client::{self, REQUEST_TIMEOUT};
use xha_control::{LivesetReport, Request, Status};

use super::agent::{Agent, LOCAL_DB_FILE};
use super::ha_hosts;
use super::xhad_launcher::{self, Daemon, XhadPaths};
use super::xhad_watch::{self, Follower};
use crate::api::ApiError;
use crate::api::ha_enable::{self, CreatedFiles, DisableRequest, EnableRequest};
use crate::config::XhadLauncher;
use crate::db::store::Store;
use crate::ha_link::arm::{ArmHost, ArmSpec};
use crate::ha_link::files;
use crate::ha_link::state::HaState;
use crate::ha_link::translate;

/// What the agent needs from its configuration to run HA.
#[derive(Clone, Debug)]
pub struct HaContext {
    pub data_dir: PathBuf,
    pub host_uuid: Uuid,
    /// `host.address` (the heartbeat address's default host).
    pub host_address: String,
    pub xhad_path: PathBuf,
    pub launcher: XhadLauncher,
    pub config_dir: PathBuf,
    pub heartbeat_address: Option<SocketAddr>,
}

/// xhad's heartbeat port when none is configured (XenServer's).
pub const DEFAULT_HEARTBEAT_PORT: u16 = 694;
/// Time given to `xhad` beyond its own boot-join timeout (10 T) before an
/// enable gives up on the liveset.
const JOIN_MARGIN: Duration = Duration::from_secs(10);
/// How long a stopping daemon and its supervisor get before they are killed.
pub(super) const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The agent's HA state: its configuration, whether an enable or disable
/// runs, and the running link to `xhad`.
#[derive(Default)]
pub struct HaLink {
    pub(super) ctx: OnceLock<HaContext>,
    busy: Mutex<Option<&'static str>>,
    pub(super) running: Mutex<Option<Running>>,
    /// alerts: whether the redo log's writes fail (`server::lun_alerts`).
    pub(super) lun: Mutex<crate::alerts::lun_health::LunWatch>,
}

/// This host's armed daemon and its follower.
pub(super) struct Running {
    pub(super) state: HaState,
    pub(super) paths: XhadPaths,
    pub(super) daemon: Option<Daemon>,
    pub(super) follower: Follower,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) fn error(code: &str) -> ApiError {
    ApiError::new(code, Vec::<String>::new())
}

/// Clears the in-progress mark when the sequence ends, however it ends.
pub(super) struct Busy<'a>(&'a Mutex<Option<&'static str>>);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        *lock(self.0) = None;
    }
}

impl HaLink {
    pub(super) fn begin(&self, what: &'static str) -> Result<Busy<'_>, ApiError> {
        let mut busy = lock(&self.busy);
        match *busy {
            Some("enable") => Err(error("HA_ENABLE_IN_PROGRESS")),
            Some(_) => Err(error("HA_DISABLE_IN_PROGRESS")),
            None => {
                *busy = Some(what);
                Ok(Busy(&self.busy))
            }
        }
    }
}

/// What a failed enable must undo, on this host and on every member.
#[derive(Default)]
struct Undo {
    files: Vec<PathBuf>,
    daemon: Option<(Daemon, PathBuf)>,
    /// blocksr: the heartbeat volumes made (files and block SR regions).
    volumes: super::ha_volumes::Made,
    /// Members told to arm (disarmed whether or not they answered).
    members: Vec<ha_hosts::Member>,
}

impl Undo {
    /// Every daemon is disarmed first, so none fences while another stops.
    fn run(self, agent: &Agent) {
        if let Some((_, socket)) = &self.daemon {
            let _ = client::request(socket, Request::DisarmFencing, REQUEST_TIMEOUT);
        }
        ha_hosts::disarm_members(agent, &self.members, false);
        ha_hosts::disarm_members(agent, &self.members, true);
        if let Some((daemon, socket)) = &self.daemon {
            stop_daemon(daemon, socket);
        }
        files::remove_all(&self.files);
        super::ha_volumes::remove(&self.volumes);
    }
}

/// Asks `xhad` to disarm and stop, then waits for it and its supervisor
/// (killing what does not end).
pub(super) fn stop_daemon(daemon: &Daemon, socket: &Path) {
    for req in [Request::DisarmFencing, Request::Stop] {
        if let Err(e) = client::request(socket, req, REQUEST_TIMEOUT) {
            tracing::warn!(request = req.name(), error = %e, "xhad did not accept the request");
        }
    }
    if !daemon.finish(STOP_TIMEOUT) {
        tracing::warn!("xhad or its supervisor had to be killed");
    }
}

/// A `watch` connection used while enabling.
struct Watching {
    stop: Arc<AtomicBool>,
    rx: Receiver<(Instant, LivesetReport)>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The error for a daemon that exited while starting, by its exit code
/// (docs/daemon.md): 8 statefile, 12/13 liveset, else start-up.
fn exit_error(status: Option<std::process::ExitStatus>, log: &Path) -> ApiError {
    let code = status.and_then(|s| s.code());
    tracing::error!(
        exit = ?code,
        log = %log.display(),
        "xhad exited while HA was being enabled"
    );
    match code {
        Some(8) => error("HA_HOST_CANNOT_ACCESS_STATEFILE"),
        Some(12 | 13) => error("HA_FAILED_TO_FORM_LIVESET"),
        _ => error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED"),
    }
}

fn connect_watch(
    daemon: &Daemon,
    paths: &XhadPaths,
    deadline: Instant,
) -> Result<Watching, ApiError> {
    loop {
        if let Some(status) = daemon.exited() {
            return Err(exit_error(status, &paths.xhad_log()));
        }
        let stop = Arc::new(AtomicBool::new(false));
        match client::watch(&paths.control_socket, Arc::clone(&stop)) {
            Ok((_thread, rx)) => return Ok(Watching { stop, rx }),
            Err(e) if Instant::now() >= deadline => {
                tracing::error!(error = %e, "xhad's control socket never answered");
                return Err(error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED"));
            }
            // The socket appears once xhad has started: a start-up wait,
            // not a poll of the liveset.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Waits for a report that satisfies `done`, failing when the daemon exits
/// or the deadline passes.
fn wait_report(
    w: &Watching,
    daemon: &Daemon,
    paths: &XhadPaths,
    deadline: Instant,
    done: impl Fn(&LivesetReport) -> bool,
) -> Result<LivesetReport, ApiError> {
    loop {
        match w.rx.recv_timeout(Duration::from_millis(200)) {
            Ok((_, report)) if done(&report) => return Ok(report),
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(status) = daemon.exited() {
                    return Err(exit_error(status, &paths.xhad_log()));
                }
                tracing::error!("xhad closed the watch stream while HA was being enabled");
                return Err(error("HA_FAILED_TO_FORM_LIVESET"));
            }
        }
        if let Some(status) = daemon.exited() {
            return Err(exit_error(status, &paths.xhad_log()));
        }
        if Instant::now() >= deadline {
            tracing::error!("the liveset did not form in time");
            return Err(error("HA_FAILED_TO_FORM_LIVESET"));
        }
    }
}

impl HaContext {
    pub(super) fn heartbeat_address(&self) -> Result<SocketAddr, ApiError> {
        if let Some(a) = self.heartbeat_address {
            return Ok(a);
        }
        (self.host_address.as_str(), DEFAULT_HEARTBEAT_PORT)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                tracing::error!(address = %self.host_address, "host.address does not resolve");
                error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED")
            })
    }
}

impl Agent {
    /// Gives the agent its HA configuration; `state` is the record found at
    /// start-up (HA on): the daemon is re-found and followed again.
    pub fn attach_ha(self: &Arc<Self>, ctx: HaContext, state: Option<HaState>) {
        let paths = XhadPaths::new(&ctx.launcher, &ctx.config_dir);
        if let Some(state) = state {
            let daemon = xhad_launcher::find(&ctx.launcher, &ctx.xhad_path, &paths);
            match &daemon {
                Some(d) => tracing::info!(daemon = ?d, "HA is enabled: xhad found again"),
                None => {
                    tracing::error!(
                        "HA is enabled but this host's xhad is not running (it fenced, or was stopped): following its control socket for when it returns"
                    );
                    // emerg: emergency mode until host.emergency_ha_disable.
                    self.pool
                        .emergency
                        .set_ha_failure(Some(crate::pool::emergency::HaFailure::DaemonNotRunning));
                }
            }
            let follower = xhad_watch::follow(Arc::downgrade(self), state.control_socket.clone());
            *lock(&self.ha().running) = Some(Running {
                state,
                paths,
                daemon,
                follower,
            });
        } else {
            clean_up_interrupted_enable(&ctx, &paths);
        }
        let _ = self.ha().ctx.set(ctx);
    }

    /// Commits what a `watch` report says (see `ha_link::translate`); a
    /// report of another enablement is ignored.
    pub fn apply_liveset(&self, report: &LivesetReport) {
        let current = lock(&self.ha().running)
            .as_ref()
            .map(|r| r.state.generation);
        // A member's database is the master's copy: only the master
        // records what its daemon reports (every host's liveness is in it).
        if current != Some(report.pool_generation) || !self.is_master() {
            return;
        }
        // Only a daemon online in its liveset speaks for the pool: a
        // starting one (a rebooted old master's, before it rejoined) calls
        // every host dead, and its successor would replay that from the
        // redo log into double runs (the fault campaign's finding).
        if !crate::ha_link::failover::in_charge(report, report.local_host) {
            tracing::info!(status = ?report.status, "not recording a report of a daemon that is not online in its liveset");
            return;
        }
        self.metrics.observe_report(report);
        let caller = self.caller();
        let mut store = self.store();
        let changes = translate::changes(store.database(), report, caller.now, caller.seed);
        if let Err(e) = self.commit(&mut store, &changes) {
            tracing::error!(error = ?e, "recording xhad's report failed");
        }
    }

    /// `pool.enable_ha`, checked by `api::ha_enable::enable`.
    pub(crate) fn enable_ha(self: &Arc<Self>, req: &EnableRequest) -> Result<(), ApiError> {
        let ha = self.ha();
        let _busy = ha.begin("enable")?;
        let ctx = ha
            .ctx
            .get()
            .ok_or_else(|| ApiError::internal("this agent has no HA configuration"))?;
        // Every host answers and reaches every SR before anything is made.
        let (hosts, members) = ha_hosts::prepare(self, ctx, req)?;
        let mut undo = Undo::default();
        match self.enable_steps(ctx, req, hosts, &members, &mut undo) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(code = %e.code, "enable_ha failed: rolling back on every host");
                undo.run(self);
                Err(e)
            }
        }
    }

    fn enable_steps(
        self: &Arc<Self>,
        ctx: &HaContext,
        req: &EnableRequest,
        hosts: Vec<ArmHost>,
        members: &[ha_hosts::Member],
        undo: &mut Undo,
    ) -> Result<(), ApiError> {
        let generation = Uuid::new_v4();
        let cannot_create = |e: files::FileError| {
            tracing::error!(error = %e, "creating an HA file failed");
            error("CANNOT_CREATE_STATE_FILE")
        };
        // blocksr: files on a file SR, regions on a block SR.
        let volumes =
            super::ha_volumes::create(req, generation, &mut undo.volumes).map_err(cannot_create)?;
        let statefiles = volumes.statefiles.clone();
        let metadata = volumes.metadata.clone();
        let metadata_bytes = volumes.metadata_bytes;

        let startup = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "preparing xhad failed");
            error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED")
        };
        // One new heartbeat secret for the pool; every host gets the same
        // spec and writes its own configuration from it.
        let spec = ArmSpec::new(
            generation,
            req.timeout_s,
            &files::random_secret(),
            statefiles.clone(),
            metadata.clone(),
            hosts,
        )
        .with_regions(
            volumes.statefile_regions.clone(),
            volumes.metadata_region.clone(),
        );
        let (daemon, paths) = ha_hosts::arm_here(ctx, &spec)?;
        undo.files.extend(paths.created_files());
        undo.daemon = Some((daemon.clone(), paths.control_socket.clone()));
        for m in members {
            undo.members.push(m.clone());
            ha_hosts::arm_member(self, m, &spec)?;
        }
        tracing::info!(daemon = ?daemon, %generation, "xhad started");

        let t = Duration::from_secs(req.timeout_s);
        let deadline = Instant::now() + t * 10 + JOIN_MARGIN;
        let w = connect_watch(&daemon, &paths, deadline)?;
        let wanted: Vec<Uuid> = req.hosts.iter().map(|h| h.uuid).collect();
        wait_report(&w, &daemon, &paths, deadline, |r| {
            r.status == Status::Online && wanted.iter().all(|u| r.liveset.contains(u))
        })?;
        tracing::info!("liveset formed");
        // mfail: the claim lapses unless renewed (`master_lease`): renewed
        // here until the follower started below renews it.
        let _lease = super::master_lease::Renewer::start(
            paths.control_socket.clone(),
            Arc::new(AtomicBool::new(false)),
            || true,
        );
        client::request(
            &paths.control_socket,
            Request::ProposeMaster(true),
            REQUEST_TIMEOUT,
        )
        .map_err(|e| startup(&e))?;
        let local = ctx.host_uuid;
        let report = wait_report(&w, &daemon, &paths, deadline, |r| {
            r.master == Some(local) && r.master_epoch > 0
        })?;
        drop(w);
        if let Err(e) = client::request(
            &paths.control_socket,
            Request::SetPoolState(PoolState::Active),
            REQUEST_TIMEOUT,
        ) {
            tracing::warn!(error = %e, "setting the pool state active failed");
        }
        tracing::info!(epoch = report.master_epoch, "master lock held");

        let created = CreatedFiles {
            generation,
            statefiles: statefiles.clone(),
            metadata: metadata.clone(),
            statefile_bytes: i64::try_from(STATEFILE_SIZE).unwrap_or(i64::MAX),
            metadata_bytes: i64::try_from(metadata_bytes).unwrap_or(i64::MAX),
            statefile_regions: volumes
                .statefile_regions
                .iter()
                .map(|v| v.as_ref().map(|v| (v.offset, v.len)))
                .collect(),
            metadata_region: volumes.metadata_region.as_ref().map(|v| (v.offset, v.len)),
        };
        let state = HaState {
            generation,
            timeout_s: req.timeout_s,
            metadata: metadata.clone(),
            epoch: report.master_epoch,
            statefiles,
            control_socket: paths.control_socket.clone(),
            metadata_region: volumes.metadata_region.clone(),
            statefile_regions: volumes
                .statefile_regions
                .iter()
                .flatten()
                .cloned()
                .collect(),
        };
        self.move_database_onto(&state, req, &created, &report, &ctx.data_dir)?;
        let follower = xhad_watch::follow(Arc::downgrade(self), paths.control_socket.clone());
        *lock(&self.ha().running) = Some(Running {
            state,
            paths,
            daemon: Some(daemon),
            follower,
        });
        tracing::info!(%generation, "HA enabled");
        Ok(())
    }

    /// Moves the database onto the metadata volume: the database as it is
    /// now, then the enable's records and the first report, all under the
    /// master's epoch; then the local record that HA is on (the commit
    /// point); then the agent writes there.
    fn move_database_onto(
        &self,
        state: &HaState,
        req: &EnableRequest,
        created: &CreatedFiles,
        report: &LivesetReport,
        data_dir: &Path,
    ) -> Result<(), ApiError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "{what}");
            error("CANNOT_CREATE_STATE_FILE")
        };
        let caller = self.caller();
        let mut store = self.store();
        if ha_enable::is_enabled(store.database(), req.pool) {
            return Err(ApiError::ha_is_enabled());
        }
        let (mut ha_store, _) = super::ha_volumes::open_store(state, state.epoch)
            .map_err(|e| fail("opening the metadata volume failed", &e))?;
        ha_store
            .install(store.database().clone())
            .map_err(|e| fail("writing the database to the metadata volume failed", &e))?;
        let changes = ha_enable::enabled_changes(ha_store.database(), &caller, req, created);
        ha_store
            .commit(&changes)
            .map_err(|e| fail("recording HA on the metadata volume failed", &e))?;
        let follow = translate::changes(ha_store.database(), report, caller.now, caller.seed);
        ha_store
            .commit(&follow)
            .map_err(|e| fail("recording xhad's report failed", &e))?;
        state
            .save(data_dir)
            .map_err(|e| fail("writing the HA state record failed", &e))?;
        *store = ha_store;
        self.publish(store.database().generation());
        Ok(())
    }

    /// `pool.disable_ha`, checked by `api::ha_enable::disable`.
    pub(crate) fn disable_ha(&self, req: &DisableRequest) -> Result<(), ApiError> {
        let ha = self.ha();
        let _busy = ha.begin("disable")?;
        let ctx = ha
            .ctx
            .get()
            .ok_or_else(|| ApiError::internal("this agent has no HA configuration"))?;
        let running = lock(&ha.running).take();
        let paths = running.as_ref().map_or_else(
            || XhadPaths::new(&ctx.launcher, &ctx.config_dir),
            |r| r.paths.clone(),
        );
        let state = running
            .as_ref()
            .map(|r| r.state.clone())
            .or_else(|| HaState::load(&ctx.data_dir).ok().flatten());
        if let Some(r) = &running {
            r.follower.stop();
        }
        let socket = state.as_ref().map_or_else(
            || paths.control_socket.clone(),
            |s| s.control_socket.clone(),
        );
        // Through the statefile when this host reaches it (the pool state
        // becomes invalid: no host may act on the pool any more); through
        // the network when not (every daemon is told to disarm and stop
        // over its control socket, below).
        let report = client::query_liveset(&socket, REQUEST_TIMEOUT);
        let via_statefile = report.as_ref().is_some_and(|r| {
            !translate::statefile_lost_everywhere(r)
                && r.hosts
                    .iter()
                    .any(|h| h.uuid == r.local_host && h.statefile_access)
        });
        if via_statefile {
            match client::request(
                &socket,
                Request::SetPoolState(PoolState::Invalid),
                REQUEST_TIMEOUT,
            ) {
                Ok(_) => tracing::info!("disabling HA through the statefile"),
                Err(e) => {
                    tracing::warn!(error = %e, "the pool state could not be set: disabling HA through the network")
                }
            }
        } else {
            tracing::info!("the statefile is not reachable: disabling HA through the network");
        }
        // Every member disarms, then stops and removes its files, over
        // the network (after the statefile said invalid too: their files
        // must go); this host disarms first, so none fences meanwhile.
        let _ = client::request(&socket, Request::DisarmFencing, REQUEST_TIMEOUT);
        let members = ha_hosts::members(self, &ha_hosts::pool_hosts(self), ctx.host_uuid)
            .unwrap_or_else(|e| {
                tracing::error!(code = %e.code, "the members cannot be called: their daemons stay");
                Vec::new()
            });
        ha_hosts::disarm_members(self, &members, false);
        ha_hosts::disarm_members(self, &members, true);
        let daemon = running
            .and_then(|r| r.daemon)
            .or_else(|| xhad_launcher::find(&ctx.launcher, &ctx.xhad_path, &paths));
        match &daemon {
            Some(d) => stop_daemon(d, &socket),
            None => {
                // Not found (e.g. a systemd unit already stopped): still ask
                // whatever answers on the socket to disarm and stop.
                for r in [Request::DisarmFencing, Request::Stop] {
                    let _ = client::request(&socket, r, REQUEST_TIMEOUT);
                }
            }
        }
        tracing::info!("xhad stopped");
        self.move_database_back(req, &ctx.data_dir)?;
        let leftovers = paths.created_files();
        files::remove_all(&leftovers);
        if let Some(s) = &state {
            // blocksr: files removed, block SR regions freed.
            super::ha_volumes::remove(&super::ha_volumes::leftovers(s));
        }
        tracing::info!("HA disabled");
        Ok(())
    }

    /// Records HA off on the metadata volume, then copies the database to
    /// the local file (as a snapshot), removes the HA record (the commit
    /// point) and writes there from now on.
    fn move_database_back(&self, req: &DisableRequest, data_dir: &Path) -> Result<(), ApiError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "{what}");
            ApiError::internal(&format!("{what}: {e}"))
        };
        let mut store = self.store();
        let changes = ha_enable::disabled_changes(store.database(), req);
        store
            .commit(&changes)
            .map_err(|e| fail("recording HA off failed", &e))?;
        let path = data_dir.join(LOCAL_DB_FILE);
        let (mut local, _) = Store::open_file(&path, Layout::standard(), 0)
            .map_err(|e| fail("opening the local database file failed", &e))?;
        local
            .install(store.database().clone())
            .map_err(|e| fail("writing the database to the local file failed", &e))?;
        HaState::remove(data_dir).map_err(|e| fail("removing the HA state record failed", &e))?;
        *store = local;
        self.publish(store.database().generation());
        Ok(())
    }
}

/// HA is off (no `ha-state.toml`) but an enable left its daemon or files
/// behind (the agent died before the commit point): stop the daemon and
/// remove what the enable made, as its rollback would have.
fn clean_up_interrupted_enable(ctx: &HaContext, paths: &XhadPaths) {
    let Ok(text) = std::fs::read_to_string(&paths.config) else {
        return;
    };
    let sr_files = files::sr_files_of_config(&text);
    if sr_files.is_empty() {
        // Not a configuration this agent wrote: leave it alone.
        return;
    }
    tracing::warn!(
        config = %paths.config.display(),
        "HA is off but an interrupted enable left xhad's configuration: cleaning up"
    );
    if let Some(daemon) = xhad_launcher::find(&ctx.launcher, &ctx.xhad_path, paths) {
        stop_daemon(&daemon, &paths.control_socket);
    }
    let mut leftovers = paths.created_files();
    leftovers.extend(sr_files);
    files::remove_all(&leftovers);
}

/// Runs `xhad --check` on the configuration: exit 8 is
/// `HA_HOST_CANNOT_ACCESS_STATEFILE`, any other failure
/// `HA_HEARTBEAT_DAEMON_STARTUP_FAILED`.
pub(super) fn check_config(xhad: &Path, config: &Path) -> Result<(), ApiError> {
    let out = std::process::Command::new(xhad)
        .arg("--config")
        .arg(config)
        .arg("--check")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            tracing::error!(xhad = %xhad.display(), error = %e, "xhad cannot be run");
            error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED")
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    tracing::error!(exit = ?out.status.code(), output = %said.trim(), "xhad --check refused");
    Err(match out.status.code() {
        Some(8) => error("HA_HOST_CANNOT_ACCESS_STATEFILE"),
        _ => error("HA_HEARTBEAT_DAEMON_STARTUP_FAILED"),
    })
}
