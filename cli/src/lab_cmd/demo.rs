//! The demo's steps: wait for the pool, kill a non-master host, and measure
//! when the survivors detect it, when it is fenced and when every survivor's
//! liveset excludes it.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use uuid::Uuid;
use xha_control::LivesetReport;
use xha_lab::{Lab, LabError, Signal, describe_status};

use super::{Failed, LabArgs, Progress, Summary, at, print_table, secs};

pub(super) fn demo(lab: &Lab, opts: &LabArgs, progress: &Progress) -> Result<Summary, Failed> {
    let t = opts.timeout_s;
    let all = lab.all();
    progress.line(&format!(
        "lab: started {} xhad daemons, each with its xha-supervisor; waiting for all to be online",
        all.len()
    ));
    let reports = lab
        .wait_all_online(Duration::from_secs(5 * t + 30))
        .map_err(at("wait for all hosts online"))?;
    let online_after = lab.started_at().elapsed();
    let master = lab
        .wait_master(&all, Duration::from_secs(3 * t + 30))
        .map_err(at("wait for a master"))?;
    let table_source = lab.query(master).unwrap_or_else(|_| reports[0].clone());
    progress.line(&format!(
        "lab: all {} hosts online after {:.1} s; master is host {master} ({})",
        all.len(),
        online_after.as_secs_f64(),
        lab.uuid(master)
    ));
    print_table(progress, &table_source);

    // The victim: the highest-numbered host that is not the master.
    let victim = all
        .iter()
        .rev()
        .copied()
        .find(|&i| i != master)
        .ok_or_else(|| Failed {
            step: "pick a host to kill",
            error: LabError::Spec("no host other than the master".into()),
        })?;
    let survivors: Vec<usize> = all.iter().copied().filter(|&i| i != victim).collect();
    let mut streams = Vec::new();
    for &s in &survivors {
        streams.push((s, lab.watch(s).map_err(at("watch the survivors"))?));
    }
    let victim_uuid = lab.uuid(victim);
    let pgid = lab.pgid(victim).unwrap_or_default();
    progress.line(&format!(
        "lab: killing host {victim} ({victim_uuid}): SIGKILL to its process group {pgid}"
    ));
    let fault = Instant::now();
    lab.kill_host(victim, Signal::SIGKILL)
        .map_err(at("kill a non-master host"))?;

    let observed = observe(lab, progress, victim, &survivors, &streams, fault)?;

    // Every survivor still online, with exactly the survivors in its liveset.
    lab.wait_online(&survivors, Duration::from_secs(t))
        .map_err(at("check the survivors"))?;
    let fenced: Vec<Uuid> = all
        .iter()
        .copied()
        .filter(|&i| {
            lab.supervisor_exit(i, Duration::ZERO)
                .and_then(|s| s.code())
                == Some(3)
        })
        .map(|i| lab.uuid(i))
        .collect();
    if fenced != [victim_uuid] {
        return Err(Failed {
            step: "check the fence",
            error: LabError::Spec(format!(
                "expected only host {victim} ({victim_uuid}) fenced, got {fenced:?}"
            )),
        });
    }
    Ok(Summary {
        hosts: all.len(),
        timeout_s: t,
        killed: victim_uuid,
        master: lab.uuid(master),
        online_after,
        detected_after: observed.detected,
        fenced_after: Some(observed.fenced),
        shrink_after: observed.shrink,
        survivors: survivors.iter().map(|&i| lab.uuid(i)).collect(),
        fenced,
    })
}

struct Observed {
    detected: Option<Duration>,
    fenced: Duration,
    shrink: Duration,
}

/// After the kill: read the survivors' reports as they arrive and the
/// victim's supervisor, until every survivor's liveset excludes the victim
/// and the supervisor has fenced it.
fn observe(
    lab: &Lab,
    progress: &Progress,
    victim: usize,
    survivors: &[usize],
    streams: &[(usize, Receiver<(Instant, LivesetReport)>)],
    fault: Instant,
) -> Result<Observed, Failed> {
    let t = lab.timeout_s();
    let bound = Duration::from_secs(3 * t);
    let victim_uuid = lab.uuid(victim);
    let mut detected: Option<Duration> = None;
    let mut fenced: Option<Duration> = None;
    // Per survivor: since when its liveset excludes the victim.
    let mut excluded_since: HashMap<usize, Option<Instant>> =
        survivors.iter().map(|&s| (s, None)).collect();
    let mut shrink: Option<Duration> = None;
    loop {
        let step = if fenced.is_none() {
            "wait for the fence"
        } else {
            "wait for the smaller liveset"
        };
        lab.check_cancel(step).map_err(at(step))?;
        lab.ensure_running(step, survivors).map_err(at(step))?;
        for (s, rx) in streams {
            while let Ok((when, report)) = rx.try_recv() {
                if when < fault {
                    continue;
                }
                let seen = report.hosts.iter().find(|h| h.uuid == victim_uuid);
                if detected.is_none()
                    && let Some(h) = seen
                    && (!h.heard || !h.seen || !h.live)
                {
                    let d = when - fault;
                    detected = Some(d);
                    let what = if !h.heard {
                        "no longer hears it"
                    } else if !h.seen {
                        "no longer sees its statefile slot advance"
                    } else {
                        "dropped it from its liveset"
                    };
                    progress.line(&format!("  +{:6.2} s  detected: host {s} {what}", secs(d)));
                }
                let entry = excluded_since.entry(*s).or_default();
                if report.liveset.contains(&victim_uuid) {
                    *entry = None;
                } else if entry.is_none() {
                    *entry = Some(when);
                }
            }
        }
        if fenced.is_none()
            && let Some(status) = lab.supervisor_exit(victim, Duration::ZERO)
        {
            let d = fault.elapsed();
            if status.code() != Some(3) {
                return Err(Failed {
                    step: "wait for the fence",
                    error: LabError::Spec(format!(
                        "host {victim}'s xha-supervisor ended with {}, not 3 (fenced); its log:\n{}",
                        describe_status(status),
                        lab.supervisor_log(victim)
                    )),
                });
            }
            let log = lab.supervisor_log(victim);
            let line = log
                .lines()
                .rev()
                .find(|l| l.contains("FENCED"))
                .map(|l| l.find("FENCED").map_or(l, |i| &l[i..]).to_owned())
                .unwrap_or_default();
            progress.line(&format!(
                "  +{:6.2} s  fenced: host {victim}'s supervisor exited with status 3: {line}",
                secs(d)
            ));
            fenced = Some(d);
        }
        if shrink.is_none() && excluded_since.values().all(Option::is_some) {
            let last = excluded_since
                .values()
                .flatten()
                .max()
                .copied()
                .unwrap_or(fault);
            let d = last - fault;
            progress.line(&format!(
                "  +{:6.2} s  liveset shrank: every survivor's liveset excludes host {victim} ({} host{} left)",
                secs(d),
                survivors.len(),
                if survivors.len() == 1 { "" } else { "s" }
            ));
            shrink = Some(d);
        }
        if let (Some(fenced), Some(shrink)) = (fenced, shrink) {
            return Ok(Observed {
                detected,
                fenced,
                shrink,
            });
        }
        if fault.elapsed() > bound {
            let waiting: Vec<String> = excluded_since
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(s, _)| format!("host {s} still lists host {victim}"))
                .chain(
                    fenced
                        .is_none()
                        .then(|| format!("host {victim}'s supervisor has not exited")),
                )
                .collect();
            return Err(Failed {
                step,
                error: LabError::Timeout {
                    step: step.to_owned(),
                    waited: bound,
                    detail: waiting.join("; "),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
