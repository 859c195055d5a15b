//! `xapi-ha`: the pool agent, one per host (docs/api.md).
//!
//! `xapi-ha [--config PATH] [--check]` runs the agent (or only checks the
//! configuration); `xapi-ha passwd [--user NAME]` sets a password in the
//! user file, reading it from standard input. Exit codes (docs/api.md):
//! 0 clean stop or check passed, 1 failure while running, 2 usage,
//! 3 configuration, 4 data directory or local state, 5 listener.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};
use uuid::Uuid;

use sr_heartbeat::metadata::Layout;
use xapi_ha::api::Caller;
use xapi_ha::api::bootstrap::{self, HostInfo};
use xapi_ha::config::{self, Config};
use xapi_ha::db::store::Store;
use xapi_ha::db::{Change, Class, Database};
use xapi_ha::ha_link::state::HaState;
use xapi_ha::pool::secret::PoolSecret;
use xapi_ha::server::agent::{
    HostFacts, LOCAL_DB_FILE, LocalStore, TLS_FINGERPRINT_KEY, wall_clock,
};
use xapi_ha::server::ha_ops::HaContext;
use xapi_ha::server::ha_volumes::{self, OpenHaError};
use xapi_ha::server::http::{self, Limits};
use xapi_ha::server::listen::{self, ConnConfig, Listener};
use xapi_ha::server::role::Role;
use xapi_ha::server::vms::{self, VmHost};
use xapi_ha::server::{Agent, tls};
use xapi_ha::session::users::{self, Users};
use xapi_ha::value::{Key, Ref, Value};
use xapi_vm::DriverContext;

/// Exit codes (docs/api.md, "Exit codes").
mod exit {
    pub const RUNTIME: u8 = 1;
    pub const CONFIG: u8 = 3;
    pub const STATE: u8 = 4;
    pub const LISTEN: u8 = 5;
    /// This host's role file says master, but another host took the master
    /// lock while the agent was down and its `xhad` has not rejoined to say
    /// which: a later start succeeds (systemd restarts it; EX_TEMPFAIL).
    pub const SUPERSEDED: u8 = 75;
}

#[derive(Parser)]
#[command(
    name = "xapi-ha",
    about = "The pool agent: pool database and XenAPI-compatible API"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Check the configuration and exit.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Set a user's password in the user file (read from standard input).
    Passwd {
        /// The user.
        #[arg(long, default_value = "root")]
        user: String,
    },
}

/// A failure with its exit code.
struct Fail(u8, String);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("xapi-ha: {msg}");
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Fail> {
    let cfg = Config::load(&cli.config).map_err(|e| Fail(exit::CONFIG, e.to_string()))?;
    if cli.check {
        println!(
            "{}: ok (host {} {})",
            cli.config.display(),
            cfg.host_name,
            cfg.host_uuid
        );
        return Ok(());
    }
    // Everything the agent creates is private to root.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    ensure_data_dir(&cfg.data_dir)?;
    match cli.command {
        Some(Command::Passwd { user }) => passwd(&cfg, &user),
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| Fail(exit::RUNTIME, format!("starting the runtime: {e}")))?;
            rt.block_on(serve(cfg))
        }
    }
}

fn ensure_data_dir(dir: &Path) -> Result<(), Fail> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Fail(exit::STATE, format!("data.dir {}: {e}", dir.display())))
}

fn passwd(cfg: &Config, user: &str) -> Result<(), Fail> {
    let path = cfg.data_dir.join(users::FILE_NAME);
    let mut users = Users::load(&path).map_err(|e| Fail(exit::STATE, e.to_string()))?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Fail(
            exit::RUNTIME,
            format!("reading the password from standard input: {e}"),
        )
    })?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    users
        .set_password(user, password)
        .map_err(|e| Fail(exit::RUNTIME, e.to_string()))?;
    users
        .save(&path)
        .map_err(|e| Fail(exit::STATE, e.to_string()))?;
    println!("password of {user} set in {}", path.display());
    Ok(())
}

fn memory_total(cfg: &Config) -> Result<u64, Fail> {
    if let Some(m) = cfg.memory_total_bytes {
        return Ok(m);
    }
    let text = std::fs::read_to_string("/proc/meminfo").map_err(|e| {
        Fail(
            exit::STATE,
            format!("/proc/meminfo: {e} (set memory.total_bytes)"),
        )
    })?;
    config::meminfo_total_bytes(&text).ok_or_else(|| {
        Fail(
            exit::STATE,
            "/proc/meminfo has no MemTotal (set memory.total_bytes)".into(),
        )
    })
}

