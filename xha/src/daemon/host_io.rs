//! What `xhad`'s driver runs on: the daemon's clock, heartbeat sender,
//! statefile workers and watchdog behind `xha_driver`'s traits, and where the
//! core's decisions go (logs, replies, the fence). The simulator implements
//! the same traits over its simulated pool (`tests/src/sim/cluster/host_env.rs`).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use xha_driver::{Clock, Host, Network, Op, Refused, Storage, Watchdog, WatchdogFailed};

use super::config::{Config, FenceAction};
use super::control::{ErrorBody, LivesetReport, WarningKind, WarningReport};
use super::control_server::{CommandReply, ReportPublisher};
use super::exit::ExitCode;
use super::ratelimit::{self, RateLimit};
use super::report::{self, Measurements};
use super::run::Fatal;
use super::statefile_io::StatefileWorkers;
use super::watchdog::{self, KickOutcome};
use super::{fence, fence_record};
use crate::core::{
    Action, ControlError, FenceReason, Instant, Node, RequestId, Slot, StatefileIndex,
};

/// The daemon's monotonic clock in the core's time base.
#[derive(Clone, Copy, Debug)]
pub(super) struct DaemonClock {
    pub(super) origin: std::time::Instant,
}

impl DaemonClock {
    pub(super) fn now(self) -> Instant {
        Instant::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
    pub(super) fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin + Duration::from_nanos(at.as_nanos()))
    }
}

/// Who waits for the core's next `Reply`.
pub(super) enum ReplySink {
    Control(oneshot::Sender<CommandReply>),
    Signal(&'static str),
}

/// Everything of the daemon but the core (which the driver owns).
pub(super) struct DaemonHost {
    pub(super) config: Config,
    pub(super) boot_id: String,
    pub(super) clock: DaemonClock,
    pub(super) watchdog: Box<dyn watchdog::Watchdog>,
    /// Why the last kick failed: the fence record says it.
    pub(super) watchdog_error: Option<String>,
    /// `None`: the statefile could not be opened (yet).
    pub(super) workers: Vec<Option<StatefileWorkers>>,
    pub(super) measurements: Measurements,
    pub(super) replies: VecDeque<ReplySink>,
    /// The state the sender task puts in every heartbeat.
    pub(super) state_tx: watch::Sender<Option<Slot>>,
    pub(super) publisher: ReportPublisher,
    pub(super) last_key: Option<LivesetReport>,
    /// The report may have changed since it was last published: set by the
    /// core's events (`StatusChanged`, liveset and master changes,
    /// warnings, stop) and by the daemon's own measurements.
    pub(super) changed: bool,
    /// Repeated warnings: each condition logged at most once per T.
    pub(super) limits: RateLimit,
    pub(super) stopped: bool,
}

impl Clock for DaemonHost {
    fn now(&self) -> Instant {
        self.clock.now()
    }
}

impl Network for DaemonHost {
    fn send_heartbeat(&mut self, slot: Slot) {
        self.state_tx.send_replace(Some(slot));
    }
}

impl Storage for DaemonHost {
    fn submit(&mut self, index: StatefileIndex, request: RequestId, op: Op) -> Result<(), Refused> {
        let statefile = index.0;
        if let Op::WritePool(block) = &op {
            tracing::info!(
                statefile,
                master = ?block.master,
                epoch = block.master_epoch,
                state = ?block.state,
                "writing the pool block"
            );
        }
        let Some(w) = self.workers.get_mut(statefile) else {
            return Err(Refused(format!("internal: no statefile {statefile}")));
        };
        // Not logged: this fails on every interval, and start-up said why.
        let Some(w) = w else {
            return Err(Refused(format!(
                "statefile {statefile} could not be opened at start-up"
            )));
        };
        let refused = w.submit(request, op).map_err(|e| Refused(e.to_string()));
        if let Err(e) = &refused {
            self.warn_limited(&format!("refused/{statefile}"), || e.0.clone());
        }
        refused
    }

