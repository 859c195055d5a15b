//! The agent's state and its one dispatcher, shared by every protocol and
//! listener: sessions, the role, the pool database, and the commit of what
//! a call changes.
//!
//! A call goes: session calls are answered here; every other call checks
//! its session (`SESSION_INVALID [ref]`; on a member a pool session gets
//! `HOST_IS_SLAVE [master]`), strips it, and goes to the pure handlers
//! (`api::call`). Their changes are committed (durable first) before the
//! reply, under one lock, so replies follow the order of commits.
//!
//! Why this file is over 600 lines: the dispatcher, the commit paths and
//! the lock order (VM host, then database) are one discipline best read in
//! one place; the pool operations that use it live in `membership`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use uuid::Uuid;

use super::ha_ops::HaLink;
use super::membership::{self, PoolState};
use super::role::Role;
use super::vms::VmHost;
use crate::api::bootstrap::HostInfo;
use crate::api::{self, ApiError, Caller, Effect, EventWait};
use crate::db::store::Store;
use crate::db::{Change, Database};
use crate::pool::peer::{self, PEER_USER};
use crate::pool::secret::PoolSecret;
use crate::rpc::convert::{to_rpc, to_value};
use crate::rpc::{Call, Failure, Rpc};
use crate::session::users::Users;
use crate::session::{Kind, Table};
use crate::value::{DateTime, Ref, Value};
use sr_heartbeat::io::BlockDevice;

/// The durable database on its local file.
pub type LocalStore = Store<BlockDevice>;

/// Facts about this host the agent needs at run time.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// This host's reference in the database at start (it changes when the
    /// host joins or leaves a pool: [`Agent::host_ref`]).
    pub host_ref: Ref,
    /// The TLS certificate's fingerprint, if TLS is served.
    pub tls_fingerprint: Option<String>,
    /// This host as its configuration describes it (what a join sends and
    /// an ejected host's fresh database holds).
    pub info: HostInfo,
    /// The data directory (`pool.conf`, `pool-secret`).
    pub data_dir: PathBuf,
    /// The TLS port of this host's first TLS listener: every host of a pool
    /// serves the API on the same port, as xapi's hosts all use 443
    /// (docs/pool.md). `None` without TLS: no pool calls.
    pub peer_port: Option<u16>,
}

/// Where a request came from, as far as logins care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// TCP (TLS or plain), or a Unix-socket peer that is not root.
    Network,
    /// The Unix socket, from a process whose uid is 0 (`SO_PEERCRED`):
    /// logins need no password, as xapi trusts the local superuser.
    LocalRoot,
}

/// The running agent.
pub struct Agent {
    started: Instant,
    /// Master or member; changed by join, eject and a master handover.
    role: Mutex<Role>,
    /// This host's reference (changes with the database on join/eject).
    host_ref: Mutex<Ref>,
    /// Pool secret, replication backlog, member-side bookkeeping.
    pub(super) pool: PoolState,
    users_path: PathBuf,
    users: Mutex<Users>,
    sessions: Mutex<Table>,
    store: Mutex<LocalStore>,
    generation: watch::Sender<u64>,
    host: HostFacts,
    /// The VM drivers, once attached ([`Agent::attach_vms`]).
    vms: OnceLock<Mutex<VmHost>>,
    /// On the master: VMs the drivers reported stopped whose Halted record
    /// could not be committed yet (the metadata volume failing): committed
    /// at the next poll that can, never dropped ([`Agent::poll_vms`]).
    unrecorded_stops: Mutex<Vec<uuid::Uuid>>,
    /// haenable: the link to `xhad` (`ha_ops`).
    ha: HaLink,
    /// metrics: the Prometheus handles (`crate::metrics`, docs/metrics.md).
    pub(crate) metrics: crate::metrics::Metrics,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        Failure {
            code: e.code,
            params: e.params,
        }
    }
}

/// Locks, taking over a lock whose holder panicked: the guarded values are
/// only changed by whole assignments or `Database::apply`, which leaves the
/// database as it was on error.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `m` without starving the async runtime. Its holder may be a
/// blocking thread that waits, under the lock, for a network call driven
/// by the async workers (`pool.join` logs in to its new master while it
/// holds its own database). An async task that then waited for the lock on
/// a worker thread would stall that worker and the tasks queued on it,
/// which can be the very call the holder waits for: a deadlock until the
/// call's timeout (seen joining the 11th host of a 16-host pool: the
/// replication task waited for the joiner's database on one of the two
/// workers). So a contended lock on a multi-threaded runtime is waited for
/// inside `block_in_place`, which first hands the worker's queue to
/// another thread; elsewhere (blocking threads, no runtime, a
/// current-thread runtime) it is an ordinary lock.
pub(super) fn lock_off_worker<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.try_lock() {
        Ok(g) => return g,
        Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {}
    }
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| lock(m))
    } else {
        lock(m)
    }
}

