//! The restart engine on the live pool (docs/restart-engine.md, "Wiring"):
//! on the master while HA is on, one thread owns an [`Engine`] built from
//! the database ([`PoolView::from_db`]) and feeds it
//! - every committed change, as the difference between the database it
//!   last saw and the database now (`ha::wiring::committed_inputs`: VM
//!   power, protection, hosts, the pool's settings; `xhad`'s reports reach
//!   it as their committed translation, `host_metrics.live`);
//! - `pool.ha_restarts_prevented_until` as `PreventRestartsFor`;
//! - the answers of its own starts;
//! - `Tick` at [`Engine::poll_timeout`].
//!
//! It wakes on a commit (the database generation), on an answer, or at the
//! engine's timeout: never on a polling interval. Engine time is the time
//! since the thread started; the engine never reads a clock.
//!
//! Actions: the database changes of a batch (`ha_state`, forced halts,
//! dead hosts, `scheduled_to_be_resident_on` of the starts) are committed
//! before any start goes out (persist before acting); messages are raised
//! through `alerts::catalog` so the mailer sends them; each start runs on
//! its own thread through [`vm_power::ha_restart`] (the start checks
//! without the overcommit check) on this host or forwarded to the target
//! host, and its answer comes back as `VmStarted` / `VmStartFailed`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use uuid::Uuid;

use super::agent::{Agent, LocalStore};
use super::membership;
use crate::alerts::catalog;
use crate::api::{Caller, Effect, vm_power};
use crate::db::{Change, Class, Database};
use crate::ha::engine::{Action, Engine, Input};
use crate::ha::view::PoolView;
use crate::ha::{shell, wiring};
use crate::metrics::RestartOutcome;
use crate::model::RestartPriority;
use crate::value::{Ref, Value};

/// The longest the thread sleeps without an event (a safety net: every
/// change it follows publishes a generation).
const IDLE: Duration = Duration::from_secs(30);

/// The answer of one start, or of one failback (`host` is its target).
struct StartDone {
    vm: Uuid,
    host: Uuid,
    failback: bool,
    result: Result<(), String>,
}

/// The engine of this master and what it last saw of the database.
struct Running {
    engine: Engine,
    last: PoolView,
    prevented: Option<i64>,
    /// Engine time at which each VM was forced halted with its host, for
    /// the restart latency metric.
    down_since: HashMap<Uuid, Duration>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn by_uuid(db: &Database, class: Class, uuid: Uuid) -> Option<Ref> {
    match db.by_uuid(&uuid.hyphenated().to_string()) {
        Some((c, r)) if c == class => Some(r),
        _ => None,
    }
}

/// Starts the engine's thread for `agent` (it idles while this host is not
/// the master or HA is off). Call from within the tokio runtime.
pub fn spawn(agent: &Arc<Agent>) {
    let weak = Arc::downgrade(agent);
    let handle = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name("ha-engine".into())
        .spawn(move || run(&weak, &handle));
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the HA restart engine");
    }
}

fn run(weak: &Weak<Agent>, handle: &tokio::runtime::Handle) {
    // Inside the runtime's context: the starts' threads take its handle.
    let _runtime = handle.enter();
    let epoch = Instant::now();
    let Some(mut generation) = weak.upgrade().map(|a| a.watch_generation()) else {
        return;
    };
    let (tx, mut rx) = unbounded_channel::<StartDone>();
    let mut running: Option<Running> = None;
    let mut answers = Vec::new();
    loop {
        let Some(agent) = weak.upgrade() else {
            return;
        };
        generation.borrow_and_update();
        let now = epoch.elapsed();
        let inputs = answers
            .drain(..)
            .map(|d: StartDone| match d.result {
                result if d.failback => Input::FailbackDone {
                    vm: d.vm,
                    to: d.host,
                    result,
                },
                Ok(()) => Input::VmStarted {
                    vm: d.vm,
                    host: d.host,
                },
                Err(reason) => Input::VmStartFailed {
                    vm: d.vm,
                    host: d.host,
                    reason,
                },
            })
            .collect();
        turn(&agent, &mut running, now, inputs, weak, &tx);
        let timeout = running
            .as_ref()
            .and_then(|r| r.engine.poll_timeout())
            .map_or(IDLE, |t| t.saturating_sub(epoch.elapsed()).min(IDLE));
        drop(agent);
        let ended = handle.block_on(async {
            tokio::select! {
                changed = generation.changed() => changed.is_err(),
                done = rx.recv() => {
                    answers.extend(done);
                    false
                }
                () = tokio::time::sleep(timeout) => false,
            }
        });
        while let Ok(d) = rx.try_recv() {
            answers.push(d);
        }
        if ended {
            return;
        }
    }
}

