//! The campaign's checker: pure functions over what a run recorded (the
//! stamps on the VMs' disks, the agents' logs, the database changes the API
//! acknowledged, the boots of each VM, the power cuts) and a [`Verdict`].

use std::collections::{BTreeMap, BTreeSet};

use xapi_vm::stamp::StampLog;
use xapi_vm::stamp::check::{CheckOptions, Violation};

/// The line an agent logs when it takes over as the master
/// (`server::master_failover`), with `epoch=N`.
pub const TOOK_OVER: &str = "took over as the pool master";

/// Epochs in which more than one host took over: (epoch, hosts).
#[must_use]
pub fn masters_per_epoch(logs: &[(String, String)]) -> Vec<(u64, Vec<String>)> {
    let mut by_epoch: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for (host, text) in logs {
        for line in text.lines().filter(|l| l.contains(TOOK_OVER)) {
            let epoch = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("epoch="))
                .and_then(|e| e.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok());
            if let Some(e) = epoch {
                by_epoch.entry(e).or_default().insert(host.clone());
            }
        }
    }
    by_epoch
        .into_iter()
        .filter(|(_, h)| h.len() > 1)
        .map(|(e, h)| (e, h.into_iter().collect()))
        .collect()
}

/// One database change sent to the API: acknowledged (`Ok`) or not (an
/// error or no answer: it may or may not have happened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub vm: usize,
    /// `name_label` or `ha_restart_priority`.
    pub field: &'static str,
    pub value: String,
    pub acknowledged: bool,
}

/// Fields whose final value is none of the ones allowed: the last
/// acknowledged value, or a value sent after it without an acknowledgement.
/// `initial` gives each (vm, field)'s value before the run; `finals` what
/// the database holds at the end. Returns (vm, field, found, allowed).
#[must_use]
pub fn lost_changes(
    initial: &BTreeMap<(usize, &'static str), String>,
    changes: &[Change],
    finals: &BTreeMap<(usize, &'static str), String>,
) -> Vec<(usize, &'static str, String, Vec<String>)> {
    let mut allowed: BTreeMap<(usize, &'static str), Vec<String>> =
        initial.iter().map(|(k, v)| (*k, vec![v.clone()])).collect();
    for c in changes {
        let a = allowed.entry((c.vm, c.field)).or_default();
        if c.acknowledged {
            *a = vec![c.value.clone()];
        } else {
            a.push(c.value.clone());
        }
    }
    allowed
        .into_iter()
        .filter_map(|(k, a)| {
            let found = finals.get(&k).cloned().unwrap_or_default();
            (!a.contains(&found)).then_some((k.0, k.1, found, a))
        })
        .collect()
}

/// The double runs among the stamps.
#[must_use]
pub fn double_runs(log: &StampLog) -> Vec<Violation> {
    log.check(&CheckOptions {
        protected: BTreeSet::new(),
        max_down_ms: u64::MAX,
        span_ms: None,
    })
    .into_iter()
    .filter(|v| matches!(v, Violation::Overlap { .. }))
    .collect()
}

/// A power cut as the runner did it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The host's name (`host-<i>`, what stamps record).
    pub host: String,
    pub at_ms: u64,
    /// When it was powered on again.
    pub back_ms: u64,
}

/// A protected VM that ran on a cut host: how long until it ran again.
#[derive(Clone, Debug, PartialEq)]
pub struct Restart {
    pub vm: uuid::Uuid,
    pub host: String,
    pub cut_ms: u64,
    /// From the cut to its first stamp of a later boot; `None`: none.
    pub after_ms: Option<u64>,
}

/// For each cut and each VM in `protected` (a VM protected all through
/// the cut's window, by the caller's reckoning) whose boot on the cut host
/// was stamping at the cut (a stamp within `recent_ms` before it): the time
/// to its next boot's first stamp.
#[must_use]
pub fn restarts(
    log: &StampLog,
    cuts: &[Cut],
    protected: &dyn Fn(uuid::Uuid, u64) -> bool,
    recent_ms: u64,
) -> Vec<Restart> {
    let windows = log.windows();
    let mut out = Vec::new();
    for cut in cuts {
        for w in &windows {
            let was_running = w.host == cut.host
                && w.last_ms <= cut.at_ms + 1000
                && w.last_ms + recent_ms >= cut.at_ms;
            if !was_running || !protected(w.vm, cut.at_ms) {
                continue;
            }
            let next = windows
                .iter()
                .filter(|n| n.vm == w.vm && n.boot != w.boot && n.first_ms > cut.at_ms)
                .map(|n| n.first_ms)
                .min();
            out.push(Restart {
                vm: w.vm,
                host: cut.host.clone(),
                cut_ms: cut.at_ms,
                after_ms: next.map(|n| n - cut.at_ms),
            });
        }
    }
    out
}

/// Boots of an unprotected VM HA may not explain: more boots than starts
/// the campaign asked for. `boots` and `starts` by VM.
#[must_use]
pub fn unexplained_boots(
    unprotected: &[usize],
    boots: &BTreeMap<usize, usize>,
    starts: &BTreeMap<usize, usize>,
) -> Vec<(usize, usize, usize)> {
    unprotected
        .iter()
        .filter_map(|vm| {
            let b = boots.get(vm).copied().unwrap_or(0);
            let s = starts.get(vm).copied().unwrap_or(0);
            (b > s).then_some((*vm, b, s))
        })
        .collect()
}

/// One line of a VM's boots file: the host it booted on (`$XHA_HOST`, the
/// name stamps and [`Cut`]s use) and when (`$XHA_STAMP_T0_MS`, wall ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub host: String,
    pub at_ms: u64,
}

/// Reads a boots file's text (`HOST SPAWN_MS` a line; other lines skipped).
#[must_use]
pub fn parse_boots(text: &str) -> Vec<Boot> {
    text.lines()
        .filter_map(|l| {
            let (host, at) = l.trim().split_once(' ')?;
            Some(Boot {
                host: host.to_owned(),
                at_ms: at.trim().parse().ok()?,
            })
        })
        .collect()
}

/// A best-effort VM booted more often than HA may boot it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overstart {
    pub vm: usize,
    pub boots: usize,
    /// Host failures it suffered (a cut of the host its last boot was on).
    pub failures: usize,
    pub starts: usize,
    pub allowed: usize,
}

