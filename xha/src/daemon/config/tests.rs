//! One test per configuration rule.

use super::*;
use crate::daemon::exit::ExitCode;

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";
const C: &str = "00000000-0000-0000-0000-00000000000c";
const GEN: &str = "11111111-2222-3333-4444-555555555555";

fn base(host: &str) -> String {
    format!(
        r#"
pool-generation = "{GEN}"
host = "{host}"
timeout = 10
secret-file = "secret"
statefiles = ["/dev/sdx"]
fence-action = "kill-host"

[watchdog]
backend = "supervisor"
socket = "sup.sock"

[[hosts]]
uuid = "{C}"
address = "127.0.0.3"

[[hosts]]
uuid = "{A}"
address = "127.0.0.1:7001"

[[hosts]]
uuid = "{B}"
address = "127.0.0.2:7002"
"#
    )
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/xhad"))
}

#[test]
fn valid_config_sorts_hosts_and_resolves_paths() {
    let c = parse(&base(B)).unwrap();
    let uuids: Vec<String> = c.hosts.iter().map(|h| h.uuid.to_string()).collect();
    assert_eq!(uuids, vec![A, B, C]);
    assert_eq!(c.local_index, 1);
    assert_eq!(c.local().address, "127.0.0.2:7002".parse().unwrap());
    assert_eq!(c.hosts[2].address, "127.0.0.3:694".parse().unwrap());
    assert_eq!(c.timeouts.base, Duration::from_secs(10));
    assert_eq!(c.secret_file, PathBuf::from("/etc/xhad/secret"));
    assert_eq!(c.statefiles, vec![PathBuf::from("/dev/sdx")]);
    assert_eq!(
        c.watchdog,
        WatchdogConfig::Supervisor {
            socket: PathBuf::from("/etc/xhad/sup.sock")
        }
    );
    assert_eq!(c.fence_action, FenceAction::KillHost);
    assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let core = c.core_config(7);
    assert_eq!(core.local, 1);
    assert_eq!(core.hosts.len(), 3);
    core.validate().unwrap();
}

#[test]
fn defaults() {
    let text = format!(
        "pool-generation = \"{GEN}\"\nhost = \"{A}\"\nsecret-file = \"/s\"\nstatefiles = [\"/f\"]\n[[hosts]]\nuuid = \"{A}\"\naddress = \"10.0.0.1\"\n"
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.timeouts.base, crate::core::timeouts::DEFAULT_BASE);
    assert_eq!(
        c.watchdog,
        WatchdogConfig::Linux {
            device: PathBuf::from("/dev/watchdog")
        }
    );
    assert_eq!(c.fence_action, FenceAction::Reboot);
    assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
}

fn err(text: &str) -> ConfigError {
    let e = parse(text).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::InvalidConfig, "{e}");
    e
}

#[test]
fn unknown_key_is_named() {
    let e = err(&base(A).replace("timeout = 10", "timeout = 10\ntimeuot = 3"));
    let s = e.to_string();
    assert!(s.contains("timeuot"), "{s}");
    assert!(s.starts_with("line 5"), "{s}");
    let e = err(&base(A).replace(
        "address = \"127.0.0.3\"",
        "address = \"127.0.0.3\"\nport = 1",
    ));
    assert!(e.to_string().contains("unknown field `port`"), "{e}");
}

#[test]
fn wrong_type_shows_the_line() {
    let e = err(&base(A).replace("timeout = 10", "timeout = \"10\""));
    assert!(e.to_string().contains("`timeout = \"10\"`"), "{e}");
}

#[test]
fn duplicate_host_and_address() {
    let e = err(&base(A).replace(C, A));
    assert!(
        matches!(&e, ConfigError::DuplicateHost { key, first, .. } if key == "hosts[1].uuid" && first == "hosts[0].uuid"),
        "{e}"
    );
    let e = err(&base(A).replace("127.0.0.1:7001", "127.0.0.3:694"));
    assert!(
        matches!(&e, ConfigError::DuplicateAddress { key, .. } if key == "hosts[1].address"),
        "{e}"
    );
}

