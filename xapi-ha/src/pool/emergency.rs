//! Emergency mode (docs/operations.md, "Emergency runbook"): whether a host
//! answers only the emergency calls, and with which error it refuses the
//! others. Pure: the agent gathers the facts (its role, whether its
//! master answered its last probes, whether its HA daemon started) and
//! asks [`admit`] for each call.
//!
//! As xapi (`api_server.ml`, `datamodel.ml` `emergency_calls`): a host in
//! emergency mode answers the emergency calls only; every other call gets
//! the current emergency error, `HOST_STILL_BOOTING` by default (a member
//! that cannot reach its master), `HA_HOST_CANNOT_ACCESS_STATEFILE` or
//! `HA_HEARTBEAT_DAEMON_STARTUP_FAILED` when HA failed to start.
//! Host-to-host calls (ours, `pool::peer`, on a pool-secret session) stay
//! answered, as xapi's pool-internal emergency calls are: a new master must
//! be able to reach a member in emergency mode.

/// The calls a host in emergency mode answers (xenapi.md 3, "Emergency-
/// callable list"; the ones the agent implements are in docs/api.md).
pub const EMERGENCY_CALLS: &[&str] = &[
    "pool.emergency_reset_master",
    "pool.emergency_transition_to_master",
    "pool.ping_slave",
    "session.slave_local_login",
    "session.slave_local_login_with_password",
    "session.local_logout",
    "host.propose_new_master",
    "host.commit_new_master",
    "host.abort_new_master",
    "host.local_assert_healthy",
    "host.signal_networking_change",
    "host.local_management_reconfigure",
    "host.ha_xapi_healthcheck",
    "host.emergency_ha_disable",
    "host.management_disable",
    "host.get_system_status_capabilities",
    "host.is_in_emergency_mode",
    "host.shutdown_agent",
    "host.emergency_reset_server_certificate",
    "host.emergency_disable_tls_verification",
    "host.emergency_reenable_tls_verification",
    "host.emergency_clear_mandatory_guidance",
    "host.update_firewalld_service_status",
];

/// The default emergency error: a member that cannot reach its master.
pub const HOST_STILL_BOOTING: &str = "HOST_STILL_BOOTING";
/// HA is armed but the statefile cannot be reached.
pub const HA_HOST_CANNOT_ACCESS_STATEFILE: &str = "HA_HOST_CANNOT_ACCESS_STATEFILE";
/// HA is armed but its daemon is not running.
pub const HA_HEARTBEAT_DAEMON_STARTUP_FAILED: &str = "HA_HEARTBEAT_DAEMON_STARTUP_FAILED";

/// Why HA did not start on this host (it is armed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaFailure {
    /// The statefile is not reachable.
    StatefileUnreachable,
    /// The daemon is not running.
    DaemonNotRunning,
}

/// What the host knows about itself when a call arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Situation {
    /// It is a member (`pool.conf` says `slave:<address>`).
    pub member: bool,
    /// As a member: its master did not answer its recent probes.
    pub master_unreachable: bool,
    /// HA is armed here and failed to start.
    pub ha_failure: Option<HaFailure>,
}

/// After `pool.emergency_reset_master`: the address this member must
/// record as its own on its (new) master, when the copy of the database it
/// holds (`recorded`) differs from the address it serves on now (`mine`,
/// its configuration): a host whose management address changed (xapi's
/// slave records its own address at its database sync). `None` when they
/// agree or this host does not know its own address.
#[must_use]
pub fn address_to_record<'a>(recorded: &str, mine: &'a str) -> Option<&'a str> {
    (!mine.is_empty() && recorded != mine).then_some(mine)
}

/// The emergency error this host answers non-emergency calls with, or
/// `None` when it is not in emergency mode. An HA failure names itself
/// first (it is what the operator must repair, with
/// `host-emergency-ha-disable`); a master never considers itself cut off
/// from its pool.
#[must_use]
pub fn emergency_error(s: &Situation) -> Option<&'static str> {
    match s.ha_failure {
        Some(HaFailure::StatefileUnreachable) => Some(HA_HOST_CANNOT_ACCESS_STATEFILE),
        Some(HaFailure::DaemonNotRunning) => Some(HA_HEARTBEAT_DAEMON_STARTUP_FAILED),
        None if s.member && s.master_unreachable => Some(HOST_STILL_BOOTING),
        None => None,
    }
}

/// How a call is made, as far as emergency mode cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Another host of the pool (a pool-secret login, or a host-to-host
    /// call on such a session).
    Peer,
    /// Anyone else.
    Client,
}

