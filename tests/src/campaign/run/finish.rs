//! After the last step: every host up and every disabled host enabled
//! again, every protected VM running again, then the records read and
//! checked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use xapi_ha::ha::engine::track::BEST_EFFORT_ATTEMPTS;
use xha_lab::LabError;
use xha_lab::power::wall_ms;

use super::super::check::{self, Verdict};
use super::super::hosts::HostState;
use super::super::schedule::VmKind;
use super::{RESTART_ALLOWANCE_MS, RunSpec, Runner, copy_logs, spec_err};

/// A VM counts as running when its newest stamp is this recent.
const FRESH_MS: u64 = 3000;

impl Runner {
    /// Retries `method` until the master acknowledges it, within `bound`.
    fn call_until(
        &mut self,
        method: &str,
        params: &serde_json::Value,
        bound: Duration,
    ) -> Result<serde_json::Value, LabError> {
        let deadline = Instant::now() + bound;
        loop {
            self.watch_fences()?;
            match self.call(method, params.clone()) {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() > deadline => return Err(spec_err(method, e)),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    pub(super) fn finish(&mut self) -> Result<Verdict, LabError> {
        let t = self.params.t_s;
        let settle = Duration::from_secs(3 * t + 60);
        // Every fault healed by the schedule; a host reset by a fence
        // outside a fault booted already. Re-enable the disabled hosts.
        if self.states.iter().any(|s| *s != HostState::Up) {
            return Err(spec_err("heal", format!("hosts not up: {:?}", self.states)));
        }
        for h in std::mem::take(&mut self.disabled) {
            let uuid = self.pool.hosts[h].uuid.clone();
            let r = self.call_until("host.get_by_uuid", &json!([uuid]), settle)?;
            self.call_until("host.enable", &json!([r]), settle)?;
        }
        let mut finals = BTreeMap::new();
        for vm in 0..self.vms.len() {
            let r = self.vms[vm].r#ref.clone();
            for field in ["name_label", "ha_restart_priority"] {
                let v = self.call_until(&format!("VM.get_{field}"), &json!([r]), settle)?;
                finals.insert((vm, field), v.as_str().unwrap_or_default().to_owned());
            }
        }
        // Every VM protected at the end runs again: a fresh stamp written
        // after the last reset (a boot that died in a reset left stamps
        // that look fresh for a while: seeds 22010 and 23017 ended before
        // HA could restart the VM, and counted it running).
        let healed = Instant::now();
        let healed_ms = wall_ms();
        let mut down_at_end = Vec::new();
        for vm in 0..self.vms.len() {
            if finals[&(vm, "ha_restart_priority")] != "restart" {
                continue;
            }
            // Protected is `restart` and `ha_always_run` (a priority set to
            // `restart` on a halted VM leaves `ha_always_run` false: HA
            // leaves it halted, as xapi does).
            let r = self.vms[vm].r#ref.clone();
            let always = self.call_until("VM.get_ha_always_run", &json!([r]), settle)?;
            if always != json!(true) && always != json!("true") {
                self.notes.push(format!(
                    "{}: priority restart but ha_always_run {always}: not protected, not waited for",
                    self.vms[vm].name
                ));
                continue;
            }
            let id: Option<uuid::Uuid> = self.vms[vm].uuid.parse().ok();
            loop {
                // Reads the disks into the runner's log (every second).
                self.watch_fences()?;
                let newest = self
                    .stamps
                    .records()
                    .filter(|r| Some(r.vm) == id)
                    .map(|r| r.time_ms)
                    .max()
                    .unwrap_or(0);
                let since = self.cuts.iter().map(|c| c.at_ms).fold(healed_ms, u64::max);
                if newest > since && newest + FRESH_MS >= wall_ms() {
                    break;
                }
                if healed.elapsed() > settle {
                    down_at_end.push(format!(
                        "{} ({}): no stamp for {} ms, {} s after every fault healed",
                        self.vms[vm].name,
                        self.vms[vm].uuid,
                        wall_ms().saturating_sub(newest),
                        settle.as_secs()
                    ));
                    break;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        self.read_stamps(true);
        Ok(self.verdict(&finals, down_at_end))
    }

    fn verdict(
        &self,
        finals: &BTreeMap<(usize, &'static str), String>,
        down_at_end: Vec<String>,
    ) -> Verdict {
        let p = &self.params;
        let log = &self.stamps;
        let logs: Vec<(String, String)> = self
            .pool
            .hosts
            .iter()
            .map(|h| {
                let text = std::fs::read_to_string(h.dir.join(xha_lab::agent::LOG_FILE))
                    .unwrap_or_default();
                (h.name.clone(), text)
            })
            .collect();
        let initial: BTreeMap<(usize, &'static str), String> = (0..self.vms.len())
            .flat_map(|vm| {
                [
                    ((vm, "name_label"), self.vms[vm].name.clone()),
                    (
                        (vm, "ha_restart_priority"),
                        p.kind(vm).priority().to_owned(),
                    ),
                ]
            })
            .collect();
        let boots: BTreeMap<usize, usize> = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, vm)| {
                // The campaign runs process VMs, which always have a boots
                // file (QEMU lab VMs have none).
                let n = vm
                    .boots
                    .as_ref()
                    .and_then(|b| std::fs::read_to_string(b).ok())
                    .map_or(0, |t| t.lines().count());
                (i, n)
            })
            .collect();
        let boot_records: BTreeMap<usize, Vec<check::Boot>> = self
            .vms
            .iter()
            .enumerate()
            .map(|(i, vm)| {
                let text = vm
                    .boots
                    .as_ref()
                    .and_then(|b| std::fs::read_to_string(b).ok())
                    .unwrap_or_default();
                (i, check::parse_boots(&text))
            })
            .collect();
        // Best-effort all through: never sent `restart`.
        let best_effort: Vec<usize> = (0..self.vms.len())
            .filter(|&i| {
                p.kind(i) == VmKind::BestEffort
                    && !self.priorities.iter().any(|s| s.0 == i && s.2 == "restart")
            })
            .collect();
        let attempts = usize::try_from(BEST_EFFORT_ATTEMPTS).unwrap_or(usize::MAX);
        let mut notes = self.notes.clone();
        for &vm in &best_effort {
            notes.push(format!(
                "best-effort vm-{vm}: {} boots",
                boot_records.get(&vm).map_or(0, Vec::len)
            ));
        }
        let unprotected: Vec<usize> = (0..self.vms.len())
            .filter(|&i| p.kind(i) == VmKind::Unprotected)
            .collect();
        let bound_ms = p.t_s * 1000 + 4000 + RESTART_ALLOWANCE_MS;
        // Protected through a cut's window: "restart" at the cut by the
        // last change sent before it (acknowledged), none sent from the cut
        // to the bound after it.
        let index: BTreeMap<uuid::Uuid, usize> = self
            .uuids
            .iter()
            .enumerate()
            .filter_map(|(i, u)| Some((u.parse().ok()?, i)))
            .collect();
        let protected = |vm: uuid::Uuid, at: u64| {
            let Some(&i) = index.get(&vm) else {
                return false;
            };
            let sent: Vec<_> = self.priorities.iter().filter(|s| s.0 == i).collect();
            if sent.iter().any(|s| s.1 >= at && s.1 <= at + bound_ms) {
                return false;
            }
            match sent.iter().rev().find(|s| s.1 < at) {
                Some(s) => s.3 && s.2 == "restart",
                None => p.kind(i) == VmKind::Protected,
            }
        };
        let restarts = check::restarts(log, &self.cuts, &protected, 2000);
        if std::env::var_os("XHA_CAMPAIGN_VERBOSE").is_some() {
            notes.extend(self.cuts.iter().map(|c| format!("cut {c:?}")));
            notes.extend(log.windows().iter().map(|w| {
                let name = index.get(&w.vm).map_or("?", |&i| self.vms[i].name.as_str());
                format!(
                    "boot of {name} ({}) on {}: {}..{} ({} stamps)",
                    w.vm, w.host, w.first_ms, w.last_ms, w.records
                )
            }));
        }
        let mut verdict = Verdict {
            double_runs: check::double_runs(log)
                .iter()
                .map(ToString::to_string)
                .collect(),
            two_masters: check::masters_per_epoch(&logs)
                .into_iter()
                .map(|(e, h)| format!("epoch {e}: {}", h.join(", ")))
                .collect(),
            lost_changes: check::lost_changes(&initial, &self.changes, finals)
                .into_iter()
                .map(|(vm, f, found, allowed)| {
                    format!("vm-{vm} {f} is {found:?}, acknowledged {allowed:?}")
                })
                .collect(),
            unprotected_started: check::unexplained_boots(&unprotected, &boots, &self.starts)
                .into_iter()
                .map(|(vm, b, s)| format!("vm-{vm} booted {b} times, started {s} times"))
                .collect(),
            best_effort_overstarted: check::best_effort_overstarts(
                &best_effort,
                &boot_records,
                &self.starts,
                &self.cuts,
                attempts,
            )
            .into_iter()
            .map(|o| {
                format!(
                    "vm-{} booted {} times: {} starts + {attempts} per host failure it suffered ({}) allow {}",
                    o.vm, o.boots, o.starts, o.failures, o.allowed
                )
            })
            .collect(),
            down_at_end,
            bound_ms,
            notes,
            boot_failures: self.boot_failures.clone(),
            ..Verdict::default()
        };
        for r in &restarts {
            match r.after_ms {
                Some(ms) => {
                    verdict.restarts_ms.push(ms);
                    if ms > bound_ms {
                        verdict
                            .late_restarts
                            .push(format!("{} from {}: {ms} ms after the cut", r.vm, r.host));
                    }
                }
                None => verdict.late_restarts.push(format!(
                    "{} from {}: never ran again after the cut",
                    r.vm, r.host
                )),
            }
        }
        verdict
    }

    pub(super) fn save_logs(&self, spec: &RunSpec) {
        let Some(base) = &spec.logs_on_failure else {
            return;
        };
        let to = base.join(format!("seed-{}", spec.seed));
        for h in &self.pool.hosts {
            copy_logs(&h.dir, &to.join(&h.name));
        }
    }
}