/// One turn: follow the database, feed the inputs and the instant, perform
/// what the engine decides until it decides nothing more.
fn turn(
    agent: &Arc<Agent>,
    running: &mut Option<Running>,
    now: Duration,
    answers: Vec<Input>,
    weak: &Weak<Agent>,
    tx: &UnboundedSender<StartDone>,
) {
    let mut inputs = {
        let store = agent.store();
        follow(agent, running, store.database(), now)
    };
    let Some(r) = running.as_mut() else {
        return;
    };
    for answer in &answers {
        record_answer(agent, r, now, answer);
    }
    inputs.extend(answers);
    inputs.push(Input::Tick);
    loop {
        for input in inputs.drain(..) {
            if !matches!(input, Input::Tick) {
                tracing::debug!(?input, "HA engine input");
            }
            r.engine.handle(now, input);
        }
        let actions: Vec<Action> = std::iter::from_fn(|| r.engine.poll_action()).collect();
        if actions.is_empty() {
            return;
        }
        let mut store = agent.store();
        // What was committed since the engine last looked comes first.
        let before = PoolView::from_db(store.database());
        inputs = wiring::committed_inputs(&r.last, &before);
        let changes = changes_for(agent, store.database(), &actions);
        if let Err(e) = agent.commit(&mut store, &changes) {
            tracing::error!(error = ?e, "committing the HA engine's decisions failed");
        }
        r.last = PoolView::from_db(store.database());
        drop(store);
        for a in &actions {
            log(a);
            record_action(agent, r, now, a);
            match *a {
                Action::StartVm { vm, host } => {
                    start_on_thread(weak.clone(), vm, host, tx.clone());
                }
                Action::Failback { vm, to, .. } => {
                    failback_on_thread(weak.clone(), vm, to, tx.clone());
                }
                _ => {}
            }
        }
    }
}

/// Builds, drops or follows the engine by the database as it is now; the
/// inputs of what changed since it last looked.
fn follow(
    agent: &Agent,
    running: &mut Option<Running>,
    db: &Database,
    now: Duration,
) -> Vec<Input> {
    let ha_enabled = crate::ha::view::pool_ref(db)
        .and_then(|p| db.field(Class::Pool, p, "ha_enabled"))
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if running.is_none() && !(ha_enabled && agent.is_master()) {
        return Vec::new(); // idle: no view to build
    }
    let view = PoolView::from_db(db);
    let prevented = wiring::prevented_until(db);
    let wall = agent.caller().now;
    let active = agent.is_master() && view.ha_enabled;
    match running {
        None if active => {
            tracing::info!(
                vms = view.vms.len(),
                hosts = view.hosts.len(),
                "HA restart engine running"
            );
            *running = Some(Running {
                engine: Engine::new(view.clone(), now),
                last: view,
                prevented,
                down_since: HashMap::new(),
            });
            wiring::prevent_input(None, prevented, wall)
                .into_iter()
                .collect()
        }
        None => Vec::new(),
        Some(_) if !agent.is_master() => {
            tracing::info!("HA restart engine stopped: not the master");
            *running = None;
            Vec::new()
        }
        Some(r) if wiring::needs_rebuild(r.engine.view(), &view) && view.ha_enabled => {
            tracing::info!("hosts or VMs added or removed: HA restart engine rebuilt");
            r.engine = Engine::new(view.clone(), now);
            r.last = view;
            let input = wiring::prevent_input(None, prevented, wall);
            r.prevented = prevented;
            input.into_iter().collect()
        }
        Some(r) => {
            // HA turned off: the engine publishes `disabled` and stops
            // after this turn (`turn` finds it inactive next time).
            let mut inputs = wiring::committed_inputs(&r.last, &view);
            inputs.extend(wiring::prevent_input(r.prevented, prevented, wall));
            r.last = view;
            r.prevented = prevented;
            if !active && !r.engine.view().ha_enabled {
                tracing::info!("HA restart engine stopped: HA is off");
                *running = None;
                return Vec::new();
            }
            inputs
        }
    }
}

