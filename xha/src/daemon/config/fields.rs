//! The rules for each key: the raw TOML shape, and one function per key
//! that turns its raw value into a checked one or a [`ConfigError`] naming it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sr_heartbeat::io::{REGION_ALIGN, Region};
use sr_heartbeat::statefile::{MAX_HOSTS_LIMIT, STATEFILE_SIZE};
use uuid::Uuid;

use super::{
    ConfigError, DEFAULT_BOOT_JOIN_TIMEOUT_T, DEFAULT_PORT, DEFAULT_SUPERVISOR_SOCKET,
    DEFAULT_WATCHDOG_DEVICE, FenceAction, Host, MAX_BOOT_JOIN_TIMEOUT_S, MAX_MASTER_LEASE_MS,
    MAX_STATEFILES, MIN_MASTER_LEASE_MS, WatchdogConfig,
};
use crate::core::Timeouts;
use crate::core::timeouts::{MAX_BASE, MIN_BASE};
use crate::daemon::watchdog::backend_name;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawConfig {
    pub(super) pool_generation: String,
    pub(super) host: String,
    pub(super) timeout: Option<i64>,
    pub(super) boot_join_timeout: Option<i64>,
    pub(super) secret_file: PathBuf,
    pub(super) statefiles: Vec<RawStatefile>,
    pub(super) fence_action: Option<FenceAction>,
    pub(super) control_socket: Option<PathBuf>,
    pub(super) control_uids: Option<Vec<u32>>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) master_candidate: Option<bool>,
    pub(super) master_lease_ms: Option<i64>,
    pub(super) watchdog: Option<RawWatchdog>,
    pub(super) hosts: Vec<RawHost>,
}

/// One `statefiles` entry: a path (the whole file or device), or a table
/// `{ path = "...", offset = N, length = N }` naming a region of a device
/// (the statefile volume of a block SR).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawStatefile {
    Path(PathBuf),
    Region(RawRegion),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    path: PathBuf,
    offset: Option<i64>,
    length: Option<i64>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub(super) enum Backend {
    Linux,
    Supervisor,
    None,
}

