//! The liveset report: the answer to `query-liveset` and the payload of
//! `watch` events, with the per-host, latency and timeout figures in it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::warning::WarningReport;
use crate::DropCounters;
use xha_core::{HostStatus, Timeouts};

/// The daemon's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Joining: not yet in the liveset.
    Starting,
    /// In the liveset.
    Online,
    /// This host fenced (the process is about to die).
    Fenced,
    /// Stopping after a `stop` request.
    Stopping,
}

/// Latency figures in milliseconds (`None` until measured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub last_ms: Option<f64>,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

impl Latency {
    /// Record one measurement.
    pub fn record(&mut self, ms: f64) {
        self.last_ms = Some(ms);
        self.min_ms = Some(self.min_ms.map_or(ms, |m| m.min(ms)));
        self.max_ms = Some(self.max_ms.map_or(ms, |m| m.max(ms)));
    }
}

/// One host in the liveset report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    pub uuid: Uuid,
    pub index: usize,
    pub address: SocketAddr,
    /// In this host's current liveset.
    pub live: bool,
    /// Holds the master lock.
    pub master: bool,
    /// Heard on the network within the heartbeat timeout.
    pub heard: bool,
    /// Its slot seen advancing within the statefile timeout.
    pub seen: bool,
    /// It reported reaching the statefile.
    pub statefile_access: bool,
    /// Its slot failed to decode on the last read.
    pub statefile_corrupted: bool,
    pub excluded: bool,
    pub starting: bool,
    /// Its last state says its fencing is disarmed.
    #[serde(default)]
    pub fencing_disarmed: bool,
    /// Fencing disarmed and neither heard nor writing its slot: it is never
    /// removed from the liveset.
    #[serde(default)]
    pub silent_disarmed: bool,
    /// Since its last accepted heartbeat, on this host's clock.
    pub last_heartbeat_age_ms: Option<u64>,
    /// Since its slot last changed, on this host's clock.
    pub last_statefile_update_age_ms: Option<u64>,
}

/// The derived timeouts, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsReport {
    pub base_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub heartbeat_timeout_ms: u64,
    pub statefile_interval_ms: u64,
    pub statefile_timeout_ms: u64,
    pub io_deadline_ms: u64,
    pub latency_warning_ms: u64,
    pub lease_ms: u64,
    pub watchdog_min_ms: u64,
    pub kick_interval_ms: u64,
    pub settle_ms: u64,
    pub peers_may_act_ms: u64,
}

fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&Timeouts> for TimeoutsReport {
    fn from(t: &Timeouts) -> Self {
        TimeoutsReport {
            base_ms: ms(t.base),
            heartbeat_interval_ms: ms(t.heartbeat_interval),
            heartbeat_timeout_ms: ms(t.heartbeat_timeout),
            statefile_interval_ms: ms(t.statefile_interval),
            statefile_timeout_ms: ms(t.statefile_timeout),
            io_deadline_ms: ms(t.io_deadline),
            latency_warning_ms: ms(t.latency_warning),
            lease_ms: ms(t.lease),
            watchdog_min_ms: ms(t.watchdog_min),
            kick_interval_ms: ms(t.kick_interval),
            settle_ms: ms(t.settle),
            peers_may_act_ms: ms(t.peers_may_act),
        }
    }
}
impl HostReport {
    /// One host's report: the core's view of it plus what the daemon
    /// measures (its address, whether its slot decoded, ages on this host's
    /// clock).
    #[must_use]
    pub fn from_core(
        status: &HostStatus,
        address: SocketAddr,
        statefile_corrupted: bool,
        last_heartbeat_age_ms: Option<u64>,
        last_statefile_update_age_ms: Option<u64>,
    ) -> HostReport {
        HostReport {
            uuid: status.uuid,
            index: status.index.0,
            address,
            live: status.live,
            master: status.master,
            heard: status.heard,
            seen: status.seen,
            statefile_access: status.statefile_access,
            statefile_corrupted,
            excluded: status.excluded,
            starting: status.starting,
            fencing_disarmed: status.fencing_disarmed,
            silent_disarmed: status.silent_disarmed,
            last_heartbeat_age_ms,
            last_statefile_update_age_ms,
        }
    }
}

