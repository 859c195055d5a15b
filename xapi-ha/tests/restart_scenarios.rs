//! Table-driven scenarios for the restart engine, in the style of Proxmox's
//! pve-ha-manager regression tests: each folder under
//! `tests/restart_scenarios/` holds `scenario.toml` (hosts, VMs, pool
//! settings, the VM driver's behaviour and a list of timed events) and
//! `log.expect`, the decision log the engine must produce. The runner
//! replays every scenario in a small simulated pool (the engine is pure;
//! the simulator plays the hosts, the VM driver and the liveset) and diffs
//! the log.
//!
//! `UPDATE_SCENARIOS=1 cargo test -p xapi_ha --test restart_scenarios`
//! writes the logs instead (then read the diff before committing).
//!
//! The simulator also checks what must hold in every scenario, whatever
//! the log says: no VM ever runs on two hosts, no start goes to a host
//! that is not live, no host ever holds more memory than it has.
//!
//! Over 600 lines on purpose: the scenario format, the simulated pool
//! (hosts, driver, unheard starts of a stopped engine, failback moves) and
//! its checks are one piece, read together.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use uuid::Uuid;
use xapi_ha::ha::{Action, Engine, HostView, Input, Liveness, PoolView, VmView};
use xapi_ha::model::RestartPriority;