impl Backend {
    /// The backend's name (the serde names above are pinned to these by a
    /// test).
    fn name(self) -> &'static str {
        match self {
            Backend::Linux => backend_name::LINUX,
            Backend::Supervisor => backend_name::SUPERVISOR,
            Backend::None => backend_name::NONE,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawWatchdog {
    backend: Backend,
    device: Option<PathBuf>,
    socket: Option<PathBuf>,
    allow_no_watchdog: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawHost {
    uuid: String,
    address: String,
}

pub(super) fn parse_uuid(key: &str, value: &str) -> Result<Uuid, ConfigError> {
    let uuid = Uuid::parse_str(value.trim()).map_err(|e| ConfigError::BadUuid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: e.to_string(),
    })?;
    if uuid.is_nil() {
        return Err(ConfigError::NilUuid {
            key: key.to_owned(),
        });
    }
    Ok(uuid)
}

pub(super) fn parse_timeout(value: Option<i64>) -> Result<Timeouts, ConfigError> {
    let Some(value) = value else {
        return Ok(Timeouts::default());
    };
    let (min, max) = (MIN_BASE.as_secs(), MAX_BASE.as_secs());
    let out_of_range = ConfigError::TimeoutOutOfRange { value, min, max };
    // `Timeouts::derive` is the one place the range is checked.
    let secs = u64::try_from(value).map_err(|_| out_of_range.clone())?;
    Timeouts::derive(Duration::from_secs(secs)).map_err(|_| out_of_range)
}

pub(super) fn parse_boot_join_timeout(
    value: Option<i64>,
    base: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else {
        return Ok(base * DEFAULT_BOOT_JOIN_TIMEOUT_T);
    };
    let min = base.as_secs();
    let secs = u64::try_from(value)
        .ok()
        .filter(|s| (min..=MAX_BOOT_JOIN_TIMEOUT_S).contains(s))
        .ok_or(ConfigError::BootJoinTimeoutOutOfRange { value, min })?;
    Ok(Duration::from_secs(secs))
}

pub(super) fn parse_master_lease(value: Option<i64>) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    u64::try_from(value)
        .ok()
        .filter(|ms| (MIN_MASTER_LEASE_MS..=MAX_MASTER_LEASE_MS).contains(ms))
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or(ConfigError::MasterLeaseOutOfRange { value })
}

/// Parse `IP`, `IP:port` or `[IPv6]:port` (no host names: a heartbeat must
/// not depend on a name service that may be part of the failure).
pub fn parse_address(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    let bad = |reason: &str| ConfigError::BadAddress {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let v = value.trim();
    let addr = if let Ok(ip) = v.parse::<IpAddr>() {
        SocketAddr::new(ip, DEFAULT_PORT)
    } else if let Ok(sa) = v.parse::<SocketAddr>() {
        sa
    } else if v.starts_with('[') && v.ends_with(']') {
        let ip: IpAddr = v[1..v.len() - 1]
            .parse()
            .map_err(|_| bad("expected an IPv6 address inside [ ]"))?;
        SocketAddr::new(ip, DEFAULT_PORT)
    } else {
        return Err(bad(
            "expected an IP address, IP:port or [IPv6]:port (host names are not accepted)",
        ));
    };
    if addr.port() == 0 {
        return Err(bad("port 0 cannot receive heartbeats"));
    }
    if let Some(reason) = not_unicast(addr.ip()) {
        return Err(bad(reason));
    }
    Ok(addr)
}

/// Why `ip` cannot be one host's heartbeat address, if it cannot: the
/// daemon binds it and every peer sends to it, one datagram per peer, so it
/// must name one host. An IPv4-mapped IPv6 address is judged as the IPv4
/// address it maps. A directed subnet broadcast (`10.0.0.255` in a /24)
/// looks like a unicast address without the netmask, which the
/// configuration does not know, so it is not refused here.
pub(super) fn not_unicast(ip: IpAddr) -> Option<&'static str> {
    let ip = ip.to_canonical();
    if ip.is_unspecified() {
        return Some("the unspecified address cannot receive heartbeats");
    }
    if ip.is_multicast() {
        return Some("heartbeats are unicast; multicast addresses are refused");
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Some("heartbeats are unicast; the broadcast address is refused");
    }
    None
}

pub(super) fn parse_hosts(raw: &[RawHost]) -> Result<Vec<Host>, ConfigError> {
    if raw.is_empty() || raw.len() > MAX_HOSTS_LIMIT {
        return Err(ConfigError::HostCount { count: raw.len() });
    }
    let mut by_uuid: HashMap<Uuid, String> = HashMap::new();
    let mut by_addr: HashMap<SocketAddr, String> = HashMap::new();
    let mut hosts = Vec::with_capacity(raw.len());
    for (i, h) in raw.iter().enumerate() {
        let uuid_key = format!("hosts[{i}].uuid");
        let addr_key = format!("hosts[{i}].address");
        let uuid = parse_uuid(&uuid_key, &h.uuid)?;
        let address = parse_address(&addr_key, &h.address)?;
        if let Some(first) = by_uuid.get(&uuid) {
            return Err(ConfigError::DuplicateHost {
                key: uuid_key,
                uuid,
                first: first.clone(),
            });
        }
        if let Some(first) = by_addr.get(&address) {
            return Err(ConfigError::DuplicateAddress {
                key: addr_key,
                address,
                first: first.clone(),
            });
        }
        by_uuid.insert(uuid, uuid_key);
        by_addr.insert(address, addr_key);
        hosts.push(Host {
            uuid,
            index: 0,
            address,
        });
    }
    hosts.sort_by_key(|h| h.uuid);
    for (i, h) in hosts.iter_mut().enumerate() {
        h.index = i;
    }
    Ok(hosts)
}

/// One socket bound to this host's address sends to every peer, so every
/// address must be of the same family (IPv4 or IPv6) as this host's.
pub(super) fn check_families(raw: &[RawHost], local: &Host) -> Result<(), ConfigError> {
    for (i, h) in raw.iter().enumerate() {
        let key = format!("hosts[{i}].address");
        let addr = parse_address(&key, &h.address)?;
        if addr.is_ipv6() != local.address.is_ipv6() {
            let family = |v6| if v6 { "IPv6" } else { "IPv4" };
            return Err(ConfigError::BadAddress {
                key,
                value: h.address.clone(),
                reason: format!(
                    "an {} address, but this host's address {} is {}; all heartbeat addresses must be of one family",
                    family(addr.is_ipv6()),
                    local.address,
                    family(local.address.is_ipv6())
                ),
            });
        }
    }
    Ok(())
}

pub(super) fn resolve(key: &str, path: &Path, base_dir: &Path) -> Result<PathBuf, ConfigError> {
    if path.as_os_str().is_empty() {
        return Err(ConfigError::EmptyPath {
            key: key.to_owned(),
        });
    }
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    })
}

