//! The configuration of one host of a pool of real agents (`xapi-ha`) on
//! loopback, with its `xhad` and `xha-supervisor` launched by the agent
//! (the `process` launcher) when HA is enabled: the one text that `xe lab`
//! and the pool tests (`xapi-ha/tests/pool_support`) write.

use std::path::Path;

/// One host's configuration.
pub struct PoolHostConfig<'a> {
    /// The agent's directory (its data, socket and `xhad/` live there).
    pub dir: &'a Path,
    pub uuid: &'a str,
    /// `host-<i>`: also the process VMs' `XHA_HOST`.
    pub name: &'a str,
    /// The host's loopback address (every host its own, one TLS port).
    pub address: &'a str,
    pub tls_port: u16,
    /// The plain HTTP listener, e.g. `127.0.0.1:0`.
    pub http_listen: &'a str,
    /// VM drivers, e.g. `["process"]`.
    pub drivers: &'a [&'a str],
    pub memory_bytes: u64,
}

impl PoolHostConfig<'_> {
    /// The configuration text.
    #[must_use]
    pub fn text(&self) -> String {
        let drivers = self
            .drivers
            .iter()
            .map(|d| format!("{d:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            r#"[host]
uuid = "{uuid}"
name = "{name}"
address = "{address}"
[api]
tls_listen = ["{address}:{port}"]
http_listen = ["{http}"]
unix_socket = "{d}/run/xapi-ha.sock"
[data]
dir = "{d}/data"
[vm]
drivers = [{drivers}]
[memory]
total_bytes = {mem}
"#,
            uuid = self.uuid,
            name = self.name,
            address = self.address,
            port = self.tls_port,
            http = self.http_listen,
            d = self.dir.display(),
            mem = self.memory_bytes,
        )
    }
}

/// The `[xhad]` section: the daemon and supervisor the agent launches with
/// the `process` launcher, their files in `<dir>/xhad`, the heartbeat on
/// `address:hb_port`.
#[must_use]
pub fn xhad_section(
    dir: &Path,
    xhad: &Path,
    supervisor: &Path,
    address: &str,
    hb_port: u16,
) -> String {
    format!(
        "[xhad]\npath = \"{}\"\nconfig_dir = \"{}/xhad\"\nlauncher = \"process\"\nsupervisor_path = \"{}\"\nheartbeat_address = \"{address}:{hb_port}\"\n",
        xhad.display(),
        dir.display(),
        supervisor.display()
    )
}