const GIB: u64 = 1 << 30;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Scenario {
    #[serde(default)]
    pool: PoolSection,
    #[serde(default)]
    driver: DriverSection,
    host: Vec<HostEntry>,
    #[serde(default)]
    vm: Vec<VmEntry>,
    #[serde(default)]
    event: Vec<EventEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PoolSection {
    #[serde(default = "yes")]
    ha_enabled: bool,
    #[serde(default = "yes")]
    reboot_on_internal_shutdown: bool,
    #[serde(default)]
    plan_exists_for: i64,
    /// Seconds simulated after the last event.
    #[serde(default = "default_tail")]
    run_after_last_event: f64,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            ha_enabled: true,
            reboot_on_internal_shutdown: true,
            plan_exists_for: 0,
            run_after_last_event: default_tail(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DriverSection {
    /// How long a start takes.
    #[serde(default = "default_start")]
    start_seconds: f64,
    /// VMs whose starts fail (until `driver-ok`).
    #[serde(default)]
    fail: Vec<String>,
}

impl Default for DriverSection {
    fn default() -> Self {
        DriverSection {
            start_seconds: default_start(),
            fail: Vec::new(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_tail() -> f64 {
    300.0
}
fn default_start() -> f64 {
    2.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct HostEntry {
    name: String,
    memory_gib: u64,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct VmEntry {
    name: String,
    memory_gib: u64,
    /// `restart`, `best-effort` or empty.
    #[serde(default)]
    priority: String,
    /// Defaults to `priority == "restart"`.
    always_run: Option<bool>,
    #[serde(default)]
    order: i64,
    #[serde(default)]
    start_delay: u64,
    /// The host it runs on; absent: halted.
    on: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EventEntry {
    at: f64,
    #[serde(rename = "do")]
    command: String,
}

fn priority(text: &str) -> RestartPriority {
    match text {
        "restart" => RestartPriority::Restart,
        "best-effort" => RestartPriority::BestEffort,
        "" => RestartPriority::Unprotected,
        other => panic!("unknown priority {other:?}"),
    }
}

fn host_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("host:{name}").as_bytes())
}

fn vm_uuid(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("vm:{name}").as_bytes())
}

/// A start the simulated driver is running.
struct Pending {
    at: Duration,
    vm: Uuid,
    host: Uuid,
    /// Asked by an engine that has since stopped: the host still performs
    /// it, but its answer is lost with that engine.
    orphan: bool,
    /// A failback: the VM moves here from this host.
    move_from: Option<Uuid>,
}

/// The simulated pool around the engine.
struct Sim {
    engine: Engine,
    now: Duration,
    names: BTreeMap<Uuid, String>,
    memory: BTreeMap<Uuid, u64>,
    host_memory: BTreeMap<Uuid, u64>,
    liveness: BTreeMap<Uuid, Liveness>,
    /// Where each VM really runs.
    running: BTreeMap<Uuid, Uuid>,
    pending: Vec<Pending>,
    failing: BTreeSet<Uuid>,
    start_time: Duration,
    log: String,
}

impl Sim {
    fn new(s: &Scenario) -> Sim {
        let mut names = BTreeMap::new();
        let hosts: Vec<HostView> = s
            .host
            .iter()
            .map(|h| {
                names.insert(host_uuid(&h.name), h.name.clone());
                HostView {
                    uuid: host_uuid(&h.name),
                    name: h.name.clone(),
                    memory_total: h.memory_gib * GIB,
                    memory_overhead: 0,
                    enabled: h.enabled,
                    maintenance: false,
                    liveness: Liveness::Live,
                }
            })
            .collect();
        let vms: Vec<VmView> =
            s.vm.iter()
                .map(|v| {
                    names.insert(vm_uuid(&v.name), v.name.clone());
                    let on = v.on.as_deref().map(|h| {
                        assert!(
                            s.host.iter().any(|x| x.name == h),
                            "vm {}: no host {h}",
                            v.name
                        );
                        host_uuid(h)
                    });
                    VmView {
                        uuid: vm_uuid(&v.name),
                        name: v.name.clone(),
                        memory: v.memory_gib * GIB,
                        priority: priority(&v.priority),
                        always_run: v.always_run.unwrap_or(v.priority == "restart"),
                        order: v.order,
                        start_delay_s: v.start_delay,
                        running: on.is_some(),
                        resident_on: on,
                        affinity: None,
                        failback: false,
                        scheduled_on: None,
                        ha_state: None,
                    }
                })
                .collect();
        let view = PoolView {
            ha_enabled: s.pool.ha_enabled,
            reboot_on_internal_shutdown: s.pool.reboot_on_internal_shutdown,
            failures_to_tolerate: s.pool.plan_exists_for,
            plan_exists_for: s.pool.plan_exists_for,
            hosts: hosts.clone(),
            vms: vms.clone(),
        };
        let mut sim = Sim {
            engine: Engine::new(view, Duration::ZERO),
            now: Duration::ZERO,
            memory: vms.iter().map(|v| (v.uuid, v.memory)).collect(),
            host_memory: hosts.iter().map(|h| (h.uuid, h.memory_total)).collect(),
            liveness: hosts.iter().map(|h| (h.uuid, Liveness::Live)).collect(),
            running: vms
                .iter()
                .filter_map(|v| Some((v.uuid, v.resident_on?)))
                .collect(),
            pending: Vec::new(),
            failing: s.driver.fail.iter().map(|n| vm_uuid(n)).collect(),
            start_time: Duration::from_secs_f64(s.driver.start_seconds),
            names,
            log: String::new(),
        };
        sim.check_memory();
        sim.drain();
        sim
    }

    fn name(&self, u: Uuid) -> &str {
        self.names.get(&u).map_or("?", String::as_str)
    }

    fn line(&mut self, component: &str, msg: &str) {
        let _ = writeln!(
            self.log,
            "{:>7.1} {component:<7} {msg}",
            self.now.as_secs_f64()
        );
    }

    fn handle(&mut self, input: Input) {
        self.engine.handle(self.now, input);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            self.perform(a);
        }
    }

    fn perform(&mut self, a: Action) {
        let msg = match &a {
            Action::MarkHostDead { host } => {
                format!("{} is dead (proven fenced)", self.name(*host))
            }
            Action::ForceHalted { vm, host } => {
                format!(
                    "force {} halted (was on {})",
                    self.name(*vm),
                    self.name(*host)
                )
            }
            Action::StartVm { vm, host } => {
                // A start is idempotent on its host: asking the host the VM
                // runs on, or an orphaned start's host, is no double run.
                assert!(
                    self.running.get(vm).is_none_or(|on| on == host),
                    "{} started while it runs on {}",
                    self.name(*vm),
                    self.name(self.running[vm])
                );
                assert!(
                    self.pending
                        .iter()
                        .all(|p| p.vm != *vm || (p.orphan && p.host == *host)),
                    "{} started twice at once",
                    self.name(*vm)
                );
                assert_eq!(
                    self.liveness[host],
                    Liveness::Live,
                    "start sent to a host that is not live"
                );
                self.pending.push(Pending {
                    at: self.now + self.start_time,
                    vm: *vm,
                    host: *host,
                    orphan: false,
                    move_from: None,
                });
                format!("start {} on {}", self.name(*vm), self.name(*host))
            }
            Action::Failback { vm, from, to } => {
                assert_eq!(
                    self.running.get(vm),
                    Some(from),
                    "failback of a VM not there"
                );
                assert_eq!(
                    self.liveness[to],
                    Liveness::Live,
                    "failback to a host that is not live"
                );
                self.pending.push(Pending {
                    at: self.now + self.start_time,
                    vm: *vm,
                    host: *to,
                    orphan: false,
                    move_from: Some(*from),
                });
                format!(
                    "move {} back from {} to {}",
                    self.name(*vm),
                    self.name(*from),
                    self.name(*to)
                )
            }
            Action::ClearAlwaysRun { vm } => {
                format!("clear ha_always_run of {}", self.name(*vm))
            }
            Action::Message(m) => {
                let obj = Uuid::parse_str(&m.obj_uuid)
                    .ok()
                    .and_then(|u| self.names.get(&u).cloned())
                    .unwrap_or_else(|| m.obj_uuid.clone());
                format!(
                    "message {} ({} {obj}, priority {}): {:?}",
                    m.name, m.cls, m.priority, m.body
                )
            }
            Action::SetHaState { vm, state } => format!("{} is {state}", self.name(*vm)),
            Action::ScheduleRetry { vm, at, reason } => format!(
                "retry {} at {:.1} ({reason})",
                self.name(*vm),
                at.as_secs_f64()
            ),
            Action::Note(text) => text.clone(),
        };
        self.line("engine", &msg);
    }

    fn check_memory(&self) {
        for (h, total) in &self.host_memory {
            let used: u64 = self
                .running
                .iter()
                .filter(|(_, on)| *on == h)
                .map(|(v, _)| self.memory[v])
                .sum();
            assert!(used <= *total, "{} overfull", self.name(*h));
        }
    }

    fn liveset_input(&self) -> Input {
        let of = |l: Liveness| {
            self.liveness
                .iter()
                .filter(|(_, x)| **x == l)
                .map(|(h, _)| *h)
                .collect::<Vec<_>>()
        };
        Input::Liveset {
            live: of(Liveness::Live),
            fenced: of(Liveness::Fenced),
        }
    }

    fn host_arg(&self, name: &str) -> Uuid {
        let u = host_uuid(name);
        assert!(self.liveness.contains_key(&u), "no host {name}");
        u
    }

    fn vm_arg(&self, name: &str) -> Uuid {
        let u = vm_uuid(name);
        assert!(self.memory.contains_key(&u), "no vm {name}");
        u
    }

    fn command(&mut self, text: &str) {
        self.line("event", text);
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["fence", hosts @ ..] | ["lose", hosts @ ..] | ["return", hosts @ ..] => {
                for h in hosts {
                    let u = self.host_arg(h);
                    let l = match words[0] {
                        "fence" => Liveness::Fenced,
                        "lose" => Liveness::Lost,
                        _ => Liveness::Live,
                    };
                    if l == Liveness::Fenced {
                        // Its VMs and its starts die with it.
                        self.running.retain(|_, on| *on != u);
                        self.pending.retain(|p| p.host != u);
                    }
                    self.liveness.insert(u, l);
                }
                let input = self.liveset_input();
                self.handle(input);
            }
            ["shutdown-inside", vm] => {
                let u = self.vm_arg(vm);
                assert!(self.running.remove(&u).is_some(), "{vm} is not running");
                self.handle(Input::VmStoppedByItself { vm: u });
            }
            ["shutdown-api", vm] => {
                let u = self.vm_arg(vm);
                self.handle(Input::VmStopRequested { vm: u });
                assert!(self.running.remove(&u).is_some(), "{vm} is not running");
                self.handle(Input::VmStoppedByApi { vm: u });
            }
            ["start", vm, host] => {
                let (u, h) = (self.vm_arg(vm), self.host_arg(host));
                assert!(!self.running.contains_key(&u), "{vm} already runs");
                self.running.insert(u, h);
                self.check_memory();
                self.handle(Input::VmStarted { vm: u, host: h });
            }
            ["driver-fail", vm] => {
                let u = self.vm_arg(vm);
                self.failing.insert(u);
            }
            ["driver-ok", vm] => {
                let u = self.vm_arg(vm);
                self.failing.remove(&u);
            }
            ["failback", vm, host] => {
                let (u, h) = (self.vm_arg(vm), self.host_arg(host));
                self.handle(Input::VmFailback {
                    vm: u,
                    affinity: Some(h),
                    failback: true,
                });
            }
            ["prevent-restarts", seconds] => {
                let seconds = seconds.parse().expect("seconds");
                self.handle(Input::PreventRestartsFor { seconds });
            }
            ["disable", host] | ["enable", host] => {
                let h = self.host_arg(host);
                self.handle(Input::HostEnabled {
                    host: h,
                    enabled: words[0] == "enable",
                });
            }
            ["maintenance", host, on] => {
                let h = self.host_arg(host);
                self.handle(Input::HostMaintenance {
                    host: h,
                    on: *on == "on",
                });
            }
            ["protect", vm, prio] => {
                let u = self.vm_arg(vm);
                let prio = if *prio == "none" { "" } else { prio };
                let v = self.engine.view().vm(u).expect("vm").clone();
                self.handle(Input::VmConfig {
                    vm: u,
                    priority: priority(prio),
                    always_run: prio == "restart",
                    order: v.order,
                    start_delay_s: v.start_delay_s,
                });
            }
            ["restart-engine"] => {
                // A new master: its engine starts from the database, which
                // holds the view, every VM's ha_state and the starts in
                // flight (scheduled_to_be_resident_on).
                // Its starts in flight go on, unheard.
                for p in &mut self.pending {
                    p.orphan = true;
                }
                let mut view = self.engine.view().clone();
                for v in &mut view.vms {
                    v.ha_state = self.engine.ha_state(v.uuid);
                    v.scheduled_on = self.pending.iter().find(|p| p.vm == v.uuid).map(|p| p.host);
                }
                self.engine = Engine::new(view, self.now);
                self.drain();
            }
            _ => panic!("unknown command {text:?}"),
        }
    }

    fn complete(&mut self, p: Pending) {
        let (vm, host) = (p.vm, p.host);
        if let Some(from) = p.move_from {
            if self.running.get(&vm) != Some(&from) {
                let msg = format!("{} is no longer on {}", self.name(vm), self.name(from));
                self.line("driver", &msg);
                self.handle(Input::FailbackDone {
                    vm,
                    to: host,
                    result: Err("the VM is no longer there".into()),
                });
                return;
            }
            self.running.insert(vm, host);
            self.check_memory();
            let msg = format!("{} moved to {}", self.name(vm), self.name(host));
            self.line("driver", &msg);
            self.handle(Input::VmStarted { vm, host });
            self.handle(Input::FailbackDone {
                vm,
                to: host,
                result: Ok(()),
            });
            return;
        }
        if self.running.get(&vm) == Some(&host) {
            let msg = format!("{} already runs on {}", self.name(vm), self.name(host));
            self.line("driver", &msg);
            if !p.orphan {
                self.handle(Input::VmStarted { vm, host });
            }
            return;
        }
        let used: u64 = self
            .running
            .iter()
            .filter(|(_, on)| **on == host)
            .map(|(v, _)| self.memory[v])
            .sum();
        let reason = if self.failing.contains(&vm) {
            Some("the driver failed")
        } else if used + self.memory[&vm] > self.host_memory[&host] {
            Some("HOST_NOT_ENOUGH_FREE_MEMORY")
        } else {
            None
        };
        match reason {
            Some(reason) => {
                let msg = format!(
                    "{} failed to start on {}: {reason}",
                    self.name(vm),
                    self.name(host)
                );
                if p.orphan {
                    self.line("driver", &format!("{msg} (unheard)"));
                    return;
                }
                self.line("driver", &msg);
                self.handle(Input::VmStartFailed {
                    vm,
                    host,
                    reason: reason.to_owned(),
                });
            }
            None => {
                assert!(!self.running.contains_key(&vm), "double run");
                self.running.insert(vm, host);
                let msg = format!("{} runs on {}", self.name(vm), self.name(host));
                if p.orphan {
                    // Nobody hears it: the VM runs, its record says halted.
                    self.line("driver", &format!("{msg} (unheard)"));
                    return;
                }
                self.line("driver", &msg);
                self.handle(Input::VmStarted { vm, host });
            }
        }
    }

    fn run(&mut self, events: &[EventEntry], tail: f64) {
        let mut events: Vec<(Duration, &str)> = events
            .iter()
            .map(|e| (Duration::from_secs_f64(e.at), e.command.as_str()))
            .collect();
        events.sort_by_key(|e| e.0);
        let end = events.last().map_or(Duration::ZERO, |e| e.0) + Duration::from_secs_f64(tail);
        let mut next_event = 0;
        for _ in 0..100_000 {
            let candidates = [
                events.get(next_event).map(|e| e.0),
                self.pending.iter().map(|p| p.at).min(),
                self.engine.poll_timeout(),
            ];
            let Some(t) = candidates.into_iter().flatten().min() else {
                return;
            };
            if t > end {
                return;
            }
            assert!(t >= self.now, "time went backwards");
            self.now = t;
            while events.get(next_event).is_some_and(|e| e.0 == t) {
                let cmd = events[next_event].1;
                next_event += 1;
                self.command(cmd);
            }
            let due: Vec<Pending> = {
                let (due, rest) = self.pending.drain(..).partition(|p| p.at <= t);
                self.pending = rest;
                due
            };
            for p in due {
                self.complete(p);
            }
            if self.engine.poll_timeout().is_some_and(|d| d <= t) {
                self.handle(Input::Tick);
            }
            self.check_memory();
        }
        panic!("the simulation did not end");
    }
}

fn scenarios_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/restart_scenarios")
}

fn run_scenario(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("scenario.toml")).expect("scenario.toml");
    let scenario: Scenario =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut sim = Sim::new(&scenario);
    sim.run(&scenario.event, scenario.pool.run_after_last_event);
    sim.line("end", "");
    sim.log
}

/// A line diff good enough to read a regression.
fn diff(expected: &str, got: &str) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..e.len().max(g.len()) {
        match (e.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                let _ = writeln!(
                    out,
                    "line {}:\n- {}\n+ {}",
                    i + 1,
                    a.unwrap_or(&""),
                    b.unwrap_or(&"")
                );
                if out.lines().count() > 30 {
                    break;
                }
            }
        }
    }
    out
}

#[test]
fn every_scenario_matches_its_expected_log() {
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(scenarios_dir())
        .expect("scenario folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("scenario.toml").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 13, "scenarios missing: {}", dirs.len());
    let mut failures = Vec::new();
    for dir in &dirs {
        let got = run_scenario(dir);
        let expect_path = dir.join("log.expect");
        if update {
            std::fs::write(&expect_path, &got).expect("write log.expect");
            continue;
        }
        let expected = std::fs::read_to_string(&expect_path).unwrap_or_default();
        if expected != got {
            failures.push(format!(
                "{}:\n{}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                diff(&expected, &got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "decision logs differ (UPDATE_SCENARIOS=1 rewrites them):\n{}",
        failures.join("\n")
    );
}

#[test]
fn the_engine_is_deterministic() {
    for dir in std::fs::read_dir(scenarios_dir()).expect("scenario folder") {
        let dir = dir.expect("entry").path();
        if dir.join("scenario.toml").exists() {
            assert_eq!(run_scenario(&dir), run_scenario(&dir), "{}", dir.display());
        }
    }
}
