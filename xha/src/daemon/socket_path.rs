//! Taking over a Unix socket path safely: a stale socket file (nobody
//! listening, e.g. after a crash) is replaced; a live socket means another
//! process serves it; anything that is not a socket is never removed.

use std::io::{Error, ErrorKind};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Make `path` free for `bind`, or say why not.
pub fn clear_stale(path: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; refusing to remove it",
                path.display()
            ),
        ));
    }
    if UnixStream::connect(path).is_ok() {
        return Err(Error::new(
            ErrorKind::AddrInUse,
            format!("{}: another process is listening", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn stale_live_and_foreign_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.sock");
        clear_stale(&p).unwrap();
        let live = UnixListener::bind(&p).unwrap();
        assert_eq!(clear_stale(&p).unwrap_err().kind(), ErrorKind::AddrInUse);
        drop(live);
        // The file remains after the listener is gone: stale, replaced.
        assert!(p.exists());
        clear_stale(&p).unwrap();
        assert!(!p.exists());
        let f = dir.path().join("precious");
        std::fs::write(&f, "data").unwrap();
        assert_eq!(
            clear_stale(&f).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(f.exists());
    }
}