/// The best-effort rule. HA starts a best-effort VM again only when the
/// host it ran on failed (fenced or cut: it is never started while it
/// runs, and a best-effort VM that stops by itself stays stopped), and
/// then makes at most `attempts` attempts (`BEST_EFFORT_ATTEMPTS`, three,
/// until the liveset grows again: docs/restart-engine.md) — an attempt that
/// fails after its process started would show as a boot. So its boots are
/// at most the campaign's starts (the first start included) plus
/// `attempts` per host failure it suffered, a failure it suffered being a
/// [`Cut`] of the host of its latest boot before the cut. `best_effort`:
/// the VMs that were best-effort all through the run; `boots` and
/// `starts` by VM. That no boot ran beside another is the double-run
/// check's part.
#[must_use]
pub fn best_effort_overstarts(
    best_effort: &[usize],
    boots: &BTreeMap<usize, Vec<Boot>>,
    starts: &BTreeMap<usize, usize>,
    cuts: &[Cut],
    attempts: usize,
) -> Vec<Overstart> {
    best_effort
        .iter()
        .filter_map(|&vm| {
            let mut b = boots.get(&vm).cloned().unwrap_or_default();
            b.sort_by_key(|x| x.at_ms);
            let failures = cuts
                .iter()
                .filter(|c| {
                    b.iter()
                        .rev()
                        .find(|x| x.at_ms <= c.at_ms)
                        .is_some_and(|x| x.host == c.host)
                })
                .count();
            let starts = starts.get(&vm).copied().unwrap_or(0);
            let allowed = starts + attempts * failures;
            (b.len() > allowed).then_some(Overstart {
                vm,
                boots: b.len(),
                failures,
                starts,
                allowed,
            })
        })
        .collect()
}

