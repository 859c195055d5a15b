//! The campaign's runner: one seed on a fresh lab pool of real agents.
//! Forms the pool, enables HA, starts the VMs (protected, best-effort,
//! unprotected, each on its own stamp disk), plays the schedule against
//! the wall clock while watching for hosts whose `xhad` fenced (reset at
//! once: `hosts`; network faults are nftables drops on loopback:
//! `crate::nft`), waits for every protected VM to run again once every
//! fault healed, reads the stamps, the agents' logs and the database, and
//! gives the [`Verdict`] (`check`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use xapi_vm::stamp::StampLog;
use xapi_vm::stamp::region::REGION_BYTES;
use xha_lab::LabError;
use xha_lab::agent_pool::{AgentPool, LabVm, PoolSpec};
use xha_lab::power::wall_ms;

use crate::nft;

use super::api::Api;
use super::check::{Change, Cut, Verdict};
use super::hosts::{self, HostState};
use super::schedule::{Action, Frozen, Params, Schedule, Target, VmKind, generate};
use storage::Views;

/// One seed's run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    pub seed: u64,
    pub params: Params,
    /// Where `xapi-ha`, `xhad`, `xha-supervisor`, `xha-vm-keeper` and
    /// `xha-stamp` are.
    pub bin_dir: PathBuf,
    /// On a failed verdict, the agents' and daemons' logs are copied here
    /// (`<dir>/seed-<seed>/host-<i>/`).
    pub logs_on_failure: Option<PathBuf>,
}

/// What a run found and took.
#[derive(Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub took: Duration,
    pub faults: usize,
    pub steps: usize,
    /// Network faults applied (a partition or one-way cut whose hosts were
    /// all up; none without nftables).
    pub network_cuts: usize,
    /// Storage faults applied (on a host that was up; none without
    /// per-host SR views).
    pub storage_faults: usize,
}

/// Slack on a restart beyond T + 4 s (the restart attempt itself on a
/// loaded machine); late restarts are reported, not failed.
pub const RESTART_ALLOWANCE_MS: u64 = 10_000;

/// A priority change as sent: (VM, when, value, acknowledged).
type Sent = (usize, u64, String, bool);

struct Runner {
    pool: AgentPool,
    api: Api,
    states: Vec<HostState>,
    vms: Vec<LabVm>,
    uuids: Vec<String>,
    params: Params,
    xhad: PathBuf,
    supervisor: PathBuf,
    changes: Vec<Change>,
    priorities: Vec<Sent>,
    starts: BTreeMap<usize, usize>,
    cuts: Vec<Cut>,
    /// Fault id -> host it hit.
    hit: BTreeMap<usize, usize>,
    /// Hosts disabled and not (acknowledged) enabled again: an enable the
    /// pool did not take leaves its host here, for `finish`.
    disabled: std::collections::BTreeSet<usize>,
    /// The run's nftables table (network faults on), each host's address
    /// (its heartbeats' and its agent's host-to-host connections'), and the
    /// open network faults: id -> (hosts, rule handles).
    nft: Option<nft::Table>,
    addresses: Vec<Ipv4Addr>,
    nets: BTreeMap<usize, (Vec<usize>, Vec<u64>)>,
    network_cuts: usize,
    /// Each host's view of the SR (storage faults on), and the open
    /// storage faults: id -> (host, since when its I/O stops: an error or
    /// a hang, wall ms; `None`: slow).
    views: Option<Arc<Views>>,
    disks: BTreeMap<usize, (usize, Option<u64>)>,
    storage_faults: usize,
    notes: Vec<String>,
    boot_failures: Vec<String>,
    t0: Instant,
    /// Resets a fenced host at once (`run::watchdog`).
    watchdog: watchdog::Watchdog,
    /// Every stamp read so far, and when the disks were last read: a VM's
    /// ring holds records by position, and a later boot of the VM can
    /// overwrite the tail of the boot before it (where it stopped, what
    /// the restart check measures from), so the disks are read all
    /// through the run, not only at its end.
    stamps: StampLog,
    stamps_read: Option<Instant>,
}

