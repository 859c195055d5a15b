//! The fingerprints `xe` has learned, like ssh's known_hosts: one
//! `host:port FINGERPRINT` line per server (the last one remembered), in `$XE_KNOWN_HOSTS` or else
//! `~/.xe-known-hosts`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The file, from the environment.
#[must_use]
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("XE_KNOWN_HOSTS") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".xe-known-hosts")
}

/// The fingerprint remembered for `target` (`host:port`). A missing file
/// knows nothing; lines that are not `target fingerprint` are skipped.
pub fn lookup(file: &Path, target: &str) -> std::io::Result<Option<String>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(target))
            .then(|| words.next().map(str::to_owned))
            .flatten()
    }))
}

/// Remembers `fingerprint` for `target`, replacing what was remembered
/// for it (the file is rewritten through a temporary file and a rename,
/// mode 0600).
pub fn remember(file: &Path, target: &str, fingerprint: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut text: String = old
        .lines()
        .filter(|l| l.split_whitespace().next() != Some(target))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{target} {fingerprint}\n"));
    let mut tmp_name = file.as_os_str().to_owned();
    tmp_name.push(".new");
    let tmp = PathBuf::from(tmp_name);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}

#[cfg(test)]
mod tests {
    #[test]
    fn remember_then_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kh");
        assert_eq!(super::lookup(&file, "h:1").unwrap(), None);
        super::remember(&file, "h:1", "AA:BB").unwrap();
        super::remember(&file, "g:2", "CC").unwrap();
        assert_eq!(
            super::lookup(&file, "h:1").unwrap().as_deref(),
            Some("AA:BB")
        );
        assert_eq!(super::lookup(&file, "g:2").unwrap().as_deref(), Some("CC"));
        assert_eq!(super::lookup(&file, "h:2").unwrap(), None);
        super::remember(&file, "h:1", "DD").unwrap();
        assert_eq!(super::lookup(&file, "h:1").unwrap().as_deref(), Some("DD"));
        assert_eq!(super::lookup(&file, "g:2").unwrap().as_deref(), Some("CC"));
    }
}
