//! Network namespaces for end-to-end tests: every host in its own namespace,
//! all plugged into a bridge that lives in a "switch" namespace of its own,
//! so the tests never touch the machine's own network.
//!
//! ```text
//!   ns <p>h0: eth0 10.<n>.0.1 ──veth── p0 ┐
//!   ns <p>h1: eth0 10.<n>.0.2 ──veth── p1 ├─ br0 (ns <p>sw)
//!   ns <p>h2: eth0 10.<n>.0.3 ──veth── p2 ┘   br1 (for splits)
//! ```
//!
//! Faults: [`Net::cut`] takes a host's switch port down (its link is cut, it
//! keeps its statefile, which lives on the shared file system);
//! [`Net::cut_all`] takes the bridge down (a switch failure: every link at
//! once);
//! [`Net::split`] moves ports between bridges so each group only reaches
//! itself. Processes are started inside a host's namespace with
//! `ip netns exec <name> ...` ([`Net::exec_prefix`]). Dropping the [`Net`]
//! deletes every namespace it created (their veths and bridges go with
//! them), also when a test fails. Needs root and `ip` (iproute2).

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

/// Why a namespace operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`ip {args}` failed: {message}")]
    Ip { args: String, message: String },
    #[error("{0}")]
    Unavailable(String),
}

/// Run `ip ARGS`, returning its stderr on failure.
fn ip(args: &[&str]) -> Result<(), NetError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetError::Ip {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Ip {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Whether namespaces can be created here; the reason when not.
pub fn available() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("network namespaces need root".into());
    }
    let probe = format!("xhaprobe{}", std::process::id());
    ip(&["netns", "add", &probe]).map_err(|e| format!("cannot create a namespace: {e}"))?;
    let _ = ip(&["netns", "del", &probe]);
    Ok(())
}

/// A set of host namespaces on a switch.
#[derive(Debug)]
pub struct Net {
    prefix: String,
    subnet: u8,
    hosts: usize,
    created: Vec<String>,
}

impl Net {
    /// `hosts` namespaces on one bridge. `tag` (a few letters) keeps
    /// concurrent tests apart; the process id keeps concurrent runs apart.
    pub fn new(tag: &str, hosts: usize) -> Result<Net, NetError> {
        if hosts == 0 || hosts > 200 {
            return Err(NetError::Unavailable(format!(
                "{hosts} hosts: expected 1 to 200"
            )));
        }
        let pid = std::process::id();
        let tag: String = tag
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(4)
            .collect();
        let prefix = format!("x{}{tag}", pid % 100_000);
        // A subnet per (pid, tag), within 10.64.0.0/10.
        let subnet = 64
            + u8::try_from(
                (pid as usize + tag.len() * 7 + tag.bytes().map(usize::from).sum::<usize>()) % 64,
            )
            .unwrap_or(0);
        let mut net = Net {
            prefix,
            subnet,
            hosts,
            created: Vec::new(),
        };
        net.build()?;
        Ok(net)
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of host `i`.
    #[must_use]
    pub fn host_ns(&self, i: usize) -> String {
        format!("{}h{i}", self.prefix)
    }

    /// Host `i`'s address (on its `eth0`).
    #[must_use]
    pub fn address(&self, i: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            10,
            self.subnet,
            0,
            u8::try_from(i + 1).unwrap_or(255),
        ))
    }

    /// The command prefix that runs a program in host `i`'s namespace.
    #[must_use]
    pub fn exec_prefix(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.host_ns(i)]
    }

    fn add_ns(&mut self, name: &str) -> Result<(), NetError> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_owned());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    fn build(&mut self) -> Result<(), NetError> {
        let sw = self.switch();
        self.add_ns(&sw)?;
        for br in ["br0", "br1"] {
            ip(&["-n", &sw, "link", "add", br, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", br, "up"])?;
        }
        for i in 0..self.hosts {
            let ns = self.host_ns(i);
            self.add_ns(&ns)?;
            let port = format!("p{i}");
            ip(&[
                "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &sw,
            ])?;
            let addr = format!("{}/16", self.address(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &sw, "link", "set", &port, "up"])?;
        }
        Ok(())
    }

    /// Cut host `i`'s link (its switch port goes down).
    pub fn cut(&self, i: usize) -> Result<(), NetError> {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{i}"),
            "down",
        ])
    }

    /// The switch fails: every host's link is cut at the same instant (the
    /// bridge goes down, so no port forwards any more). Undone by
    /// [`Net::switch_up`].
    pub fn cut_all(&self) -> Result<(), NetError> {
        ip(&["-n", &self.switch(), "link", "set", "br0", "down"])
    }

    /// The switch works again.
    pub fn switch_up(&self) -> Result<(), NetError> {
        ip(&["-n", &self.switch(), "link", "set", "br0", "up"])
    }

    /// Restore host `i`'s link.
    pub fn restore(&self, i: usize) -> Result<(), NetError> {
        ip(&["-n", &self.switch(), "link", "set", &format!("p{i}"), "up"])
    }

    /// Split the network: hosts in `group` move to the second bridge, the
    /// others stay on the first; the two groups no longer reach each other.
    pub fn split(&self, group: &[usize]) -> Result<(), NetError> {
        let sw = self.switch();
        for &i in group {
            ip(&["-n", &sw, "link", "set", &format!("p{i}"), "master", "br1"])?;
        }
        Ok(())
    }

    /// Join the two bridges' hosts again.
    pub fn heal(&self) -> Result<(), NetError> {
        let sw = self.switch();
        for i in 0..self.hosts {
            ip(&["-n", &sw, "link", "set", &format!("p{i}"), "master", "br0"])?;
        }
        Ok(())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Host namespaces first: their veth ends die with them; the switch
        // namespace takes the bridges.
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns cleanup: {e}");
            }
        }
    }
}
