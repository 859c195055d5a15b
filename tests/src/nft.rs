//! Loopback packet drops with nftables, for tests whose "hosts" share the
//! loopback device (the lab pool's hosts are addresses 127.A.B.i; each
//! host's `xhad` heartbeats and its agent's host-to-host connections leave
//! from its address, so a rule between two addresses is a cut link of
//! the switch between two hosts): a
//! [`Table`] of the test's own (`inet xha_campaign_<pid>_<n>`), with one
//! input chain that only ever matches packets arriving on `lo` between two
//! loopback addresses, rules added and removed by handle, and the whole
//! table deleted on drop (also when the test panics). A table left by a
//! process that died (SIGKILL: no drop) is deleted by the next
//! [`Table::create`].
//!
//! The `nft` binary is run with `std::process::Command` (no dependency);
//! it needs root (CAP_NET_ADMIN).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The prefix of every table this module makes.
pub const TABLE_PREFIX: &str = "xha_campaign_";

/// An `nft` command that failed, or an address this module refuses.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft {args}: {reason}")]
    Command { args: String, reason: String },
    #[error(
        "not a host's loopback address: {0} (127.0.0.0/8 but not 127.0.0.1, which the tests themselves use)"
    )]
    NotLoopback(Ipv4Addr),
}

/// Runs `nft ARGS`; its standard output.
fn nft(args: &[&str]) -> Result<String, NftError> {
    let err = |reason: String| NftError::Command {
        args: args.join(" "),
        reason,
    };
    let out = Command::new("nft")
        .args(args)
        .output()
        .map_err(|e| err(e.to_string()))?;
    if !out.status.success() {
        return Err(err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why nftables cannot be used here (`nft` missing, not root...), or
/// `None`: a table could be made and deleted.
#[must_use]
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (nftables needs CAP_NET_ADMIN)".into());
    }
    match Table::create() {
        Ok(t) => {
            drop(t);
            None
        }
        Err(e) => Some(e.to_string()),
    }
}

/// The pid in a table name this module made (`xha_campaign_<pid>_<n>`).
fn owner_pid(table: &str) -> Option<i32> {
    table
        .strip_prefix(TABLE_PREFIX)?
        .split('_')
        .next()?
        .parse()
        .ok()
}

/// The handle `nft --echo --handle` printed (`... # handle 7`).
fn parse_handle(echo: &str) -> Option<u64> {
    echo.lines()
        .filter_map(|l| l.rsplit_once("# handle "))
        .find_map(|(_, h)| h.trim().parse().ok())
}

/// The rule dropping every packet from `from` to `to` on loopback.
fn drop_rule(from: Ipv4Addr, to: Ipv4Addr) -> String {
    format!("iifname \"lo\" ip saddr {from} ip daddr {to} drop")
}

static TABLES: AtomicUsize = AtomicUsize::new(0);

/// A table of this process's own (see the module documentation).
#[derive(Debug)]
pub struct Table {
    name: String,
}

impl Table {
    /// Deletes the tables of dead processes, then makes a new table with an
    /// input chain (policy accept: only its drop rules act).
    pub fn create() -> Result<Table, NftError> {
        for line in nft(&["list", "tables", "inet"])?.lines() {
            let Some(name) = line.trim().strip_prefix("table inet ") else {
                continue;
            };
            if owner_pid(name).is_some_and(|p| !xha_lab::power::process_alive(p)) {
                let _ = nft(&["delete", "table", "inet", name]);
            }
        }
        let name = format!(
            "{TABLE_PREFIX}{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::Relaxed)
        );
        nft(&["add", "table", "inet", &name])?;
        // From here on, an error drops the table.
        let table = Table { name };
        nft(&[
            "add",
            "chain",
            "inet",
            &table.name,
            "input",
            "{ type filter hook input priority 0 ; policy accept ; }",
        ])?;
        Ok(table)
    }

    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops every packet from `from` to `to` (two hosts' loopback
    /// addresses: UDP heartbeats and TCP alike); the rule's handle.
    pub fn drop_between(&self, from: Ipv4Addr, to: Ipv4Addr) -> Result<u64, NftError> {
        for a in [from, to] {
            if !a.is_loopback() || a == Ipv4Addr::LOCALHOST {
                return Err(NftError::NotLoopback(a));
            }
        }
        let rule = drop_rule(from, to);
        let echo = nft(&[
            "--echo", "--handle", "add", "rule", "inet", &self.name, "input", &rule,
        ])?;
        parse_handle(&echo).ok_or_else(|| NftError::Command {
            args: format!("add rule {rule}"),
            reason: format!("no handle in {echo:?}"),
        })
    }

    /// Removes the rule `handle`.
    pub fn remove(&self, handle: u64) -> Result<(), NftError> {
        nft(&[
            "delete",
            "rule",
            "inet",
            &self.name,
            "input",
            "handle",
            &handle.to_string(),
        ])
        .map(drop)
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        if let Err(e) = nft(&["delete", "table", "inet", &self.name]) {
            tracing::warn!(table = %self.name, error = %e, "could not delete the nftables table");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_owners_and_rules_are_read_and_written() {
        assert_eq!(
            parse_handle("add rule inet t input iifname \"lo\" drop # handle 12\n"),
            Some(12)
        );
        assert_eq!(parse_handle("nothing"), None);
        assert_eq!(owner_pid("xha_campaign_4711_3"), Some(4711));
        assert_eq!(owner_pid("filter"), None);
        let a: Ipv4Addr = "127.3.4.1".parse().unwrap();
        let b: Ipv4Addr = "127.3.4.2".parse().unwrap();
        assert_eq!(
            drop_rule(a, b),
            "iifname \"lo\" ip saddr 127.3.4.1 ip daddr 127.3.4.2 drop"
        );
    }

    /// Real packets: a datagram between two hosts' loopback addresses is
    /// dropped while the rule is there, the reverse direction still flows,
    /// and everything flows again once the rule is removed.
    #[test]
    fn a_rule_drops_one_direction_between_two_addresses_until_removed() {
        if let Some(why) = unavailable() {
            println!("skipped: nftables unavailable: {why}");
            return;
        }
        use std::net::{SocketAddr, UdpSocket};
        use std::time::Duration;
        let a = UdpSocket::bind("127.78.0.1:0").unwrap();
        let b = UdpSocket::bind("127.78.0.2:0").unwrap();
        for s in [&a, &b] {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let gets = |from: &UdpSocket, to: &UdpSocket, to_addr: SocketAddr| {
            from.send_to(b"x", to_addr).unwrap();
            let mut buf = [0u8; 4];
            to.recv_from(&mut buf).is_ok()
        };
        let ip = |a: SocketAddr| match a.ip() {
            std::net::IpAddr::V4(v) => v,
            std::net::IpAddr::V6(_) => unreachable!(),
        };
        let table = Table::create().unwrap();
        let h = table.drop_between(ip(aa), ip(ba)).unwrap();
        assert!(!gets(&a, &b, ba), "a->b should be dropped");
        assert!(gets(&b, &a, aa), "b->a should flow");
        table.remove(h).unwrap();
        assert!(gets(&a, &b, ba), "a->b should flow again");
        let name = table.name().to_owned();
        drop(table);
        assert!(!nft(&["list", "tables", "inet"]).unwrap().contains(&name));
        let table = Table::create().unwrap();
        for bad in ["10.0.0.1", "127.0.0.1"] {
            assert!(matches!(
                table.drop_between(bad.parse().unwrap(), ip(ba)),
                Err(NftError::NotLoopback(_))
            ));
        }
    }
}
