//! Building a lab's files: the directory, the pool secret, the formatted
//! statefile, heartbeat ports and each host's configuration. Pure where it
//! can be (`config_text`), so the tests can check what is written.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::{STATEFILE_SIZE, Statefile};
use uuid::Uuid;

use super::error::LabError;

/// Bytes of the random pool secret (the HMAC key; at least 32 are required).
pub const SECRET_BYTES: usize = 64;
/// Longest Unix socket path (`sun_path` is 108 bytes with the final NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// Namespace of the lab's host UUIDs (UUID v5 of `xe-lab host N`), so that
/// the same lab size always shows the same UUIDs.
pub const HOST_NAMESPACE: Uuid = Uuid::from_u128(0x6c61_625f_7868_5000_8000_0000_0000_0001);

/// The host UUIDs of an `n`-host lab, sorted: lab host `i` is the host with
/// core index `i` (the index is the position in the sorted UUID list).
#[must_use]
pub fn host_uuids(n: usize) -> Vec<Uuid> {
    let mut uuids: Vec<Uuid> = (1..=n)
        .map(|i| Uuid::new_v5(&HOST_NAMESPACE, format!("xe-lab host {i}").as_bytes()))
        .collect();
    uuids.sort();
    uuids
}

/// Make a fresh private directory `base/xe-lab-XXXXXX` (mode 0700), like
/// mkdtemp(3): a random suffix, created with `mkdir` so that an existing
/// name is never reused.
pub fn make_dir(base: &Path) -> Result<PathBuf, LabError> {
    use rand::Rng;
    use std::os::unix::fs::DirBuilderExt;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let mut last = None;
    // A collision needs the same 8 random characters: retries are a formality.
    for _ in 0..16 {
        let suffix: String = (0..8)
            .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
            .collect();
        let path = base.join(format!("xe-lab-{suffix}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(source) => {
                return Err(LabError::Io {
                    step: "make the lab directory",
                    path,
                    source,
                });
            }
        }
    }
    Err(LabError::Io {
        step: "make the lab directory",
        path: base.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::other("no free name")),
    })
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> LabError + 'a {
    move |source| LabError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// Write a file that only the owner may read or write (mode 0600).
pub fn write_private(path: &Path, bytes: &[u8], step: &'static str) -> Result<(), LabError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(step, path))?;
    file.write_all(bytes).map_err(io_err(step, path))?;
    file.sync_all().map_err(io_err(step, path))
}

/// Write `SECRET_BYTES` random bytes, mode 0600.
pub fn write_secret(path: &Path) -> Result<(), LabError> {
    use rand::RngCore;
    let mut secret = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    write_private(path, &secret, "write the pool secret")
}

/// Create `path` as a 4 MiB file and format it as the statefile of pool
/// generation `generation` with `max_hosts` slots, the way
/// `sr-heartbeat format-statefile` does (O_DIRECT, through `Statefile::format`).
pub fn format_statefile(path: &Path, generation: Uuid, max_hosts: usize) -> Result<(), LabError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create the statefile", path))?;
    file.set_len(STATEFILE_SIZE)
        .map_err(io_err("size the statefile", path))?;
    drop(file);
    let fail = |reason: String| LabError::Statefile {
        path: path.to_path_buf(),
        reason,
    };
    let dev = BlockDevice::open(path, OpenMode::ReadWrite).map_err(|e| fail(e.to_string()))?;
    Statefile::format(dev, generation, max_hosts).map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// Free UDP ports on 127.0.0.1, one per host, distinct: each is found by
/// binding port 0. The sockets are returned still bound and are handed to
/// the daemons as their heartbeat sockets (`xhad --heartbeat-fd`), so no
/// other program (or another lab) can take a port between the lab's choice
/// and the daemon's start.
pub fn free_loopback_ports(n: usize) -> Result<Vec<(SocketAddr, UdpSocket)>, LabError> {
    let any = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0);
    let err = io_err("find a free UDP port", Path::new("127.0.0.1:0"));
    (0..n)
        .map(|_| {
            let socket = UdpSocket::bind(any).map_err(&err)?;
            Ok((socket.local_addr().map_err(&err)?, socket))
        })
        .collect()
}

/// Everything one host's configuration says.
#[derive(Clone, Debug)]
pub struct HostConfig<'a> {
    pub generation: Uuid,
    pub local: Uuid,
    pub timeout_s: u64,
    /// Relative to the configuration's directory, or absolute.
    pub secret_file: &'a Path,
    pub statefile: &'a Path,
    pub control_socket: &'a Path,
    pub supervisor_socket: &'a Path,
    pub state_dir: &'a Path,
    /// Every host of the pool: (UUID, heartbeat address).
    pub hosts: &'a [(Uuid, SocketAddr)],
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_path(key: &str, p: &Path) -> Result<String, LabError> {
    p.to_str()
        .map(toml_str)
        .ok_or_else(|| LabError::Spec(format!("{key}: {} is not UTF-8", p.display())))
}