/// How often the runner reads the VMs' disks (4 MiB each, O_DIRECT): well
/// within the time before a restarted VM writes (a fence and a restart
/// take seconds), so a boot's last stamps are read before a later boot
/// can overwrite them.
const STAMPS_EVERY: Duration = Duration::from_secs(1);

fn spec_err(step: &str, e: impl std::fmt::Display) -> LabError {
    LabError::Spec(format!("{step}: {e}"))
}

/// Polls `f` every 200 ms until it gives `Some`, within `bound`.
fn wait<T>(what: &str, bound: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T, LabError> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout {
                step: what.to_owned(),
                waited: bound,
                detail: String::new(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Host `i`'s loopback address (`host.address`, where its `xhad`
/// heartbeats and its agent's host-to-host connections leave from).
fn host_address(pool: &AgentPool, i: usize) -> Result<Ipv4Addr, LabError> {
    let a = &pool.hosts[i].address;
    a.parse()
        .map_err(|e| spec_err("a host's address", format!("{a:?}: {e}")))
}

fn stamps_of(vm: &LabVm) -> StampLog {
    let mut log = StampLog::new();
    let _ = log.read_disk(&vm.disk, 0);
    log
}

/// Runs one seed (see the module documentation). `Err`: the pool could not
/// be formed or driven at all (not a verdict).
pub fn run(spec: &RunSpec) -> Result<Outcome, LabError> {
    run_schedule(spec, &generate(spec.seed, &spec.params))
}

/// Runs `schedule` (a seed's, or one written by hand: its faults need
/// their heals, as the generator's do) on a pool of `spec.params`' shape,
/// with the same checks as a seed.
pub fn run_schedule(spec: &RunSpec, schedule: &Schedule) -> Result<Outcome, LabError> {
    let started = Instant::now();
    let p = &spec.params;
    // Made before the pool, dropped after it (each host's view of the SR).
    let views = match p.storage {
        true => Some(Arc::new(Views::create(p.hosts, &spec.bin_dir)?)),
        false => None,
    };
    let mut pool_spec = PoolSpec::new(p.hosts, &spec.bin_dir);
    pool_spec.sr_views = views.as_ref().map(|v| v.sr_views());
    let pool = AgentPool::start(&pool_spec)?;
    pool.enable_ha(p.t_s)?;
    let mut vms = Vec::new();
    for i in 0..p.vms {
        let vm = pool.create_stamp_vm(&format!("vm-{i}"), 0, REGION_BYTES)?;
        let host = pool.host_ref(i % p.hosts)?;
        pool.call("VM.start_on", json!([vm.r#ref, host, false, false]))?;
        vms.push(vm);
    }
    for (i, vm) in vms.iter().enumerate() {
        if p.kind(i) != VmKind::Unprotected {
            pool.call(
                "VM.set_ha_restart_priority",
                json!([vm.r#ref, p.kind(i).priority()]),
            )?;
        }
    }
    for (i, vm) in vms.iter().enumerate() {
        wait("the VMs' first stamps", Duration::from_secs(90), || {
            (!stamps_of(vm).is_empty()).then_some(())
        })?;
        if p.kind(i) == VmKind::Protected {
            wait("the VMs' protection", Duration::from_secs(90), || {
                (pool.vm_field(vm, "ha_state").ok()? == json!("started")).then_some(())
            })?;
        }
    }
    let (nft, addresses) = if p.network {
        let table = nft::Table::create().map_err(|e| spec_err("nftables", e))?;
        let addresses = (0..p.hosts)
            .map(|i| host_address(&pool, i))
            .collect::<Result<Vec<_>, _>>()?;
        (Some(table), addresses)
    } else {
        (None, Vec::new())
    };
    let (xhad, supervisor) = (
        spec.bin_dir.join(xha_lab::XHAD),
        spec.bin_dir.join(xha_lab::SUPERVISOR),
    );
    let watched = (0..p.hosts)
        .map(|i| watchdog::Watched {
            dir: pool.hosts[i].dir.clone(),
            name: pool.hosts[i].name.clone(),
            xhad_dir: hosts::xhad_dir(&pool, i),
        })
        .collect();
    let uuids: Vec<String> = vms.iter().map(|v| v.uuid.clone()).collect();
    let mut r = Runner {
        watchdog: watchdog::Watchdog::start(watched, uuids, views.clone()),
        stamps: StampLog::new(),
        stamps_read: None,
        api: Api::new(&pool.password),
        states: vec![HostState::Up; p.hosts],
        uuids: vms.iter().map(|v| v.uuid.clone()).collect(),
        starts: (0..p.vms).map(|i| (i, 1)).collect(),
        vms,
        pool,
        params: p.clone(),
        xhad,
        supervisor,
        changes: Vec::new(),
        priorities: Vec::new(),
        cuts: Vec::new(),
        hit: BTreeMap::new(),
        disabled: std::collections::BTreeSet::new(),
        nft,
        addresses,
        nets: BTreeMap::new(),
        network_cuts: 0,
        views,
        disks: BTreeMap::new(),
        storage_faults: 0,
        notes: Vec::new(),
        boot_failures: Vec::new(),
        t0: Instant::now(),
    };
    let result = r.play(schedule).and_then(|()| r.finish());
    let verdict = match result {
        Ok(v) => v,
        Err(e) => {
            r.save_logs(spec);
            r.heal_storage();
            let _ = r.pool.stop();
            return Err(e);
        }
    };
    if verdict.failed() {
        r.save_logs(spec);
    }
    r.heal_storage();
    r.pool.stop()?;
    Ok(Outcome {
        verdict,
        took: started.elapsed(),
        faults: schedule
            .steps
            .iter()
            .filter(|s| s.action.is_fault())
            .count(),
        steps: schedule.steps.len(),
        network_cuts: r.network_cuts,
        storage_faults: r.storage_faults,
    })
}

impl Runner {
    fn hosts(&self) -> Vec<(usize, std::net::SocketAddr, bool)> {
        self.pool
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (i, h.http, self.states[i].answers()))
            .collect()
    }

    fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let hosts = self.hosts();
        self.api.call(&hosts, method, params)
    }

    /// Adds the VMs' stamps to [`Runner::stamps`]: every
    /// [`STAMPS_EVERY`], or now when `now`.
    fn read_stamps(&mut self, now: bool) {
        if !now && self.stamps_read.is_some_and(|t| t.elapsed() < STAMPS_EVERY) {
            return;
        }
        for vm in &self.vms {
            let _ = self.stamps.read_disk(&vm.disk, 0);
        }
        self.stamps_read = Some(Instant::now());
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn play(&mut self, schedule: &Schedule) -> Result<(), LabError> {
        for step in &schedule.steps {
            while self.now_ms() < step.at_ms {
                self.watch_fences()?;
                std::thread::sleep(Duration::from_millis(50));
            }
            self.watch_fences()?;
            self.apply(&step.action)?;
        }
        Ok(())
    }

    /// A host whose `xhad` is gone without a power cut fenced: its
    /// watchdog resets it (everything left of it SIGKILLed); it boots
    /// when its fault heals, or at once outside any fault.
    fn watch_fences(&mut self) -> Result<(), LabError> {
        self.read_stamps(false);
        for i in 0..self.states.len() {
            // A whole host frozen stopped its VMs when it froze; one whose
            // storage fails or hangs, when that began.
            let (id, stopped) = match &self.states[i] {
                HostState::Down { .. } => continue,
                HostState::Up => (self.open_fault_of(i), self.storage_stopped(i)),
                HostState::AgentDown { id } => (Some(*id), None),
                HostState::Frozen {
                    id,
                    whole,
                    since_ms,
                    ..
                } => (Some(*id), whole.then_some(*since_ms)),
            };
            if hosts::xhad_running(&self.pool, i) {
                self.watchdog.arm(i, true);
                continue;
            }
            let reset_at = self.watchdog.take_reset(i);
            self.watchdog.arm(i, false);
            let (_, killed_at) = self.kill_host(i)?;
            let at = reset_at.unwrap_or(killed_at);
            let name = self.pool.hosts[i].name.clone();
            self.notes.push(format!(
                "{name} fenced (xhad gone): reset at +{} ms",
                self.now_ms()
            ));
            if self.api.master() == Some(i) {
                self.api.forget();
            }
            self.cuts.push(Cut {
                host: name,
                at_ms: stopped.unwrap_or(at),
                back_ms: u64::MAX,
            });
            self.states[i] = HostState::Down { id };
            if id.is_none() {
                self.boot(i)?;
            }
        }
        Ok(())
    }

    fn boot(&mut self, i: usize) -> Result<(), LabError> {
        // Watched again once `watch_fences` finds its `xhad` running.
        self.watchdog.arm(i, false);
        if let Some(e) = hosts::boot(&mut self.pool, i, &self.xhad, &self.supervisor)? {
            self.boot_failures.push(format!(
                "+{} ms {} booted: its agent's first start failed: {e}",
                self.now_ms(),
                self.pool.hosts[i].name
            ));
        }
        let name = &self.pool.hosts[i].name;
        let now = wall_ms();
        for c in self
            .cuts
            .iter_mut()
            .filter(|c| &c.host == name && c.back_ms == u64::MAX)
        {
            c.back_ms = now;
        }
        self.states[i] = HostState::Up;
        Ok(())
    }

    fn target(&mut self, id: usize, target: Target) -> Option<usize> {
        let h = match target {
            Target::Host(h) => h,
            Target::Master => {
                let hosts = self.hosts();
                self.api.find_master(&hosts)?
            }
        };
        if self.states[h] != HostState::Up {
            self.notes.push(format!(
                "fault {id} skipped: {} is not up",
                self.pool.hosts[h].name
            ));
            return None;
        }
        self.hit.insert(id, h);
        self.notes
            .push(format!("  fault {id} hits {}", self.pool.hosts[h].name));
        Some(h)
    }

    fn apply(&mut self, action: &Action) -> Result<(), LabError> {
        self.trace(action);
        match action {
            Action::PowerCut { id, target } => {
                let Some(h) = self.target(*id, *target) else {
                    return Ok(());
                };
                self.watchdog.arm(h, false);
                let (_, at) = self.kill_host(h)?;
                self.cuts.push(Cut {
                    host: self.pool.hosts[h].name.clone(),
                    at_ms: at,
                    back_ms: u64::MAX,
                });
                self.states[h] = HostState::Down { id: Some(*id) };
                if self.api.master() == Some(h) {
                    self.api.forget();
                }
            }
            Action::Freeze { id, target, what } => {
                let Some(h) = self.target(*id, *target) else {
                    return Ok(());
                };
                let whole = *what == Frozen::Host;
                let since_ms = wall_ms();
                let pids = hosts::freeze(&self.pool, h, whole, &self.uuids);
                self.states[h] = HostState::Frozen {
                    id: *id,
                    pids,
                    whole,
                    since_ms,
                };
                if whole && self.api.master() == Some(h) {
                    self.api.forget();
                }
            }
            Action::KillAgent { id, target } => {
                let Some(h) = self.target(*id, *target) else {
                    return Ok(());
                };
                self.pool.kill_agent(h);
                self.states[h] = HostState::AgentDown { id: *id };
                if self.api.master() == Some(h) {
                    self.api.forget();
                }
            }
            Action::Restart { id } | Action::Thaw { id } => {
                let Some(&h) = self.hit.get(id) else {
                    return Ok(());
                };
                match std::mem::replace(&mut self.states[h], HostState::Up) {
                    HostState::Frozen { pids, .. } => hosts::thaw(&pids),
                    HostState::AgentDown { .. } | HostState::Down { .. } => self.boot(h)?,
                    HostState::Up => {}
                }
            }
            Action::Partition { id, minority } => {
                let rest: Vec<usize> = (0..self.states.len())
                    .filter(|h| !minority.contains(h))
                    .collect();
                let links: Vec<(usize, usize)> = minority
                    .iter()
                    .flat_map(|&m| rest.iter().flat_map(move |&o| [(m, o), (o, m)]))
                    .collect();
                self.cut_links(*id, minority, &links)?;
            }
            Action::OneWay { id, from, to } => {
                self.cut_links(*id, &[*from, *to], &[(*from, *to)])?;
            }
            Action::Mend { id } => self.mend(*id)?,
            Action::Storage { id, target, fault } => self.storage_fault(*id, *target, *fault)?,
            Action::StorageHeal { id } => self.heal_storage_fault(*id)?,
            Action::VmStart { vm } => {
                *self.starts.entry(*vm).or_default() += 1;
                let r = self.vms[*vm].r#ref.clone();
                self.op("VM.start", json!([r, false, false]));
            }
            Action::VmStop { vm } => {
                let r = self.vms[*vm].r#ref.clone();
                self.op("VM.hard_shutdown", json!([r]));
            }
            Action::SetPriority { vm, priority } => {
                let r = self.vms[*vm].r#ref.clone();
                let sent = wall_ms();
                let ok = self.op("VM.set_ha_restart_priority", json!([r, priority]));
                self.priorities
                    .push((*vm, sent, (*priority).to_owned(), ok));
                self.changes.push(Change {
                    vm: *vm,
                    field: "ha_restart_priority",
                    value: (*priority).to_owned(),
                    acknowledged: ok,
                });
            }
            Action::Rename { vm, name } => {
                let r = self.vms[*vm].r#ref.clone();
                let ok = self.op("VM.set_name_label", json!([r, name]));
                self.changes.push(Change {
                    vm: *vm,
                    field: "name_label",
                    value: name.clone(),
                    acknowledged: ok,
                });
            }
            Action::HostDisable { host } => {
                self.disabled.insert(*host);
                let uuid = self.pool.hosts[*host].uuid.clone();
                if let Ok(r) = self.call("host.get_by_uuid", json!([uuid])) {
                    self.op("host.disable", json!([r]));
                }
            }
            Action::HostEnable { host } => {
                let uuid = self.pool.hosts[*host].uuid.clone();
                let enabled = match self.call("host.get_by_uuid", json!([uuid])) {
                    Ok(r) => self.op("host.enable", json!([r])),
                    Err(e) => {
                        let at = self.now_ms();
                        self.notes.push(format!("+{at} ms host.get_by_uuid: {e}"));
                        false
                    }
                };
                if enabled {
                    self.disabled.remove(host);
                }
            }
        }
        Ok(())
    }

    /// A note of each fault and heal as it runs (the seed's story).
    fn trace(&mut self, action: &Action) {
        let what = match action {
            Action::PowerCut { id, target } => format!("fault {id}: power cut of {target:?}"),
            Action::Freeze { id, target, what } => {
                format!("fault {id}: freeze {what:?} of {target:?}")
            }
            Action::KillAgent { id, target } => format!("fault {id}: agent kill on {target:?}"),
            Action::Restart { id } => format!("heal {id}: restart"),
            Action::Mend { id } => format!("heal {id}: mend the network"),
            Action::Thaw { id } => format!("heal {id}: thaw"),
            Action::Partition { id, minority } => {
                format!("fault {id}: network partition of hosts {minority:?} from the rest")
            }
            Action::OneWay { id, from, to } => {
                format!("fault {id}: packets from host {from} to host {to} dropped")
            }
            Action::Storage { id, target, fault } => {
                format!("fault {id}: storage {fault:?} on {target:?}")
            }
            Action::StorageHeal { id } => format!("heal {id}: storage"),
            op => format!("{op:?}"),
        };
        let master = self.api.master().map(|m| self.pool.hosts[m].name.clone());
        self.notes.push(format!(
            "+{} ms {what} (master as last found: {})",
            self.now_ms(),
            master.unwrap_or_else(|| "?".into())
        ));
    }

    /// An API operation; whether it was acknowledged (a refusal or no
    /// answer is a note, not a failure).
    fn op(&mut self, method: &str, params: Value) -> bool {
        match self.call(method, params) {
            Ok(_) => true,
            Err(e) => {
                self.notes
                    .push(format!("+{} ms {method}: {e}", self.now_ms()));
                false
            }
        }
    }
}

mod faults;
mod finish;
mod storage;
mod watchdog;

/// Copies `dir`'s files named `*.log` (one level of host directories and
/// their `xhad/`) to `to`.
fn copy_logs(dir: &Path, to: &Path) {
    for sub in ["", "xhad"] {
        let from = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&from) else {
            continue;
        };
        let dest = to.join(sub);
        let _ = std::fs::create_dir_all(&dest);
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "log") {
                let _ = std::fs::copy(&path, dest.join(e.file_name()));
            }
        }
    }
}