/// A region entry's `offset` and `length`: both given, whole multiples of
/// 4096, the length at least a statefile's size.
fn parse_region(i: usize, r: &RawRegion) -> Result<Option<Region>, ConfigError> {
    let bad = |field: &str, value: i64, reason: String| ConfigError::StatefileRegion {
        key: format!("statefiles[{i}].{field}"),
        value,
        reason,
    };
    let (offset, length) = match (r.offset, r.length) {
        (None, None) => return Ok(None),
        (Some(o), Some(l)) => (o, l),
        (Some(o), None) => return Err(bad("length", o, "offset is given without length".into())),
        (None, Some(l)) => return Err(bad("offset", l, "length is given without offset".into())),
    };
    let align = REGION_ALIGN as i64;
    if offset < 0 || offset % align != 0 {
        return Err(bad(
            "offset",
            offset,
            format!("must be a non-negative multiple of {align}"),
        ));
    }
    let min = STATEFILE_SIZE as i64;
    if length < min || length % align != 0 {
        return Err(bad(
            "length",
            length,
            format!("must be a multiple of {align} of at least {min} (a statefile)"),
        ));
    }
    Ok(Some(Region {
        offset: offset as u64,
        len: length as u64,
    }))
}

pub(super) fn parse_statefiles(
    raw: &[RawStatefile],
    base_dir: &Path,
) -> Result<Vec<(PathBuf, Option<Region>)>, ConfigError> {
    if raw.is_empty() || raw.len() > MAX_STATEFILES {
        return Err(ConfigError::StatefileCount { count: raw.len() });
    }
    let mut out: Vec<(PathBuf, Option<Region>)> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let (p, region, key) = match entry {
            RawStatefile::Path(p) => (p, None, format!("statefiles[{i}]")),
            RawStatefile::Region(r) => (
                &r.path,
                parse_region(i, r)?,
                format!("statefiles[{i}].path"),
            ),
        };
        let path = resolve(&key, p, base_dir)?;
        if let Some(j) = out
            .iter()
            .position(|(q, other)| *q == path && regions_meet(*other, region))
        {
            return Err(ConfigError::DuplicateStatefile {
                key,
                path,
                first: format!("statefiles[{j}]"),
            });
        }
        out.push((path, region));
    }
    Ok(out)
}

/// Whether two entries on one file or device share bytes: the whole file
/// meets everything; two regions meet when they overlap.
#[must_use]
pub fn regions_meet(a: Option<Region>, b: Option<Region>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.offset < b.offset + b.len && b.offset < a.offset + a.len,
        _ => true,
    }
}

pub(super) fn parse_watchdog(
    raw: Option<RawWatchdog>,
    base_dir: &Path,
) -> Result<WatchdogConfig, ConfigError> {
    let Some(w) = raw else {
        return Ok(WatchdogConfig::Linux {
            device: PathBuf::from(DEFAULT_WATCHDOG_DEVICE),
        });
    };
    let name = w.backend.name();
    let not_allowed = |key: &'static str| ConfigError::WatchdogKeyNotAllowed {
        key,
        backend: name.to_owned(),
    };
    if w.backend != Backend::Linux && w.device.is_some() {
        return Err(not_allowed("device"));
    }
    if w.backend != Backend::Supervisor && w.socket.is_some() {
        return Err(not_allowed("socket"));
    }
    if w.backend != Backend::None && w.allow_no_watchdog.is_some() {
        return Err(not_allowed("allow-no-watchdog"));
    }
    Ok(match w.backend {
        Backend::Linux => WatchdogConfig::Linux {
            device: match &w.device {
                Some(p) => resolve("watchdog.device", p, base_dir)?,
                None => PathBuf::from(DEFAULT_WATCHDOG_DEVICE),
            },
        },
        Backend::Supervisor => WatchdogConfig::Supervisor {
            socket: match &w.socket {
                Some(p) => resolve("watchdog.socket", p, base_dir)?,
                None => PathBuf::from(DEFAULT_SUPERVISOR_SOCKET),
            },
        },
        Backend::None => {
            if w.allow_no_watchdog != Some(true) {
                return Err(ConfigError::NoWatchdogNotAllowed);
            }
            WatchdogConfig::None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `watchdog.backend` accepts exactly the backends' names.
    #[test]
    fn backend_names_are_the_watchdogs() {
        #[derive(Deserialize)]
        struct W {
            backend: Backend,
        }
        for b in [Backend::Linux, Backend::Supervisor, Backend::None] {
            let w: W = toml::from_str(&format!("backend = \"{}\"", b.name())).unwrap();
            assert_eq!(w.backend, b);
        }
    }
}
