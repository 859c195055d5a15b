//! The restart engine on a live pool of one (docs/restart-engine.md,
//! "Wiring"): the real agent, `xhad` and `xha-supervisor`, a `file` SR,
//! process VMs running the stamp workload. What is checked is what the
//! engine commits: `VM.ha_state`, the power state, `ha_always_run`, the
//! messages, and that the workload really runs again (new stamps).
//!
//! A VM's command here runs `xha-stamp` in the background and shuts the
//! guest down "from inside" (the process exits by itself) when the test
//! creates the file `<name>.stop`; every boot appends a line to
//! `<name>.boots`.

mod api_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use api_support::{Agent, call2, config_text, fail2, login, vm_binaries, xha_bins};
use serde_json::{Value, json};
use xapi_vm::process::ProcessDriver;
use xapi_vm::stamp::StampLog;
use xapi_vm::stamp::region::REGION_BYTES;
use xapi_vm::{DriverContext, StopMode, VmDriver as _};
use xha_lab::agent::StopDaemons;

const LONG: Duration = Duration::from_secs(60);

/// Stops (hard) every VM still running under the agent's data directory
/// when dropped (the product's own driver adopts and stops them).
struct StopVms(PathBuf);

impl Drop for StopVms {
    fn drop(&mut self) {
        let mut d = ProcessDriver::new(DriverContext {
            host: "test-host".into(),
            run_dir: self.0.clone(),
            keeper: vm_binaries().join("xha-vm-keeper"),
        });
        for vm in d.adopt().unwrap_or_default() {
            let _ = d.stop(vm.uuid, StopMode::Hard);
        }
    }
}

/// A pool of one with HA enabled (T = 10) and the process driver. Drop
/// order: the VMs, the daemons, then the agent.
struct Pool {
    _vms: StopVms,
    _daemons: StopDaemons,
    a: Agent,
    s: String,
    pool: String,
    host: String,
}

fn pool_with_ha() -> Pool {
    let (xhad, supervisor) = xha_bins();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let a = Agent::start_configured(move |dir| {
        let mut t = config_text(dir, "").replace("drivers = [\"qemu\"]", "drivers = [\"process\"]");
        t.push_str(&format!(
            "[xhad]\npath = \"{}\"\nconfig_dir = \"{}/xhad\"\nlauncher = \"process\"\nsupervisor_path = \"{}\"\nheartbeat_address = \"127.0.0.1:{port}\"\n",
            xhad.display(),
            dir.display(),
            supervisor.display()
        ));
        t
    });
    let s = login(a.http);
    let pool = call2(a.http, "pool.get_all", json!([s]))[0]
        .as_str()
        .expect("pool")
        .to_owned();
    let host = call2(a.http, "pool.get_master", json!([s, pool]))
        .as_str()
        .expect("host")
        .to_owned();
    let dir = a.dir.path().join("sr");
    std::fs::create_dir(&dir).expect("SR dir");
    let sr = call2(
        a.http,
        "SR.create",
        json!([s, host, {"path": dir.display().to_string()}, 0, "sr", "", "file", "", true, {}]),
    );
    call2(
        a.http,
        "pool.enable_ha",
        json!([s, [sr], {"timeout": "10"}]),
    );
    let daemons = StopDaemons::new(a.dir.path().join("xhad"));
    Pool {
        _vms: StopVms(a.dir.path().join("data/vm-run")),
        _daemons: daemons,
        a,
        s,
        pool,
        host,
    }
}

struct Vm {
    r#ref: String,
    disk: PathBuf,
    stop: PathBuf,
    boots: PathBuf,
}

impl Pool {
    fn call(&self, method: &str, params: Value) -> Value {
        let mut all = vec![json!(self.s)];
        all.extend(params.as_array().cloned().unwrap_or_default());
        call2(self.a.http, method, Value::Array(all))
    }

    fn fail(&self, method: &str, params: Value) -> Vec<String> {
        let mut all = vec![json!(self.s)];
        all.extend(params.as_array().cloned().unwrap_or_default());
        fail2(self.a.http, method, Value::Array(all))
    }

