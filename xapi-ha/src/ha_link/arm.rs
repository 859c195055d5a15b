//! What the master hands every host of the pool to arm HA (the internal
//! call `host.ha_arm`, docs/ha-enable.md): the generation, T, the new
//! heartbeat secret, the SR files and every host's heartbeat address. Each
//! host builds its own `xhad.toml` from it ([`ArmSpec::config_for`]): the
//! files of the N hosts differ only in `host`. Pure; the I/O is in
//! `server::ha_hosts`.

use std::net::SocketAddr;
use std::path::PathBuf;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::regions::HaVolume;
use super::xhad_config::{Fencing, XhadConfig};

/// Shortest and longest heartbeat secret xhad accepts, bytes.
pub const SECRET_BYTES_RANGE: std::ops::RangeInclusive<usize> = 32..=4096;

/// One host of the pool as `xhad` knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmHost {
    pub uuid: Uuid,
    /// Its `xhad` heartbeat address (from its answer to `host.ha_prepare`).
    pub heartbeat: SocketAddr,
}

/// The argument of `host.ha_arm`, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmSpec {
    pub generation: Uuid,
    /// The base timeout T, seconds.
    pub timeout_s: u64,
    /// The heartbeat secret, base64 (it travels over the pool's TLS
    /// connection on a pool-secret session only).
    pub secret: String,
    /// Every statefile, in order.
    pub statefiles: Vec<PathBuf>,
    /// The metadata volume (recorded in the host's `ha-state.toml`).
    pub metadata: PathBuf,
    /// Every host of the pool.
    pub hosts: Vec<ArmHost>,
    /// blocksr: per statefile (same index), its region of a block SR's
    /// device; empty or `None` for a whole file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statefile_regions: Vec<Option<HaVolume>>,
    /// blocksr: the metadata volume's region of the device `metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_region: Option<HaVolume>,
}

/// Where this host keeps its daemon's files (from its launcher).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPaths {
    pub secret_file: PathBuf,
    pub control_socket: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub fencing: Fencing,
}

/// Why a spec is refused; names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec:{field}: {reason}")]
pub struct SpecError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError {
        field,
        reason: reason.into(),
    }
}

impl ArmSpec {
    /// A spec with `secret` encoded.
    #[must_use]
    pub fn new(
        generation: Uuid,
        timeout_s: u64,
        secret: &[u8],
        statefiles: Vec<PathBuf>,
        metadata: PathBuf,
        hosts: Vec<ArmHost>,
    ) -> ArmSpec {
        ArmSpec {
            generation,
            timeout_s,
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
            statefiles,
            metadata,
            hosts,
            statefile_regions: Vec::new(),
            metadata_region: None,
        }
    }

    /// The spec with the volumes' regions on a block SR.
    #[must_use]
    pub fn with_regions(
        mut self,
        statefile_regions: Vec<Option<HaVolume>>,
        metadata_region: Option<HaVolume>,
    ) -> ArmSpec {
        self.statefile_regions = statefile_regions;
        self.metadata_region = metadata_region;
        self
    }

    /// The statefile regions recorded in a host's `ha-state.toml`.
    #[must_use]
    pub fn region_volumes(&self) -> Vec<HaVolume> {
        self.statefile_regions.iter().flatten().cloned().collect()
    }

    /// The JSON text sent to a member.
    #[must_use]
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and checks the text a member received.
    pub fn parse(text: &str) -> Result<ArmSpec, SpecError> {
        let spec: ArmSpec = serde_json::from_str(text).map_err(|e| bad("json", e.to_string()))?;
        spec.check()?;
        Ok(spec)
    }

    /// The checks every host makes before it writes anything.
    pub fn check(&self) -> Result<(), SpecError> {
        let min = xha_core::timeouts::MIN_BASE.as_secs();
        let max = xha_core::timeouts::MAX_BASE.as_secs();
        if !(min..=max).contains(&self.timeout_s) {
            return Err(bad(
                "timeout_s",
                format!("{} is outside {min}..={max}", self.timeout_s),
            ));
        }
        let n = self.secret_bytes()?.len();
        if !SECRET_BYTES_RANGE.contains(&n) {
            return Err(bad("secret", format!("{n} bytes (32 ..= 4096)")));
        }
        if self.statefiles.is_empty() {
            return Err(bad("statefiles", "none"));
        }
        if self.statefile_regions.len() > self.statefiles.len() {
            return Err(bad(
                "statefile_regions",
                format!(
                    "{} regions for {} statefiles",
                    self.statefile_regions.len(),
                    self.statefiles.len()
                ),
            ));
        }
        if self.hosts.is_empty() {
            return Err(bad("hosts", "none"));
        }
        for (i, h) in self.hosts.iter().enumerate() {
            if self.hosts[..i].iter().any(|o| o.uuid == h.uuid) {
                return Err(bad("hosts", format!("{} appears twice", h.uuid)));
            }
            if self.hosts[..i].iter().any(|o| o.heartbeat == h.heartbeat) {
                return Err(bad(
                    "hosts",
                    format!("heartbeat address {} appears twice", h.heartbeat),
                ));
            }
        }
        Ok(())
    }

