//! `xe pool-ha-enable`, `pool-ha-status` and `pool-ha-disable` against a
//! real agent with real `xhad` and `xha-supervisor` (process launcher), a
//! `file` SR in the agent's temporary directory.

mod live_support;

use std::path::PathBuf;

use live_support::{Agent, HOST_UUID};
use xha_lab::agent::StopDaemons;

/// `xhad` and `xha-supervisor`, built beside `xe` (a no-op when current).
fn xha_bins() -> (PathBuf, PathBuf) {
    let dir = xha_lab::workspace_build::build_workspace_bins(
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_BIN_EXE_xe"),
    );
    (dir.join("xhad"), dir.join("xha-supervisor"))
}

#[test]
fn pool_ha_enable_status_disable() {
    let (xhad, supervisor) = xha_bins();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let agent = Agent::start_extra(HOST_UUID, "127.0.0.1:0", |dir| {
        format!(
            "[xhad]\npath = \"{}\"\nconfig_dir = \"{}/xhad\"\nlauncher = \"process\"\nsupervisor_path = \"{}\"\nheartbeat_address = \"127.0.0.1:{port}\"\n",
            xhad.display(),
            dir.display(),
            supervisor.display()
        )
    });
    let sr_dir = agent.dir.path().join("sr");
    std::fs::create_dir(&sr_dir).expect("SR dir");
    let sr = agent
        .xe(&[
            "sr-create",
            "name-label=heartbeat",
            "type=file",
            "shared=true",
            &format!("device-config:path={}", sr_dir.display()),
        ])
        .ok();
    let sr = sr.trim();

    // Checked before connecting: a misspelt key never reaches the agent.
    let out = agent.xe(&["pool-ha-enable", "heartbeat-sr-uuid=x"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("heartbeat-sr-uuids"), "{out:?}");

    let off = agent.xe(&["pool-ha-status"]).ok();
    assert_eq!(off.trim(), "ha-enabled ( RO): false");
    let out = agent.xe(&["pool-ha-disable"]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("HA_NOT_ENABLED"), "{out:?}");

    agent
        .xe(&[
            "pool-ha-enable",
            &format!("heartbeat-sr-uuids={sr}"),
            "ha-config:timeout=10",
        ])
        .ok();
    let _daemons = StopDaemons::new(agent.dir.path().join("xhad"));
    let status: serde_json::Value =
        serde_json::from_str(&agent.xe(&["pool-ha-status", "--json"]).ok()).expect("JSON");
    assert_eq!(status["ha_enabled"], true, "{status}");
    assert_eq!(status["timeout"], "10");
    assert_eq!(status["master"]["uuid"], HOST_UUID);
    assert!(status["master_epoch"].as_i64().unwrap_or(0) > 0, "{status}");
    assert_eq!(status["liveset"], serde_json::json!([HOST_UUID]));
    assert_eq!(status["hosts"][0]["live"], true);
    assert_eq!(status["hosts"][0]["statefile_access"], true);
    // haengine: the restart engine's part (no VMs here; the plan of an
    // empty pool of one tolerates no failure).
    assert_eq!(status["plan"]["host_failures_to_tolerate"], 0, "{status}");
    assert_eq!(status["plan"]["plan_exists_for"], 0, "{status}");
    assert_eq!(status["plan"]["overcommitted"], false, "{status}");
    assert_eq!(status["vms"], serde_json::json!([]), "{status}");
    let text = agent.xe(&["pool-ha-status"]).ok();
    assert!(
        text.contains(&format!("master ( RO): {HOST_UUID}")),
        "{text}"
    );
    assert!(text.contains("statefile-access ( RO): true"), "{text}");
    assert!(text.contains("plan-exists-for ( RO): 0"), "{text}");

    let out = agent.xe(&["pool-ha-enable", &format!("heartbeat-sr-uuids={sr}")]);
    assert_eq!(out.code, 6, "{out:?}");
    assert!(out.stderr.contains("HA is enabled on the Pool"), "{out:?}");
    agent.xe(&["pool-ha-disable"]).ok();
    let off = agent.xe(&["pool-ha-status"]).ok();
    assert_eq!(off.trim(), "ha-enabled ( RO): false");
}
