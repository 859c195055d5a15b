//! The daemon's named exit codes.
//!
//! The numbers are XenServer's (`xha`'s documented exit codes), so scripts
//! written against that daemon read ours the same way. Gaps (5, 16) are
//! unused there too.

use std::fmt;

/// Why `xhad` exited. `code()` is the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// Clean exit (a `stop` request, or a command that completed).
    Success,
    /// A command-line parameter is wrong.
    InvalidParameter,
    /// An operating-system call failed (socket, thread, memory).
    SystemError,
    /// A transient error: retrying later may succeed.
    TransientError,
    /// The watchdog could not be opened or armed (a failed kick once armed
    /// is a fence, not an exit).
    WatchdogError,
    /// The configuration file (or a file it names, such as the pool
    /// secret) could not be read.
    CannotReadConfig,
    /// The configuration file was read but is wrong.
    InvalidConfig,
    /// Fewer than a majority of the statefiles can be opened (a minority
    /// may be missing at start-up).
    CannotAccessStatefile,
    /// The statefile does not hold a valid header.
    InvalidStatefile,
    /// The statefile belongs to another HA enablement (pool generation).
    GenerationMismatch,
    /// The pool state in the statefile forbids this operation.
    InvalidPoolState,
    /// The host did not join the liveset within the boot-join timeout.
    BootJoinTimeout,
    /// The existing liveset refused this host.
    CannotJoinLiveset,
    /// A command needed a running daemon and none answered.
    DaemonNotPresent,
    /// A daemon is already running on this host.
    DaemonPresent,
    /// The local host's recorded state forbids starting (for example a
    /// fence decision recorded before a restart: the daemon must not re-arm).
    InvalidLocalHostState,
    /// Boot is blocked because this host is marked excluded.
    BootBlockedByExcluded,
    /// This host is excluded (left cleanly) and cannot act as a member.
    SetExcluded,
}

impl ExitCode {
    /// Every code, in numeric order.
    pub const ALL: [ExitCode; 18] = [
        ExitCode::Success,
        ExitCode::InvalidParameter,
        ExitCode::SystemError,
        ExitCode::TransientError,
        ExitCode::WatchdogError,
        ExitCode::CannotReadConfig,
        ExitCode::InvalidConfig,
        ExitCode::CannotAccessStatefile,
        ExitCode::InvalidStatefile,
        ExitCode::GenerationMismatch,
        ExitCode::InvalidPoolState,
        ExitCode::BootJoinTimeout,
        ExitCode::CannotJoinLiveset,
        ExitCode::DaemonNotPresent,
        ExitCode::DaemonPresent,
        ExitCode::InvalidLocalHostState,
        ExitCode::BootBlockedByExcluded,
        ExitCode::SetExcluded,
    ];

