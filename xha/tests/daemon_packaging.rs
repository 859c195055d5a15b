//! The packaged sample configuration parses, the systemd unit points at the
//! documented paths, and `docs/daemon.md` documents every configuration key
//! and every exit code.

use std::path::{Path, PathBuf};

use xha::daemon::config::{Config, FenceAction, WatchdogConfig};
use xha::daemon::exit::ExitCode;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn sample_config_parses() {
    let text = read("packaging/xhad.toml.example");
    let c = Config::parse(&text, Path::new("/etc/xhad")).unwrap();
    assert_eq!(c.hosts.len(), 3);
    assert_eq!(c.timeouts.base.as_secs(), 30);
    assert_eq!(c.fence_action, FenceAction::Reboot);
    assert_eq!(
        c.watchdog,
        WatchdogConfig::Linux {
            device: "/dev/watchdog".into()
        }
    );
    assert_eq!(c.local().uuid, c.local_uuid);
    assert_eq!(c.local().address, "192.0.2.11:694".parse().unwrap());
    assert!(c.hosts.iter().all(|h| h.address.is_ipv4()));
    c.core_config(1).validate().unwrap();
}

#[test]
fn unit_file_matches_the_documented_layout() {
    let unit = read("packaging/xhad.service");
    for needle in [
        "ExecStart=/usr/sbin/xhad --config /etc/xhad/xhad.toml",
        "RuntimeDirectory=xhad",
        "StateDirectory=xhad",
        "LimitMEMLOCK=infinity",
        "CPUSchedulingPolicy=rr",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle:?}");
    }
    // The restart guard lists exactly the codes a restart cannot fix.
    let line = unit
        .lines()
        .find(|l| l.starts_with("RestartPreventExitStatus="))
        .expect("RestartPreventExitStatus");
    // Exit codes, and signal names: SIGKILL is how the supervisor fences
    // a host's group, and a fenced xhad must not come back by itself.
    let (signals, codes): (Vec<&str>, Vec<&str>) = line["RestartPreventExitStatus=".len()..]
        .split_whitespace()
        .partition(|c| c.starts_with("SIG"));
    assert_eq!(signals, ["SIGKILL"], "{line}");
    let codes: Vec<u8> = codes
        .iter()
        .map(|c| c.parse().unwrap_or_else(|e| panic!("{c:?} in {line}: {e}")))
        .collect();
    for c in &codes {
        assert!(
            ExitCode::from_code(i32::from(*c)).is_some(),
            "{c} is not an exit code"
        );
    }
    assert!(codes.contains(&ExitCode::InvalidConfig.code()));
    assert!(!codes.contains(&ExitCode::WatchdogError.code()));
}

#[test]
fn docs_cover_every_key_and_exit_code() {
    let doc = read("docs/daemon.md");
    let sample = read("packaging/xhad.toml.example");
    let mut keys: Vec<String> = sample
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect();
    keys.extend(["allow-no-watchdog", "socket"].map(String::from));
    for k in keys {
        assert!(
            doc.contains(&format!("`{k}`")) || doc.contains(&format!(".{k}`")),
            "docs/daemon.md lacks key {k}"
        );
    }
    // The meaning is exit.rs's description, optionally followed by more.
    for c in ExitCode::ALL {
        let row = format!("| {} | `{}` | {}", c.code(), c.name(), c.description());
        assert!(
            doc.contains(&row),
            "docs/daemon.md lacks exit code row {row:?}"
        );
    }
}
