//! The demo's steps on a formed pool: enable HA, create and start the VMs
//! and protect them, cut the power of the host holding the most protected
//! VMs, observe (`observe`), check the stamps.

use std::time::{Duration, Instant};

use serde_json::json;
use xapi_vm::stamp::StampLog;
use xapi_vm::stamp::check::{CheckOptions, Violation};
use xapi_vm::stamp::region::REGION_BYTES;
use xha_lab::LabError;
use xha_lab::agent_pool::{AgentPool, LabVm, QemuGuest};

use super::observe::{Observed, observe};
use super::{Failed, LabArgs, Progress, Summary, VmOutcome, at, secs};

/// What a VM is for HA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Protected,
    BestEffort,
    Unprotected,
}

impl Kind {
    /// Its `ha_restart_priority`.
    pub(super) fn priority(self) -> &'static str {
        match self {
            Kind::Protected => "restart",
            Kind::BestEffort => "best-effort",
            Kind::Unprotected => "",
        }
    }
}

/// One VM to make: its kind, start order and host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Planned {
    pub kind: Kind,
    pub order: i64,
    pub host: usize,
}

/// The VMs: the i-th is protected with order 0, protected with order 1,
/// best-effort, unprotected, again and again. The first protected pair and
/// the first unprotected VM go to the last host, the first best-effort VM
/// to the host before it (the VM that keeps running on a survivor), every
/// further VM round-robin over all hosts.
pub(super) fn plan(hosts: usize, vms: usize) -> Vec<Planned> {
    (0..vms)
        .map(|i| {
            let (kind, order) = match i % 4 {
                0 => (Kind::Protected, 0),
                1 => (Kind::Protected, 1),
                2 => (Kind::BestEffort, 0),
                _ => (Kind::Unprotected, 0),
            };
            let host = match i {
                0 | 1 | 3 => hosts - 1,
                2 => hosts - 2,
                _ => i % hosts,
            };
            Planned { kind, order, host }
        })
        .collect()
}

/// The host to kill: the non-master host (host 0 is the master) holding
/// the most protected VMs, the last such host on a tie.
pub(super) fn victim(hosts: usize, plan: &[Planned]) -> usize {
    (1..hosts)
        .max_by_key(|&h| {
            let n = plan
                .iter()
                .filter(|p| p.host == h && p.kind == Kind::Protected)
                .count();
            (n, h)
        })
        .unwrap_or(hosts - 1)
}

/// Generous bound for steps on a loaded machine.
const LONG: Duration = Duration::from_secs(90);

/// What a QEMU test guest's boot may add to a wait: a TCG boot takes 2-3 s
/// on an idle machine but 14-23 s on a loaded 2-core one
/// (`xapi-ha/vm/tests/support/guest.rs`), several at once longer.
pub(super) const QEMU_BOOT_ALLOWANCE: Duration = Duration::from_secs(240);

/// The extra time a boot of `guest`'s VMs may take (none for process VMs).
pub(super) fn boot_allowance(guest: Option<&QemuGuest>) -> Duration {
    if guest.is_some() {
        QEMU_BOOT_ALLOWANCE
    } else {
        Duration::ZERO
    }
}