/// What one seed's run found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub double_runs: Vec<String>,
    pub two_masters: Vec<String>,
    pub lost_changes: Vec<String>,
    pub unprotected_started: Vec<String>,
    /// Best-effort VMs booted more often than [`best_effort_overstarts`]
    /// allows.
    pub best_effort_overstarted: Vec<String>,
    /// Protected VMs not running at the end, every fault healed.
    pub down_at_end: Vec<String>,
    /// Restart times (ms) after power cuts, and the bound they are held to.
    pub restarts_ms: Vec<u64>,
    pub late_restarts: Vec<String>,
    pub bound_ms: u64,
    /// Hosts whose agent did not start on their first boot after a fault
    /// (reported: an availability problem, not a safety one).
    pub boot_failures: Vec<String>,
    /// Steps the runner could not do (an API error is recorded, not fatal).
    pub notes: Vec<String>,
}

impl Verdict {
    /// Whether a safety property failed (late restarts are reported only).
    #[must_use]
    pub fn failed(&self) -> bool {
        !(self.double_runs.is_empty()
            && self.two_masters.is_empty()
            && self.lost_changes.is_empty()
            && self.unprotected_started.is_empty()
            && self.best_effort_overstarted.is_empty()
            && self.down_at_end.is_empty())
    }

    /// One line: the figures and what failed.
    #[must_use]
    pub fn summary(&self) -> String {
        let max = self.restarts_ms.iter().max().copied();
        let mut sorted = self.restarts_ms.clone();
        sorted.sort_unstable();
        let median = sorted.get(sorted.len() / 2).copied();
        format!(
            "{} double_runs={} two_masters={} lost_changes={} unprotected_started={} best_effort_overstarted={} down_at_end={} restarts={} restart_median_ms={} restart_max_ms={} late(>{} ms)={} boot_failures={}",
            if self.failed() { "FAIL" } else { "ok" },
            self.double_runs.len(),
            self.two_masters.len(),
            self.lost_changes.len(),
            self.unprotected_started.len(),
            self.best_effort_overstarted.len(),
            self.down_at_end.len(),
            self.restarts_ms.len(),
            median.map_or("-".into(), |m| m.to_string()),
            max.map_or("-".into(), |m| m.to_string()),
            self.bound_ms,
            self.late_restarts.len(),
            self.boot_failures.len(),
        )
    }

