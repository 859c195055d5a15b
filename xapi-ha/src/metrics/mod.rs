//! Prometheus metrics (docs/metrics.md): one [`Metrics`] per agent (no
//! globals: several agents share a test process), with typed handles that
//! the code where an event happens calls, and the exposition of a scrape.
//!
//! Two kinds of series:
//! - event series, counted when the event happens: API requests, restarts,
//!   the restart latency, fences, mail send failures, and the latencies of
//!   this host's `xhad` reports ([`Metrics::observe_report`]);
//! - state series, computed at scrape time from the pool database and the
//!   last `xhad` report ([`pool_series`]); no timer updates them.
//!
//! [`Metrics::exposition`] is pure: the same database, report and counters
//! give the same text.

pub mod pool_series;

use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use xha_control::LivesetReport;

use crate::db::Database;
use crate::model::RestartPriority;

/// The content type of [`Metrics::exposition`] (OpenMetrics text, which
/// Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The prefix of every series.
pub const PREFIX: &str = "xha";

/// Labels of `xha_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// The XenAPI method, or `unknown` for a name not in the method table
    /// (so a client cannot grow the series without bound).
    pub method: String,
    /// `success`, or the failure's error code.
    pub status: String,
}

/// Labels of `xha_restarts_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    /// `restart` or `best-effort`.
    pub priority: String,
    /// [`RestartOutcome::as_str`].
    pub outcome: String,
}

/// Labels of `xha_fences_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FenceLabels {
    /// [`FenceRule::as_str`].
    pub rule: String,
}

/// Labels of `xha_mail_send_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MailLabels {
    /// `transient` (kept queued, retried) or `permanent` (dropped).
    pub kind: String,
}

/// How one restart attempt of the restart engine ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartOutcome {
    /// The VM runs again.
    Started,
    /// The attempt failed; the engine retries later.
    Failed,
    /// The engine gave up on the VM (no host can take it).
    GaveUp,
}

impl RestartOutcome {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            RestartOutcome::Started => "started",
            RestartOutcome::Failed => "failed",
            RestartOutcome::GaveUp => "gave_up",
        }
    }
}

/// Why a host was fenced, as far as this agent can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceRule {
    /// A host left the liveset that `xhad` reports: the survivors' rule
    /// is that a host outside the liveset has fenced itself.
    LeftLiveset,
    /// This host's `xhad` reported that it fenced this host.
    Local,
}

impl FenceRule {
    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            FenceRule::LeftLiveset => "left_liveset",
            FenceRule::Local => "local",
        }
    }
}

/// The label value of a restart priority.
#[must_use]
pub fn priority_label(p: RestartPriority) -> &'static str {
    match p {
        RestartPriority::Restart => "restart",
        RestartPriority::BestEffort => "best-effort",
        RestartPriority::Unprotected => "unprotected",
    }
}

/// An agent's metrics: the event handles and the last `xhad` report.
pub struct Metrics {
    api_requests: Family<ApiLabels, Counter>,
    restarts: Family<RestartLabels, Counter>,
    restart_latency: Histogram,
    fences: Family<FenceLabels, Counter>,
    mail_send_failures: Family<MailLabels, Counter>,
    heartbeat_latency: Histogram,
    statefile_latency: Histogram,
    last_report: Mutex<Option<LivesetReport>>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            api_requests: Family::default(),
            restarts: Family::default(),
            // 1 s .. about 17 min: a restart waits for the fence and the
            // start; the planner's time is small beside them.
            restart_latency: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            fences: Family::default(),
            mail_send_failures: Family::default(),
            // 0.5 ms .. about 4 s: a heartbeat round trip, a statefile
            // O_DIRECT write and read.
            heartbeat_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            statefile_latency: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            last_report: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// One API request answered: `status` is `None` on success, else the
    /// failure's code. Methods not in the method table count as `unknown`.
    pub fn api_request(&self, method: &str, status: Option<&str>) {
        let method = if crate::api::methods::resolve(method).is_some()
            || method.starts_with("session.")
            || method == "system.listMethods"
        {
            method.to_owned()
        } else {
            "unknown".to_owned()
        };
        let status = status.unwrap_or("success").to_owned();
        self.api_requests
            .get_or_create(&ApiLabels { method, status })
            .inc();
    }