/// The answer to `query-liveset`, and the payload of `watch` events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LivesetReport {
    pub status: Status,
    pub pool_generation: Uuid,
    pub local_host: Uuid,
    pub local_index: usize,
    /// Whether this host fences on a fault (false after `disarm-fencing`).
    pub fencing_armed: bool,
    /// The watchdog backend (`linux`, `supervisor`, `none`).
    pub watchdog: String,
    /// The master (lock holder) this host knows, if any.
    pub master: Option<Uuid>,
    pub master_epoch: u64,
    /// UUIDs of the hosts in this host's liveset, by index.
    pub liveset: Vec<Uuid>,
    pub hosts: Vec<HostReport>,
    pub statefile_latency: Latency,
    pub heartbeat_latency: Latency,
    pub dropped_packets: DropCounters,
    /// Fence requests this host refused as not corroborated by its own
    /// views (forged, or disputed); each is also logged with its sender.
    #[serde(default)]
    pub fence_requests_refused: u64,
    pub timeouts: TimeoutsReport,
    pub warnings: Vec<WarningReport>,
}

/// A full report for the tests of the protocol's parts.
#[cfg(test)]
pub(super) fn example_report() -> LivesetReport {
    use super::warning::WarningKind;
    let t = Timeouts::derive(std::time::Duration::from_secs(10)).unwrap();
    let mut lat = Latency::default();
    lat.record(2.5);
    lat.record(1.0);
    LivesetReport {
        status: Status::Online,
        pool_generation: Uuid::from_u128(1),
        local_host: Uuid::from_u128(2),
        local_index: 0,
        fencing_armed: true,
        watchdog: "supervisor".into(),
        master: Some(Uuid::from_u128(2)),
        master_epoch: 3,
        liveset: vec![Uuid::from_u128(2)],
        hosts: vec![HostReport {
            uuid: Uuid::from_u128(2),
            index: 0,
            address: "127.0.0.1:694".parse().unwrap(),
            live: true,
            master: true,
            heard: true,
            seen: true,
            statefile_access: true,
            statefile_corrupted: false,
            excluded: false,
            starting: false,
            fencing_disarmed: false,
            silent_disarmed: false,
            last_heartbeat_age_ms: None,
            last_statefile_update_age_ms: Some(120),
        }],
        statefile_latency: lat,
        heartbeat_latency: Latency::default(),
        dropped_packets: DropCounters {
            forged: 2,
            ..DropCounters::default()
        },
        fence_requests_refused: 0,
        timeouts: TimeoutsReport::from(&t),
        warnings: vec![WarningReport {
            kind: WarningKind::StatefileApproachingTimeout,
            message: "statefile 0 latency 4100 ms".into(),
            host: None,
            statefile: Some(0),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn core_host_status_maps_to_report() {
        let hosts = [Uuid::from_u128(10), Uuid::from_u128(11)];
        // A real node's view of a host (built through the core's API, so
        // this test follows the core's fields).
        let cfg = xha_core::Config {
            pool_generation: Uuid::from_u128(1),
            hosts: hosts.to_vec(),
            local: 0,
            timeouts: Timeouts::derive(Duration::from_secs(10)).unwrap(),
            statefiles: 1,
            seed: 1,
            fencing_armed: true,
            master_candidate: false,
            master_lease: None,
        };
        let node = xha_core::Node::new(cfg, xha_core::Instant::from_nanos(0)).unwrap();
        let status = node.status().hosts[1].clone();
        let r = HostReport::from_core(
            &status,
            "10.0.0.2:694".parse().unwrap(),
            false,
            Some(40),
            None,
        );
        assert_eq!(
            (r.index, r.uuid, r.last_heartbeat_age_ms),
            (1, hosts[1], Some(40))
        );
        assert_eq!(
            (r.live, r.heard, r.seen, r.master),
            (status.live, status.heard, status.seen, status.master)
        );
    }

    #[test]
    fn latency_tracks_last_min_max() {
        let mut l = Latency::default();
        assert_eq!(l.last_ms, None);
        for v in [3.0, 1.0, 7.0, 2.0] {
            l.record(v);
        }
        assert_eq!(
            (l.last_ms, l.min_ms, l.max_ms),
            (Some(2.0), Some(1.0), Some(7.0))
        );
    }
}