/// The database changes of a batch: `shell::changes_for` for all but the
/// messages, which are raised through `alerts::catalog` (so the mailer
/// sends them); a start records `scheduled_to_be_resident_on`.
fn changes_for(agent: &Agent, db: &Database, actions: &[Action]) -> Vec<Change> {
    let caller = agent.caller();
    let mut out = Vec::new();
    let mut plain = Vec::new();
    for a in actions {
        match a {
            Action::Message(m) => {
                let alert = match m.name {
                    catalog::names::HA_HOST_FAILED => message_target(db, Class::Host, &m.obj_uuid)
                        .map(|h| catalog::host_failed(db, h)),
                    catalog::names::HA_PROTECTED_VM_RESTART_FAILED => {
                        message_target(db, Class::Vm, &m.obj_uuid)
                            .map(|v| catalog::protected_vm_restart_failed(db, v))
                    }
                    _ => None,
                };
                match alert {
                    Some(alert) => out.push(catalog::raise(db, caller.now, Uuid::new_v4(), &alert)),
                    None => plain.push(a.clone()),
                }
            }
            Action::StartVm { vm, host } => {
                if let (Some(v), Some(h)) =
                    (by_uuid(db, Class::Vm, *vm), by_uuid(db, Class::Host, *host))
                {
                    out.push(Change::set(
                        Class::Vm,
                        v,
                        "scheduled_to_be_resident_on",
                        Value::Ref(h),
                    ));
                }
            }
            _ => plain.push(a.clone()),
        }
    }
    let mut changes = shell::changes_for_all(db, &caller, &plain);
    changes.extend(out);
    changes
}

/// The restart priority a VM's restart attempt counts under.
fn priority(r: &Running, vm: Uuid) -> RestartPriority {
    match r.last.vms.iter().find(|v| v.uuid == vm) {
        Some(v) if v.protected() => RestartPriority::Restart,
        Some(v) if v.priority == RestartPriority::BestEffort => RestartPriority::BestEffort,
        _ => RestartPriority::Unprotected,
    }
}

/// The metrics of a start's answer (docs/metrics.md): the attempt's
/// outcome, and for a VM whose host failed, the time since it went down.
fn record_answer(agent: &Agent, r: &mut Running, now: Duration, answer: &Input) {
    match answer {
        Input::VmStarted { vm, .. } => {
            agent
                .metrics
                .restart(priority(r, *vm), RestartOutcome::Started);
            if let Some(t) = r.down_since.remove(vm) {
                agent
                    .metrics
                    .restart_latency(now.saturating_sub(t).as_secs_f64());
            }
        }
        Input::VmStartFailed { vm, .. } => agent
            .metrics
            .restart(priority(r, *vm), RestartOutcome::Failed),
        _ => {}
    }
}