/// The parameter at `i` as a string, or `FIELD_TYPE_ERROR [name]`.
fn string_param(params: &[Rpc], i: usize, name: &str) -> Result<String, Failure> {
    match params.get(i) {
        Some(Rpc::Str(s)) => Ok(s.clone()),
        _ => Err(ApiError::field_type_error(name).into()),
    }
}

fn arity(
    method: &str,
    params: &[Rpc],
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), Failure> {
    if range.contains(&params.len()) {
        Ok(())
    } else {
        Err(ApiError::parameter_count_mismatch(method, *range.end(), params.len()).into())
    }
}

impl Agent {
    /// An agent over a database already opened, for a host already in it.
    pub fn new(
        role: Role,
        users_path: PathBuf,
        users: Users,
        store: LocalStore,
        host: HostFacts,
        secret: Option<PoolSecret>,
    ) -> Arc<Agent> {
        let (generation, _) = watch::channel(store.database().generation());
        Arc::new(Agent {
            started: Instant::now(),
            role: Mutex::new(role),
            host_ref: Mutex::new(host.host_ref),
            pool: PoolState::new(secret),
            users_path,
            users: Mutex::new(users),
            sessions: Mutex::new(Table::default()),
            store: Mutex::new(store),
            generation,
            host,
            vms: OnceLock::new(),
            unrecorded_stops: Mutex::new(Vec::new()),
            ha: HaLink::default(),
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// haenable: the HA link (`ha_ops`).
    pub(crate) fn ha(&self) -> &HaLink {
        &self.ha
    }

    /// The durable database, locked (`ha_ops` moves it; the pool
    /// operations of `membership` and `replicate` use it; lock order: the
    /// VM host before the database).
    pub(crate) fn store(&self) -> MutexGuard<'_, LocalStore> {
        self.lock_store()
    }

    /// Locks the database without starving the runtime
    /// ([`lock_off_worker`]).
    fn lock_store(&self) -> MutexGuard<'_, LocalStore> {
        lock_off_worker(&self.store)
    }

    /// The agent's monotonic clock: the one place it is read.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn caller(&self) -> Caller {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Caller {
            now: DateTime::from_unix(i64::try_from(unix).unwrap_or(i64::MAX)),
            seed: Uuid::new_v4(),
            this_host: self.host_ref(),
        }
    }

    /// The role this agent runs in now.
    pub fn role(&self) -> Role {
        lock(&self.role).clone()
    }

    /// Whether this agent is the master now.
    pub fn is_master(&self) -> bool {
        *lock(&self.role) == Role::Master
    }

    /// This host's reference in the database now.
    pub fn host_ref(&self) -> Ref {
        *lock(&self.host_ref)
    }

    /// This host's facts from its configuration.
    pub fn facts(&self) -> &HostFacts {
        &self.host
    }

    /// Changes the role and this host's reference (join, eject, handover),
    /// with the database lock held by the caller, so no commit sees a
    /// half-changed agent. `pool.conf` is the caller's to write first.
    pub(super) fn set_membership(&self, role: Role, host: Ref, store: &LocalStore) {
        *lock(&self.role) = role;
        *lock(&self.host_ref) = host;
        self.pool.backlog().clear();
        self.generation.send_replace(store.database().generation());
    }

    /// The VM drivers, if attached.
    pub(super) fn vm_host(&self) -> Option<&Mutex<VmHost>> {
        self.vms.get()
    }

    /// Publishes a new generation (a member's copy changed).
    pub(crate) fn publish(&self, generation: u64) {
        self.generation.send_replace(generation);
    }

    /// A receiver of the database generation (replication waits on it).
    pub fn watch_generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The TLS fingerprint, if served.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.host.tls_fingerprint.as_deref()
    }

    /// A copy of the database (for tests and diagnostics).
    pub fn database(&self) -> Database {
        self.lock_store().database().clone()
    }

    /// Answers one call.
    pub async fn dispatch(self: &Arc<Self>, call: Call, origin: Origin) -> Result<Rpc, Failure> {
        let Call { method, params } = call;
        // emerg: emergency mode and the emergency calls (`emergency`).
        if let Some(answer) = super::emergency::intercept(self, &method, &params, origin).await {
            return answer;
        }
        match method.as_str() {
            "session.login_with_password" => self.login(&method, &params, Kind::Pool, origin).await,
            "session.slave_local_login_with_password" => {
                self.login(&method, &params, Kind::Local, origin).await
            }
            "session.logout" | "session.local_logout" => {
                arity(&method, &params, 1..=1)?;
                let kind = if method == "session.logout" {
                    Kind::Pool
                } else {
                    Kind::Local
                };
                let r = string_param(&params, 0, "session")?;
                lock(&self.sessions)
                    .close(&r, kind, self.now())
                    .map_err(|_| Failure::from(ApiError::session_invalid(&r)))?;
                Ok(Rpc::Str(String::new()))
            }
            "session.change_password" => self.change_password(&method, &params).await,
            "system.listMethods" => self.run(&method, Vec::new()).await,
            _ => {
                let r = match params.first() {
                    Some(Rpc::Str(s)) => s.clone(),
                    _ => return Err(ApiError::session_invalid("").into()),
                };
                let s = lock(&self.sessions)
                    .check(&r, self.now())
                    .map_err(|_| Failure::from(ApiError::session_invalid(&r)))?;
                let from_peer = s.user == PEER_USER;
                if peer::METHODS.contains(&method.as_str()) {
                    if !from_peer {
                        return Err(Failure::new(
                            peer::code::PERMISSION_DENIED,
                            [format!("{method} is a host-to-host call")],
                        ));
                    }
                    let args = params.into_iter().skip(1).collect();
                    return membership::handle_peer(self, &method, args).await;
                }
                if let (Role::Slave(master), Kind::Pool) = (self.role(), s.kind) {
                    return Err(ApiError::host_is_slave(&master).into());
                }
                if method == crate::alerts::TEST_MAIL_METHOD {
                    arity(&method, &params, 1..=1)?;
                    return super::mailer::send_test(self).await;
                }
                let args = params.into_iter().skip(1).map(to_value).collect();
                self.run(&method, args).await
            }
        }
    }

    async fn login(
        self: &Arc<Self>,
        method: &str,
        params: &[Rpc],
        kind: Kind,
        origin: Origin,
    ) -> Result<Rpc, Failure> {
        arity(
            method,
            params,
            if kind == Kind::Pool { 2..=4 } else { 2..=2 },
        )?;
        let user = string_param(params, 0, "uname")?;
        let password = string_param(params, 1, "pwd")?;
        if user == PEER_USER {
            // Host to host: the pool secret, on any role; the session is
            // host-local (it ends with session.local_logout).
            if !self.pool.secret().is_some_and(|s| s.matches(&password)) {
                tracing::warn!("host-to-host login with a wrong pool secret refused");
                return Err(ApiError::session_authentication_failed(
                    &user,
                    "Authentication failure",
                )
                .into());
            }
            let r = Ref::from_uuid(Uuid::new_v4()).to_string();
            lock(&self.sessions).open(r.clone(), &user, Kind::Local, self.now());
            return Ok(Rpc::Str(r));
        }
        if let (Role::Slave(master), Kind::Pool) = (self.role(), kind) {
            return Err(ApiError::host_is_slave(&master).into());
        }
        if origin == Origin::LocalRoot {
            // As xapi trusts the local superuser on its Unix socket: the
            // socket is root-only and the peer's uid was checked to be 0.
            tracing::info!(user = %user, "login by root over the Unix socket");
            let r = Ref::from_uuid(Uuid::new_v4()).to_string();
            lock(&self.sessions).open(r.clone(), &user, kind, self.now());
            return Ok(Rpc::Str(r));
        }
        // Hashing takes tens of milliseconds: off the async workers.
        let agent = Arc::clone(self);
        let u = user.clone();
        let ok = tokio::task::spawn_blocking(move || agent.check_password(&u, &password))
            .await
            .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))?;
        if !ok {
            tracing::info!(user = %user, "login refused");
            return Err(
                ApiError::session_authentication_failed(&user, "Authentication failure").into(),
            );
        }
        let r = Ref::from_uuid(Uuid::new_v4()).to_string();
        lock(&self.sessions).open(r.clone(), &user, kind, self.now());
        Ok(Rpc::Str(r))
    }

    /// `session.change_password(session, old, new)` (`password.rs`).
    async fn change_password(
        self: &Arc<Self>,
        method: &str,
        params: &[Rpc],
    ) -> Result<Rpc, Failure> {
        arity(method, params, 3..=3)?;
        let r = string_param(params, 0, "session")?;
        let old = string_param(params, 1, "old_pwd")?;
        let new = string_param(params, 2, "new_pwd")?;
        let s = lock(&self.sessions)
            .check(&r, self.now())
            .map_err(|_| Failure::from(ApiError::session_invalid(&r)))?;
        if let (Role::Slave(master), Kind::Pool) = (self.role(), s.kind) {
            return Err(ApiError::host_is_slave(&master).into());
        }
        let agent = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            super::password::change_password(&agent.users_path, &agent.users, &s.user, &old, &new)
        })
        .await
        .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))??;
        Ok(Rpc::Str(String::new()))
    }

    /// Checks a password against the user file as it is now on disk (so
    /// `xapi-ha passwd` takes effect without a restart; a file that no
    /// longer parses keeps the last good one and is logged).
    pub(super) fn check_password(&self, user: &str, password: &str) -> bool {
        match Users::load(&self.users_path) {
            Ok(u) => *lock(&self.users) = u,
            Err(e) => tracing::warn!(error = %e, "user file unreadable: using the last good copy"),
        }
        let users = lock(&self.users).clone();
        if users.is_empty() {
            tracing::warn!("no user is set: run `xapi-ha passwd` on this host");
        }
        users.verify(user, password)
    }

    /// Runs the pure handler and commits its changes before answering;
    /// an `event.from` with nothing pending waits here for a commit.
    async fn run(self: &Arc<Self>, method: &str, args: Vec<Value>) -> Result<Rpc, Failure> {
        let agent = Arc::clone(self);
        let method = method.to_owned();
        let step = tokio::task::spawn_blocking(move || agent.run_blocking(&method, &args))
            .await
            .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))??;
        match step {
            Step::Done(r) => Ok(r),
            Step::Wait(w) => self.wait_events(w).await,
        }
    }

    /// maint: a call the agent makes itself, answered as any other.
    pub(super) fn call_internal(
        self: &Arc<Self>,
        method: &str,
        args: &[Value],
    ) -> Result<Rpc, Failure> {
        match self.run_blocking(method, args)? {
            Step::Done(r) => Ok(r),
            Step::Wait(_) => Err(ApiError::internal("an internal call waited for events").into()),
        }
    }

    fn run_blocking(self: &Arc<Self>, method: &str, args: &[Value]) -> Result<Step, Failure> {
        let caller = self.caller();
        let mut store = self.lock_store();
        let outcome = api::call(store.database(), &caller, method, args)?;
        if let Some(w) = outcome.wait {
            return Ok(Step::Wait(w));
        }
        self.refuse_changes_on_member(&outcome)?;
        // maint: host.evacuate and host.shutdown/reboot run their own calls.
        if let Some(e) = outcome
            .effects
            .iter()
            .find(|e| matches!(e, Effect::Evacuate { .. } | Effect::ShutdownHost { .. }))
        {
            drop(store);
            super::maintenance::perform(self, &caller, e)?;
            return Ok(Step::Done(to_rpc(&outcome.result)));
        }
        // haenable: enabling and disabling HA run outside the database lock
        // (they wait for xhad) and commit themselves (`ha_ops`).
        if let Some(ha) = outcome
            .effects
            .iter()
            .find(|e| matches!(e, Effect::EnableHa(_) | Effect::DisableHa(_)))
        {
            drop(store);
            match ha {
                Effect::EnableHa(req) => self.enable_ha(req)?,
                Effect::DisableHa(req) => self.disable_ha(req)?,
                _ => {}
            }
            return Ok(Step::Done(to_rpc(&outcome.result)));
        }
        // Storage effects are done under the database lock; VM effects
        // (which may wait 30 s) are not (`run_with_effects`); pool effects
        // hold the database for the whole operation (`membership`).
        let vm_effects = outcome.effects.iter().any(|e| {
            matches!(
                e,
                Effect::StartVm { .. }
                    | Effect::StopVm { .. }
                    | Effect::OnHost { .. }
                    | Effect::MigrateVm { .. }
            )
        });
        let pool_effects = outcome.effects.iter().any(|e| {
            matches!(
                e,
                Effect::JoinPool { .. } | Effect::EjectHost { .. } | Effect::HandOverMaster { .. }
            )
        });
        if pool_effects {
            return membership::run_pool_effects(self, &mut store, &caller, outcome)
                .map(Step::Done);
        }
        if !vm_effects {
            for effect in &outcome.effects {
                super::storage::perform(effect)?;
            }
            self.commit(&mut store, &outcome.changes)?;
            if method == "pool.admit" {
                return membership::admit_reply(self, &store, &outcome.result).map(Step::Done);
            }
            return Ok(Step::Done(to_rpc(&outcome.result)));
        }
        drop(store);
        self.run_with_effects(&caller, method, args)
    }

    /// A call with effects. The VM host is held from the check to the
    /// commit (one power call at a time, and the poller cannot report a stop
    /// in between); the database only while checking and while committing,
    /// so other calls go on during a clean shutdown's wait. The call is
    /// checked again under the VM host: the database may have moved on.
    fn run_with_effects(
        &self,
        caller: &Caller,
        method: &str,
        args: &[Value],
    ) -> Result<Step, Failure> {
        let mut vms = self.vms.get().map(lock);
        let outcome = api::call(self.lock_store().database(), caller, method, args)?;
        self.refuse_changes_on_member(&outcome)?;
        if outcome
            .effects
            .iter()
            .any(|e| matches!(e, Effect::StartVm { .. }))
        {
            super::start_guard::check(self)?;
        }
        for effect in &outcome.effects {
            match effect {
                Effect::OnHost { host, effect } => membership::forward(self, *host, effect)?,
                Effect::MigrateVm { .. } => {
                    super::migration::perform(self, caller.this_host, vms.as_deref_mut(), effect)?
                }
                _ => perform(vms.as_deref_mut(), effect)?,
            }
        }
        let mut store = self.lock_store();
        if let Err(e) = self
            .refuse_changes_on_member(&outcome)
            .and_then(|()| self.commit(&mut store, &outcome.changes))
        {
            // E.g. the VM was destroyed while it started: a VM must not run
            // without a record, so what this call started is stopped again.
            drop(store);
            tracing::error!(method, error = ?e, "the call's changes did not commit: undoing its starts");
            for effect in &outcome.effects {
                match effect {
                    Effect::StartVm { spec, .. } => {
                        if let Some(v) = vms.as_deref_mut()
                            && let Err(e) = v.stop(spec.uuid, true)
                        {
                            tracing::error!(vm = %spec.uuid, error = %e, "stopping it failed");
                        }
                    }
                    Effect::MigrateVm {
                        vm, spec, target, ..
                    } => {
                        let stop = Effect::StopVm {
                            vm: *vm,
                            uuid: spec.uuid,
                            hard: true,
                        };
                        let stopped = if *target == caller.this_host {
                            perform(vms.as_deref_mut(), &stop)
                        } else {
                            membership::forward(self, *target, &stop)
                        };
                        if let Err(e) = stopped {
                            tracing::error!(vm = %spec.uuid, error = ?e, "stopping it failed");
                        }
                    }
                    Effect::OnHost { host, effect } => {
                        if let Effect::StartVm { vm, spec } = effect.as_ref() {
                            let stop = Effect::StopVm {
                                vm: *vm,
                                uuid: spec.uuid,
                                hard: true,
                            };
                            if let Err(e) = membership::forward(self, *host, &stop) {
                                tracing::error!(vm = %spec.uuid, error = ?e, "stopping it failed");
                            }
                        }
                    }
                    _ => {}
                }
            }
            return Err(e);
        }
        drop(vms);
        Ok(Step::Done(to_rpc(&outcome.result)))
    }

    /// Takes over the VM drivers: adopts the VMs still running from an
    /// earlier agent and reconciles the database with them (a VM recorded
    /// running here that is gone becomes Halted; a running one is recorded
    /// Running here and never started again).
    pub fn attach_vms(&self, mut host: VmHost) -> Result<(), Failure> {
        let running = host.adopt();
        let mut store = self.lock_store();
        let changes = api::vm_power::reconcile(store.database(), &self.caller(), &running);
        if self.is_master() {
            self.commit(&mut store, &changes)?;
        } else {
            // A member's copy is the master's: it reports its stopped VMs.
            membership::queue_missing(self, store.database(), &running);
        }
        if self.vms.set(Mutex::new(host)).is_err() {
            return Err(ApiError::internal("VM drivers attached twice").into());
        }
        tracing::info!(
            adopted = running.len(),
            reconciled = changes.len(),
            "VM drivers attached"
        );
        Ok(())
    }

    /// Polls the drivers once and commits what they report: a VM that
    /// stopped (by itself, or by us after the call committed already)
    /// becomes Halted with `resident_on` NULL, unless it runs again (a
    /// reboot). Blocking: call from a blocking thread.
    pub fn poll_vms(&self) {
        let Some(vms) = self.vms.get() else {
            return;
        };
        // Lock order: the VM host, then the database (as in a power call).
        let mut vms = lock(vms);
        let events = vms.poll();
        if !self.is_master() {
            // A member reports to the master (and retries earlier reports).
            let stopped = events
                .into_iter()
                .map(|xapi_vm::VmEvent::Stopped { uuid, cause }| {
                    tracing::info!(vm = %uuid, cause = ?cause, "VM stopped");
                    uuid
                })
                .filter(|u| !vms.is_running(*u))
                .collect();
            drop(vms);
            membership::report_stopped(self, stopped);
            return;
        }
        let mut stopped = std::mem::take(&mut *lock(&self.unrecorded_stops));
        if events.is_empty() && stopped.is_empty() {
            return;
        }
        for xapi_vm::VmEvent::Stopped { uuid, cause } in events {
            tracing::info!(vm = %uuid, cause = ?cause, "VM stopped");
            if !stopped.contains(&uuid) {
                stopped.push(uuid);
            }
        }
        // Running again here (a reboot): nothing to record.
        stopped.retain(|u| !vms.is_running(*u));
        let mut store = self.lock_store();
        let mut changes = Vec::new();
        for uuid in &stopped {
            // Each with its own seed: the messages get distinct identities.
            // Nothing for a VM already Halted or resident elsewhere.
            let caller = self.caller();
            changes.extend(api::vm_power::stopped_by_itself(
                store.database(),
                caller.now,
                caller.seed,
                caller.this_host,
                &uuid.hyphenated().to_string(),
            ));
        }
        drop(vms);
        if let Err(e) = self.commit(&mut store, &changes) {
            // The drivers report a stop once: keep it, or the database
            // would say the VM runs here for ever and HA never restore it
            // (campaign, a master's storage failing while a VM exits).
            tracing::error!(error = ?e, vms = stopped.len(), "committing stopped VMs failed; retried at the next poll");
            lock(&self.unrecorded_stops).extend(stopped);
        }
    }

    /// Waits until the database generation passes `w.generation` or the
    /// timeout (capped by [`EVENT_FROM_MAX_WAIT`]) passes, then answers the
    /// query: the events, or an empty batch with a token.
    async fn wait_events(&self, w: EventWait) -> Result<Rpc, Failure> {
        let timeout = if w.timeout_seconds.is_finite() && w.timeout_seconds > 0.0 {
            Duration::from_secs_f64(w.timeout_seconds.min(EVENT_FROM_MAX_WAIT.as_secs_f64()))
        } else {
            Duration::ZERO
        };
        let mut rx = self.generation.subscribe();
        // Changes are coalesced briefly, as xapi does (50 ms).
        let _ = tokio::time::timeout(timeout, async {
            let _ = rx.wait_for(|g| *g > w.generation).await;
            tokio::time::sleep(EVENT_BATCH_DELAY).await;
        })
        .await;
        let store = self.lock_store();
        let v = api::poll_events(store.database(), &w.query)?;
        Ok(to_rpc(&v))
    }

    /// Commits a batch durably: the one place a change enters the database
    /// (a member's copy changes only by `membership`'s sync). The master
    /// keeps the batch for the members' copies.
    pub fn commit(&self, store: &mut LocalStore, changes: &[Change]) -> Result<(), Failure> {
        if changes.is_empty() {
            return Ok(());
        }
        let before = store.database().generation();
        let mut generation = store.commit(changes).map_err(|e| {
            tracing::error!(error = %e, "commit failed");
            super::lun_alerts::write_failed(self, &e); // alerts
            Failure::from(ApiError::internal(&e.to_string()))
        })?;
        if self.is_master() {
            self.pool.backlog().record(before, generation, changes);
        }
        // The live failover plan follows every change that can move it
        // (ha::live_plan); its own fields do not, so this ends here.
        if self.is_master() && crate::ha::live_plan::affects_plan(changes) {
            let plan = crate::ha::live_plan::follow_up(store.database(), &self.caller());
            if !plan.is_empty() {
                match store.commit(&plan) {
                    Ok(g) => {
                        self.pool.backlog().record(generation, g, &plan);
                        generation = g;
                    }
                    Err(e) => tracing::error!(error = %e, "committing the failover plan failed"),
                }
            }
        }
        generation = super::lun_alerts::write_worked(self, store, generation); // alerts
        self.generation.send_replace(generation);
        Ok(())
    }

    /// A member's copy of the database is the master's: a call that would
    /// change it, or act, is answered `HOST_IS_SLAVE [master]` (a local
    /// session on a member reads).
    fn refuse_changes_on_member(&self, outcome: &api::Outcome) -> Result<(), Failure> {
        match self.role() {
            Role::Slave(master) if !outcome.changes.is_empty() || !outcome.effects.is_empty() => {
                Err(ApiError::host_is_slave(&master).into())
            }
            _ => Ok(()),
        }
    }

    /// mail: runs `f` on the database as it is and commits the changes it
    /// returns, under the lock (for the mail sender, `server::mailer`).
    pub fn transact<R>(&self, f: impl FnOnce(&Database) -> (Vec<Change>, R)) -> Result<R, Failure> {
        let mut store = self.lock_store();
        let (changes, r) = f(store.database());
        self.commit(&mut store, &changes)?;
        Ok(r)
    }

    /// emerg: the open session `r`, if any (`emergency`).
    pub(super) fn session_of(&self, r: &str) -> Option<crate::session::Session> {
        lock(&self.sessions).check(r, self.now()).ok()
    }

    /// Expires idle sessions (called periodically).
    pub fn expire_sessions(&self) {
        lock(&self.sessions).expire(self.now());
    }
}