    fn abandon(&mut self, statefile: StatefileIndex, _request: RequestId) {
        let deadline_ms = self.config.timeouts.io_deadline.as_millis();
        self.warn_limited(&format!("read deadline/{statefile}"), || {
            format!("statefile {statefile}: read missed its deadline of {deadline_ms} ms")
        });
    }
}

impl Watchdog for DaemonHost {
    fn arm(&mut self, now: Instant, until: Instant) -> Result<(), WatchdogFailed> {
        let report = watchdog::arm_until(self.watchdog.as_mut(), now, until)
            .map_err(|e| WatchdogFailed(e.to_string()))?;
        for w in &report.warnings {
            tracing::warn!("watchdog: {w}");
            self.measurements
                .add_standing(WarningKind::Watchdog, w.clone());
            self.changed = true;
        }
        tracing::info!(
            backend = self.watchdog.backend(),
            timeout_ms = until.saturating_since(now).as_millis(),
            "watchdog armed: this host is now fenced if it stops renewing its lease"
        );
        Ok(())
    }

    fn kick(&mut self, now: Instant, until: Instant) -> Result<(), WatchdogFailed> {
        let outcome = match watchdog::kick_until(self.watchdog.as_mut(), now, until) {
            Ok(o) => o,
            Err(e) => {
                // The core fences (it is armed, or it would not kick).
                let text = format!(
                    "the watchdog ({}) failed while armed: {e}",
                    self.watchdog.backend()
                );
                self.watchdog_error = Some(text.clone());
                return Err(WatchdogFailed(text));
            }
        };
        match outcome {
            KickOutcome::Kicked => {}
            KickOutcome::TooLate { late_by } => self.warn_limited("kick late", || {
                format!(
                    "watchdog kick dropped: executed {} ms after its deadline (CPU starvation?)",
                    late_by.as_millis()
                )
            }),
            KickOutcome::TooShort { left } => self.warn_limited("kick short", || {
                format!(
                    "watchdog kick dropped: only {} ms left, below what the backend counts",
                    left.as_millis()
                )
            }),
        }
        Ok(())
    }

    fn disarm(&mut self) {
        match self.watchdog.disarm() {
            Ok(()) => tracing::info!("watchdog disarmed: this host no longer fences"),
            Err(e) => tracing::error!("watchdog disarm failed: {e}"),
        }
    }
}

impl Host for DaemonHost {
    type Stop = Fatal;

    fn arm_failed(&mut self, e: WatchdogFailed) -> Fatal {
        Fatal::new(ExitCode::WatchdogError, format!("arming: {e}"))
    }

    fn decided(&mut self, node: &Node, action: Action) -> Result<(), Fatal> {
        match action {
            Action::Fence { reason } => return Err(self.fence(node, reason)),
            Action::LivesetChanged { liveset } => {
                let uuids: Vec<String> = liveset
                    .iter()
                    .map(|i| format!("{i}:{}", short(&self.config.hosts[i].uuid)))
                    .collect();
                tracing::info!(
                    "liveset changed to [{}] ({} hosts): {}",
                    uuids.join(" "),
                    uuids.len(),
                    node.status().text
                );
            }
            Action::MasterChanged { is_master, epoch } => {
                if is_master {
                    tracing::info!(epoch, "this host now holds the master lock");
                } else {
                    tracing::info!(epoch, "this host gave up the master lock");
                }
            }
            Action::Reply(r) => self.reply(r),
            Action::Warning(w) => {
                let now = self.clock.now();
                let hosts: Vec<uuid::Uuid> = self.config.hosts.iter().map(|h| h.uuid).collect();
                let report = WarningReport::from_core(&w, &hosts);
                let key = format!(
                    "warning/{:?}/{:?}/{:?}",
                    report.kind, report.host, report.statefile
                );
                let kind = report.kind;
                self.warn_limited(&key, || format!("{}: {}", kind_name(kind), report.message));
                self.measurements.warning(now, &w, &hosts);
            }
            Action::Stopped => self.stopped = true,
            Action::StatusChanged => {}
            other => tracing::error!("internal: the driver passed {other:?} on"),
        }
        self.changed = true;
        Ok(())
    }
}

impl DaemonHost {
    /// Log `message` as a warning unless the same condition (`key`) was
    /// logged less than T ago; the next line that is logged says how many
    /// were not.
    pub(super) fn warn_limited(&mut self, key: &str, message: impl FnOnce() -> String) {
        let now = self.clock.now();
        match self.limits.check(key, now) {
            Some(n) => tracing::warn!(
                "{}{}",
                message(),
                ratelimit::suffix(n, self.config.timeouts.base)
            ),
            None => tracing::debug!(key, "repeated warning not logged"),
        }
    }