    /// Every finding, one per line.
    #[must_use]
    pub fn details(&self) -> Vec<String> {
        let tag = |t: &str, v: &[String]| -> Vec<String> {
            v.iter().map(|s| format!("{t}: {s}")).collect()
        };
        [
            tag("double run", &self.double_runs),
            tag("two masters", &self.two_masters),
            tag("lost change", &self.lost_changes),
            tag("unprotected VM started by HA", &self.unprotected_started),
            tag(
                "best-effort VM started too often",
                &self.best_effort_overstarted,
            ),
            tag("protected VM down at the end", &self.down_at_end),
            tag("late restart", &self.late_restarts),
            tag("agent failed to boot", &self.boot_failures),
            tag("note", &self.notes),
        ]
        .concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xapi_vm::stamp::record::StampRecord;

    #[test]
    fn two_hosts_taking_over_in_one_epoch_are_found() {
        let line = |e: u64| {
            format!(
                "2026-01-01T00:00:00Z WARN xapi_ha::server::master_failover: {TOOK_OVER} (HA master failover) epoch={e} old_master=None"
            )
        };
        let logs = vec![
            ("host-1".to_owned(), format!("x\n{}\n", line(2))),
            ("host-2".to_owned(), line(3)),
            ("host-3".to_owned(), format!("{}\n{}", line(3), line(4))),
        ];
        assert_eq!(
            masters_per_epoch(&logs),
            vec![(3, vec!["host-2".to_owned(), "host-3".to_owned()])]
        );
        assert!(masters_per_epoch(&logs[..2]).is_empty());
    }

    #[test]
    fn a_change_is_lost_only_when_the_final_value_is_not_the_last_acknowledged_or_later() {
        let initial = BTreeMap::from([((0, "name_label"), "a".to_owned())]);
        let ch = |v: &str, ack| Change {
            vm: 0,
            field: "name_label",
            value: v.to_owned(),
            acknowledged: ack,
        };
        let changes = vec![ch("b", true), ch("c", false)];
        let finals = |v: &str| BTreeMap::from([((0, "name_label"), v.to_owned())]);
        assert!(lost_changes(&initial, &changes, &finals("b")).is_empty());
        assert!(lost_changes(&initial, &changes, &finals("c")).is_empty());
        assert_eq!(lost_changes(&initial, &changes, &finals("a")).len(), 1);
        assert!(lost_changes(&initial, &[], &finals("a")).is_empty());
    }

    fn stamp(vm: uuid::Uuid, host: &str, boot: uuid::Uuid, seq: u64, t: u64) -> StampRecord {
        StampRecord {
            vm,
            host: host.to_owned(),
            boot,
            seq,
            time_ms: t,
        }
    }

    #[test]
    fn overlapping_boots_are_double_runs_and_a_restart_is_timed_from_the_cut() {
        let vm = uuid::Uuid::from_u128(1);
        let (b1, b2) = (uuid::Uuid::from_u128(10), uuid::Uuid::from_u128(11));
        let mut log = StampLog::new();
        for i in 0..5 {
            log.add(stamp(vm, "host-2", b1, i, 1000 + i * 100));
        }
        for i in 0..5 {
            log.add(stamp(vm, "host-1", b2, i, 9000 + i * 100));
        }
        assert!(double_runs(&log).is_empty());
        let cuts = vec![Cut {
            host: "host-2".into(),
            at_ms: 1450,
            back_ms: 20_000,
        }];
        let r = restarts(&log, &cuts, &|_, _| true, 2000);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].after_ms, Some(9000 - 1450));
        assert!(restarts(&log, &cuts, &|_, _| false, 2000).is_empty());
        // The old boot writes on after the new one started: a double run.
        log.add(stamp(vm, "host-2", b1, 6, 9100));
        assert_eq!(double_runs(&log).len(), 1);
    }

    #[test]
    fn an_unprotected_vm_booted_more_often_than_started_is_reported() {
        let boots = BTreeMap::from([(3, 2), (4, 1)]);
        let starts = BTreeMap::from([(3, 1), (4, 1)]);
        assert_eq!(unexplained_boots(&[3, 4], &boots, &starts), vec![(3, 2, 1)]);
        assert!(unexplained_boots(&[4], &boots, &starts).is_empty());
    }

    #[test]
    fn a_best_effort_vm_boots_at_most_its_starts_plus_attempts_per_failure_it_suffered() {
        let boots_text = "host-1 1000\nhost-2 5000\ngarbage\nhost-2 6000\n";
        let parsed = parse_boots(boots_text);
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[1],
            Boot {
                host: "host-2".into(),
                at_ms: 5000
            }
        );
        let cut = |host: &str, at_ms| Cut {
            host: host.into(),
            at_ms,
            back_ms: u64::MAX,
        };
        let boots = BTreeMap::from([(2, parsed)]);
        let starts = BTreeMap::from([(2, 1)]);
        // host-1 failed under it: 1 + 1 boots allowed with one attempt,
        // 1 + 3 with three.
        let cuts = vec![cut("host-1", 3000)];
        assert_eq!(
            best_effort_overstarts(&[2], &boots, &starts, &cuts, 1),
            vec![Overstart {
                vm: 2,
                boots: 3,
                failures: 1,
                starts: 1,
                allowed: 2
            }]
        );
        assert!(best_effort_overstarts(&[2], &boots, &starts, &cuts, 3).is_empty());
        // A cut of a host it was not on, or before it booted there, is no
        // failure it suffered.
        let others = vec![cut("host-3", 3000), cut("host-2", 500)];
        assert_eq!(
            best_effort_overstarts(&[2], &boots, &starts, &others, 3)[0].failures,
            0
        );
        // Only the VMs asked about are checked.
        assert!(best_effort_overstarts(&[], &boots, &starts, &others, 3).is_empty());
    }
}