/// Bound on how long an `event.from` may wait, whatever the client asks.
pub const EVENT_FROM_MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long `event.from` lets changes gather after the first one (xapi's
/// batching delay).
pub const EVENT_BATCH_DELAY: Duration = Duration::from_millis(50);

/// Performs one effect of a call on this host's VM drivers.
pub(super) fn perform(vms: Option<&mut VmHost>, effect: &Effect) -> Result<(), Failure> {
    let driver_failed = |e: super::vms::VmHostError| {
        tracing::warn!(error = %e, "VM effect failed");
        Failure::from(ApiError::internal(&e.to_string()))
    };
    let no_drivers = || Failure::from(ApiError::internal("this agent runs no VM drivers"));
    match effect {
        Effect::CreateSr { .. }
        | Effect::CreateVdi { .. }
        | Effect::CreateRegion { .. }
        | Effect::DeleteVolume { .. }
        | Effect::OnHost { .. }
        | Effect::JoinPool { .. }
        | Effect::EjectHost { .. }
        | Effect::HandOverMaster { .. } => Ok(super::storage::perform(effect)?),
        Effect::StartVm { spec, .. } => vms
            .ok_or_else(no_drivers)?
            .start(spec)
            .map_err(driver_failed),
        Effect::StopVm { uuid, hard, .. } => vms
            .ok_or_else(no_drivers)?
            .stop(*uuid, *hard)
            .map_err(driver_failed),
        Effect::EnableHa(_)
        | Effect::DisableHa(_)
        | Effect::Evacuate { .. }
        | Effect::ShutdownHost { .. } => {
            Err(ApiError::internal("an HA effect is not a VM effect").into())
        }
        Effect::MigrateVm { .. } => Err(ApiError::internal(
            "a migration is performed by server::migration, not on one host",
        )
        .into()),
    }
}

/// What the blocking part of a call leaves to do.
enum Step {
    Done(Rpc),
    Wait(EventWait),
}

pub use crate::api::pool::TLS_FINGERPRINT_KEY;

/// The local database file's name in the data directory (while HA is off).
pub const LOCAL_DB_FILE: &str = "pool-db";

/// The wall clock as an API date (whole seconds, UTC).
pub fn wall_clock() -> DateTime {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DateTime::from_unix(i64::try_from(unix).unwrap_or(i64::MAX))
}
