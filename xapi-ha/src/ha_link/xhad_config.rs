//! The `xhad` configuration the agent writes for its host (the keys of
//! docs/daemon.md), built as text by a pure function; a test parses it with
//! `xhad`'s own parser.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The watchdog and fence action, which follow from the launcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fencing {
    /// Production: `/dev/watchdog` and `reboot`.
    Linux,
    /// The lab: `xha-supervisor` on `socket` and `kill-host`.
    Supervisor { socket: PathBuf },
}

/// Everything one host's `xhad.toml` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XhadConfig {
    pub generation: Uuid,
    pub local: Uuid,
    pub timeout_s: u64,
    pub secret_file: PathBuf,
    pub statefiles: Vec<PathBuf>,
    /// blocksr: for each statefile (same index), its region of the device
    /// when it is a volume of a block SR (written as `{ path, offset,
    /// length }`); missing entries are whole files.
    pub statefile_regions: Vec<Option<sr_heartbeat::io::Region>>,
    /// `None`: xhad's default (`/run/xhad/control.sock`).
    pub control_socket: Option<PathBuf>,
    /// `None`: xhad's default (`/var/lib/xhad`).
    pub state_dir: Option<PathBuf>,
    pub fencing: Fencing,
    /// Every host: UUID and heartbeat address.
    pub hosts: Vec<(Uuid, SocketAddr)>,
}

/// Why a configuration cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {} is not UTF-8", path.display())]
pub struct NotUtf8 {
    pub key: &'static str,
    pub path: PathBuf,
}

fn quoted(key: &'static str, p: &Path) -> Result<String, NotUtf8> {
    p.to_str()
        .map(|s| toml::Value::String(s.to_owned()).to_string())
        .ok_or_else(|| NotUtf8 {
            key,
            path: p.to_path_buf(),
        })
}

/// The TOML text. `master-candidate` is false: the agent proposes its
/// master (`propose-master`), as xapi does.
pub fn text(c: &XhadConfig) -> Result<String, NotUtf8> {
    let mut t = format!("{} (docs/ha-enable.md).\n", super::files::CONFIG_MARK);
    let _ = writeln!(t, "pool-generation = \"{}\"", c.generation);
    let _ = writeln!(t, "host = \"{}\"", c.local);
    let _ = writeln!(t, "timeout = {}", c.timeout_s);
    let _ = writeln!(
        t,
        "secret-file = {}",
        quoted("secret-file", &c.secret_file)?
    );
    let statefiles: Result<Vec<String>, NotUtf8> = c
        .statefiles
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = quoted("statefiles", p)?;
            Ok(match c.statefile_regions.get(i).copied().flatten() {
                Some(r) => format!(
                    "{{ path = {path}, offset = {}, length = {} }}",
                    r.offset, r.len
                ),
                None => path,
            })
        })
        .collect();
    let _ = writeln!(t, "statefiles = [{}]", statefiles?.join(", "));
    let action = match c.fencing {
        Fencing::Linux => "reboot",
        Fencing::Supervisor { .. } => "kill-host",
    };
    let _ = writeln!(t, "fence-action = \"{action}\"");
    t.push_str("master-candidate = false\n");
    let _ = writeln!(
        t,
        "master-lease-ms = {}",
        super::failover::MASTER_LEASE.as_millis()
    );
    if let Some(p) = &c.control_socket {
        let _ = writeln!(t, "control-socket = {}", quoted("control-socket", p)?);
    }
    if let Some(p) = &c.state_dir {
        let _ = writeln!(t, "state-dir = {}", quoted("state-dir", p)?);
    }
    match &c.fencing {
        Fencing::Linux => t.push_str("\n[watchdog]\nbackend = \"linux\"\n"),
        Fencing::Supervisor { socket } => {
            let _ = write!(
                t,
                "\n[watchdog]\nbackend = \"supervisor\"\nsocket = {}\n",
                quoted("watchdog.socket", socket)?
            );
        }
    }
    for (uuid, address) in &c.hosts {
        let _ = write!(
            t,
            "\n[[hosts]]\nuuid = \"{uuid}\"\naddress = \"{address}\"\n"
        );
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xha::daemon::config::{Config, FenceAction, WatchdogConfig};

    fn sample(fencing: Fencing) -> XhadConfig {
        let a = Uuid::from_u128(2);
        let b = Uuid::from_u128(1);
        XhadConfig {
            generation: Uuid::from_u128(9),
            local: a,
            timeout_s: 10,
            secret_file: PathBuf::from("/etc/xhad/pool-secret"),
            statefiles: vec![
                PathBuf::from("/srv/sr1/ha-statefile"),
                PathBuf::from("/srv/sr \"2\"/ha-statefile"),
            ],
            statefile_regions: Vec::new(),
            control_socket: Some(PathBuf::from("/run/x/control.sock")),
            state_dir: Some(PathBuf::from("/var/lib/x")),
            fencing,
            hosts: vec![
                (a, "127.0.0.1:7001".parse().unwrap()),
                (b, "127.0.0.1:7002".parse().unwrap()),
            ],
        }
    }

    #[test]
    fn written_config_parses_with_xhads_parser() {
        let socket = PathBuf::from("/run/x/supervisor.sock");
        let c = sample(Fencing::Supervisor {
            socket: socket.clone(),
        });
        let t = text(&c).unwrap();
        let parsed =
            Config::parse(&t, Path::new("/etc/xhad")).unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert_eq!(parsed.pool_generation, c.generation);
        assert_eq!(parsed.local_uuid, c.local);
        // xhad sorts hosts by UUID: b (1) is index 0, a (2) index 1.
        assert_eq!(parsed.local_index, 1);
        assert_eq!(parsed.statefiles, c.statefiles);
        assert_eq!(parsed.fence_action, FenceAction::KillHost);
        assert_eq!(parsed.watchdog, WatchdogConfig::Supervisor { socket });
        assert_eq!(parsed.timeouts.base.as_secs(), 10);
        assert_eq!(parsed.control_socket, PathBuf::from("/run/x/control.sock"));
        assert!(!parsed.master_candidate);

        // blocksr: a statefile that is a region of a block SR's device.
        let region = sr_heartbeat::io::Region {
            offset: 1 << 20,
            len: 4 << 20,
        };
        let mut b = sample(Fencing::Linux);
        b.statefile_regions = vec![None, Some(region)];
        let t = text(&b).unwrap();
        let parsed =
            Config::parse(&t, Path::new("/etc/xhad")).unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert_eq!(parsed.statefiles, b.statefiles);
        assert_eq!(parsed.statefile_regions, vec![None, Some(region)]);
        assert!(
            crate::ha_link::files::sr_files_of_config(&t)
                .iter()
                .all(|p| p.starts_with("/srv/sr1"))
        );

        let linux = text(&sample(Fencing::Linux)).unwrap();
        let parsed = Config::parse(&linux, Path::new("/etc/xhad")).unwrap();
        assert_eq!(parsed.fence_action, FenceAction::Reboot);
        assert!(matches!(parsed.watchdog, WatchdogConfig::Linux { .. }));
    }

    #[test]
    fn a_path_that_is_not_utf8_is_named() {
        use std::os::unix::ffi::OsStrExt;
        let mut c = sample(Fencing::Linux);
        c.statefiles = vec![PathBuf::from(std::ffi::OsStr::from_bytes(b"/x/\xff"))];
        assert_eq!(text(&c).unwrap_err().key, "statefiles");
    }
}