    /// One restart attempt of the restart engine ended with `outcome`.
    pub fn restart(&self, priority: RestartPriority, outcome: RestartOutcome) {
        self.restarts
            .get_or_create(&RestartLabels {
                priority: priority_label(priority).to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }

    /// A VM runs again `seconds` after its host was found dead.
    pub fn restart_latency(&self, seconds: f64) {
        self.restart_latency.observe(seconds);
    }

    /// A fence seen by this agent.
    pub fn fence(&self, rule: FenceRule) {
        self.fences
            .get_or_create(&FenceLabels {
                rule: rule.as_str().to_owned(),
            })
            .inc();
    }

    /// A mail was not sent: `permanent` if the server refused it for good.
    pub fn mail_send_failure(&self, permanent: bool) {
        let kind = if permanent { "permanent" } else { "transient" };
        self.mail_send_failures
            .get_or_create(&MailLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// A report of this host's `xhad` (from `watch`): observes its last
    /// latencies, counts the fences it shows against the previous report,
    /// and keeps it for the scrape (drop counters, per-host ages).
    pub fn observe_report(&self, report: &LivesetReport) {
        let mut last = self
            .last_report
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let previous = last.as_ref();
        if previous.map(|p| p.heartbeat_latency) != Some(report.heartbeat_latency)
            && let Some(ms) = report.heartbeat_latency.last_ms
        {
            self.heartbeat_latency.observe(ms / 1000.0);
        }
        if previous.map(|p| p.statefile_latency) != Some(report.statefile_latency)
            && let Some(ms) = report.statefile_latency.last_ms
        {
            self.statefile_latency.observe(ms / 1000.0);
        }
        for rule in fences_between(previous, report) {
            self.fence(rule);
        }
        *last = Some(report.clone());
    }

    /// The last report of this host's `xhad`, if any.
    #[must_use]
    pub fn last_report(&self) -> Option<LivesetReport> {
        self.last_report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The text of a scrape: the event series and the state series of
    /// `db` and the last report.
    #[must_use]
    pub fn exposition(&self, db: &Database) -> String {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register(
            "api_requests",
            "API requests answered, by method and status (success or the error code)",
            self.api_requests.clone(),
        );
        registry.register(
            "restarts",
            "Restart attempts of the restart engine, by priority and outcome",
            self.restarts.clone(),
        );
        registry.register_with_unit(
            "restart_latency",
            "Time from a host found dead to its VM running again",
            Unit::Seconds,
            self.restart_latency.clone(),
        );
        registry.register(
            "fences",
            "Fences seen by this agent, by rule",
            self.fences.clone(),
        );
        registry.register(
            "mail_send_failures",
            "Alert mails not sent, by kind (transient: retried; permanent: dropped)",
            self.mail_send_failures.clone(),
        );
        registry.register_with_unit(
            "xhad_heartbeat_latency",
            "Heartbeat latency reported by this host's xhad",
            Unit::Seconds,
            self.heartbeat_latency.clone(),
        );
        registry.register_with_unit(
            "xhad_statefile_latency",
            "Statefile latency reported by this host's xhad",
            Unit::Seconds,
            self.statefile_latency.clone(),
        );
        let report = self.last_report();
        pool_series::register(&mut registry, db, report.as_ref());
        let mut text = String::new();
        if let Err(e) = encode(&mut text, &registry) {
            // Writing to a String does not fail; should the encoder, the
            // scrape shows it rather than a half text.
            tracing::error!(error = %e, "encoding the metrics failed");
            return String::from("# EOF\n");
        }
        text
    }
}

/// The fences a new report shows against the previous one: each host that
/// was live and is not any more, and this host if it fenced.
#[must_use]
pub fn fences_between(previous: Option<&LivesetReport>, report: &LivesetReport) -> Vec<FenceRule> {
    use xha_control::Status;
    let mut out = Vec::new();
    if let Some(p) = previous {
        if p.pool_generation == report.pool_generation {
            out.extend(
                p.liveset
                    .iter()
                    .filter(|h| !report.liveset.contains(h) && **h != report.local_host)
                    .map(|_| FenceRule::LeftLiveset),
            );
        }
        if report.status == Status::Fenced && p.status != Status::Fenced {
            out.push(FenceRule::Local);
        }
    } else if report.status == Status::Fenced {
        out.push(FenceRule::Local);
    }
    out
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod fixture;
