//! The emergency runbook end to end (docs/operations.md, "Emergency
//! runbook"), on real processes and with the real `xe`: a pool of three
//! agents with HA on (real `xhad` and `xha-supervisor` each, one shared
//! `file` SR, T = 10) and one protected process VM per host running the
//! stamp workload on its own disk in the SR.
//!
//! Host 3's address changes while HA is on: it goes down as in a power cut
//! (`pool_support::ha::kill_host`: agent, daemon, supervisor, its VM) and
//! comes back on another loopback address (its agent's API, its TLS
//! listener and its heartbeat all on the new address, as after a reboot
//! with a new DHCP lease; its `xhad` started again by "its unit" with its
//! own heartbeat address moved). The pool knows only the old address: the
//! host stays out of the liveset, and its protected VM runs on a survivor.
//! The operator then runs:
//!
//! 1. `xe -s NEW host-emergency-ha-disable --force` on host 3;
//! 2. `xe -s NEW pool-emergency-reset-master master-address=MASTER` on
//!    host 3 (which now also records its new address on the master);
//! 3. `xe -s MASTER pool-ha-disable` then `xe -s MASTER pool-ha-enable
//!    heartbeat-sr-uuids=SR ha-config:timeout=10`.
//!
//! At the end all three hosts are in the liveset again, the master's
//! database holds host 3's new address, every protected VM runs, and the
//! stamp checker finds that none ever ran twice.

mod api_support;
mod pool_support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use api_support::{PASSWORD, USER, vm_binaries};
use pool_support::ha::{HaPool, kill_host, start_xhad_again, xhad_dir};
use pool_support::{Host, StopVmsOnDrop, host_ref, local_call, pool_conf, xe_binary};
use serde_json::json;
use xapi_vm::stamp::StampLog;
use xapi_vm::stamp::check::CheckOptions;
use xapi_vm::stamp::region::REGION_BYTES;

const T: u64 = 10;
/// Generous: real processes on a loaded 2-core machine.
const LONG: Duration = Duration::from_secs(90);

/// A protected process VM running the stamp workload.
struct Vm {
    r#ref: String,
    uuid: String,
    disk: PathBuf,
    /// One line per boot: the host it booted on. The stamp ring keeps the
    /// last 204.8 s and a later boot may write over an earlier one's few
    /// records, so where a VM ran is read here; the stamps prove it never
    /// ran twice at once.
    boots: PathBuf,
}

impl Vm {
    fn stamps(&self) -> StampLog {
        let mut log = StampLog::new();
        let _ = log.read_disk(&self.disk, 0);
        log
    }

