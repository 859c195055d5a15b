//! The agent's state and its one dispatcher, shared by every protocol and
//! listener: sessions, the role, the pool database, and the commit of what
//! a call changes.
//!
//! A call goes: session calls are answered here; every other call checks
//! its session (`SESSION_INVALID [ref]`; on a member a pool session gets
//! `HOST_IS_SLAVE [master]`), strips it, and goes to the pure handlers
//! (`api::call`). Their changes are committed (durable first) before the
//! reply, under one lock, so replies follow the order of commits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use uuid::Uuid;

use super::role::Role;
use crate::api::{self, ApiError, Caller};
use crate::db::{Change, Class, Database};
use crate::rpc::convert::{to_rpc, to_value};
use crate::rpc::{Call, Failure, Rpc};
use crate::session::users::Users;
use crate::session::{Kind, Table};
use crate::value::{DateTime, Ref, Value};

/// Facts about this host the agent needs at run time.
#[derive(Debug, Clone)]
pub struct HostFacts {
    /// This host's reference in the database.
    pub host_ref: Ref,
    /// The TLS certificate's fingerprint, if TLS is served.
    pub tls_fingerprint: Option<String>,
}

/// The running agent.
pub struct Agent {
    started: Instant,
    role: Role,
    users_path: PathBuf,
    users: Mutex<Users>,
    sessions: Mutex<Table>,
    db: Mutex<Database>,
    generation: watch::Sender<u64>,
    host: HostFacts,
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
        db: Database,
        host: HostFacts,
    ) -> Arc<Agent> {
        let (generation, _) = watch::channel(db.generation());
        Arc::new(Agent {
            started: Instant::now(),
            role,
            users_path,
            users: Mutex::new(users),
            sessions: Mutex::new(Table::default()),
            db: Mutex::new(db),
            generation,
            host,
        })
    }

    /// The agent's monotonic clock: the one place it is read.
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn caller(&self) -> Caller {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Caller {
            now: DateTime::from_unix(i64::try_from(unix).unwrap_or(i64::MAX)),
            seed: Uuid::new_v4(),
            this_host: self.host.host_ref,
        }
    }

    /// The role this agent runs in.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The TLS fingerprint, if served.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.host.tls_fingerprint.as_deref()
    }

    /// A copy of the database (for tests and diagnostics).
    pub fn database(&self) -> Database {
        lock(&self.db).clone()
    }

    /// Answers one call.
    pub async fn dispatch(self: &Arc<Self>, call: Call) -> Result<Rpc, Failure> {
        let Call { method, params } = call;
        match method.as_str() {
            "session.login_with_password" => self.login(&method, &params, Kind::Pool).await,
            "session.slave_local_login_with_password" => {
                self.login(&method, &params, Kind::Local).await
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
            "system.listMethods" => self.run(&method, Vec::new()).await,
            _ => {
                let r = match params.first() {
                    Some(Rpc::Str(s)) => s.clone(),
                    _ => return Err(ApiError::session_invalid("").into()),
                };
                let s = lock(&self.sessions)
                    .check(&r, self.now())
                    .map_err(|_| Failure::from(ApiError::session_invalid(&r)))?;
                if let (Role::Slave(master), Kind::Pool) = (&self.role, s.kind) {
                    return Err(ApiError::host_is_slave(master).into());
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
    ) -> Result<Rpc, Failure> {
        arity(
            method,
            params,
            if kind == Kind::Pool { 2..=4 } else { 2..=2 },
        )?;
        let user = string_param(params, 0, "uname")?;
        let password = string_param(params, 1, "pwd")?;
        if let (Role::Slave(master), Kind::Pool) = (&self.role, kind) {
            return Err(ApiError::host_is_slave(master).into());
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

    /// Checks a password against the user file as it is now on disk (so
    /// `xapi-ha passwd` takes effect without a restart; a file that no
    /// longer parses keeps the last good one and is logged).
    fn check_password(&self, user: &str, password: &str) -> bool {
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

    /// Runs the pure handler and commits its changes before answering.
    async fn run(self: &Arc<Self>, method: &str, args: Vec<Value>) -> Result<Rpc, Failure> {
        let agent = Arc::clone(self);
        let method = method.to_owned();
        tokio::task::spawn_blocking(move || agent.run_blocking(&method, &args))
            .await
            .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))?
    }

    fn run_blocking(&self, method: &str, args: &[Value]) -> Result<Rpc, Failure> {
        let caller = self.caller();
        let mut db = lock(&self.db);
        let outcome = api::call(&db, &caller, method, args)?;
        if !outcome.effects.is_empty() {
            return Err(ApiError::internal(
                "this call's storage effects are not performed by this agent yet",
            )
            .into());
        }
        self.commit(&mut db, &outcome.changes)?;
        Ok(to_rpc(&outcome.result))
    }

    /// Commits a batch: the one place a change enters the database.
    fn commit(&self, db: &mut Database, changes: &[Change]) -> Result<(), Failure> {
        if changes.is_empty() {
            return Ok(());
        }
        let _kept = db
            .apply(changes)
            .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))?;
        self.generation.send_replace(db.generation());
        Ok(())
    }

    /// Expires idle sessions (called periodically).
    pub fn expire_sessions(&self) {
        lock(&self.sessions).expire(self.now());
    }
}

/// The changes that make a fresh host the master of a pool of one: the
/// pool, this host and its metrics. `seed` makes the references.
pub fn first_start_changes(
    host_uuid: Uuid,
    host_name: &str,
    address: &str,
    memory_total: u64,
    drivers: &[String],
    seed: Uuid,
) -> (Ref, Vec<Change>) {
    let id = |n: &str| Uuid::new_v5(&seed, n.as_bytes());
    let pool = Ref::from_uuid(id("pool-ref"));
    let host = Ref::from_uuid(id("host-ref"));
    let metrics = Ref::from_uuid(id("metrics-ref"));
    let mem = i64::try_from(memory_total).unwrap_or(i64::MAX);
    let changes = vec![
        Change::Create {
            class: Class::HostMetrics,
            r#ref: metrics,
            fields: vec![
                ("uuid".into(), Value::String(id("metrics").to_string())),
                ("memory_total".into(), Value::Int(mem)),
                ("memory_free".into(), Value::Int(mem)),
                ("live".into(), Value::Bool(true)),
            ],
        },
        Change::Create {
            class: Class::Host,
            r#ref: host,
            fields: vec![
                ("uuid".into(), Value::String(host_uuid.to_string())),
                ("name_label".into(), Value::String(host_name.to_owned())),
                ("hostname".into(), Value::String(host_name.to_owned())),
                ("address".into(), Value::String(address.to_owned())),
                ("metrics".into(), Value::Ref(metrics)),
                (
                    "vm_drivers".into(),
                    Value::Set(drivers.iter().cloned().map(Value::String).collect()),
                ),
            ],
        },
        Change::Create {
            class: Class::Pool,
            r#ref: pool,
            fields: vec![
                ("uuid".into(), Value::String(id("pool").to_string())),
                ("master".into(), Value::Ref(host)),
            ],
        },
    ];
    (host, changes)
}

/// Bound on how long an `event.from` may wait, whatever the client asks.
pub const EVENT_FROM_MAX_WAIT: Duration = Duration::from_secs(3600);
