//! `session.change_password(session, old_pwd, new_pwd)`: the session's
//! user changes its own password in the pool's user file (argon2 hashes,
//! written atomically, `session::users`). The session, and every other
//! open session, keeps working: sessions are not tied to a password.
//!
//! Errors, as xapi gives them: a wrong `old_pwd` is
//! `SESSION_AUTHENTICATION_FAILED [uname; "Authentication failure"]` and
//! changes nothing; a refused `new_pwd` (empty, longer than 1024 bytes) is
//! `CHANGE_PASSWORD_REJECTED [reason]`. The first password of a host is set
//! with `xapi-ha passwd` (docs/api.md).

use std::path::Path;
use std::sync::Mutex;

use crate::api::ApiError;
use crate::session::users::{Users, UsersError};

/// The error code of a refused new password.
pub const CHANGE_PASSWORD_REJECTED: &str = "CHANGE_PASSWORD_REJECTED";

/// Checks `old` and stores `new` for `user`. Blocking (two argon2 hashes
/// and an fsync): call it off the async workers. `users` is the agent's
/// last good copy of the file, updated on success; the lock is held from
/// the read to the write, so two changes cannot lose one another.
pub fn change_password(
    path: &Path,
    users: &Mutex<Users>,
    user: &str,
    old: &str,
    new: &str,
) -> Result<(), ApiError> {
    let mut cached = users
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The file as it is now (`xapi-ha passwd` may have changed it).
    let mut current = match Users::load(path) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "user file unreadable: using the last good copy");
            cached.clone()
        }
    };
    if !current.verify(user, old) {
        tracing::info!(user, "password change refused: wrong old password");
        return Err(ApiError::session_authentication_failed(
            user,
            "Authentication failure",
        ));
    }
    current.set_password(user, new).map_err(|e| match e {
        UsersError::BadPassword(reason) => ApiError::new(
            CHANGE_PASSWORD_REJECTED,
            [format!("the new password is refused: {reason}")],
        ),
        other => ApiError::internal(&other.to_string()),
    })?;
    current
        .save(path)
        .map_err(|e| ApiError::internal(&e.to_string()))?;
    *cached = current;
    tracing::info!(user, "password changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_old_changes_nothing_and_a_good_change_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let mut u = Users::default();
        u.set_password("root", "one").unwrap();
        u.save(&path).unwrap();
        let cache = Mutex::new(u);
        let before = std::fs::read(&path).unwrap();
        let e = change_password(&path, &cache, "root", "wrong", "two").unwrap_err();
        assert_eq!(e.code, "SESSION_AUTHENTICATION_FAILED");
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let e = change_password(&path, &cache, "root", "one", "").unwrap_err();
        assert_eq!(e.code, CHANGE_PASSWORD_REJECTED);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        change_password(&path, &cache, "root", "one", "two").unwrap();
        let on_disk = Users::load(&path).unwrap();
        assert!(on_disk.verify("root", "two"));
        assert!(!on_disk.verify("root", "one"));
        assert!(cache.lock().unwrap().verify("root", "two"));
        // An unknown user cannot change anything.
        let e = change_password(&path, &cache, "nobody", "two", "three").unwrap_err();
        assert_eq!(e.code, "SESSION_AUTHENTICATION_FAILED");
    }
}