    /// The heartbeat secret's bytes.
    pub fn secret_bytes(&self) -> Result<Vec<u8>, SpecError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.secret)
            .map_err(|e| bad("secret", e.to_string()))
    }

    /// The `xhad` configuration of host `local` (one of [`ArmSpec::hosts`]):
    /// the same for every host but `host`, so every daemon lists the same
    /// peers in the same order.
    pub fn config_for(&self, local: Uuid, paths: &LocalPaths) -> Result<XhadConfig, SpecError> {
        if !self.hosts.iter().any(|h| h.uuid == local) {
            return Err(bad("hosts", format!("this host {local} is not listed")));
        }
        let mut hosts: Vec<(Uuid, SocketAddr)> =
            self.hosts.iter().map(|h| (h.uuid, h.heartbeat)).collect();
        hosts.sort_by_key(|(u, _)| *u);
        Ok(XhadConfig {
            generation: self.generation,
            local,
            timeout_s: self.timeout_s,
            secret_file: paths.secret_file.clone(),
            statefiles: self.statefiles.clone(),
            statefile_regions: self
                .statefile_regions
                .iter()
                .map(|v| v.as_ref().map(HaVolume::region))
                .collect(),
            control_socket: paths.control_socket.clone(),
            state_dir: paths.state_dir.clone(),
            fencing: paths.fencing.clone(),
            hosts,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::ha_link::xhad_config::text;
    use xha::daemon::config::Config;

    fn spec(n: u128) -> ArmSpec {
        let hosts = (1..=n)
            .rev()
            .map(|i| ArmHost {
                uuid: Uuid::from_u128(i),
                heartbeat: format!("127.0.0.{i}:7000").parse().unwrap(),
            })
            .collect();
        ArmSpec::new(
            Uuid::from_u128(99),
            10,
            &[7u8; 64],
            vec![PathBuf::from("/sr/a/ha-statefile-x")],
            PathBuf::from("/sr/a/ha-metadata-x"),
            hosts,
        )
    }

    fn paths() -> LocalPaths {
        LocalPaths {
            secret_file: PathBuf::from("/x/pool-secret"),
            control_socket: Some(PathBuf::from("/x/control.sock")),
            state_dir: Some(PathBuf::from("/x/state")),
            fencing: Fencing::Supervisor {
                socket: PathBuf::from("/x/supervisor.sock"),
            },
        }
    }

    #[test]
    fn host_i_of_n_gets_its_own_slot_and_every_peer() {
        let s = spec(3);
        let texts: Vec<String> = (1..=3u128)
            .map(|i| text(&s.config_for(Uuid::from_u128(i), &paths()).unwrap()).unwrap())
            .collect();
        for (i, t) in texts.iter().enumerate() {
            let c = Config::parse(t, Path::new("/x")).unwrap_or_else(|e| panic!("{e}\n{t}"));
            assert_eq!(c.local_uuid, Uuid::from_u128(i as u128 + 1));
            // Sorted by UUID: host i is index i - 1 on every host.
            assert_eq!(c.local_index, i);
            assert_eq!(c.pool_generation, Uuid::from_u128(99));
        }
        // The texts differ in the `host` line only.
        let strip = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with("host = "))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(strip(&texts[0]), strip(&texts[1]));
        assert_eq!(strip(&texts[1]), strip(&texts[2]));
        for i in 1..=3 {
            assert!(texts[0].contains(&format!("address = \"127.0.0.{i}:7000\"")));
        }
    }

    #[test]
    fn the_spec_round_trips_and_bad_fields_are_named() {
        let s = spec(2);
        assert_eq!(ArmSpec::parse(&s.to_text()).unwrap(), s);
        assert_eq!(s.secret_bytes().unwrap(), vec![7u8; 64]);

        fn field(f: impl FnOnce(&mut ArmSpec)) -> &'static str {
            let mut t = spec(2);
            f(&mut t);
            ArmSpec::parse(&t.to_text()).unwrap_err().field
        }
        let short = ArmSpec::new(Uuid::nil(), 10, &[1; 8], vec![], PathBuf::new(), vec![]).secret;
        assert_eq!(field(|s| s.timeout_s = 3), "timeout_s");
        assert_eq!(field(|s| s.secret = "***".into()), "secret");
        assert_eq!(field(|s| s.secret = short), "secret");
        assert_eq!(field(|s| s.statefiles.clear()), "statefiles");
        assert_eq!(field(|s| s.hosts.clear()), "hosts");
        assert_eq!(
            field(|s| s.statefile_regions = vec![None, None]),
            "statefile_regions"
        );
        assert_eq!(
            field(|s| {
                let h = s.hosts[0].clone();
                s.hosts.push(h);
            }),
            "hosts"
        );
        assert_eq!(
            field(|s| s.hosts[1].heartbeat = s.hosts[0].heartbeat),
            "hosts"
        );
        assert_eq!(ArmSpec::parse("{").unwrap_err().field, "json");
        assert_eq!(
            ArmSpec::parse(&s.to_text().replacen('{', "{\"extra\":1,", 1))
                .unwrap_err()
                .field,
            "json"
        );
    }

    #[test]
    fn a_host_not_listed_is_refused() {
        let e = spec(2)
            .config_for(Uuid::from_u128(5), &paths())
            .unwrap_err();
        assert_eq!(e.field, "hosts");
    }
}
