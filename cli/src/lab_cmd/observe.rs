//! After the power cut: the survivors' `xhad` reports (detection, the
//! smaller liveset), the master's database (the host declared dead, i.e.
//! treated as fenced), and the stamps of the VMs the dead host ran (each
//! one's first stamp on its new host).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use xapi_vm::stamp::StampLog;
use xha_lab::LabError;
use xha_lab::agent_pool::{AgentPool, LabVm};

use super::demo::{Kind, Planned, plus};
use super::{Failed, Progress, at};

/// One VM after the fault.
#[derive(Clone, Debug, Default)]
pub(super) struct VmObserved {
    pub host_after: Option<usize>,
    pub running_again: Option<Duration>,
}

/// What the survivors showed.
pub(super) struct Observed {
    pub detected: Option<Duration>,
    pub fenced: Option<Duration>,
    pub shrink: Option<Duration>,
    /// By VM, in the plan's order.
    pub vms: Vec<VmObserved>,
    /// Every VM's stamps, read just after the cut (the dead host's boots
    /// ended then, and a restarted boot may later overwrite their last
    /// records: docs/vm-drivers.md, "Layout on the disk") and at each
    /// poll since.
    pub stamps: StampLog,
}

/// How often the master's database and the stamps are read.
const POLL_SLOW: Duration = Duration::from_millis(250);

fn label(p: &Planned) -> String {
    match p.kind {
        Kind::Unprotected => "unprotected".to_owned(),
        k => format!("{}, order {}", k.priority(), p.order),
    }
}

pub(super) fn observe(
    pool: &mut AgentPool,
    progress: &Progress,
    victim: usize,
    vms: &[LabVm],
    plan: &[Planned],
    bound: Duration,
) -> Result<Observed, Failed> {
    let survivors: Vec<usize> = (0..pool.hosts.len()).filter(|&i| i != victim).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut streams = Vec::new();
    for &s in &survivors {
        let (_watcher, rx) = xha_control::client::watch(&pool.control_socket(s), Arc::clone(&stop))
            .map_err(|e| Failed {
                step: "watch the survivors",
                error: LabError::Spec(format!("{}: {e}", pool.hosts[s].name)),
            })?;
        streams.push((s, rx));
    }
    let result = observe_streams(pool, progress, victim, vms, plan, bound, &streams);
    stop.store(true, Ordering::Relaxed);
    result
}