/// The VM drivers' run directory inside the data directory (it survives
/// an agent restart, so running VMs are adopted).
const VM_RUN_DIR: &str = "vm-run";

/// Opens the durable database and makes sure this host is in it: a fresh
/// host becomes the master of a pool of one.
fn open_database(
    cfg: &Config,
    role: &Role,
    info: &HostInfo,
    ha: Option<&HaState>,
) -> Result<(LocalStore, Ref), Fail> {
    // haenable: while HA is on the master's database is on the metadata
    // volume (hamulti: a member keeps its local copy; its HA record only
    // says which xhad to re-attach to).
    if let Some(state) = ha.filter(|_| *role == Role::Master) {
        let store = ha_volumes::open_ha_store(state).map_err(|e| match e {
            OpenHaError::Superseded(_) => Fail(exit::SUPERSEDED, e.to_string()),
            OpenHaError::Other(_) => Fail(exit::STATE, e.to_string()),
        })?;
        let host = store
            .database()
            .objects(Class::Host)
            .find(|(_, o)| o.uuid() == cfg.host_uuid.to_string())
            .map(|(r, _)| r)
            .ok_or_else(|| {
                Fail(
                    exit::STATE,
                    "the HA database does not hold this host".into(),
                )
            })?;
        return Ok((store, host));
    }
    let path = cfg.data_dir.join(LOCAL_DB_FILE);
    let (mut store, report) = Store::open_file(&path, Layout::standard(), 0)
        .map_err(|e| Fail(exit::STATE, e.to_string()))?;
    info!(
        file = %path.display(),
        generation = store.database().generation(),
        deltas_replayed = report.deltas_replayed,
        stopped_at = report.stopped_at.as_deref().unwrap_or("clean end"),
        "database opened"
    );
    let host_uuid = cfg.host_uuid.to_string();
    let existing = store
        .database()
        .objects(Class::Host)
        .find(|(_, o)| o.uuid() == host_uuid)
        .map(|(r, _)| r);
    let host = match existing {
        Some(r) => r,
        None if *role == Role::Master => {
            let caller = Caller {
                now: wall_clock(),
                seed: Uuid::new_v4(),
                this_host: Ref::NULL,
            };
            let (host, changes) = bootstrap::new_pool(store.database(), &caller, info);
            store
                .commit(&changes)
                .map_err(|e| Fail(exit::STATE, format!("creating the pool of one: {e}")))?;
            info!(host = %host, "fresh host: master of a pool of one");
            host
        }
        None => {
            return Err(Fail(
                exit::STATE,
                "this member's database copy does not hold this host".into(),
            ));
        }
    };
    Ok((store, host))
}

/// `host.other_config` with `tls_fingerprint` set, if it is not already.
fn with_fingerprint(db: &Database, host: Ref, fingerprint: &str) -> Option<Change> {
    let mut entries = match db.field(Class::Host, host, "other_config") {
        Some(Value::Map(m)) => m,
        _ => Vec::new(),
    };
    let key = Key::String(TLS_FINGERPRINT_KEY.into());
    let current = Value::String(fingerprint.to_owned());
    if entries.iter().any(|(k, v)| *k == key && *v == current) {
        return None;
    }
    entries.retain(|(k, _)| *k != key);
    entries.push((key, current));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Some(Change::set(
        Class::Host,
        host,
        "other_config",
        Value::Map(entries),
    ))
}

/// The pool secret: read from the data directory; a master without one
/// (a fresh host, or one from before pools) makes one. A member without
/// one cannot talk to its master (logged).
fn pool_secret(dir: &Path, role: &Role) -> Result<Option<PoolSecret>, Fail> {
    let secret = PoolSecret::load(dir).map_err(|e| Fail(exit::STATE, e.to_string()))?;
    match (secret, role) {
        (Some(s), _) => Ok(Some(s)),
        (None, Role::Master) => {
            let s = PoolSecret::generate();
            s.save(dir).map_err(|e| Fail(exit::STATE, e.to_string()))?;
            info!("made the pool secret");
            Ok(Some(s))
        }
        (None, Role::Slave(_)) => {
            warn!("this member has no pool secret: it cannot talk to its master");
            Ok(None)
        }
    }
}