#[test]
fn local_host_missing() {
    let other = "00000000-0000-0000-0000-0000000000ff";
    assert!(matches!(
        err(&base(other)),
        ConfigError::LocalHostMissing { .. }
    ));
}

#[test]
fn bad_addresses() {
    for bad in [
        "host.example",
        "127.0.0.1:0",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "[::ffff:255.255.255.255]:7",
        "[::ffff:224.0.0.1]:7",
        "[::ffff:0.0.0.0]:7",
        "[::]:7",
        "[ff02::1]:7",
        "ff05::2",
        "[::1]:x",
        "1.2.3.4:99999",
        "",
    ] {
        let e = err(&base(A).replace("127.0.0.3", bad));
        assert!(
            matches!(&e, ConfigError::BadAddress { key, .. } if key == "hosts[0].address"),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        parse_address("k", "fe80::1").unwrap(),
        "[fe80::1]:694".parse().unwrap()
    );
    assert_eq!(
        parse_address("k", "[fe80::1]").unwrap(),
        "[fe80::1]:694".parse().unwrap()
    );
}

#[test]
fn only_unicast_addresses() {
    for (bad, why) in [
        ("255.255.255.255", "broadcast"),
        ("[::ffff:255.255.255.255]:7", "broadcast"),
        ("224.0.0.1", "multicast"),
        ("[::ffff:239.1.1.1]:7", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0:7", "unspecified"),
        ("::", "unspecified"),
        ("[::ffff:0.0.0.0]:7", "unspecified"),
    ] {
        let e = parse_address("hosts[3].address", bad).unwrap_err();
        assert!(
            matches!(&e, ConfigError::BadAddress { key, reason, .. } if key == "hosts[3].address" && reason.contains(why)),
            "{bad}: {e}"
        );
    }
    // A directed broadcast cannot be told from a unicast address.
    assert!(parse_address("k", "10.0.0.255").is_ok());
    assert!(parse_address("k", "[::ffff:10.0.0.1]:7").is_ok());
}

#[test]
fn one_address_family() {
    let e = err(&base(A).replace("127.0.0.2:7002", "[::1]:7002"));
    assert!(
        matches!(&e, ConfigError::BadAddress { key, reason, .. } if key == "hosts[2].address" && reason.contains("one family")),
        "{e}"
    );
    let v6 = base(A)
        .replace("127.0.0.1:7001", "[::1]:7001")
        .replace("127.0.0.2:7002", "[::2]:7002")
        .replace("\"127.0.0.3\"", "\"::3\"");
    let c = parse(&v6).unwrap();
    assert!(c.hosts.iter().all(|h| h.address.is_ipv6()));
}

#[test]
fn timeout_range() {
    for t in ["9", "0", "-1", "3601"] {
        let e = err(&base(A).replace("timeout = 10", &format!("timeout = {t}")));
        assert!(
            matches!(e, ConfigError::TimeoutOutOfRange { .. }),
            "{t}: {e}"
        );
    }
    assert!(parse(&base(A).replace("timeout = 10", "timeout = 3600")).is_ok());
}

#[test]
fn master_lease() {
    assert_eq!(
        parse(&base(A)).unwrap().master_lease,
        None,
        "none by default"
    );
    let with = |v: &str| {
        base(A).replace(
            "timeout = 10",
            &format!("timeout = 10\nmaster-lease-ms = {v}"),
        )
    };
    assert_eq!(
        parse(&with("4000")).unwrap().master_lease,
        Some(Duration::from_secs(4))
    );
    for v in ["499", "0", "-1", "3600001"] {
        let e = err(&with(v));
        assert!(
            matches!(e, ConfigError::MasterLeaseOutOfRange { .. }),
            "{v}: {e}"
        );
        assert!(e.to_string().starts_with("master-lease-ms: "), "{e}");
    }
}

#[test]
fn boot_join_timeout() {
    assert_eq!(
        parse(&base(A)).unwrap().boot_join_timeout,
        Duration::from_secs(100),
        "10 T by default"
    );
    let with = |v: &str| {
        base(A).replace(
            "timeout = 10",
            &format!("timeout = 10\nboot-join-timeout = {v}"),
        )
    };
    assert_eq!(
        parse(&with("10")).unwrap().boot_join_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(
        parse(&with("86400")).unwrap().boot_join_timeout,
        Duration::from_secs(86_400)
    );
    for v in ["9", "0", "-1", "86401"] {
        let e = err(&with(v));
        assert!(
            matches!(e, ConfigError::BootJoinTimeoutOutOfRange { min: 10, .. }),
            "{v}: {e}"
        );
        assert!(e.to_string().starts_with("boot-join-timeout: "), "{e}");
    }
}

#[test]
fn too_many_hosts() {
    let mut text = base(A);
    for i in 0..61u32 {
        text.push_str(&format!(
            "[[hosts]]\nuuid = \"{}\"\naddress = \"10.1.{}.{}\"\n",
            Uuid::from_u128(0x1000 + u128::from(i)),
            i / 200,
            i % 200 + 1
        ));
    }
    assert!(parse(&text).is_ok(), "64 hosts are fine");
    text.push_str(
        "[[hosts]]\nuuid = \"00000000-0000-0000-0000-00000000ffff\"\naddress = \"10.9.9.9\"\n",
    );
    assert_eq!(err(&text), ConfigError::HostCount { count: 65 });
}

#[test]
fn uuids() {
    let e = err(&base(A).replace(GEN, "not-a-uuid"));
    assert!(
        matches!(&e, ConfigError::BadUuid { key, .. } if key == "pool-generation"),
        "{e}"
    );
    let e = err(&base(A).replace(GEN, "00000000-0000-0000-0000-000000000000"));
    assert!(
        matches!(&e, ConfigError::NilUuid { key } if key == "pool-generation"),
        "{e}"
    );
}

#[test]
fn watchdog_rules() {
    let none = base(A).replace(
        "backend = \"supervisor\"\nsocket = \"sup.sock\"",
        "backend = \"none\"",
    );
    assert_eq!(err(&none), ConfigError::NoWatchdogNotAllowed);
    let none_ok = none.replace(
        "backend = \"none\"",
        "backend = \"none\"\nallow-no-watchdog = true",
    );
    assert_eq!(parse(&none_ok).unwrap().watchdog, WatchdogConfig::None);
    let linux_with_socket = base(A).replace("backend = \"supervisor\"", "backend = \"linux\"");
    assert!(matches!(
        err(&linux_with_socket),
        ConfigError::WatchdogKeyNotAllowed { key: "socket", .. }
    ));
    let e = err(&base(A).replace("backend = \"supervisor\"", "backend = \"hardware\""));
    assert!(e.to_string().contains("unknown variant `hardware`"), "{e}");
}

#[test]
fn statefiles() {
    let e = err(&base(A).replace("[\"/dev/sdx\"]", "[]"));
    assert_eq!(e, ConfigError::StatefileCount { count: 0 });
    let e = err(&base(A).replace("[\"/dev/sdx\"]", "[\"/a\", \"/b\", \"/a\"]"));
    assert!(
        matches!(&e, ConfigError::DuplicateStatefile { key, .. } if key == "statefiles[2]"),
        "{e}"
    );
    let e = err(&base(A).replace("[\"/dev/sdx\"]", "[\"\"]"));
    assert!(
        matches!(&e, ConfigError::EmptyPath { key } if key == "statefiles[0]"),
        "{e}"
    );
}

#[test]
fn statefile_regions() {
    let with = |entries: &str| base(A).replace("[\"/dev/sdx\"]", entries);
    let c = parse(&with(
        "[\"/dev/sdy\", { path = \"/dev/sdx\", offset = 1048576, length = 4194304 }, { path = \"/dev/sdx\", offset = 5242880, length = 4194304 }]",
    ))
    .unwrap();
    assert_eq!(c.statefiles.len(), 3);
    assert_eq!(c.statefile_regions[0], None);
    assert_eq!(
        c.statefile_regions[1],
        Some(sr_heartbeat::io::Region {
            offset: 1 << 20,
            len: 4 << 20
        })
    );
    assert_eq!(c.statefiles[2], PathBuf::from("/dev/sdx"));
    // Bad regions name the key and the value.
    for (entry, key, value) in [
        (
            "{ path = \"/d\", offset = 1000, length = 4194304 }",
            "statefiles[0].offset",
            1000,
        ),
        (
            "{ path = \"/d\", offset = -4096, length = 4194304 }",
            "statefiles[0].offset",
            -4096,
        ),
        (
            "{ path = \"/d\", offset = 4096, length = 4096 }",
            "statefiles[0].length",
            4096,
        ),
        (
            "{ path = \"/d\", offset = 4096, length = 4194305 }",
            "statefiles[0].length",
            4194305,
        ),
        (
            "{ path = \"/d\", offset = 4096 }",
            "statefiles[0].length",
            4096,
        ),
        (
            "{ path = \"/d\", length = 4194304 }",
            "statefiles[0].offset",
            4194304,
        ),
    ] {
        let e = err(&with(&format!("[{entry}]")));
        assert!(
            matches!(&e, ConfigError::StatefileRegion { key: k, value: v, .. } if k == key && *v == value),
            "{entry}: {e}"
        );
        assert!(e.to_string().starts_with(key), "{e}");
    }
    // Overlapping regions of one device, or a region and the whole device,
    // are one statefile listed twice.
    let e = err(&with(
        "[{ path = \"/d\", offset = 0, length = 8388608 }, { path = \"/d\", offset = 4194304, length = 4194304 }]",
    ));
    assert!(
        matches!(&e, ConfigError::DuplicateStatefile { key, .. } if key == "statefiles[1].path"),
        "{e}"
    );
    let e = err(&with(
        "[\"/d\", { path = \"/d\", offset = 0, length = 4194304 }]",
    ));
    assert!(matches!(&e, ConfigError::DuplicateStatefile { .. }), "{e}");
    let e = err(&with(
        "[{ path = \"/d\", offset = 0, length = 4194304, size = 1 }]",
    ));
    assert!(matches!(&e, ConfigError::Syntax { .. }), "{e}");
}

#[test]
fn missing_key_and_bad_syntax() {
    let e = err(&base(A).replace("host = ", "hostx = "));
    assert!(e.to_string().contains("hostx"), "{e}");
    let e = err("pool-generation = ");
    assert!(matches!(e, ConfigError::Syntax { line: 1, .. }), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
    /// Arbitrary text, and the sample with one line replaced by
    /// arbitrary text, never panic the parser.
    #[test]
    fn parse_is_total(text in ".{0,300}", line in 0usize..40, junk in "[ -~]{0,40}") {
        let _ = parse(&text);
        let mut lines: Vec<String> = base(A).lines().map(String::from).collect();
        let i = line % lines.len();
        lines[i] = junk;
        let _ = parse(&lines.join("\n"));
    }
}

#[test]
fn files_and_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("xhad.toml");
    let e = Config::load(&cfg).unwrap_err();
    assert!(matches!(e, ConfigError::ReadConfig { .. }));
    assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);
    // A FIFO or a directory is refused without blocking.
    nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);
    std::fs::remove_file(&cfg).unwrap();
    assert!(
        Config::load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not a regular file")
    );

    std::fs::write(&cfg, base(A)).unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert!(matches!(e, ConfigError::ReadSecret { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::CannotReadConfig);

    // The secret's own rules are tested in `daemon::secret`.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, [7u8; 32]).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Config::load(&cfg).unwrap_err();
    assert!(matches!(e, ConfigError::SecretWeak { .. }), "{e}");
    assert_eq!(e.exit_code(), ExitCode::InvalidConfig);
    let key: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37)).collect();
    std::fs::write(&secret, &key).unwrap();
    let l = Config::load(&cfg).unwrap();
    assert_eq!(l.secret.as_bytes(), &key[..]);
    assert_eq!(l.config.secret_file, secret);
}