    fn reply(&mut self, r: Result<(), ControlError>) {
        match self.replies.pop_front() {
            Some(ReplySink::Control(tx)) => {
                if let Err(e) = &r {
                    tracing::info!("control request refused: {e}");
                }
                let _ = tx.send(r.map(|()| None).map_err(|e| ErrorBody::from(&e)));
            }
            Some(ReplySink::Signal(name)) => match r {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    "{name} refused: {e}; fencing stays armed (use set-excluded or disarm-fencing, then stop)"
                ),
            },
            None => tracing::error!("internal: a reply from the core with nobody waiting"),
        }
    }

    /// The liveset report: the core's status and this host's measurements.
    pub(super) fn report(&self, node: &Node) -> LivesetReport {
        let status = report::status_of(node, self.stopped);
        self.measurements
            .report(node, self.clock.now(), status, self.watchdog.backend())
    }

    /// Publish the report to watchers if an event said it may have changed
    /// and it did (ages and latencies aside: `report::watch_key`).
    pub(super) fn publish(&mut self, node: &Node) {
        if std::mem::take(&mut self.changed) {
            self.publish_now(node);
        }
    }

    /// Publish the report if it changed, whatever the events said (at a
    /// fence and at exit).
    pub(super) fn publish_now(&mut self, node: &Node) {
        let r = self.report(node);
        let key = report::watch_key(&r);
        if self.last_key.as_ref() != Some(&key) {
            self.publisher.publish(r);
            self.last_key = Some(key);
        }
    }

    /// Log, record and carry out a fence decision. Returns only if the
    /// fence action failed; then kicks have stopped and the watchdog resets
    /// the host. With `kill-host`, a watchdog that can kill the host (the
    /// supervisor) is asked first, unless the watchdog is what was lost.
    fn fence(&mut self, node: &Node, reason: FenceReason) -> Fatal {
        let text = match reason {
            FenceReason::LeaseExpired => {
                "the lease ran out: no statefile write (nor, with the statefile lost, a network round) renewed it in time".into()
            }
            FenceReason::FenceRequested { by } => format!(
                "host {} (index {by}) is in the surviving partition and this host is not",
                self.config
                    .hosts
                    .get(by.0)
                    .map_or_else(|| "?".into(), |h| h.uuid.to_string())
            ),
            FenceReason::WatchdogLost => self
                .watchdog_error
                .clone()
                .unwrap_or_else(|| "the watchdog failed while armed".into()),
        };
        tracing::error!("FENCING this host: {text}");
        self.publish_now(node);
        if let Err(e) = fence_record::write(&self.config.state_dir, &self.boot_id, &text) {
            tracing::error!("cannot write the fence record: {e}");
        }
        let via_watchdog = reason != FenceReason::WatchdogLost;
        if via_watchdog && self.config.fence_action == FenceAction::KillHost {
            match self.watchdog.fence_now() {
                Some(Ok(())) => {
                    // The supervisor kills this process group, this process
                    // included; do not act any further meanwhile.
                    std::thread::sleep(Duration::from_secs(5));
                    tracing::error!("the supervisor did not kill this host; killing it directly");
                }
                Some(Err(e)) => tracing::error!("supervisor fence failed: {e}; killing directly"),
                None => {}
            }
        }
        let e = fence::execute(self.config.fence_action);
        Fatal::new(
            ExitCode::SystemError,
            format!("fence action failed: {e}; the watchdog will reset the host"),
        )
    }
}

/// The kebab-case name of a warning kind, as in the liveset report.
fn kind_name(kind: WarningKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{kind:?}"))
}

fn short(u: &uuid::Uuid) -> String {
    u.to_string().chars().take(8).collect()
}