/// The TOML configuration of one lab host (the keys of `docs/daemon.md`):
/// the `supervisor` watchdog, the `kill-host` fence action, and
/// `master-candidate = true` so that a master is elected without a pool
/// agent, and a new one after the master dies.
pub fn config_text(c: &HostConfig<'_>) -> Result<String, LabError> {
    let mut t = String::new();
    t.push_str("# Written by the xe lab (xha_lab). One host of a local lab pool.\n");
    t.push_str(&format!("pool-generation = \"{}\"\n", c.generation));
    t.push_str(&format!("host = \"{}\"\n", c.local));
    t.push_str(&format!("timeout = {}\n", c.timeout_s));
    t.push_str(&format!(
        "secret-file = {}\n",
        toml_path("secret-file", c.secret_file)?
    ));
    t.push_str(&format!(
        "statefiles = [{}]\n",
        toml_path("statefiles", c.statefile)?
    ));
    t.push_str("fence-action = \"kill-host\"\n");
    t.push_str("master-candidate = true\n");
    t.push_str(&format!(
        "control-socket = {}\n",
        toml_path("control-socket", c.control_socket)?
    ));
    t.push_str(&format!(
        "state-dir = {}\n",
        toml_path("state-dir", c.state_dir)?
    ));
    t.push_str("\n[watchdog]\nbackend = \"supervisor\"\n");
    t.push_str(&format!(
        "socket = {}\n",
        toml_path("watchdog.socket", c.supervisor_socket)?
    ));
    for (uuid, address) in c.hosts {
        t.push_str(&format!(
            "\n[[hosts]]\nuuid = \"{uuid}\"\naddress = {}\n",
            toml_str(&address.to_string())
        ));
    }
    Ok(t)
}

/// Refuse a socket path the kernel cannot bind.
pub fn check_socket_path(key: &str, path: &Path) -> Result<(), LabError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(LabError::Spec(format!(
            "{key}: {} is {len} bytes, longer than the {MAX_SOCKET_PATH} a Unix socket path may have; use a shorter base directory",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use xha::daemon::config::{Config, FenceAction, WatchdogConfig};

    #[test]
    fn host_uuids_are_stable_sorted_and_distinct() {
        let a = host_uuids(64);
        assert_eq!(a, host_uuids(64));
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        // A smaller lab is not a prefix (the sort mixes them) but is stable.
        assert_eq!(host_uuids(3), host_uuids(3));
        assert!(host_uuids(3).iter().all(|u| a.contains(u)));
    }

    #[test]
    fn written_config_validates() {
        let uuids = host_uuids(3);
        let ports = free_loopback_ports(3).unwrap();
        let hosts: Vec<(Uuid, SocketAddr)> = uuids
            .iter()
            .copied()
            .zip(ports.iter().map(|p| p.0))
            .collect();
        let generation = Uuid::new_v4();
        let weird = Path::new("../dir with \"quotes\"/statefile");
        let c = HostConfig {
            generation,
            local: uuids[1],
            timeout_s: 10,
            secret_file: Path::new("../pool-secret"),
            statefile: weird,
            control_socket: Path::new("control.sock"),
            supervisor_socket: Path::new("supervisor.sock"),
            state_dir: Path::new("state"),
            hosts: &hosts,
        };
        let text = config_text(&c).unwrap();
        let base = Path::new("/lab/host-2");
        let parsed = Config::parse(&text, base).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(parsed.pool_generation, generation);
        assert_eq!(parsed.local_uuid, uuids[1]);
        // Sorted UUIDs: lab host i is core index i.
        assert_eq!(parsed.local_index, 1);
        for (i, h) in parsed.hosts.iter().enumerate() {
            assert_eq!((h.uuid, h.address), hosts[i]);
        }
        assert_eq!(parsed.statefiles, vec![base.join(weird)]);
        assert_eq!(parsed.secret_file, Path::new("/lab/host-2/../pool-secret"));
        assert_eq!(parsed.control_socket, base.join("control.sock"));
        assert_eq!(parsed.state_dir, base.join("state"));
        assert_eq!(parsed.fence_action, FenceAction::KillHost);
        assert_eq!(
            parsed.watchdog,
            WatchdogConfig::Supervisor {
                socket: base.join("supervisor.sock")
            }
        );
        assert_eq!(parsed.timeouts.base.as_secs(), 10);
    }

    #[test]
    fn formatted_statefile_opens_with_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("statefile");
        let generation = Uuid::new_v4();
        format_statefile(&path, generation, 5).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), STATEFILE_SIZE);
        let dev = BlockDevice::open(&path, OpenMode::ReadOnly).unwrap();
        let sf = Statefile::open(dev).unwrap();
        assert_eq!(sf.generation(), generation);
        assert_eq!(sf.max_hosts(), 5);
        // Never overwrites an existing file.
        assert!(format_statefile(&path, generation, 5).is_err());
    }

    #[test]
    fn secret_is_private_and_long_enough() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        write_secret(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), SECRET_BYTES as u64);
        // It passes the daemon's own checks (mode, owner, entropy).
        xha::daemon::secret::read(&path).unwrap();
    }

    #[test]
    fn lab_dir_is_private_and_fresh() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        let a = make_dir(base.path()).unwrap();
        let b = make_dir(base.path()).unwrap();
        assert_ne!(a, b);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert!(make_dir(&base.path().join("missing")).is_err());
    }

    #[test]
    fn long_socket_paths_are_refused() {
        let long = PathBuf::from(format!("/{}/control.sock", "d".repeat(120)));
        assert!(check_socket_path("control-socket", &long).is_err());
        assert!(check_socket_path("control-socket", Path::new("/tmp/x/control.sock")).is_ok());
    }
}
