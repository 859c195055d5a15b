//! Applying a fault to the simulated pool.

use xha::core::{ControlRequest, Input};

use super::super::checker::Life;
use super::super::fault::{Control, Fault};
use super::super::storage::PathMode;
use super::super::time::{MILLISECOND, secs};
use super::{Cluster, Event, Pending};

impl Cluster {
    pub(super) fn apply_fault(&mut self, fault: Fault) {
        self.trace
            .record(self.now, None, format!("FAULT {fault:?}"));
        match fault {
            Fault::Crash(h) => self.kill(h, Life::Crashed),
            Fault::Freeze(h) => {
                if self.hosts[h].life == Life::Running {
                    self.hosts[h].life = Life::Frozen;
                    self.checker.master_belief(self.now, h, None);
                }
            }
            Fault::Thaw(h) => {
                if self.hosts[h].life == Life::Frozen {
                    self.hosts[h].life = Life::Running;
                    let inbox = std::mem::take(&mut self.hosts[h].inbox);
                    // Timers first: a daemon waking up sees its clock jumped.
                    self.deliver(h, Pending::Timers);
                    for pending in inbox {
                        self.deliver(h, pending);
                    }
                }
            }
            Fault::Restart(h) => {
                if self.hosts[h].life.is_dead() {
                    self.boot(h);
                }
            }
            Fault::Isolate(h) => self.net.isolate(h),
            Fault::Partition(groups) => self.net.partition(&groups),
            Fault::OneWay { from, to, up } => self.net.set_one_way(from, to, up),
            Fault::HealNetwork => self.net.heal(),
            Fault::NetQuality {
                loss_ppm,
                dup_ppm,
                delay_min,
                delay_max,
            } => self
                .net
                .set_all_quality(loss_ppm, dup_ppm, (delay_min, delay_max)),
            Fault::Storage { host, sf, mode } => self.set_path_mode(host, sf, mode),
            Fault::StorageLatency { host, sf, min, max } => {
                let p = &mut self.hosts[host].paths[sf];
                p.latency_min = min;
                p.latency_max = max.max(min);
            }
            Fault::TornWrites { ppm } => {
                for host in &mut self.hosts {
                    for p in &mut host.paths {
                        p.torn_ppm = ppm;
                    }
                }
            }
            Fault::HealStorage => {
                for h in 0..self.hosts.len() {
                    for sf in 0..self.config.statefiles {
                        let p = &mut self.hosts[h].paths[sf];
                        p.latency_min = MILLISECOND / 2;
                        p.latency_max = 5 * MILLISECOND;
                        p.torn_ppm = 0;
                        self.set_path_mode(h, sf, PathMode::Healthy);
                    }
                }
            }
            Fault::Control { host, request } => {
                let req = match request {
                    Control::ProposeMaster(b) => {
                        if self.hosts[host].life.is_up() {
                            self.hosts[host].declined_master = !b;
                        }
                        ControlRequest::ProposeMaster(b)
                    }
                    Control::DisarmFencing => ControlRequest::DisarmFencing,
                    Control::SetExcluded => ControlRequest::SetExcluded,
                    Control::ClearExcluded => ControlRequest::ClearExcluded,
                    Control::Stop => ControlRequest::Stop,
                };
                self.deliver(host, Pending::Input(Input::Control(req)));
            }
            Fault::WatchdogLost(h) => {
                // The backend is gone: it never fires, and the next kick
                // fails (the driver feeds `Input::WatchdogLost`).
                let host = &mut self.hosts[h];
                if host.life.is_up() {
                    host.watchdog_lost = true;
                    host.watchdog = None;
                }
            }
        }
    }

    fn set_path_mode(&mut self, h: usize, sf: usize, mode: PathMode) {
        let resumed = self.hosts[h].paths[sf].set_mode(mode, self.now, &mut self.rng);
        for (at, op, epoch) in resumed {
            self.queue.push(
                at,
                Event::IoDone {
                    host: h,
                    sf,
                    op,
                    epoch,
                },
            );
        }
    }

    /// A readable failure report: the violations, the recent trace, and
    /// how to replay.
    #[must_use]
    pub fn report(&self, replay: &str) -> String {
        let mut s = String::new();
        for v in self.violations() {
            s.push_str(&format!("{v}\n"));
        }
        s.push_str(&format!(
            "--- last events before {:.6} s (seed {}):\n",
            secs(self.now),
            self.config.seed
        ));
        s.push_str(&self.trace.render_tail());
        s.push_str(&format!("replay: {replay}\n"));
        s
    }
}