    /// A process VM with the stamp workload that stops from inside when
    /// `<name>.stop` appears; `driver` is its VM driver.
    fn vm(&self, name: &str, priority: &str, always_run: bool, driver: &str) -> Vm {
        let dir = self.a.dir.path();
        let disk = dir.join(format!("{name}.disk"));
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(REGION_BYTES))
            .expect("stamp disk");
        let stop = dir.join(format!("{name}.stop"));
        let boots = dir.join(format!("{name}.boots"));
        let stamp = vm_binaries().join("xha-stamp");
        let command = format!(
            "echo boot >> {boots}; {stamp} --disk {disk} & s=$!; \
             while [ ! -e {stop} ]; do sleep 0.05; done; rm -f {stop}; kill $s; wait $s; exit 0",
            boots = boots.display(),
            stamp = stamp.display(),
            disk = disk.display(),
            stop = stop.display(),
        );
        let r = self.call(
            "VM.create",
            json!([{
                "name_label": name,
                "memory_static_max": 64 << 20,
                "driver": driver,
                "driver_config": {"command": command},
                "ha_always_run": always_run,
                "ha_restart_priority": priority,
            }]),
        );
        Vm {
            r#ref: r.as_str().expect("ref").to_owned(),
            disk,
            stop,
            boots,
        }
    }

    fn field(&self, vm: &Vm, field: &str) -> Value {
        self.call(&format!("VM.get_{field}"), json!([vm.r#ref]))
    }

    /// Waits until `VM.<field>` is `want`.
    fn wait_field(&self, vm: &Vm, field: &str, want: &str) {
        let deadline = Instant::now() + LONG;
        loop {
            let got = self.field(vm, field);
            if got == json!(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "VM.{field} is {got}, not {want:?}, after {LONG:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The messages called `name` about `vm`.
    fn messages(&self, vm: &Vm, name: &str) -> usize {
        let uuid = self.field(vm, "uuid");
        let all = self.call("message.get_all_records", json!([]));
        all.as_object()
            .map(|m| {
                m.values()
                    .filter(|r| r["name"] == json!(name) && r["obj_uuid"] == uuid)
                    .count()
            })
            .unwrap_or(0)
    }
}

fn boots(vm: &Vm) -> usize {
    std::fs::read_to_string(&vm.boots).map_or(0, |t| t.lines().count())
}

/// Waits for the stamp workload to have written stamps, and returns them.
fn stamps_written(vm: &Vm, more_than: usize) -> usize {
    let deadline = Instant::now() + LONG;
    loop {
        let mut log = StampLog::new();
        let _ = log.read_disk(&vm.disk, 0);
        let n = log.len();
        if n > more_than {
            return n;
        }
        assert!(Instant::now() < deadline, "no new stamps on {:?}", vm.disk);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Shuts the VM down from inside (its process exits by itself).
fn stop_from_inside(vm: &Vm) {
    std::fs::write(&vm.stop, b"").expect("stop file");
}

#[test]
fn internal_shutdown_restarts_unless_reboot_is_off_and_api_shutdown_stays_off() {
    let p = pool_with_ha();
    let vm = p.vm("web", "restart", true, "process");
    // (c) Level-triggered: a protected VM found halted is started by HA,
    // without any VM.start.
    p.wait_field(&vm, "power_state", "Running");
    p.wait_field(&vm, "ha_state", "started");
    assert_eq!(p.field(&vm, "resident_on"), json!(p.host));
    let n = stamps_written(&vm, 0);
    assert_eq!(boots(&vm), 1);

    // (a) Shut down from inside, ha_reboot_vm_on_internal_shutdown true
    // (the default): restarted; the workload stamps again.
    assert_eq!(
        p.call(
            "pool.get_ha_reboot_vm_on_internal_shutdown",
            json!([p.pool])
        ),
        json!(true)
    );
    stop_from_inside(&vm);
    let deadline = Instant::now() + LONG;
    while boots(&vm) < 2 {
        assert!(Instant::now() < deadline, "not restarted");
        std::thread::sleep(Duration::from_millis(50));
    }
    p.wait_field(&vm, "power_state", "Running");
    p.wait_field(&vm, "ha_state", "started");
    stamps_written(&vm, n);
    assert_eq!(p.field(&vm, "ha_always_run"), json!(true));

    // With it false: the engine clears ha_always_run and the VM stays off.
    p.call(
        "pool.set_ha_reboot_vm_on_internal_shutdown",
        json!([p.pool, false]),
    );
    stop_from_inside(&vm);
    p.wait_field(&vm, "ha_state", "stopped");
    assert_eq!(p.field(&vm, "power_state"), json!("Halted"));
    assert_eq!(p.field(&vm, "ha_always_run"), json!(false));
    assert_eq!(boots(&vm), 2, "not started again");

    // (c) again: protecting it while halted starts it.
    p.call(
        "pool.set_ha_reboot_vm_on_internal_shutdown",
        json!([p.pool, true]),
    );
    p.call("VM.set_ha_always_run", json!([vm.r#ref, true]));
    p.wait_field(&vm, "ha_state", "started");
    p.wait_field(&vm, "power_state", "Running");
    assert_eq!(boots(&vm), 3);

    // (b) Through the API: ha_always_run is cleared, it stays halted.
    p.call("VM.clean_shutdown", json!([vm.r#ref]));
    p.wait_field(&vm, "ha_state", "stopped");
    assert_eq!(p.field(&vm, "power_state"), json!("Halted"));
    assert_eq!(p.field(&vm, "ha_always_run"), json!(false));
    assert_eq!(boots(&vm), 3);

    // An unprotected VM is ignored.
    let other = p.vm("other", "", false, "process");
    p.wait_field(&other, "ha_state", "ignored");
    assert_eq!(p.field(&other, "power_state"), json!("Halted"));
    // HA off: every VM's ha_state is `disabled`.
    p.call("pool.disable_ha", json!([]));
    p.wait_field(&vm, "ha_state", "disabled");
}

#[test]
fn prevent_restarts_for_pauses_then_resumes_and_a_failing_driver_is_retried() {
    let p = pool_with_ha();
    let vm = p.vm("db", "restart", true, "process");
    p.wait_field(&vm, "ha_state", "started");
    assert_eq!(boots(&vm), 1);

    // (e) Paused: a VM stopped from inside is queued, not started...
    p.call("pool.ha_prevent_restarts_for", json!([600]));
    stop_from_inside(&vm);
    p.wait_field(&vm, "ha_state", "queued");
    assert_eq!(p.field(&vm, "power_state"), json!("Halted"));
    assert_eq!(boots(&vm), 1);
    // ...until the pause is lifted (0 resumes at once).
    p.call("pool.ha_prevent_restarts_for", json!([0]));
    p.wait_field(&vm, "ha_state", "started");
    p.wait_field(&vm, "power_state", "Running");
    assert_eq!(boots(&vm), 2);

    // A protected VM whose driver this host does not offer: every start
    // fails; HA keeps it in recovery, retries with backoff and raises
    // HA_PROTECTED_VM_RESTART_FAILED once.
    let bad = p.vm("bad", "restart", true, "qemu");
    p.wait_field(&bad, "ha_state", "recovery");
    let deadline = Instant::now() + LONG;
    while p.messages(&bad, "HA_PROTECTED_VM_RESTART_FAILED") == 0 {
        assert!(
            Instant::now() < deadline,
            "no HA_PROTECTED_VM_RESTART_FAILED"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Retries at 1 s, 2 s, 4 s after the failures: wait past the third.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(p.messages(&bad, "HA_PROTECTED_VM_RESTART_FAILED"), 1);
    assert_eq!(p.field(&bad, "power_state"), json!("Halted"));
    assert_eq!(p.field(&bad, "ha_state"), json!("recovery"));
    // A plain VM.start of it is an ordinary start (refused by its driver).
    let e = p.fail("VM.start", json!([bad.r#ref, false, false]));
    assert_eq!(e[0], "OPERATION_NOT_ALLOWED");
    // HA off: every VM's ha_state is `disabled`.
    p.call("pool.disable_ha", json!([]));
    p.wait_field(&vm, "ha_state", "disabled");
}
