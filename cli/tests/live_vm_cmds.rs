//! `xe vm-start / vm-shutdown / vm-reboot / vm-migrate` against the real
//! agent with the process driver: selection by `uuid=`, `vm=` and field
//! filters, xe's `--multiple` rule, `on=HOST`, `--force`, `vm-start
//! --multiple` honouring `order` and `start_delay` (seen in the times the
//! VMs' commands wrote when they started), and `diagnostic-vm-status`.

mod live_support;

use std::path::Path;
use std::time::Duration;

use live_support::Agent;

/// `vm-list` values of one field for the VM `uuid`.
fn field(agent: &Agent, uuid: &str, name: &str) -> String {
    agent
        .xe(&[
            "vm-param-get",
            &format!("uuid={uuid}"),
            &format!("param-name={name}"),
        ])
        .ok()
        .trim()
        .to_owned()
}

/// A process VM whose command writes its start time (Unix seconds with
/// fractions) to `stamp` and then sleeps.
fn create(agent: &Agent, name: &str, stamp: &Path) -> String {
    let cmd = format!(
        "driver-config:command=date +%s.%N >> {}; exec sleep 1000",
        stamp.display()
    );
    agent
        .xe(&[
            "vm-create",
            &format!("name-label={name}"),
            "memory=64MiB",
            "driver=process",
            &cmd,
        ])
        .ok()
        .trim()
        .to_owned()
}

fn started_at(stamp: &Path) -> f64 {
    let text = std::fs::read_to_string(stamp).unwrap_or_default();
    text.lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

fn wait_state(agent: &Agent, uuid: &str, want: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while field(agent, uuid, "power-state") != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{uuid} not {want} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn vm_lifecycle_commands_select_like_xe_and_start_by_order() {
    let agent = Agent::start_drivers(&["process"]);
    let d = agent.dir.path();
    let (sa, sb, sc) = (d.join("a.t"), d.join("b.t"), d.join("c.t"));
    let a = create(&agent, "a", &sa);
    let b = create(&agent, "b", &sb);
    let c = create(&agent, "c", &sc);
    // b first (order 1, then 2 s delay), c last (a negative order).
    for (vm, order, delay) in [(&b, "1", "2"), (&c, "-1", "0"), (&a, "5", "0")] {
        agent
            .xe(&[
                "vm-param-set",
                &format!("uuid={vm}"),
                &format!("order={order}"),
                &format!("start-delay={delay}"),
            ])
            .ok();
    }

    // One VM by name: started, nothing printed.
    assert_eq!(agent.xe(&["vm-start", "vm=a"]).ok(), "");
    assert_eq!(field(&agent, &a, "power-state"), "running");

    // Two halted VMs match: without --multiple nothing happens.
    let out = agent.xe(&["vm-start", "power-state=halted"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("use --multiple"), "{out:?}");
    assert_eq!(field(&agent, &b, "power-state"), "halted");

    // With --multiple: b, its 2 s start_delay, then c.
    agent
        .xe(&["vm-start", "power-state=halted", "--multiple"])
        .ok();
    for vm in [&b, &c] {
        assert_eq!(field(&agent, vm, "power-state"), "running");
    }
    let (tb, tc) = (started_at(&sb), started_at(&sc));
    assert!(tb > 0.0 && tc > 0.0, "both commands ran: {tb} {tc}");
    assert!(tc - tb >= 2.0, "c started {:.2} s after b", tc - tb);

    // Nothing matches: xe's message, non-zero exit.
    let out = agent.xe(&["vm-shutdown", "vm=nonexistent"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("No matching VMs found"), "{out:?}");

    // Reboot (hard): the command starts again, the VM stays running here.
    let before = started_at(&sb);
    agent
        .xe(&["vm-reboot", &format!("uuid={b}"), "--force"])
        .ok();
    assert_eq!(field(&agent, &b, "power-state"), "running");
    assert!(started_at(&sb) > before, "b's command started again");

    // Shut all three down at once (hard).
    agent
        .xe(&[
            "vm-shutdown",
            "power-state=running",
            "--multiple",
            "--force",
        ])
        .ok();
    for vm in [&a, &b, &c] {
        wait_state(&agent, vm, "halted");
    }

    // on=HOST by name-label; an unknown host is refused before any call.
    agent.xe(&["vm-start", "vm=c", "on=live-host"]).ok();
    assert_eq!(field(&agent, &c, "power-state"), "running");
    let out = agent.xe(&["vm-start", "vm=a", "on=no-such-host"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("no such host"), "{out:?}");
    assert_eq!(field(&agent, &a, "power-state"), "halted");
    // A clean shutdown (SIGTERM to the sleep).
    agent.xe(&["vm-shutdown", &format!("uuid={c}")]).ok();
    assert_eq!(field(&agent, &c, "power-state"), "halted");

    // A start of a running VM: the agent's error as xe prints it.
    agent.xe(&["vm-start", "vm=a"]).ok();
    let out = agent.xe(&["vm-start", "vm=a"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("VM_BAD_POWER_STATE") || out.stderr.contains("power state"),
        "{out:?}"
    );
    agent.xe(&["vm-shutdown", "vm=a", "--force"]).ok();

    // diagnostic-vm-status: a process VM is agile here and can run on this
    // host; a qemu VM cannot run anywhere (the agent offers process only).
    let out = agent
        .xe(&["diagnostic-vm-status", &format!("uuid={a}")])
        .ok();
    assert!(out.contains("agile: true"), "{out}");
    assert!(
        out.contains("possible hosts: ") && out.contains("(live-host)"),
        "{out}"
    );
    let q = agent
        .xe(&["vm-create", "name-label=q", "memory=128MiB", "driver=qemu"])
        .ok();
    let out = agent
        .xe(&["diagnostic-vm-status", &format!("uuid={}", q.trim())])
        .ok();
    assert!(out.contains("agile: false"), "{out}");
    assert!(out.contains("does not offer VM driver qemu"), "{out}");
    let out = agent.xe(&["diagnostic-vm-status", "power-state=halted"]);
    assert_ne!(out.code, 0, "several VMs: one at a time");
}
