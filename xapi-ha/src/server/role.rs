//! The host's role in its pool, kept in `<data dir>/pool.conf` as xapi
//! keeps it: `master`, or `slave:<master address>`. A missing file is a
//! fresh host: the master of a pool of one.

use std::io::Write as _;
use std::path::Path;

/// The role file's name inside the data directory.
pub const FILE_NAME: &str = "pool.conf";

/// Master or member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// This host keeps the pool database and answers every call.
    Master,
    /// A member: normal logins are answered `HOST_IS_SLAVE [address]`.
    Slave(String),
}

/// Why the role file is refused.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Neither `master` nor `slave:<address>`.
    #[error("{file}: {content:?} is neither \"master\" nor \"slave:<address>\"")]
    Invalid {
        /// The file.
        file: String,
        /// What it holds (first 80 characters).
        content: String,
    },
    /// Reading or writing failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

impl Role {
    /// Parses the file's text (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Option<Role> {
        let t = text.trim();
        if t == "master" {
            return Some(Role::Master);
        }
        let addr = t.strip_prefix("slave:")?;
        (!addr.is_empty() && !addr.contains(char::is_whitespace))
            .then(|| Role::Slave(addr.to_owned()))
    }

    /// The file's text.
    pub fn render(&self) -> String {
        match self {
            Role::Master => "master\n".to_owned(),
            Role::Slave(a) => format!("slave:{a}\n"),
        }
    }

    /// Reads the role; `None` when the file does not exist (a fresh host).
    pub fn load(dir: &Path) -> Result<Option<Role>, RoleError> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Role::parse(&text)
                .map(Some)
                .ok_or_else(|| RoleError::Invalid {
                    file: path.display().to_string(),
                    content: text.chars().take(80).collect(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RoleError::Io(path.display().to_string(), e)),
        }
    }

    /// Writes the role atomically (temporary file, fsync, rename, fsync of
    /// the directory).
    pub fn save(&self, dir: &Path) -> Result<(), RoleError> {
        let path = dir.join(FILE_NAME);
        let io = |e| RoleError::Io(path.display().to_string(), e);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(self.render().as_bytes()).map_err(io)?;
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

    #[test]
    fn parse_render_round_trip() {
        for r in [Role::Master, Role::Slave("10.0.0.1".into())] {
            assert_eq!(Role::parse(&r.render()), Some(r));
        }
        assert_eq!(Role::parse("slave:"), None);
        assert_eq!(Role::parse("boss"), None);
    }

    #[test]
    fn missing_file_is_none_and_save_load() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Role::load(dir.path()).unwrap().is_none());
        Role::Slave("h:443".into()).save(dir.path()).unwrap();
        assert_eq!(
            Role::load(dir.path()).unwrap(),
            Some(Role::Slave("h:443".into()))
        );
        std::fs::write(dir.path().join(FILE_NAME), "junk").unwrap();
        assert!(
            Role::load(dir.path())
                .unwrap_err()
                .to_string()
                .contains("neither")
        );
    }
}
