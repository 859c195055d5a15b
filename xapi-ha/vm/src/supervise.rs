//! What both drivers share: starting a VM process under a keeper, tracking
//! it by pid and start time, signalling its process group, turning its end
//! into exactly one event, and adopting the VMs of the run directory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use uuid::Uuid;

use crate::error::{DriverError, io};
use crate::rundir::{ExitRecord, ProcId, VmDir, VmRecord};
use crate::{
    DriverContext, PowerState, RunningVm, StopCause, StopMode, StopRequest, VmEvent, VmSpec, now_ms,
};

/// How long a keeper may take to report the VM's pid.
const SPAWN_DEADLINE: Duration = Duration::from_secs(10);
/// How long a SIGKILLed VM may take to disappear.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// How long the keeper may take to record an exit it has seen.
const EXIT_RECORD_DEADLINE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

pub(crate) struct Tracked {
    pub dir: VmDir,
    pub record: VmRecord,
    pub vm: ProcId,
    pub keeper: Option<ProcId>,
    /// The keeper, when this driver instance spawned it (reaped on exit).
    pub child: Option<Child>,
    /// When a clean stop requested without waiting turns into SIGKILL.
    pub kill_at: Option<Instant>,
}

impl Tracked {
    /// Sends `sig` to the VM's process group, if the VM is still the process
    /// we started (never to a reused pid).
    pub fn signal(&self, sig: Signal) {
        // pid 0 would be our own process group: never signal it.
        if self.vm.pid > 0 && self.vm.is_alive() {
            // The keeper made the VM a process-group leader (pgid = pid).
            let _ = kill(Pid::from_raw(-self.vm.pid), sig);
        }
    }

    pub fn running_vm(&self) -> RunningVm {
        RunningVm {
            uuid: self.record.spec.uuid,
            name: self.record.spec.name.clone(),
            pid: self.vm.pid,
            started_ms: self.record.started_ms,
        }
    }
}

/// The VMs one driver runs on this host.
pub(crate) struct Fleet {
    pub ctx: DriverContext,
    pub driver: &'static str,
    pub vms: BTreeMap<Uuid, Tracked>,
    events: Vec<VmEvent>,
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

impl Fleet {
    pub fn new(mut ctx: DriverContext, driver: &'static str) -> Self {
        // One subdirectory per driver, so the two drivers never read each other's VMs.
        ctx.run_dir = ctx.run_dir.join(driver);
        Self {
            ctx,
            driver,
            vms: BTreeMap::new(),
            events: Vec::new(),
        }
    }

    pub fn dir(&self, uuid: Uuid) -> VmDir {
        VmDir::new(&self.ctx.run_dir, uuid)
    }

    pub fn tracked(&self, uuid: Uuid) -> Result<&Tracked, DriverError> {
        self.vms.get(&uuid).ok_or(DriverError::NotRunning(uuid))
    }

    /// Refuses to start a VM this host already runs, also one an earlier
    /// agent started and this one has not adopted yet.
    pub fn ensure_not_running(&self, uuid: Uuid) -> Result<(), DriverError> {
        if self.vms.get(&uuid).is_some_and(|t| t.vm.is_alive()) {
            return Err(DriverError::AlreadyRunning(uuid));
        }
        let dir = self.dir(uuid);
        let alive = |name| dir.read_proc(name).is_some_and(|p: ProcId| p.is_alive());
        if alive("vm.pid") || alive("keeper.pid") {
            return Err(DriverError::AlreadyRunning(uuid));
        }
        Ok(())
    }

    /// Starts `program` under a keeper, in a fresh run directory, and waits
    /// until the keeper reports the VM's pid.
    pub fn spawn(
        &mut self,
        spec: &VmSpec,
        program: &OsString,
        args: &[OsString],
        env: &[(String, String)],
    ) -> Result<&Tracked, DriverError> {
        self.ensure_not_running(spec.uuid)?;
        if !crate::stamp::record::host_is_valid(&self.ctx.host) {
            return Err(DriverError::StartFailed {
                vm: spec.uuid,
                reason: format!(
                    "host name {:?}: want 1 to 64 printable ASCII characters without spaces",
                    self.ctx.host
                ),
            });
        }
        std::fs::create_dir_all(&self.ctx.run_dir).map_err(io(&self.ctx.run_dir))?;
        let dir = self.dir(spec.uuid);
        dir.create()?;
        let record = VmRecord {
            spec: spec.clone(),
            driver: self.driver.into(),
            host: self.ctx.host.clone(),
            started_ms: now_ms(),
        };
        dir.write_record(&record)?;
        let mut child = Command::new(&self.ctx.keeper)
            .arg(dir.path())
            .arg("--")
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| DriverError::StartFailed {
                vm: spec.uuid,
                reason: format!("cannot run the keeper {}: {e}", self.ctx.keeper.display()),
            })?;
        let mut vm = None;
        let mut exit = None;
        wait_until(SPAWN_DEADLINE, || {
            vm = dir.read_proc("vm.pid");
            exit = dir.read_exit();
            vm.is_some() || exit.is_some() || matches!(child.try_wait(), Ok(Some(_)))
        });
        let fail = |reason: String| DriverError::StartFailed {
            vm: spec.uuid,
            reason,
        };
        let Some(vm) = vm else {
            let _ = child.kill();
            let _ = child.wait();
            let _ = dir.remove();
            return Err(fail(match exit {
                Some(ExitRecord::SpawnFailed(why)) => why,
                _ => "the keeper did not report the VM's pid".into(),
            }));
        };
        let keeper = dir.read_proc("keeper.pid");
        let t = Tracked {
            dir,
            record,
            vm,
            keeper,
            child: Some(child),
            kill_at: None,
        };
        self.vms.insert(spec.uuid, t);
        Ok(&self.vms[&spec.uuid])
    }