#[allow(clippy::too_many_lines)] // one loop over everything that happens after the kill
fn observe_streams(
    pool: &mut AgentPool,
    progress: &Progress,
    victim: usize,
    vms: &[LabVm],
    plan: &[Planned],
    bound: Duration,
    streams: &[(
        usize,
        std::sync::mpsc::Receiver<(Instant, xha_control::LivesetReport)>,
    )],
) -> Result<Observed, Failed> {
    let victim_uuid: uuid::Uuid = pool.hosts[victim].uuid.parse().unwrap_or_default();
    let victim_name = pool.hosts[victim].name.clone();
    let on_victim: Vec<String> = vms
        .iter()
        .zip(plan)
        .filter(|(_, p)| p.host == victim)
        .map(|(v, _)| v.uuid.clone())
        .collect();
    let (fault, fault_ms) = pool
        .kill_host(victim, &on_victim)
        .map_err(at("cut the power"))?;
    // Detection, the fence, the shrink and the protected restarts within
    // `bound` (3 T + 60 s, plus a boot's allowance for QEMU VMs), or the
    // step fails.
    let mut stamps = StampLog::new();
    for vm in vms {
        let _ = stamps.read_disk(&vm.disk, 0);
    }
    let mut out = Observed {
        detected: None,
        fenced: None,
        shrink: None,
        vms: vec![VmObserved::default(); vms.len()],
        stamps,
    };
    let mut excluded_since: HashMap<usize, Option<Instant>> =
        streams.iter().map(|(s, _)| (*s, None)).collect();
    // VMs to see running again: every one of the victim's but the
    // unprotected; the first stamp elsewhere, then the record.
    let mut first_stamp: Vec<Option<Duration>> = vec![None; vms.len()];
    let waiting = |i: usize, out: &Observed| {
        plan[i].host == victim
            && plan[i].kind != Kind::Unprotected
            && out.vms[i].host_after.is_none()
    };
    let mut last_slow = Instant::now() - POLL_SLOW;
    loop {
        let step = "wait for the failover";
        pool.check_cancel(step).map_err(at(step))?;
        for (s, rx) in streams {
            while let Ok((when, report)) = rx.try_recv() {
                if when < fault {
                    continue;
                }
                let seen = report.hosts.iter().find(|h| h.uuid == victim_uuid);
                if out.detected.is_none()
                    && let Some(h) = seen
                    && (!h.heard || !h.seen || !h.live)
                {
                    let d = when - fault;
                    out.detected = Some(d);
                    let what = if !h.heard {
                        "no longer hears it"
                    } else if !h.seen {
                        "no longer sees its statefile slot advance"
                    } else {
                        "dropped it from its liveset"
                    };
                    progress.line(&format!(
                        "  {}  detected: {}'s xhad {what}",
                        plus(d),
                        pool.hosts[*s].name
                    ));
                }
                let entry = excluded_since.entry(*s).or_default();
                if report.liveset.contains(&victim_uuid) {
                    *entry = None;
                } else if entry.is_none() {
                    *entry = Some(when);
                }
            }
        }
        if out.shrink.is_none() && excluded_since.values().all(Option::is_some) {
            let last = excluded_since
                .values()
                .flatten()
                .max()
                .copied()
                .unwrap_or(fault);
            let d = last - fault;
            progress.line(&format!(
                "  {}  liveset shrank: every survivor's xhad excludes {victim_name} ({} hosts left)",
                plus(d),
                streams.len()
            ));
            out.shrink = Some(d);
        }
        if last_slow.elapsed() >= POLL_SLOW {
            last_slow = Instant::now();
            if out.fenced.is_none() && !pool.live(victim).map_err(at(step))? {
                let d = fault.elapsed();
                progress.line(&format!(
                    "  {}  fenced: the master declares {victim_name} dead (host_metrics.live = false); its VMs may restart",
                    plus(d)
                ));
                out.fenced = Some(d);
            }
            for (i, vm) in vms.iter().enumerate() {
                if !waiting(i, &out) {
                    continue;
                }
                if first_stamp[i].is_none() {
                    let _ = out.stamps.read_disk(&vm.disk, 0);
                    let id: Option<uuid::Uuid> = vm.uuid.parse().ok();
                    first_stamp[i] = out
                        .stamps
                        .windows()
                        .into_iter()
                        .filter(|w| Some(w.vm) == id && w.host != victim_name)
                        .map(|w| w.first_ms)
                        .min()
                        .map(|ms| Duration::from_millis(ms.saturating_sub(fault_ms)));
                }
                let Some(d) = first_stamp[i] else { continue };
                let running =
                    pool.vm_field(vm, "power_state").map_err(at(step))? == json!("Running");
                let host = pool.resident_host(vm).map_err(at(step))?;
                if let Some(h) = host.filter(|&h| running && h != victim) {
                    out.vms[i] = VmObserved {
                        host_after: Some(h),
                        running_again: Some(d),
                    };
                    progress.line(&format!(
                        "  {}  {} ({}) running again on {} (its first stamp there)",
                        plus(d),
                        vm.name,
                        label(&plan[i]),
                        pool.hosts[h].name
                    ));
                }
            }
        }
        let protected_left = (0..vms.len())
            .filter(|&i| waiting(i, &out) && plan[i].kind == Kind::Protected)
            .count();
        let best_effort_left =
            (0..vms.len()).filter(|&i| waiting(i, &out)).count() - protected_left;
        let core_done = out.fenced.is_some() && out.shrink.is_some() && protected_left == 0;
        if core_done && best_effort_left == 0 {
            break;
        }
        if fault.elapsed() > bound {
            if core_done {
                break; // a best-effort VM that found no room is reported below
            }
            let mut detail = Vec::new();
            if out.shrink.is_none() {
                detail.push(format!("a survivor's liveset still lists {victim_name}"));
            }
            if out.fenced.is_none() {
                detail.push(format!("the master still has {victim_name} live"));
            }
            if protected_left > 0 {
                detail.push(format!("{protected_left} protected VMs not running again"));
            }
            return Err(Failed {
                step,
                error: LabError::Timeout {
                    step: step.to_owned(),
                    waited: bound,
                    detail: detail.join("; "),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The rest: the victim's unprotected VMs stay down; the survivors'
    // VMs were not touched.
    for (i, vm) in vms.iter().enumerate() {
        let p = &plan[i];
        if p.host == victim && p.kind == Kind::Unprotected {
            let state = pool
                .vm_field(vm, "power_state")
                .map_err(at("check the VMs"))?;
            let host = pool.resident_host(vm).map_err(at("check the VMs"))?;
            out.vms[i].host_after = host;
            progress.line(&format!(
                "  {}  {} (unprotected) stays down: HA does not restart it (power_state {})",
                plus(fault.elapsed()),
                vm.name,
                state.as_str().unwrap_or("?")
            ));
        } else if p.host == victim && out.vms[i].host_after.is_none() {
            progress.line(&format!(
                "  {}  {} ({}) not running again within {} s",
                plus(fault.elapsed()),
                vm.name,
                label(p),
                bound.as_secs()
            ));
        } else if p.host != victim {
            out.vms[i].host_after = pool.resident_host(vm).map_err(at("check the VMs"))?;
            progress.line(&format!(
                "            {} ({}) on {}: not on the failed host, kept running",
                vm.name,
                label(p),
                pool.hosts[p.host].name
            ));
        }
    }
    Ok(out)
}