/// Whether `method` is answered in situation `s`: `Err(code)` is the
/// emergency error to answer with.
pub fn admit(method: &str, caller: Caller, s: &Situation) -> Result<(), &'static str> {
    match emergency_error(s) {
        None => Ok(()),
        Some(_) if caller == Caller::Peer => Ok(()),
        Some(_) if EMERGENCY_CALLS.contains(&method) => Ok(()),
        Some(code) => Err(code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMBER_CUT_OFF: Situation = Situation {
        member: true,
        master_unreachable: true,
        ha_failure: None,
    };

    #[test]
    fn emergency_error_table() {
        use HaFailure::*;
        // (member, master unreachable, HA failure) -> error
        let table: &[(bool, bool, Option<HaFailure>, Option<&str>)] = &[
            (false, false, None, None),
            // A master does not probe anyone: "unreachable" cannot apply.
            (false, true, None, None),
            (true, false, None, None),
            (true, true, None, Some(HOST_STILL_BOOTING)),
            (
                false,
                false,
                Some(StatefileUnreachable),
                Some(HA_HOST_CANNOT_ACCESS_STATEFILE),
            ),
            (
                true,
                true,
                Some(StatefileUnreachable),
                Some(HA_HOST_CANNOT_ACCESS_STATEFILE),
            ),
            (
                true,
                false,
                Some(DaemonNotRunning),
                Some(HA_HEARTBEAT_DAEMON_STARTUP_FAILED),
            ),
            (
                false,
                false,
                Some(DaemonNotRunning),
                Some(HA_HEARTBEAT_DAEMON_STARTUP_FAILED),
            ),
        ];
        for &(member, master_unreachable, ha_failure, want) in table {
            let s = Situation {
                member,
                master_unreachable,
                ha_failure,
            };
            assert_eq!(emergency_error(&s), want, "{s:?}");
        }
    }

    #[test]
    fn admission_table() {
        let normal = Situation {
            member: true,
            master_unreachable: false,
            ha_failure: None,
        };
        let ha_failed = Situation {
            member: false,
            master_unreachable: false,
            ha_failure: Some(HaFailure::DaemonNotRunning),
        };
        // (method, caller, situation) -> answer
        let table: &[(&str, Caller, Situation, Result<(), &str>)] = &[
            ("VM.get_all", Caller::Client, normal, Ok(())),
            (
                "VM.get_all",
                Caller::Client,
                MEMBER_CUT_OFF,
                Err(HOST_STILL_BOOTING),
            ),
            (
                "session.login_with_password",
                Caller::Client,
                MEMBER_CUT_OFF,
                Err(HOST_STILL_BOOTING),
            ),
            (
                "session.login_with_password",
                Caller::Peer,
                MEMBER_CUT_OFF,
                Ok(()),
            ),
            ("pool.peer_sync", Caller::Peer, MEMBER_CUT_OFF, Ok(())),
            (
                "session.slave_local_login_with_password",
                Caller::Client,
                MEMBER_CUT_OFF,
                Ok(()),
            ),
            (
                "host.is_in_emergency_mode",
                Caller::Client,
                MEMBER_CUT_OFF,
                Ok(()),
            ),
            (
                "pool.emergency_transition_to_master",
                Caller::Client,
                MEMBER_CUT_OFF,
                Ok(()),
            ),
            (
                "host.emergency_ha_disable",
                Caller::Client,
                ha_failed,
                Ok(()),
            ),
            (
                "pool.disable_ha",
                Caller::Client,
                ha_failed,
                Err(HA_HEARTBEAT_DAEMON_STARTUP_FAILED),
            ),
            (
                "pool.recover_slaves",
                Caller::Client,
                MEMBER_CUT_OFF,
                Err(HOST_STILL_BOOTING),
            ),
        ];
        for (method, caller, s, want) in table {
            assert_eq!(
                admit(method, *caller, s),
                *want,
                "{method} {caller:?} {s:?}"
            );
        }
    }

    #[test]
    fn the_list_is_the_references() {
        assert_eq!(EMERGENCY_CALLS.len(), 23);
        for m in EMERGENCY_CALLS {
            assert!(
                m.starts_with("host.") || m.starts_with("pool.") || m.starts_with("session."),
                "{m}"
            );
        }
    }

    #[test]
    fn a_changed_address_is_recorded_on_the_master() {
        assert_eq!(
            address_to_record("10.0.0.3", "10.0.0.103"),
            Some("10.0.0.103")
        );
        assert_eq!(address_to_record("", "10.0.0.103"), Some("10.0.0.103"));
        assert_eq!(address_to_record("10.0.0.3", "10.0.0.3"), None);
        assert_eq!(address_to_record("10.0.0.3", ""), None);
    }
}