/// The metrics of an engine decision: a VM forced halted with its failed
/// host starts its restart latency; a protected VM given up on counts as
/// `gave_up`.
fn record_action(agent: &Agent, r: &mut Running, now: Duration, a: &Action) {
    match a {
        Action::ForceHalted { vm, .. } => {
            r.down_since.insert(*vm, now);
        }
        Action::Message(m) if m.name == catalog::names::HA_PROTECTED_VM_RESTART_FAILED => {
            if let Ok(vm) = Uuid::parse_str(&m.obj_uuid) {
                r.down_since.remove(&vm);
                agent
                    .metrics
                    .restart(RestartPriority::Restart, RestartOutcome::GaveUp);
            }
        }
        _ => {}
    }
}

fn message_target(db: &Database, class: Class, uuid: &str) -> Option<Ref> {
    by_uuid(db, class, Uuid::parse_str(uuid).ok()?)
}

fn log(a: &Action) {
    match a {
        Action::SetHaState { vm, state } => tracing::info!(%vm, %state, "VM ha_state"),
        Action::StartVm { vm, host } => tracing::info!(%vm, %host, "HA starts VM"),
        Action::ScheduleRetry { vm, at, reason } => {
            tracing::info!(%vm, at = ?at, %reason, "HA retries VM start")
        }
        Action::Note(n) => tracing::info!(note = %n, "HA engine"),
        other => tracing::info!(action = ?other, "HA engine"),
    }
}

/// The answer of one start, sent exactly once: by [`Answer::send`], or
/// as a failure when the start ends without one (its thread panicked or
/// could not be made), so the engine never waits for a start forever.
struct Answer {
    vm: Uuid,
    host: Uuid,
    failback: bool,
    tx: UnboundedSender<StartDone>,
    sent: bool,
}

impl Answer {
    fn send(mut self, result: Result<(), String>) {
        self.sent = true;
        let _ = self.tx.send(StartDone {
            vm: self.vm,
            host: self.host,
            failback: self.failback,
            result,
        });
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.tx.send(StartDone {
                vm: self.vm,
                host: self.host,
                failback: self.failback,
                result: Err("the start ended without an answer".into()),
            });
        }
    }
}

/// Runs one start on its own thread, inside the agent's runtime (a start
/// on another host is a host-to-host call).
fn start_on_thread(weak: Weak<Agent>, vm: Uuid, host: Uuid, tx: UnboundedSender<StartDone>) {
    on_thread("ha-start", weak, vm, host, false, tx, move |a| {
        let result = start(a, vm, host);
        if let Err(e) = &result {
            tracing::warn!(%vm, %host, error = %e, "HA start failed");
        }
        result
    });
}

/// Runs one failback (`VM.pool_migrate` of `vm` to `to`, as an API call
/// of this master: live for QEMU, stop-and-start for process VMs, checked
/// like any migration) on its own thread.
fn failback_on_thread(weak: Weak<Agent>, vm: Uuid, to: Uuid, tx: UnboundedSender<StartDone>) {
    on_thread("ha-failback", weak, vm, to, true, tx, move |a| {
        let result = failback(a, vm, to);
        match &result {
            Ok(()) => tracing::info!(%vm, host = %to, "failback: VM moved back"),
            Err(e) => tracing::warn!(%vm, host = %to, error = %e, "failback failed"),
        }
        result
    });
}

/// `work` on a thread named `name` inside the agent's runtime; its result
/// is the answer (exactly once, see [`Answer`]).
fn on_thread(
    name: &str,
    weak: Weak<Agent>,
    vm: Uuid,
    host: Uuid,
    failback: bool,
    tx: UnboundedSender<StartDone>,
    work: impl FnOnce(&Arc<Agent>) -> Result<(), String> + Send + 'static,
) {
    let answer = Answer {
        vm,
        host,
        failback,
        tx,
        sent: false,
    };
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let result = weak
                .upgrade()
                .map_or_else(|| Err("the agent is stopping".into()), |a| work(&a));
            answer.send(result);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, thread = name, "cannot start a thread for HA");
    }
}