    /// The process exit status.
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::InvalidParameter => 1,
            ExitCode::SystemError => 2,
            ExitCode::TransientError => 3,
            ExitCode::WatchdogError => 4,
            ExitCode::CannotReadConfig => 6,
            ExitCode::InvalidConfig => 7,
            ExitCode::CannotAccessStatefile => 8,
            ExitCode::InvalidStatefile => 9,
            ExitCode::GenerationMismatch => 10,
            ExitCode::InvalidPoolState => 11,
            ExitCode::BootJoinTimeout => 12,
            ExitCode::CannotJoinLiveset => 13,
            ExitCode::DaemonNotPresent => 14,
            ExitCode::DaemonPresent => 15,
            ExitCode::InvalidLocalHostState => 17,
            ExitCode::BootBlockedByExcluded => 18,
            ExitCode::SetExcluded => 19,
        }
    }

    /// The stable name used in logs and docs (`invalid-config`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::InvalidParameter => "invalid-parameter",
            ExitCode::SystemError => "system-error",
            ExitCode::TransientError => "transient-error",
            ExitCode::WatchdogError => "watchdog-error",
            ExitCode::CannotReadConfig => "cannot-read-config",
            ExitCode::InvalidConfig => "invalid-config",
            ExitCode::CannotAccessStatefile => "cannot-access-statefile",
            ExitCode::InvalidStatefile => "invalid-statefile",
            ExitCode::GenerationMismatch => "generation-mismatch",
            ExitCode::InvalidPoolState => "invalid-pool-state",
            ExitCode::BootJoinTimeout => "boot-join-timeout",
            ExitCode::CannotJoinLiveset => "cannot-join-liveset",
            ExitCode::DaemonNotPresent => "daemon-not-present",
            ExitCode::DaemonPresent => "daemon-present",
            ExitCode::InvalidLocalHostState => "invalid-local-host-state",
            ExitCode::BootBlockedByExcluded => "boot-blocked-by-excluded",
            ExitCode::SetExcluded => "set-excluded",
        }
    }

    /// One sentence for operators.
    #[must_use]
    pub fn description(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::InvalidParameter => "a command-line parameter is invalid",
            ExitCode::SystemError => "an operating-system call failed",
            ExitCode::TransientError => "a transient error occurred; retry later",
            ExitCode::WatchdogError => "the watchdog could not be opened or armed",
            ExitCode::CannotReadConfig => "the configuration (or a file it names) cannot be read",
            ExitCode::InvalidConfig => "the configuration is invalid",
            ExitCode::CannotAccessStatefile => {
                "fewer than a majority of the statefiles can be accessed"
            }
            ExitCode::InvalidStatefile => "the statefile is not valid",
            ExitCode::GenerationMismatch => {
                "the statefile belongs to another HA enablement (generation UUID mismatch)"
            }
            ExitCode::InvalidPoolState => "the pool state forbids this operation",
            ExitCode::BootJoinTimeout => "the host did not join the liveset in time",
            ExitCode::CannotJoinLiveset => "the host cannot join the existing liveset",
            ExitCode::DaemonNotPresent => "no daemon is running",
            ExitCode::DaemonPresent => "a daemon is already running",
            ExitCode::InvalidLocalHostState => "the local host's recorded state forbids this",
            ExitCode::BootBlockedByExcluded => "boot is blocked because the host is excluded",
            ExitCode::SetExcluded => "the host is excluded",
        }
    }

    /// The code with this exit status, if any.
    #[must_use]
    pub fn from_code(code: i32) -> Option<ExitCode> {
        ExitCode::ALL
            .into_iter()
            .find(|c| i32::from(c.code()) == code)
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code(),
            self.name(),
            self.description()
        )
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_reference_table() {
        let table: Vec<(u8, &str)> = ExitCode::ALL.iter().map(|c| (c.code(), c.name())).collect();
        assert_eq!(
            table,
            vec![
                (0, "success"),
                (1, "invalid-parameter"),
                (2, "system-error"),
                (3, "transient-error"),
                (4, "watchdog-error"),
                (6, "cannot-read-config"),
                (7, "invalid-config"),
                (8, "cannot-access-statefile"),
                (9, "invalid-statefile"),
                (10, "generation-mismatch"),
                (11, "invalid-pool-state"),
                (12, "boot-join-timeout"),
                (13, "cannot-join-liveset"),
                (14, "daemon-not-present"),
                (15, "daemon-present"),
                (17, "invalid-local-host-state"),
                (18, "boot-blocked-by-excluded"),
                (19, "set-excluded"),
            ]
        );
    }

    #[test]
    fn from_code_inverts_code() {
        for c in ExitCode::ALL {
            assert_eq!(ExitCode::from_code(i32::from(c.code())), Some(c));
        }
        assert_eq!(ExitCode::from_code(5), None);
        assert_eq!(ExitCode::from_code(16), None);
        assert_eq!(ExitCode::from_code(-1), None);
        assert_eq!(
            ExitCode::InvalidConfig.to_string(),
            "7 (invalid-config): the configuration is invalid"
        );
    }
}
