//! The pool secret: what hosts of one pool authenticate each other with
//! (`session.login_with_password("__pool__", secret)`, docs/pool.md). Made
//! at random by the master of a pool of one, handed to a joining host over
//! TLS, kept in `<data dir>/pool-secret` (mode 0600), compared in constant
//! time.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The secret's file name inside the data directory.
pub const FILE_NAME: &str = "pool-secret";

/// Shortest secret accepted (hex digits; a made one has 64).
const MIN_LEN: usize = 32;

/// Why the secret cannot be read, written or used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Too short, or holds whitespace or control characters.
    #[error("{0}: the pool secret must be at least {MIN_LEN} printable characters without spaces")]
    Invalid(String),
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// A pool secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PoolSecret(String);

impl std::fmt::Debug for PoolSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolSecret(..)")
    }
}

impl PoolSecret {
    /// A new random secret: 32 bytes from the OS, as 64 hex digits.
    #[must_use]
    pub fn generate() -> PoolSecret {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        PoolSecret(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A secret received from the master (or read from the file); `what`
    /// names its origin in the error.
    pub fn parse(text: &str, what: &str) -> Result<PoolSecret, SecretError> {
        let t = text.trim();
        if t.len() < MIN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SecretError::Invalid(what.to_owned()));
        }
        Ok(PoolSecret(t.to_owned()))
    }

    /// The secret's text (sent only over TLS to a host of the pool).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this secret, in time independent of where
    /// they differ (both are hashed first, so their lengths leak nothing).
    #[must_use]
    pub fn matches(&self, candidate: &str) -> bool {
        let a = Sha256::digest(self.0.as_bytes());
        let b = Sha256::digest(candidate.as_bytes());
        a.ct_eq(&b).into()
    }

    /// Reads `<dir>/pool-secret`; `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<PoolSecret>, SecretError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => PoolSecret::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretError::Io(path.display().to_string(), e)),
        }
    }

    /// Writes `<dir>/pool-secret` atomically with mode 0600 (temporary
    /// file, fsync, rename, fsync of the directory).
    pub fn save(&self, dir: &Path) -> Result<(), SecretError> {
        let path = dir.join(FILE_NAME);
        let io = |e| SecretError::Io(path.display().to_string(), e);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(self.0.as_bytes()).map_err(io)?;
        f.write_all(b"\n").map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn made_saved_loaded_private_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PoolSecret::load(dir.path()).unwrap().is_none());
        let s = PoolSecret::generate();
        assert_eq!(s.expose().len(), 64);
        assert_ne!(s, PoolSecret::generate());
        s.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = PoolSecret::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, s);
        assert!(back.matches(s.expose()));
        assert!(!back.matches(""));
        assert!(!back.matches(&s.expose()[1..]));
        assert!(!format!("{s:?}").contains(s.expose()), "never in logs");
    }

    #[test]
    fn short_or_spaced_secrets_are_refused() {
        assert!(PoolSecret::parse("short", "x").is_err());
        assert!(PoolSecret::parse(&format!("{} x", "a".repeat(40)), "x").is_err());
        assert!(PoolSecret::parse(&"a".repeat(40), "x").is_ok());
    }
}
