//! The user file: one `name:hash` line per user, the hash an argon2 PHC
//! string (`$argon2id$v=19$m=...`). Plaintext is never stored or logged.
//! Written atomically (temporary file, fsync, rename) with mode 0600.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand_core::OsRng;

/// The file name of the user file inside the data directory.
pub const FILE_NAME: &str = "users";

/// A problem with the user file or a password.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// A line of the file is not `name:argon2-hash`.
    #[error("{file} line {line}: {reason}")]
    Line {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A user name is refused.
    #[error(
        "user name {0:?} is refused (letters, digits, '.', '-', '_' and '@', 1 to 64 characters)"
    )]
    BadName(String),
    /// A password is refused.
    #[error("the password is refused: {0}")]
    BadPassword(&'static str),
    /// Hashing failed.
    #[error("hashing the password failed: {0}")]
    Hash(String),
    /// Reading or writing the file failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// The users and their password hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Users {
    hashes: BTreeMap<String, String>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
}

/// A fixed hash checked when the user is unknown, so that an unknown name
/// costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Mq0yZxw6k0YvcyvTOZJ1MNhqtrbIlRbFSrbUqlEEFnU";

impl Users {
    /// Parses the text of a user file (`file` names it in errors).
    pub fn parse(text: &str, file: &str) -> Result<Users, UsersError> {
        let mut hashes = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let err = |reason: String| UsersError::Line {
                file: file.to_owned(),
                line: i + 1,
                reason,
            };
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| err("no ':' between name and hash".into()))?;
            if !valid_name(name) {
                return Err(err(format!("user name {name:?} is refused")));
            }
            let parsed =
                PasswordHash::new(hash).map_err(|e| err(format!("not a password hash: {e}")))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(err(format!(
                    "hash algorithm {} is not argon2",
                    parsed.algorithm
                )));
            }
            if hashes.insert(name.to_owned(), hash.to_owned()).is_some() {
                return Err(err(format!("user {name:?} appears twice")));
            }
        }
        Ok(Users { hashes })
    }

    /// Reads the user file; a missing file is no users.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Users::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            Err(e) => Err(UsersError::Io(path.display().to_string(), e)),
        }
    }

    /// The file's text.
    pub fn render(&self) -> String {
        self.hashes
            .iter()
            .map(|(n, h)| format!("{n}:{h}\n"))
            .collect()
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |e| UsersError::Io(path.display().to_string(), e);
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(self.render().as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    /// Sets (or replaces) `name`'s password.
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), UsersError> {
        if !valid_name(name) {
            return Err(UsersError::BadName(name.to_owned()));
        }
        if password.is_empty() {
            return Err(UsersError::BadPassword("it is empty"));
        }
        if password.len() > 1024 {
            return Err(UsersError::BadPassword("it is longer than 1024 bytes"));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| UsersError::Hash(e.to_string()))?;
        self.hashes.insert(name.to_owned(), hash.to_string());
        Ok(())
    }

    /// Whether `password` is `name`'s. The comparison is argon2's
    /// constant-time one, and an unknown name costs a full hash too.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let known = self.hashes.get(name);
        let stored = known.map_or(DUMMY_HASH, String::as_str);
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && known.is_some()
    }

    /// Whether no user is set (the agent then refuses every login and says
    /// how to set the first password).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_verify_and_file_round_trip() {
        let mut u = Users::default();
        u.set_password("root", "s3cret").unwrap();
        assert!(u.verify("root", "s3cret"));
        assert!(!u.verify("root", "s3cret "));
        assert!(!u.verify("nobody", "s3cret"));
        let text = u.render();
        assert!(text.starts_with("root:$argon2id$"));
        assert!(!text.contains("s3cret"));
        assert_eq!(Users::parse(&text, "f").unwrap(), u);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        u.save(&path).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Users::load(&path).unwrap(), u);
    }

    #[test]
    fn the_dummy_hash_is_a_valid_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn bad_files_and_names_are_refused() {
        assert!(
            Users::parse("root\n", "f")
                .unwrap_err()
                .to_string()
                .contains("f line 1: no ':'")
        );
        assert!(
            Users::parse("root:plain\n", "f")
                .unwrap_err()
                .to_string()
                .contains("not a password hash")
        );
        assert!(
            Users::parse("a b:x\n", "f")
                .unwrap_err()
                .to_string()
                .contains("refused")
        );
        let mut u = Users::default();
        assert!(matches!(
            u.set_password("a:b", "x"),
            Err(UsersError::BadName(_))
        ));
        assert!(matches!(
            u.set_password("root", ""),
            Err(UsersError::BadPassword(_))
        ));
    }
}