/// The lock file in the data directory: one agent per data directory.
const LOCK_FILE: &str = "agent.lock";

/// Takes the data directory's lock (held until the process ends), so a
/// second agent never opens the database another one writes.
fn lock_data_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Fail> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Fail(exit::STATE, format!("{}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        Fail(
            exit::STATE,
            format!("data.dir {}: another agent uses it ({e})", dir.display()),
        )
    })
}

async fn serve(cfg: Config) -> Result<(), Fail> {
    // The handlers are in place before "agent ready" is logged, so a stop
    // that follows readiness is always a clean one.
    let signal = |kind| {
        tokio::signal::unix::signal(kind)
            .map_err(|e| Fail(exit::RUNTIME, format!("signal handler: {e}")))
    };
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let role = match Role::load(&cfg.data_dir).map_err(|e| Fail(exit::STATE, e.to_string()))? {
        Some(r) => r,
        None => {
            Role::Master
                .save(&cfg.data_dir)
                .map_err(|e| Fail(exit::STATE, e.to_string()))?;
            Role::Master
        }
    };
    let users_path = cfg.data_dir.join(users::FILE_NAME);
    let users = Users::load(&users_path).map_err(|e| Fail(exit::STATE, e.to_string()))?;
    if users.is_empty() {
        warn!(file = %users_path.display(), "no user is set: every login is refused until `xapi-ha passwd` sets one");
    }
    let info = HostInfo {
        uuid: cfg.host_uuid.to_string(),
        name_label: cfg.host_name.clone(),
        address: cfg.host_address.clone(),
        hostname: cfg.host_name.clone(),
        memory_total: i64::try_from(memory_total(&cfg)?).unwrap_or(i64::MAX),
        memory_overhead: 0,
        vm_drivers: cfg.drivers.clone(),
    };
    if xapi_ha::server::peers::set_source_address(&cfg.host_address) {
        info!(address = %cfg.host_address, "host-to-host connections leave from host.address");
    } else {
        info!(address = %cfg.host_address, "host.address is not an address of this host: host-to-host connections leave from the kernel's choice");
    }
    let ha_state = HaState::load(&cfg.data_dir).map_err(|e| Fail(exit::STATE, e.to_string()))?;
    // mfail: an old master whose daemon names a newer lock holder starts
    // as that holder's member (docs/master-failover.md).
    let role = match (&role, ha_state.as_ref()) {
        (Role::Master, Some(state)) => {
            xapi_ha::server::master_failover::role_at_start(&cfg.data_dir, state, cfg.host_uuid)
                .unwrap_or(role)
        }
        _ => role,
    };
    let (mut store, host) = open_database(&cfg, &role, &info, ha_state.as_ref())?;
    let secret = pool_secret(&cfg.data_dir, &role)?;

    let mut listeners = Vec::new();
    let mut fingerprint = None;
    if !cfg.api.tls_listen.is_empty() {
        let names = vec![cfg.host_name.clone(), cfg.host_address.clone()];
        let id = tls::load_or_create(&cfg.data_dir.join("tls"), &names)
            .map_err(|e| Fail(exit::STATE, e.to_string()))?;
        match with_fingerprint(store.database(), host, &id.fingerprint) {
            Some(change) if role == Role::Master => {
                store.commit(&[change]).map_err(|e| {
                    Fail(exit::STATE, format!("recording the TLS fingerprint: {e}"))
                })?;
            }
            // A member's copy is the master's; its record was made at join.
            Some(_) => warn!(
                "this member's certificate differs from the one the pool recorded: other hosts will refuse it"
            ),
            None => {}
        }
        let acceptor = TlsAcceptor::from(id.config);
        for addr in &cfg.api.tls_listen {
            let l = listen::bind_tcp(*addr)
                .await
                .map_err(|e| Fail(exit::LISTEN, format!("api.tls_listen {addr}: {e}")))?;
            listeners.push(Listener::Tls(l, acceptor.clone()));
        }
        fingerprint = Some(id.fingerprint);
    }
    for addr in &cfg.api.http_listen {
        if !addr.ip().is_loopback() {
            warn!(%addr, "plain HTTP on a non-loopback address (api.allow_plain_http = true)");
        }
        let l = listen::bind_tcp(*addr)
            .await
            .map_err(|e| Fail(exit::LISTEN, format!("api.http_listen {addr}: {e}")))?;
        listeners.push(Listener::Plain(l));
    }
    let peer_port = listeners.iter().find_map(|l| match l {
        Listener::Tls(l, _) => l.local_addr().ok().map(|a| a.port()),
        _ => None,
    });
    if let Some(path) = &cfg.api.unix_socket {
        let l = listen::bind_unix(path).map_err(|e| {
            Fail(
                exit::LISTEN,
                format!("api.unix_socket {}: {e}", path.display()),
            )
        })?;
        listeners.push(Listener::Unix(l));
    }

    let agent = Agent::new(
        role.clone(),
        users_path,
        users,
        store,
        HostFacts {
            host_ref: host,
            tls_fingerprint: fingerprint,
            info,
            data_dir: cfg.data_dir.clone(),
            peer_port,
        },
        secret,
    );
    agent.attach_ha(
        HaContext {
            data_dir: cfg.data_dir.clone(),
            host_uuid: cfg.host_uuid,
            host_address: cfg.host_address.clone(),
            xhad_path: cfg.xhad_path.clone(),
            launcher: cfg.xhad_launcher.clone(),
            config_dir: cfg.xhad_config_dir.clone(),
            heartbeat_address: cfg.xhad_heartbeat_address,
        },
        ha_state,
    );
    // alerts: a fence of an earlier boot is reported pool-wide.
    xapi_ha::server::fence_alerts::spawn(&agent);
    // Without the keeper no VM can run here: the agent still serves the
    // API (power calls then fail with INTERNAL_ERROR saying so).
    match DriverContext::keeper_next_to_current_exe() {
        Some(keeper) => {
            let vms = VmHost::new(
                cfg.host_name.clone(),
                cfg.data_dir.join(VM_RUN_DIR),
                keeper,
                &cfg.drivers,
            );
            agent
                .attach_vms(vms)
                .map_err(|e| Fail(exit::STATE, format!("adopting VMs: {e:?}")))?;
        }
        None => warn!("xha-vm-keeper is not installed next to xapi-ha: this host runs no VMs"),
    }
    let vm_events = {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(vms::POLL_INTERVAL);
            loop {
                tick.tick().await;
                let a = Arc::clone(&agent);
                if let Err(e) = tokio::task::spawn_blocking(move || a.poll_vms()).await {
                    warn!(error = %e, "VM event poll failed");
                }
            }
        })
    };
    let replication = tokio::spawn(xapi_ha::server::replicate::run(Arc::clone(&agent)));
    // emerg: a member probes its master (emergency mode, docs/operations.md).
    let _probe = tokio::spawn(xapi_ha::server::emergency::watch_master(Arc::clone(&agent)));
    // haengine: the restart engine (runs on the master while HA is on).
    xapi_ha::server::ha_engine_task::spawn(&agent);
    // mail: the master sends the pool's email alerts.
    let mailer = (role == Role::Master).then(|| xapi_ha::server::mailer::spawn(Arc::clone(&agent)));
    let limits = Limits {
        max_body_bytes: cfg.api.max_body_bytes,
        body_timeout: cfg.api.body_timeout,
    };
    let conn = ConnConfig {
        app: http::router(Arc::clone(&agent), limits),
        permits: Arc::new(Semaphore::new(cfg.api.max_connections)),
        header_timeout: cfg.api.header_timeout,
    };
    for l in &listeners {
        info!(listener = %l.describe(), "listening");
    }
    info!(role = ?role, host = %host, tls_fingerprint = agent.tls_fingerprint().unwrap_or("-"), "agent ready");

    let expiry = {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                agent.expire_sessions();
            }
        })
    };
    let result = tokio::select! {
        () = listen::serve_all(listeners, conn) => {
            expiry.abort();
            vm_events.abort();
            replication.abort();
            if let Some(m) = &mailer {
                m.abort();
            }
            Err(Fail(exit::RUNTIME, "every listener stopped".into()))
        }
        _ = term.recv() => { info!("SIGTERM: stopping"); Ok(()) }
        _ = int.recv() => { info!("SIGINT: stopping"); Ok(()) }
    };
    // Every reply was sent after its commit: nothing to flush. The socket
    // file goes, so a client sees "no agent" rather than a dead socket.
    if let Some(path) = &cfg.api.unix_socket {
        let _ = std::fs::remove_file(path);
    }
    result
}
