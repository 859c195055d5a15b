//! Operator warnings as reported to clients, mapped from the core's.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kinds of operator warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WarningKind {
    /// No majority of the statefiles is reachable.
    StatefileLost,
    /// A statefile I/O is approaching its deadline.
    StatefileApproachingTimeout,
    /// A peer's heartbeats are approaching the timeout.
    HeartbeatApproachingTimeout,
    /// A slot or the pool block failed to decode.
    StatefileCorrupted,
    /// The daemon runs without real-time priority or locked memory.
    NotRealtime,
    /// The watchdog backend is `none`, or the device ignored the timeout.
    Watchdog,
    /// A fence request was refused as not corroborated (forged or disputed).
    FenceRequestRefused,
    /// A peer does not hear this host while this host hears it.
    NotHeardBy,
    /// A member with fencing disarmed is neither heard nor writing its slot.
    SilentWhileDisarmed,
    /// A peer's packets are all dropped as replayed.
    ReplayDropping,
    /// Another condition (see the message).
    Other,
}

/// One warning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningReport {
    pub kind: WarningKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefile: Option<usize>,
}

impl WarningReport {
    /// The report of one of the core's warnings; `hosts` maps indexes to
    /// UUIDs (sorted host list).
    #[must_use]
    pub fn from_core(w: &xha_core::Warning, hosts: &[Uuid]) -> WarningReport {
        use xha_core::Warning;
        let uuid = |i: xha_core::HostIndex| hosts.get(i.0).copied();
        // The core's warnings grow with its features: one without a kind of
        // its own is reported as `other` with its debug text.
        #[allow(unreachable_patterns)]
        match w {
            Warning::StatefileLatency { statefile, latency } => WarningReport {
                kind: WarningKind::StatefileApproachingTimeout,
                message: format!("statefile {statefile}: I/O took {} ms", latency.as_millis()),
                host: None,
                statefile: Some(statefile.0),
            },
            Warning::HeartbeatLatency { host, silence } => WarningReport {
                kind: WarningKind::HeartbeatApproachingTimeout,
                message: format!("host {host}: no heartbeat for {} ms", silence.as_millis()),
                host: uuid(*host),
                statefile: None,
            },
            Warning::StatefileLost => WarningReport {
                kind: WarningKind::StatefileLost,
                message: "a majority of the statefiles cannot be reached".into(),
                host: None,
                statefile: None,
            },
            Warning::StatefileCorrupt { statefile, host } => WarningReport {
                kind: WarningKind::StatefileCorrupted,
                message: match host {
                    Some(h) => format!("statefile {statefile}: the slot of host {h} is corrupt"),
                    None => format!("statefile {statefile}: the pool block is corrupt"),
                },
                host: host.and_then(uuid),
                statefile: Some(statefile.0),
            },
            Warning::FenceRequestRefused { by, why } => WarningReport {
                kind: WarningKind::FenceRequestRefused,
                message: format!(
                    "fence request from host {by} refused (not corroborated: {}); it is counted in fence_requests_refused",
                    why.text()
                ),
                host: uuid(*by),
                statefile: None,
            },
            Warning::NotHeardBy { host, lasted } => WarningReport {
                kind: WarningKind::NotHeardBy,
                message: format!(
                    "host {host} has not heard this host for {} ms while this host hears it (a one-way link, or host {host} drops this host's packets as replayed: see its query)",
                    lasted.as_millis()
                ),
                host: uuid(*host),
                statefile: None,
            },
            Warning::SilentWhileDisarmed { host } => WarningReport {
                kind: WarningKind::SilentWhileDisarmed,
                message: format!(
                    "host {host} silent while fencing disarmed: not heard, slot unchanged; it is never removed from the liveset"
                ),
                host: uuid(*host),
                statefile: None,
            },
            other => WarningReport {
                kind: WarningKind::Other,
                message: format!("{other:?}"),
                host: None,
                statefile: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn core_warnings_map_to_reports() {
        use xha_core::Warning;
        let hosts = [Uuid::from_u128(10), Uuid::from_u128(11)];
        let w = WarningReport::from_core(
            &Warning::HeartbeatLatency {
                host: xha_core::HostIndex(1),
                silence: Duration::from_millis(1500),
            },
            &hosts,
        );
        assert_eq!(w.kind, WarningKind::HeartbeatApproachingTimeout);
        assert_eq!(w.host, Some(hosts[1]));
        assert_eq!(w.message, "host 1: no heartbeat for 1500 ms");
        let w = WarningReport::from_core(
            &Warning::StatefileCorrupt {
                statefile: xha_core::StatefileIndex(0),
                host: None,
            },
            &hosts,
        );
        assert_eq!(
            (w.kind, w.statefile, w.host),
            (WarningKind::StatefileCorrupted, Some(0), None)
        );
        assert_eq!(
            WarningReport::from_core(&Warning::StatefileLost, &hosts).kind,
            WarningKind::StatefileLost
        );
    }
}
