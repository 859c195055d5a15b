//! The planner commands without `pool-file=`: they run on the live pool of
//! a real `xapi-ha` agent (`pool.ha_get_planning_pool`) and print what they
//! print for a pool file; with `pool-file=` and connection options they
//! still read the file.

mod live_support;

use live_support::{Agent, HOST_UUID};

const MAX: &str = "pool-ha-compute-max-host-failures-to-tolerate";
const PLAN: &str = "pool-ha-compute-vm-failover-plan";

#[test]
fn planner_commands_run_on_the_live_pool() {
    let agent = Agent::start();
    // One live host and nothing protected running: the pool survives the
    // loss of its only host.
    assert_eq!(agent.xe(&[MAX]).ok(), "1\n");
    let json: serde_json::Value =
        serde_json::from_str(&agent.xe(&[MAX, "--json"]).ok()).expect("JSON");
    assert_eq!(json["max_host_failures"], 1, "{json}");
    assert_eq!(json["live_hosts"], 1, "{json}");
    let host = format!("host-uuids={HOST_UUID}");
    let plan = agent.xe(&[PLAN, &host, "--minimal"]).ok();
    assert_eq!(plan, "\n", "nothing to restart: {plan:?}");
    // An unknown host is the same error as for a pool file.
    let out = agent.xe(&[PLAN, "host-uuids=nosuchhost"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("nosuchhost"), "{out:?}");
    // With pool-file= the file is used, connection options or not.
    let file = format!(
        "pool-file={}/../docs/examples/small-healthy.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let from_file = agent.xe(&[MAX, &file]).ok();
    let offline = agent.run(&[MAX, &file]).ok();
    assert_eq!(from_file, offline);
}
