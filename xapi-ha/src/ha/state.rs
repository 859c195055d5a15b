//! `VM.ha_state`: what HA is doing with a VM, in the words operators of
//! Proxmox-style HA know. The state diagram is in `docs/restart-engine.md`.

use std::fmt;

/// The HA state of one VM (the field `VM.ha_state`, ours).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HaState {
    /// Running on a live host, protected or best-effort.
    Started,
    /// HA asked a host to start it; waiting for the answer.
    Starting,
    /// A shutdown through the API is in progress.
    Stopping,
    /// Off on request (API shutdown, or a best-effort VM that stopped).
    Stopped,
    /// Its host is lost and not yet proven fenced: nothing may start it.
    Fence,
    /// Its host is fenced (or its start failed): waiting to be restarted,
    /// for its turn, for its retry instant or for room.
    Recovery,
    /// Its host is in maintenance: no failover until it leaves maintenance.
    Freeze,
    /// HA gave up (a best-effort VM after its attempts): needs an operator.
    Error,
    /// Unprotected (empty `ha_restart_priority`): HA never acts on it.
    Ignored,
    /// Protection was just set (or it stopped from inside): it will be
    /// started in its turn.
    Queued,
    /// Moving to another host.
    Migrate,
    /// HA is off on the pool.
    Disabled,
}

impl HaState {
    /// Every state, in declaration order.
    pub const ALL: [HaState; 12] = [
        HaState::Started,
        HaState::Starting,
        HaState::Stopping,
        HaState::Stopped,
        HaState::Fence,
        HaState::Recovery,
        HaState::Freeze,
        HaState::Error,
        HaState::Ignored,
        HaState::Queued,
        HaState::Migrate,
        HaState::Disabled,
    ];

    /// The value stored in `VM.ha_state`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            HaState::Started => "started",
            HaState::Starting => "starting",
            HaState::Stopping => "stopping",
            HaState::Stopped => "stopped",
            HaState::Fence => "fence",
            HaState::Recovery => "recovery",
            HaState::Freeze => "freeze",
            HaState::Error => "error",
            HaState::Ignored => "ignored",
            HaState::Queued => "queued",
            HaState::Migrate => "migrate",
            HaState::Disabled => "disabled",
        }
    }

    /// The state stored as `text`.
    #[must_use]
    pub fn parse(text: &str) -> Option<HaState> {
        HaState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The values `VM.ha_state` may hold, for the schema's check: `""` (HA
/// never looked at the VM yet) and every state.
pub const HA_STATE_VALUES: &[&str] = &[
    "", "started", "starting", "stopping", "stopped", "fence", "recovery", "freeze", "error",
    "ignored", "queued", "migrate", "disabled",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_schema_list() {
        for s in HaState::ALL {
            assert_eq!(HaState::parse(s.as_str()), Some(s));
        }
        let names: Vec<&str> = HaState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, HA_STATE_VALUES[1..]);
        assert_eq!(HaState::parse("running"), None);
    }
}
