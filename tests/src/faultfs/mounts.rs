//! Finding, detaching and aborting FUSE mounts without touching them.
//!
//! Nothing here looks up a path inside a mount: with a hung server even a
//! `stat` of the mount point may never return. The mount table and the fuse
//! control file system answer without asking the server.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const FUSECTL_DIR: &str = "/sys/fs/fuse/connections";

/// Undo the octal escapes (`\040` for a space) of a mountinfo path.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let s = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(s, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The FUSE connection number of the topmost mount at `dir` (an absolute,
/// canonical path), or `None` when nothing is mounted there.
///
/// Field 3 of `/proc/self/mountinfo` is the mount's device `0:N`; for FUSE,
/// `N` names the connection's directory under `/sys/fs/fuse/connections`.
pub(crate) fn mounted_connection(dir: &Path) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dev = *fields.get(2)?;
            let point = unescape(fields.get(4)?);
            (point == dir).then_some(dev)
        })
        .next_back()
        .map(|dev| match dev.split_once(':') {
            Some(("0", minor)) => minor.parse().unwrap_or(0),
            _ => 0,
        })
}

/// Abort FUSE connection `conn`: every request waiting on it fails at once
/// and the server's `/dev/fuse` reads end. Mounts the fuse control file
/// system first if nobody has (root only).
pub(crate) fn abort_connection(conn: u32) -> Result<(), String> {
    let abort = Path::new(FUSECTL_DIR).join(conn.to_string()).join("abort");
    if !abort.exists() {
        let mounted = nix::mount::mount(
            Some("fusectl"),
            FUSECTL_DIR,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
        if let Err(e) = mounted {
            tracing::debug!("mount fusectl on {FUSECTL_DIR}: {e}");
        }
    }
    std::fs::write(&abort, "1").map_err(|e| format!("{}: {e}", abort.display()))
}

/// Detach the mount at `dir` now (`umount2(MNT_DETACH)`), or through
/// `fusermount3 -u -z` (then `fusermount`) when not allowed to.
pub(crate) fn detach(dir: &Path) -> Result<(), String> {
    let Err(errno) = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH) else {
        return Ok(());
    };
    let mut why = format!("umount2: {errno}");
    for bin in ["fusermount3", "fusermount"] {
        let status = Command::new(bin)
            .args(["-u", "-z", "--"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => why.push_str(&format!("; {bin}: {s}")),
            Err(e) => why.push_str(&format!("; {bin}: {e}")),
        }
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape(r"/tmp/a\040b"), PathBuf::from("/tmp/a b"));
        assert_eq!(unescape(r"/x\134y\"), PathBuf::from(r"/x\y\"));
        assert_eq!(unescape("/plain"), PathBuf::from("/plain"));
    }

    #[test]
    fn root_is_mounted() {
        assert!(mounted_connection(Path::new("/")).is_some());
    }
}