/// Polls `f` every 100 ms until it gives a value, within `bound`.
pub(super) fn wait_for<T>(
    pool: &AgentPool,
    step: &'static str,
    bound: Duration,
    mut f: impl FnMut() -> Result<Option<T>, LabError>,
) -> Result<T, Failed> {
    let deadline = Instant::now() + bound;
    loop {
        pool.check_cancel(step).map_err(at(step))?;
        if let Some(v) = f().map_err(at(step))? {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(Failed {
                step,
                error: LabError::Timeout {
                    step: step.to_owned(),
                    waited: bound,
                    detail: String::new(),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The longest Unix socket path (bytes, without the NUL) QEMU can bind.
const SOCKET_PATH_MAX: usize = 107;

/// QEMU binds its QMP sockets at `<host dir>/data/vm-run/qemu/<VM
/// UUID>/events.sock`: refused before any VM starts when the lab
/// directory makes that too long for a Unix socket (a long `$TMPDIR`).
fn check_qemu_paths(pool: &AgentPool) -> Result<(), Failed> {
    let longest = pool
        .hosts
        .iter()
        .map(|h| {
            h.dir
                .join("data/vm-run/qemu")
                .join(uuid::Uuid::nil().to_string())
                .join("events.sock")
        })
        .max_by_key(|p| p.as_os_str().len());
    match longest {
        Some(p) if p.as_os_str().len() > SOCKET_PATH_MAX => Err(Failed {
            step: "create the VMs",
            error: LabError::Spec(format!(
                "QEMU's sockets would be {} bytes long ({}), over the {SOCKET_PATH_MAX} of a Unix socket path: set TMPDIR to a shorter directory",
                p.as_os_str().len(),
                p.display()
            )),
        }),
        _ => Ok(()),
    }
}

/// The stamps on `vm`'s disk.
pub(super) fn stamps(vm: &LabVm) -> StampLog {
    let mut log = StampLog::new();
    let _ = log.read_disk(&vm.disk, 0);
    log
}

pub(super) fn demo(
    pool: &mut AgentPool,
    opts: &LabArgs,
    guest: Option<&QemuGuest>,
    progress: &Progress,
) -> Result<Summary, Failed> {
    let t = opts.timeout_s;
    let n = pool.hosts.len();
    let started = Instant::now();
    pool.enable_ha(t).map_err(at("enable HA"))?;
    progress.line(&format!(
        "lab: pool.enable_ha with T = {t} s took {:.1} s: every agent launched its xhad and xha-supervisor",
        started.elapsed().as_secs_f64()
    ));

    if guest.is_some() {
        check_qemu_paths(pool)?;
    }
    // The VMs: created, started where the plan says, then protected (a
    // halted protected VM would be started wherever HA's plan says).
    let plan = plan(n, opts.vms);
    let mut vms = Vec::new();
    for (i, p) in plan.iter().enumerate() {
        pool.check_cancel("create the VMs")
            .map_err(at("create the VMs"))?;
        let name = format!("vm-{i}");
        let vm = match guest {
            Some(g) => pool.create_qemu_stamp_vm(&name, p.order, REGION_BYTES, g),
            None => pool.create_stamp_vm(&name, p.order, REGION_BYTES),
        }
        .map_err(at("create the VMs"))?;
        let host = pool.host_ref(p.host).map_err(at("start the VMs"))?;
        pool.call("VM.start_on", json!([vm.r#ref, host, false, false]))
            .map_err(at("start the VMs"))?;
        vms.push(vm);
    }
    for (vm, p) in vms.iter().zip(&plan) {
        if p.kind != Kind::Unprotected {
            pool.call(
                "VM.set_ha_restart_priority",
                json!([vm.r#ref, p.kind.priority()]),
            )
            .map_err(at("protect the VMs"))?;
        }
    }
    for (vm, p) in vms.iter().zip(&plan) {
        wait_for(
            pool,
            "wait for the VMs' stamps",
            LONG + boot_allowance(guest),
            || Ok((!stamps(vm).is_empty()).then_some(())),
        )?;
        if p.kind == Kind::Protected {
            wait_for(pool, "wait for the VMs' protection", LONG, || {
                Ok((pool.vm_field(vm, "ha_state")? == json!("started")).then_some(()))
            })?;
        }
    }
    let victim = victim(n, &plan);
    progress.line(&format!(
        "lab: {} VMs running the stamp workload ({} driver), each on its own disk in the SR:",
        vms.len(),
        opts.driver.as_str()
    ));
    for (vm, p) in vms.iter().zip(&plan) {
        progress.line(&format!(
            "  {:6} {:12} order {}  on {}{}",
            vm.name,
            if p.kind == Kind::Unprotected {
                "unprotected"
            } else {
                p.kind.priority()
            },
            p.order,
            pool.hosts[p.host].name,
            if p.host == 0 { " (master)" } else { "" }
        ));
    }

    // The power cut.
    let on_victim: Vec<String> = vms
        .iter()
        .zip(&plan)
        .filter(|(_, p)| p.host == victim)
        .map(|(v, _)| v.uuid.clone())
        .collect();
    progress.line(&format!(
        "lab: power cut on {} ({}): SIGKILL to its agent, xhad, xha-supervisor, VM keepers and {} VMs",
        pool.hosts[victim].name,
        pool.hosts[victim].uuid,
        on_victim.len()
    ));
    let bound = Duration::from_secs(3 * t + 60) + boot_allowance(guest);
    let mut observed = observe(pool, progress, victim, &vms, &plan, bound)?;

    // The double-run checker over every VM's stamps (read since the cut,
    // and now).
    let mut log = std::mem::take(&mut observed.stamps);
    for vm in &vms {
        log.read_disk(&vm.disk, 0).map_err(|e| Failed {
            step: "check the stamps",
            error: LabError::Spec(format!("read the stamps of {}: {e}", vm.name)),
        })?;
    }
    let protected = vms
        .iter()
        .zip(&plan)
        .filter(|(_, p)| p.kind == Kind::Protected)
        .filter_map(|(v, _)| uuid::Uuid::parse_str(&v.uuid).ok())
        .collect();
    let violations = log.check(&CheckOptions {
        protected,
        max_down_ms: u64::MAX,
        span_ms: None,
    });
    let double_runs = violations
        .iter()
        .filter(|v| matches!(v, Violation::Overlap { .. }))
        .count();
    let boots = log.windows().len();
    if double_runs == 0 {
        progress.line(&format!(
            "lab: double-run check: {} stamps from {boots} boots of {} VMs: no VM ran in two places at once",
            log.len(),
            vms.len()
        ));
    } else {
        for v in &violations {
            progress.line(&format!("lab: double-run check: {v}"));
        }
        return Err(Failed {
            step: "check the stamps",
            error: LabError::Spec(format!("{double_runs} VMs ran twice at once")),
        });
    }
    Ok(summarize(
        pool,
        opts,
        victim,
        &vms,
        &plan,
        observed,
        double_runs,
    ))
}

fn summarize(
    pool: &AgentPool,
    opts: &LabArgs,
    victim: usize,
    vms: &[LabVm],
    plan: &[Planned],
    observed: Observed,
    double_runs: usize,
) -> Summary {
    let outcomes: Vec<VmOutcome> = vms
        .iter()
        .zip(plan)
        .zip(&observed.vms)
        .map(|((vm, p), o)| VmOutcome {
            uuid: vm.uuid.clone(),
            name: vm.name.clone(),
            priority: p.kind.priority().to_owned(),
            order: p.order,
            host_before: pool.hosts[p.host].uuid.clone(),
            host_after: o.host_after.map(|h| pool.hosts[h].uuid.clone()),
            running_again_after: o.running_again,
        })
        .collect();
    let protected_running_again_after = plan
        .iter()
        .zip(&observed.vms)
        .filter(|(p, _)| p.kind == Kind::Protected && p.host == victim)
        .filter_map(|(_, o)| o.running_again)
        .max();
    let master = &pool.hosts[0];
    let fingerprint = pool
        .host_ref(0)
        .and_then(|r| pool.call("host.get_other_config", json!([r])))
        .ok()
        .and_then(|c| c["tls_fingerprint"].as_str().map(str::to_owned));
    Summary {
        hosts: pool.hosts.len(),
        timeout_s: opts.timeout_s,
        killed: pool.hosts[victim].uuid.clone(),
        detected_after: observed.detected,
        fenced_after: observed.fenced,
        shrink_after: observed.shrink,
        vms: outcomes,
        protected_running_again_after,
        double_runs,
        api_url: format!("http://{}", master.http),
        master_address: master.address.clone(),
        tls_port: pool.tls_port,
        master_fingerprint: fingerprint,
    }
}

/// Seconds, for progress lines.
pub(super) fn plus(d: Duration) -> String {
    format!("+{:6.2} s", secs(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_puts_both_protected_vms_and_the_unprotected_one_on_the_victim() {
        let p = plan(3, 4);
        let kinds: Vec<(Kind, i64, usize)> = p.iter().map(|p| (p.kind, p.order, p.host)).collect();
        assert_eq!(
            kinds,
            [
                (Kind::Protected, 0, 2),
                (Kind::Protected, 1, 2),
                (Kind::BestEffort, 0, 1),
                (Kind::Unprotected, 0, 2)
            ]
        );
        assert_eq!(victim(3, &p), 2);
        // Two hosts: the best-effort VM is on the master, host 1 dies.
        let p = plan(2, 4);
        assert_eq!(p[2].host, 0);
        assert_eq!(victim(2, &p), 1);
    }

    #[test]
    fn the_victim_is_never_the_master_and_holds_the_most_protected_vms() {
        for hosts in 2..8 {
            for vms in 1..=32 {
                let p = plan(hosts, vms);
                let v = victim(hosts, &p);
                assert!(v >= 1 && v < hosts);
                let count = |h: usize| {
                    p.iter()
                        .filter(|x| x.host == h && x.kind == Kind::Protected)
                        .count()
                };
                assert!((1..hosts).all(|h| count(h) <= count(v)), "{hosts} {vms}");
            }
        }
    }
}
