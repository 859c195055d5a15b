//! Signals to a host's process group, its daemon's and supervisor's exits,
//! and polling for a condition (online, master) with a deadline.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use uuid::Uuid;
use xha_control::{LivesetReport, Status};

use crate::process::{self, Proc, log_tail};
use crate::{LOG_TAIL_LINES, Lab, LabError, POLL, Signal};

impl Lab {
    /// Send `signal` to host `i`'s whole process group: SIGKILL is a host
    /// crash, SIGSTOP a freeze, SIGCONT a thaw.
    pub fn kill_host(&self, i: usize, signal: Signal) -> Result<(), LabError> {
        let host = self.host(i)?;
        let gone = LabError::HostGone {
            host: i,
            uuid: host.info.uuid,
        };
        let Some(daemon) = host.daemon.as_ref() else {
            return Err(gone);
        };
        match daemon.signal_group(signal) {
            Ok(true) => {
                tracing::info!(host = i, signal = signal.as_str(), "signalled host");
                Ok(())
            }
            Ok(false) => Err(gone),
            Err(errno) => Err(LabError::Signal {
                host: i,
                signal: signal.as_str(),
                errno,
            }),
        }
    }

    /// Host `i`'s daemon exit status, waiting up to `timeout` (zero: just
    /// look). `None`: still running.
    #[must_use]
    pub fn daemon_exit(&self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.hosts.get(i)?.daemon.as_ref()?.wait_timeout(timeout)
    }

    /// Host `i`'s supervisor exit status, waiting up to `timeout` (zero:
    /// just look). Status 3 means it fenced the host, 0 a clean stop.
    #[must_use]
    pub fn supervisor_exit(&self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        self.hosts
            .get(i)?
            .supervisor
            .as_ref()?
            .wait_timeout(timeout)
    }

    /// An error if the daemon or supervisor of any of `hosts` has exited.
    pub fn ensure_running(&self, step: &str, hosts: &[usize]) -> Result<(), LabError> {
        for &i in hosts {
            let host = self.host(i)?;
            let uuid = host.info.uuid;
            if let Some(status) = host.daemon.as_ref().and_then(Proc::status) {
                return Err(LabError::DaemonExited {
                    step: step.to_owned(),
                    host: i,
                    uuid,
                    status: process::describe(status),
                    log_tail: log_tail(&host.info.daemon_log, LOG_TAIL_LINES),
                });
            }
            if let Some(status) = host.supervisor.as_ref().and_then(Proc::status) {
                return Err(LabError::SupervisorExited {
                    step: step.to_owned(),
                    host: i,
                    uuid,
                    status: process::describe(status),
                    log_tail: log_tail(&host.info.supervisor_log, LOG_TAIL_LINES),
                });
            }
        }
        Ok(())
    }

    /// `Err(Cancelled)` once the cancel flag is up.
    pub fn check_cancel(&self, step: &str) -> Result<(), LabError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
        {
            return Err(LabError::Cancelled {
                step: step.to_owned(),
            });
        }
        Ok(())
    }

    // ----- waits -----

    /// Poll `probe` until it returns `Some`, the deadline passes (then the
    /// error carries `detail()`), a host of `hosts` exits or the cancel
    /// flag rises.
    pub fn poll_until<T>(
        &self,
        step: &str,
        hosts: &[usize],
        timeout: Duration,
        mut probe: impl FnMut(&Lab) -> Option<T>,
        mut detail: impl FnMut(&Lab) -> String,
    ) -> Result<T, LabError> {
        let start = Instant::now();
        loop {
            self.check_cancel(step)?;
            self.ensure_running(step, hosts)?;
            if let Some(t) = probe(self) {
                return Ok(t);
            }
            if start.elapsed() >= timeout {
                return Err(LabError::Timeout {
                    step: step.to_owned(),
                    waited: timeout,
                    detail: detail(self),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Wait until every one of `hosts` reports `online` with exactly
    /// `hosts` in its liveset. Returns their reports, in the order given.
    pub fn wait_online(
        &self,
        hosts: &[usize],
        timeout: Duration,
    ) -> Result<Vec<LivesetReport>, LabError> {
        let want: Vec<Uuid> = {
            let mut v: Vec<Uuid> = hosts.iter().map(|&i| self.hosts[i].info.uuid).collect();
            v.sort();
            v
        };
        let last: Mutex<Vec<String>> = Mutex::new(vec![String::new(); hosts.len()]);
        let probe = |lab: &Lab| {
            let mut reports = Vec::with_capacity(hosts.len());
            let mut done = true;
            let mut notes = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (k, &i) in hosts.iter().enumerate() {
                match lab.query(i) {
                    Ok(r) => {
                        let mut live = r.liveset.clone();
                        live.sort();
                        notes[k] = format!(
                            "host {i}: {:?}, liveset of {} host(s)",
                            r.status,
                            r.liveset.len()
                        );
                        done &= r.status == Status::Online && live == want;
                        reports.push(r);
                    }
                    Err(e) => {
                        notes[k] = format!("host {i}: {e}");
                        done = false;
                    }
                }
            }
            done.then_some(reports)
        };
        let detail = |_: &Lab| {
            last.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .join("; ")
        };
        self.poll_until(
            "wait for the hosts to be online",
            hosts,
            timeout,
            probe,
            detail,
        )
    }

    /// [`Lab::wait_online`] for every host.
    pub fn wait_all_online(&self, timeout: Duration) -> Result<Vec<LivesetReport>, LabError> {
        self.wait_online(&self.all(), timeout)
    }

    /// The master that every one of `hosts` reports, if they agree on one
    /// that is in each of their livesets.
    #[must_use]
    pub fn master_among(&self, hosts: &[usize]) -> Option<usize> {
        let mut agreed: Option<Uuid> = None;
        for &i in hosts {
            let r = self.query(i).ok()?;
            let m = r.master?;
            if !r.liveset.contains(&m) || agreed.is_some_and(|a| a != m) {
                return None;
            }
            agreed = Some(m);
        }
        self.host_of(agreed?)
    }

    /// [`Lab::master_among`] every host whose daemon runs.
    #[must_use]
    pub fn master(&self) -> Option<usize> {
        let running: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| self.pgid(i).is_some())
            .collect();
        self.master_among(&running)
    }

    /// Wait until `hosts` agree on a master.
    pub fn wait_master(&self, hosts: &[usize], timeout: Duration) -> Result<usize, LabError> {
        self.poll_until(
            "wait for a master",
            hosts,
            timeout,
            |lab| lab.master_among(hosts),
            |lab| {
                hosts
                    .iter()
                    .map(|&i| match lab.query(i) {
                        Ok(r) => format!("host {i} knows master {:?}", r.master),
                        Err(e) => format!("host {i}: {e}"),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        )
    }
}