fn failback(agent: &Arc<Agent>, vm: Uuid, to: Uuid) -> Result<(), String> {
    let (v, h) = {
        let store = agent.store();
        let db = store.database();
        (
            by_uuid(db, Class::Vm, vm).ok_or("the VM no longer exists")?,
            by_uuid(db, Class::Host, to).ok_or("the host no longer exists")?,
        )
    };
    let args = [Value::Ref(v), Value::Ref(h), Value::Map(Vec::new())];
    agent
        .call_internal("VM.pool_migrate", &args)
        .map(drop)
        .map_err(|f| format!("{} {}", f.code, f.params.join(" ")))
}

/// One engine start: checked (without the overcommit check), performed on
/// `host` (here or forwarded), committed. A failure clears
/// `scheduled_to_be_resident_on`.
fn start(agent: &Agent, vm: Uuid, host: Uuid) -> Result<(), String> {
    let caller = agent.caller();
    // The master restarts nothing while its own xhad does not report it in
    // the liveset (a rebooted old master before its daemon rejoined).
    let result = super::start_guard::check(agent)
        .map_err(|e| format!("{} {}", e.code, e.params.join(" ")))
        .and_then(|()| start_checked(agent, &caller, vm, host));
    if result.is_err() {
        let mut store = agent.store();
        let clear: Vec<Change> = by_uuid(store.database(), Class::Vm, vm)
            .map(|v| {
                Change::set(
                    Class::Vm,
                    v,
                    "scheduled_to_be_resident_on",
                    Value::Ref(Ref::NULL),
                )
            })
            .into_iter()
            .collect();
        if let Err(e) = agent.commit(&mut store, &clear) {
            tracing::error!(error = ?e, "clearing scheduled_to_be_resident_on failed");
        }
    }
    result
}

fn start_checked(agent: &Agent, caller: &Caller, vm: Uuid, host: Uuid) -> Result<(), String> {
    let failure = |f: crate::rpc::Failure| format!("{} {}", f.code, f.params.join(" "));
    // Lock order: the VM host, then the database (as a power call).
    let mut vms = agent.vm_host().map(lock);
    let outcome = {
        let store = agent.store();
        let db = store.database();
        let v = by_uuid(db, Class::Vm, vm).ok_or("the VM no longer exists")?;
        let h = by_uuid(db, Class::Host, host).ok_or("the host no longer exists")?;
        vm_power::ha_restart(db, caller, v, h)
            .map_err(|e| format!("{} {}", e.code, e.params.join(" ")))?
    };
    for effect in &outcome.effects {
        match effect {
            Effect::OnHost { host, effect } => membership::forward(agent, *host, effect),
            _ => super::agent::perform(vms.as_deref_mut(), effect),
        }
        .map_err(failure)?;
    }
    let mut store: MutexGuard<'_, LocalStore> = agent.store();
    if let Err(e) = agent.commit(&mut store, &outcome.changes) {
        drop(store);
        // A VM must not run without its record saying so: stop it again.
        for effect in &outcome.effects {
            let stop = |vm: Ref, uuid: Uuid| Effect::StopVm {
                vm,
                uuid,
                hard: true,
            };
            let undone = match effect {
                Effect::StartVm { vm, spec } => {
                    super::agent::perform(vms.as_deref_mut(), &stop(*vm, spec.uuid))
                }
                Effect::OnHost { host, effect } => match effect.as_ref() {
                    Effect::StartVm { vm, spec } => {
                        membership::forward(agent, *host, &stop(*vm, spec.uuid))
                    }
                    _ => Ok(()),
                },
                _ => Ok(()),
            };
            if let Err(e) = undone {
                tracing::error!(%vm, error = ?e, "stopping it again failed");
            }
        }
        return Err(failure(e));
    }
    Ok(())
}