    pub fn signal(&self, uuid: Uuid, sig: Signal) -> Result<(), DriverError> {
        self.tracked(uuid)?.signal(sig);
        Ok(())
    }

    pub fn is_alive(&self, uuid: Uuid) -> bool {
        self.vms.get(&uuid).is_some_and(|t| t.vm.is_alive())
    }

    pub fn wait_gone(&self, uuid: Uuid, timeout: Duration) -> bool {
        wait_until(timeout, || !self.is_alive(uuid))
    }

    /// The shared stop: record the request, ask with `clean` (or kill for a
    /// hard stop), kill after the timeout, wait, emit the event.
    pub fn stop_with(
        &mut self,
        uuid: Uuid,
        mode: StopMode,
        clean: impl FnOnce(&Tracked) -> Result<(), DriverError>,
    ) -> Result<StopRequest, DriverError> {
        let t = self.tracked(uuid)?;
        let mut outcome = match mode {
            StopMode::Clean { timeout } => {
                t.dir.write_stop(StopRequest::Clean)?;
                // A clean request that cannot be delivered (QMP gone) ends in a kill.
                let asked = clean(t);
                if asked.is_ok() && self.wait_gone(uuid, timeout) {
                    StopRequest::Clean
                } else {
                    StopRequest::CleanForced
                }
            }
            StopMode::Hard => StopRequest::Hard,
        };
        if self.is_alive(uuid) {
            if outcome == StopRequest::Clean {
                outcome = StopRequest::CleanForced;
            }
            self.tracked(uuid)?.dir.write_stop(outcome)?;
            self.signal(uuid, Signal::SIGKILL)?;
            if !self.wait_gone(uuid, KILL_DEADLINE) {
                return Err(DriverError::StopTimeout {
                    vm: uuid,
                    waited_ms: KILL_DEADLINE.as_millis() as u64,
                });
            }
        }
        self.finish(uuid);
        Ok(outcome)
    }

    /// The stop without waiting: records the request and asks (or kills);
    /// a clean request still running after its timeout is killed by
    /// [`Fleet::poll`]. The `Stopped` event comes from `poll`.
    pub fn request_stop_with(
        &mut self,
        uuid: Uuid,
        mode: StopMode,
        clean: impl FnOnce(&Tracked) -> Result<(), DriverError>,
    ) -> Result<(), DriverError> {
        let t = self
            .vms
            .get_mut(&uuid)
            .ok_or(DriverError::NotRunning(uuid))?;
        if let StopMode::Clean { timeout } = mode {
            t.dir.write_stop(StopRequest::Clean)?;
            if clean(t).is_ok() {
                t.kill_at = Some(Instant::now() + timeout);
                return Ok(());
            }
            // The request could not be delivered: kill now.
            t.dir.write_stop(StopRequest::CleanForced)?;
        } else {
            t.dir.write_stop(StopRequest::Hard)?;
        }
        t.signal(Signal::SIGKILL);
        Ok(())
    }

    /// Marks a VM as requested-stopped with `r` (for migration) without signalling it.
    pub fn mark_stop(&self, uuid: Uuid, r: StopRequest) -> Result<(), DriverError> {
        self.tracked(uuid)?.dir.write_stop(r)
    }

    /// The VM's power state from /proc (a stopped process is Paused).
    pub fn proc_state(&self, uuid: Uuid) -> PowerState {
        match self.vms.get(&uuid) {
            Some(t) if t.vm.is_alive() => match crate::procfs::stat(t.vm.pid) {
                Some(s) if s.state == 'T' => PowerState::Paused,
                _ => PowerState::Running,
            },
            _ => PowerState::Halted,
        }
    }