    /// The hosts (their names) the VM booted on, in order.
    fn hosts(&self) -> Vec<String> {
        std::fs::read_to_string(&self.boots)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn create_vm(p: &HaPool, name: &str) -> Vm {
    let disk = p.sr_dir.join(format!("{name}.disk"));
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(REGION_BYTES))
        .expect("stamp disk");
    let boots = p.sr_dir.join(format!("{name}.boots"));
    let command = format!(
        "echo \"$XHA_HOST\" >> {}; exec {} --disk {}",
        boots.display(),
        vm_binaries().join("xha-stamp").display(),
        disk.display()
    );
    let r = p
        .call(
            "VM.create",
            json!([{
                "name_label": name,
                "memory_static_max": 64 << 20,
                "driver": "process",
                "driver_config": {"command": command},
            }]),
        )
        .as_str()
        .expect("VM ref")
        .to_owned();
    let uuid = p
        .call("VM.get_uuid", json!([r]))
        .as_str()
        .expect("uuid")
        .to_owned();
    Vm {
        r#ref: r,
        uuid,
        disk,
        boots,
    }
}

/// `xe` against `address`; requires success; its standard output.
fn xe(known: &tempfile::NamedTempFile, address: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new(xe_binary())
        .args([
            "-s",
            address,
            "-p",
            &port.to_string(),
            "-u",
            USER,
            "-pw",
            PASSWORD,
        ])
        .arg("--trust-new")
        .args(args)
        .env("XE_KNOWN_HOSTS", known.path())
        .output()
        .expect("run xe");
    eprintln!(
        "xe -s {address} {args:?}: {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "xe {args:?} on {address} failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Replaces `old` by `new` where it stands as an address (`"old"` or
/// `"old:port"`) in `file`.
fn move_address(file: &std::path::Path, old: &str, new: &str) {
    let text = std::fs::read_to_string(file).expect("read config");
    let moved = text
        .replace(&format!("\"{old}\""), &format!("\"{new}\""))
        .replace(&format!("\"{old}:"), &format!("\"{new}:"));
    assert_ne!(text, moved, "{} names {old} nowhere", file.display());
    std::fs::write(file, moved).expect("write config");
}

/// The liveset `h`'s daemon reports, if it answers and is online.
fn liveset(h: &Host) -> Option<Vec<uuid::Uuid>> {
    let r = xha_control::client::request(
        &xhad_dir(h).join("control.sock"),
        xha_control::Request::QueryLiveset,
        xha_control::client::REQUEST_TIMEOUT,
    )
    .ok()?
    .result?;
    (r.status == xha_control::Status::Online).then_some(r.liveset)
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !f() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_host_whose_address_changed_under_ha_is_brought_back_by_the_runbook() {
    let (mut p, _) = HaPool::enabled(3, T);
    let _vms = StopVmsOnDrop::of(&p.hosts);
    let port = p.hosts.port;
    let known = tempfile::NamedTempFile::new().expect("known hosts");
    let vms: Vec<Vm> = (1..=3).map(|i| create_vm(&p, &format!("v{i}"))).collect();
    for (vm, h) in vms.iter().zip(&p.hosts.hosts) {
        let on = host_ref(p.master(), h);
        p.call("VM.start_on", json!([vm.r#ref, on, false, false]));
        p.call("VM.set_ha_restart_priority", json!([vm.r#ref, "restart"]));
    }
    for vm in &vms {
        wait("every VM stamps", || !vm.stamps().is_empty());
    }

    // Host 3 goes down and comes back on another address.
    let fault = Instant::now();
    kill_host(&p.hosts.hosts[2], "host-3", &[vms[2].uuid.clone()]);
    let Host {
        agent,
        address: old,
        uuid,
    } = p.hosts.hosts.remove(2);
    let (prefix, _) = old.rsplit_once('.').expect("dotted address");
    let new = format!("{prefix}.103");
    let dir = agent.dir.path().to_path_buf();
    let agent = agent.kill9_and_restart_with(|| {
        move_address(&dir.join("xapi-ha.toml"), &old, &new);
        move_address(&dir.join("xhad/xhad.toml"), &old, &new);
        start_xhad_again(&dir);
    });
    p.hosts.hosts.push(Host {
        agent,
        address: new.clone(),
        uuid: uuid.clone(),
    });
    let h3 = &p.hosts.hosts[2];
    let me3 = uuid::Uuid::parse_str(&uuid).expect("uuid");
    eprintln!(
        "host 3 back on {new} (was {old}) {:?} after the fault",
        fault.elapsed()
    );

    // The survivors run without it; its protected VM runs on a survivor.
    wait("the survivors' liveset without host 3", || {
        liveset(&p.hosts.hosts[1]).is_some_and(|l| l.len() == 2 && !l.contains(&me3))
    });
    wait("v3 stamps on a survivor", || {
        vms[2].hosts().iter().any(|h| h != "host-3")
    });
    eprintln!(
        "FIGURE runbook v3 running again {:?} after the fault",
        fault.elapsed()
    );
    let emergency = local_call(h3, "host.is_in_emergency_mode", json!([]));
    eprintln!(
        "host 3 in emergency mode: {emergency}; its xhad's liveset {:?}",
        liveset(h3)
    );
    assert!(
        !liveset(&p.hosts.hosts[0]).is_some_and(|l| l.contains(&me3)),
        "the master's liveset must not hold host 3 at its new address"
    );

    // The runbook.
    let out = xe(
        &known,
        &new,
        port,
        &["host-emergency-ha-disable", "--force"],
    );
    assert_eq!(out, "");
    assert!(!h3.agent.dir.path().join("data/ha-state.toml").exists());
    let arg = format!("master-address={}", p.master().address);
    let out = xe(&known, &new, port, &["pool-emergency-reset-master", &arg]);
    assert_eq!(
        out,
        format!("Host agent is now a slave of {}.\n", p.master().address)
    );
    assert_eq!(
        pool_conf(h3).trim(),
        format!("slave:{}", p.master().address)
    );
    let h3_ref = host_ref(p.master(), h3);
    wait("the master records host 3's new address", || {
        p.call("host.get_address", json!([h3_ref])) == json!(new)
    });
    let master = p.master().address.clone();
    xe(&known, &master, port, &["pool-ha-disable"]);
    assert_eq!(p.call("pool.get_ha_enabled", json!([p.pool])), json!(false));
    let sr_uuid = p.call("SR.get_uuid", json!([p.sr]));
    let srs = format!("heartbeat-sr-uuids={}", sr_uuid.as_str().expect("uuid"));
    let timeout = format!("ha-config:timeout={T}");
    let enabled_at = Instant::now();
    xe(&known, &master, port, &["pool-ha-enable", &srs, &timeout]);
    eprintln!(
        "FIGURE runbook pool-ha-enable took {:?}",
        enabled_at.elapsed()
    );
    assert_eq!(p.call("pool.get_ha_enabled", json!([p.pool])), json!(true));

    // Every host in the liveset again, host 3 heard at its new address.
    for h in &p.hosts.hosts {
        wait("all three hosts in every liveset", || {
            liveset(h).is_some_and(|l| l.len() == 3)
        });
    }
    wait("host 3 live in the master's database", || {
        p.live(&p.hosts.hosts[2])
    });

    // Every protected VM runs, each exactly once.
    for vm in &vms {
        wait("every protected VM running", || {
            p.call("VM.get_power_state", json!([vm.r#ref])) == json!("Running")
        });
    }
    std::thread::sleep(Duration::from_secs(2 * T));
    let mut log = StampLog::new();
    for vm in &vms {
        log.read_disk(&vm.disk, 0).expect("read stamps");
        let hosts = vm.hosts();
        eprintln!("{}: stamped on {hosts:?}", vm.uuid);
    }
    assert_eq!(vms[0].hosts(), ["host-1"], "v1 never moved");
    assert_eq!(vms[1].hosts(), ["host-2"], "v2 never moved");
    let v3 = vms[2].hosts();
    assert!(
        v3.len() == 2 && v3[0] == "host-3" && v3[1] != "host-3",
        "v3 ran on host 3, then once on a survivor: {v3:?}"
    );
    let violations = log.check(&CheckOptions {
        protected: vms
            .iter()
            .filter_map(|v| uuid::Uuid::parse_str(&v.uuid).ok())
            .collect(),
        max_down_ms: u64::try_from(LONG.as_millis()).unwrap_or(u64::MAX),
        span_ms: None,
    });
    assert!(violations.is_empty(), "stamp checker: {violations:?}");
    assert!(log.damaged.is_empty(), "damaged stamps: {:?}", log.damaged);
    for vm in &vms {
        p.call("VM.set_ha_restart_priority", json!([vm.r#ref, ""]));
    }
}
