//! `xe message-create`, `message-list` (filters by name, priority, class,
//! object uuid; `--minimal`), `message-destroy` and
//! `pool-send-test-message` against the real agent.

mod live_support;

use live_support::{Agent, HOST_UUID};

#[test]
fn message_list_filters_and_destroy() {
    let agent = Agent::start();
    let pool = agent.xe(&["pool-list", "--minimal"]).ok();
    let pool = pool.trim();
    for (name, prio, key, uuid) in [
        ("HA_HOST_FAILED", "3", "host-uuid", HOST_UUID),
        ("HA_POOL_OVERCOMMITTED", "3", "pool-uuid", pool),
        ("HA_STATEFILE_LOST", "2", "host-uuid", HOST_UUID),
    ] {
        agent
            .xe(&[
                "message-create",
                &format!("name={name}"),
                &format!("priority={prio}"),
                &format!("{key}={uuid}"),
                "body=b",
            ])
            .ok();
    }
    let all = agent.xe(&["message-list"]).ok();
    assert_eq!(all.matches("name ( RO): HA_").count(), 3, "{all}");
    assert!(all.contains("class ( RO): Host"), "{all}");
    let minimal = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["message-list"];
        a.extend_from_slice(args);
        a.push("--minimal");
        let out = agent.xe(&a).ok();
        out.trim()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(minimal(&[]).len(), 3);
    assert_eq!(minimal(&["class=Host"]).len(), 2);
    assert_eq!(minimal(&["priority=3"]).len(), 2);
    assert_eq!(minimal(&["name=HA_POOL_OVERCOMMITTED"]).len(), 1);
    let on_pool = minimal(&[&format!("obj-uuid={pool}")]);
    assert_eq!(on_pool.len(), 1);
    assert_eq!(minimal(&["class=Host", "priority=2"]).len(), 1);
    let names = agent
        .xe(&["message-list", "class=Host", "params=name", "--minimal"])
        .ok();
    let mut names: Vec<&str> = names.trim().split(',').collect();
    names.sort_unstable();
    assert_eq!(names, ["HA_HOST_FAILED", "HA_STATEFILE_LOST"]);

    agent
        .xe(&["message-destroy", &format!("uuid={}", on_pool[0])])
        .ok();
    assert_eq!(minimal(&[]).len(), 2);

    // A message about an object that is not there: xapi's UUID_INVALID.
    let bad = agent.xe(&[
        "message-create",
        "name=X",
        "priority=1",
        "vm-uuid=00000000-0000-0000-0000-000000000000",
    ]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("uuid you supplied was invalid"),
        "{bad:?}"
    );
    // Two objects: refused before connecting.
    let two = agent.xe(&[
        "message-create",
        "name=X",
        "priority=1",
        &format!("host-uuid={HOST_UUID}"),
        &format!("pool-uuid={pool}"),
    ]);
    assert_ne!(two.code, 0, "{two:?}");
}

#[test]
fn pool_send_test_message_without_settings_names_the_key() {
    let agent = Agent::start();
    let out = agent.xe(&["pool-send-test-message"]);
    assert_ne!(out.code, 0);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("mail-destination"), "{out:?}");
    let extra = agent.xe(&["pool-send-test-message", "to=x"]);
    assert_ne!(extra.code, 0, "{extra:?}");
}