    pub fn memory_used(&self, uuid: Uuid) -> Result<u64, DriverError> {
        let t = self.tracked(uuid)?;
        crate::procfs::rss_bytes(t.vm.pid)
            .filter(|_| t.vm.is_alive())
            .ok_or(DriverError::NotRunning(uuid))
    }

    /// Turns a VM that is gone into its one `Stopped` event and removes its directory.
    pub fn finish(&mut self, uuid: Uuid) {
        let Some(mut t) = self.vms.remove(&uuid) else {
            return;
        };
        self.events.push(VmEvent::Stopped {
            uuid,
            cause: end_of(&mut t),
        });
        if let Err(e) = t.dir.remove() {
            tracing::warn!(vm = %uuid, error = %e, "cannot remove the VM's run directory");
        }
    }

    /// Checks every VM; returns the events since the last call.
    pub fn poll(&mut self) -> Vec<VmEvent> {
        let now = Instant::now();
        for t in self.vms.values_mut() {
            if t.kill_at.is_some_and(|at| at <= now) && t.vm.is_alive() {
                t.kill_at = None;
                if let Err(e) = t.dir.write_stop(StopRequest::CleanForced) {
                    tracing::warn!(vm = %t.record.spec.uuid, error = %e, "cannot record the forced stop");
                }
                t.signal(Signal::SIGKILL);
            }
        }
        let gone: Vec<Uuid> = self
            .vms
            .iter()
            .filter(|(_, t)| !t.vm.is_alive())
            .map(|(u, _)| *u)
            .collect();
        for uuid in gone {
            self.finish(uuid);
        }
        std::mem::take(&mut self.events)
    }

    /// Adopts the run directory's live VMs; VMs found dead become events.
    pub fn adopt(&mut self) -> Result<Vec<RunningVm>, DriverError> {
        let mut found = Vec::new();
        for (uuid, dir) in VmDir::list(&self.ctx.run_dir)? {
            if self.vms.contains_key(&uuid) {
                found.push(self.vms[&uuid].running_vm());
                continue;
            }
            let record = match dir.read_record() {
                Ok(r) => r,
                Err(e) => {
                    // A directory without a readable record belongs to a
                    // start that never got going; a live process in it is
                    // left alone (never kill by mistake), a dead one cleaned.
                    let alive = dir.read_proc("vm.pid").is_some_and(|p| p.is_alive())
                        || dir.read_proc("keeper.pid").is_some_and(|p| p.is_alive());
                    tracing::warn!(vm = %uuid, error = %e, alive, "run directory without a VM record");
                    if !alive {
                        let _ = dir.remove();
                    }
                    continue;
                }
            };
            let keeper = dir.read_proc("keeper.pid");
            let vm = dir.read_proc("vm.pid");
            let t = Tracked {
                dir,
                record,
                vm: vm.unwrap_or(ProcId {
                    pid: 0,
                    start_ticks: 0,
                }),
                keeper,
                child: None,
                kill_at: None,
            };
            let live = vm.is_some_and(|p| p.is_alive());
            if !live && keeper.is_some_and(|k| k.is_alive()) && vm.is_none() {
                // The keeper is between spawning and recording: look again next time.
                continue;
            }
            self.vms.insert(uuid, t);
            if live {
                tracing::info!(vm = %uuid, pid = vm.map(|p| p.pid), "adopted running VM");
                found.push(self.vms[&uuid].running_vm());
            } else {
                self.finish(uuid);
            }
        }
        Ok(found)
    }

    pub fn running(&self) -> Vec<RunningVm> {
        self.vms
            .values()
            .filter(|t| t.vm.is_alive())
            .map(Tracked::running_vm)
            .collect()
    }
}

/// Why a VM that is gone stopped, from its run directory.
fn end_of(t: &mut Tracked) -> StopCause {
    // The keeper writes the exit record right after reaping the VM; give it
    // a moment when it is still alive.
    let keeper_alive = || t.keeper.is_some_and(|k| k.is_alive());
    wait_until(EXIT_RECORD_DEADLINE, || {
        t.dir.read_exit().is_some() || !keeper_alive()
    });
    if let Some(child) = t.child.as_mut() {
        // Reap our keeper (it exits right after recording).
        wait_until(EXIT_RECORD_DEADLINE, || {
            !matches!(child.try_wait(), Ok(None))
        });
    }
    if let Some(req) = t.dir.read_stop() {
        return StopCause::Requested(req);
    }
    let exit = match t.dir.read_exit() {
        Some(ExitRecord::Status(s)) => Some(s),
        _ => None,
    };
    let guest_shutdown = std::fs::read_to_string(t.dir.file("shutdown"))
        .ok()
        .and_then(|s| s.trim().strip_prefix("guest ").map(str::to_owned));
    StopCause::ByItself {
        exit,
        guest_shutdown,
    }
}
