//! Sessions: the table of logged-in sessions (pure: time is passed in) and
//! the user file with argon2 password hashes (`users`).
//!
//! Sessions live in the agent's memory, as xapi keeps them outside the
//! replicated state that matters: after an agent restart a client gets
//! `SESSION_INVALID` and logs in again (the Python SDK does so by itself).

pub mod users;

use std::collections::HashMap;
use std::time::Duration;

/// Idle sessions are destroyed after this long (xapi's
/// `inactive_session_timeout`).
pub const IDLE_EXPIRY: Duration = Duration::from_secs(24 * 3600);

/// Most sessions open at once; the oldest idle one is dropped beyond it, so
/// a client that logs in in a loop cannot grow the table without bound.
pub const MAX_SESSIONS: usize = 10_000;

/// Whether a session was made by `login_with_password` (pool-wide) or
/// `slave_local_login_with_password` (this host only, usable on a member
/// and in emergencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A normal session.
    Pool,
    /// A host-local emergency session.
    Local,
}

/// One open session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who logged in.
    pub user: String,
    /// How.
    pub kind: Kind,
    /// When it was last used, on the agent's monotonic clock.
    pub last_active: Duration,
}

/// Why a session is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Unknown, logged out or expired (`SESSION_INVALID [ref]`).
    #[error("SESSION_INVALID {0}")]
    Invalid(String),
}

/// The open sessions, keyed by their reference (`OpaqueRef:<random uuid>`).
#[derive(Debug, Default)]
pub struct Table {
    sessions: HashMap<String, Session>,
}

impl Table {
    /// Records a new session `reference` for `user` at `now`.
    pub fn open(&mut self, reference: String, user: &str, kind: Kind, now: Duration) {
        self.expire(now);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_active)
                .map(|(r, _)| r.clone())
        {
            self.sessions.remove(&oldest);
        }
        self.sessions.insert(
            reference,
            Session {
                user: user.to_owned(),
                kind,
                last_active: now,
            },
        );
        assert!(self.sessions.len() <= MAX_SESSIONS);
    }

    /// The session `reference`, refreshed at `now`, if it is open and not
    /// idle longer than [`IDLE_EXPIRY`].
    pub fn check(&mut self, reference: &str, now: Duration) -> Result<Session, SessionError> {
        let invalid = || SessionError::Invalid(reference.to_owned());
        let s = self.sessions.get_mut(reference).ok_or_else(invalid)?;
        if now.saturating_sub(s.last_active) > IDLE_EXPIRY {
            self.sessions.remove(reference);
            return Err(invalid());
        }
        s.last_active = s.last_active.max(now);
        Ok(s.clone())
    }

    /// Ends the session `reference` if it is of `kind`
    /// (`session.logout` ends pool sessions, `session.local_logout` local ones).
    pub fn close(
        &mut self,
        reference: &str,
        kind: Kind,
        now: Duration,
    ) -> Result<(), SessionError> {
        let s = self.check(reference, now)?;
        if s.kind != kind {
            return Err(SessionError::Invalid(reference.to_owned()));
        }
        self.sessions.remove(reference);
        Ok(())
    }

    /// Drops every session idle longer than [`IDLE_EXPIRY`] at `now`.
    pub fn expire(&mut self, now: Duration) {
        self.sessions
            .retain(|_, s| now.saturating_sub(s.last_active) <= IDLE_EXPIRY);
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn open_check_close() {
        let mut t = Table::default();
        t.open("OpaqueRef:a".into(), "root", Kind::Pool, H);
        assert_eq!(t.check("OpaqueRef:a", 2 * H).unwrap().user, "root");
        assert_eq!(
            t.check("OpaqueRef:b", 2 * H),
            Err(SessionError::Invalid("OpaqueRef:b".into()))
        );
        // A pool session is not ended by local_logout.
        assert!(t.close("OpaqueRef:a", Kind::Local, 2 * H).is_err());
        t.close("OpaqueRef:a", Kind::Pool, 2 * H).unwrap();
        assert!(t.check("OpaqueRef:a", 2 * H).is_err());
        assert!(t.is_empty());
    }

    #[test]
    fn idle_sessions_expire_after_24_hours_and_use_refreshes() {
        let mut t = Table::default();
        t.open("OpaqueRef:a".into(), "root", Kind::Pool, Duration::ZERO);
        t.open("OpaqueRef:b".into(), "root", Kind::Local, Duration::ZERO);
        assert!(t.check("OpaqueRef:a", 20 * H).is_ok());
        // b idle 24 h + 1 s: gone; a was used at 20 h: still there at 44 h.
        assert!(
            t.check("OpaqueRef:b", 24 * H + Duration::from_secs(1))
                .is_err()
        );
        assert!(t.check("OpaqueRef:a", 44 * H).is_ok());
        assert!(
            t.check("OpaqueRef:a", 68 * H + Duration::from_secs(1))
                .is_err()
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Table::default();
        for i in 0..MAX_SESSIONS + 5 {
            t.open(
                format!("OpaqueRef:{i}"),
                "root",
                Kind::Pool,
                Duration::from_secs(i as u64),
            );
        }
        assert_eq!(t.len(), MAX_SESSIONS);
        assert!(
            t.check("OpaqueRef:0", Duration::from_secs(MAX_SESSIONS as u64 + 5))
                .is_err()
        );
        let newest = format!("OpaqueRef:{}", MAX_SESSIONS + 4);
        assert!(
            t.check(&newest, Duration::from_secs(MAX_SESSIONS as u64 + 5))
                .is_ok()
        );
    }
}
