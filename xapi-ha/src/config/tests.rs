use super::*;

const MINIMAL: &str = r#"
[host]
uuid = "6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f00"
name = "h1"
address = "10.0.0.1"
[data]
dir = "/var/lib/xapi-ha"
"#;

#[test]
fn minimal_file_takes_the_defaults() {
    let c = Config::parse(MINIMAL).unwrap();
    assert_eq!(c.host_name, "h1");
    assert_eq!(c.api.tls_listen, vec!["0.0.0.0:443".parse().unwrap()]);
    assert!(c.api.http_listen.is_empty());
    assert_eq!(
        c.api.unix_socket.as_deref(),
        Some(Path::new("/run/xha/xapi-ha.sock"))
    );
    assert_eq!(c.api.max_body_bytes, 4 << 20);
    assert_eq!(c.memory_total_bytes, None);
    assert_eq!(c.xhad_path, Path::new("/usr/sbin/xhad"));
}

#[test]
fn the_example_file_parses() {
    let text = include_str!("../../../packaging/xapi-ha.toml.example");
    let c = Config::parse(text).unwrap();
    assert_eq!(c.drivers, vec!["qemu".to_owned()]);
}

fn err(extra: &str) -> String {
    Config::parse(&format!("{MINIMAL}{extra}"))
        .unwrap_err()
        .to_string()
}

#[test]
fn refusals_name_the_key() {
    assert!(
        err("[api]\nhttp_listen = [\"10.0.0.1:80\"]\n")
            .starts_with("api.http_listen: 10.0.0.1:80 is not a loopback")
    );
    assert!(err("[api]\nmax_body_bytes = 5\n").starts_with("api.max_body_bytes:"));
    assert!(err("[api]\nmax_connections = 0\n").starts_with("api.max_connections:"));
    assert!(err("[api]\nheader_timeout_s = 0\n").starts_with("api.header_timeout_s:"));
    assert!(err("[api]\nunix_socket = \"rel\"\n").starts_with("api.unix_socket:"));
    assert!(err("[api]\ntls_listen = [\"nonsense\"]\n").contains("tls_listen"));
    assert!(err("[api]\ntls_listen = []\nunix_socket = false\n").contains("unix_socket"));
    assert!(err("[vm]\ndrivers = [\"a b\"]\n").starts_with("vm.drivers:"));
    assert!(err("[memory]\ntotal_bytes = 0\n").starts_with("memory.total_bytes:"));
    assert!(err("[memory]\ntotal_byte = 5\n").contains("total_byte"));
    let bad_uuid = MINIMAL.replace("6f2b1c2e-8f33-4e4d-9a1c-0c7c2d1e5f00", "nope");
    assert!(
        Config::parse(&bad_uuid)
            .unwrap_err()
            .to_string()
            .starts_with("host.uuid:")
    );
    let no_name = MINIMAL.replace("name = \"h1\"\n", "");
    assert!(
        Config::parse(&no_name)
            .unwrap_err()
            .to_string()
            .contains("name")
    );
}

#[test]
fn plain_http_elsewhere_needs_the_explicit_option() {
    let c = Config::parse(&format!(
        "{MINIMAL}[api]\nhttp_listen = [\"0.0.0.0:80\"]\nallow_plain_http = true\n"
    ))
    .unwrap();
    assert!(c.api.allow_plain_http);
}

#[test]
fn meminfo() {
    assert_eq!(
        meminfo_total_bytes("MemTotal:       16307664 kB\nMemFree: 1 kB\n"),
        Some(16_307_664 * 1024)
    );
    assert_eq!(meminfo_total_bytes("MemFree: 1 kB\n"), None);
    assert_eq!(meminfo_total_bytes("MemTotal: x kB\n"), None);
}
