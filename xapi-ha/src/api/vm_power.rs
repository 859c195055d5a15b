//! The VM power calls: `VM.start`, `VM.start_on`, `VM.clean_shutdown`,
//! `VM.hard_shutdown`, `VM.clean_reboot`, `VM.hard_reboot` (docs/api.md,
//! "The VM lifecycle").
//!
//! Each checks the VM's power state (`VM_BAD_POWER_STATE [vm; expected;
//! actual]`), for a start the host's free memory
//! (`HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]`) and that the host
//! offers the VM's driver (`OPERATION_NOT_ALLOWED [reason]`), and returns
//! the [`Effect`]s to perform on this host plus the changes to commit once
//! they succeeded: `power_state`, `resident_on`, a `VM_STARTED` /
//! `VM_SHUTDOWN` message and, for an API shutdown, `ha_always_run = false`.
//! A VM that stops by itself is the server's (`server::vms`), through
//! [`stopped_by_itself`], which leaves `ha_always_run` alone.

use uuid::Uuid;
use xapi_vm::VmSpec;

use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::{ApiError, Caller, Effect, Outcome};

/// xapi's message priority for VM lifecycle messages (informational).
const MESSAGE_PRIORITY: i64 = 5;

fn power_state(db: &Database, vm: Ref) -> String {
    db.field(Class::Vm, vm, "power_state")
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

fn int(db: &Database, class: Class, r: Ref, name: &str) -> i64 {
    db.field(class, r, name)
        .and_then(|v| v.as_int())
        .unwrap_or(0)
}

fn text(db: &Database, class: Class, r: Ref, name: &str) -> String {
    db.field(class, r, name)
        .map(|v| to_text(&v))
        .unwrap_or_default()
}

fn expect_state(db: &Database, vm: Ref, expected: &str) -> Result<(), ApiError> {
    let actual = power_state(db, vm);
    if actual == expected {
        Ok(())
    } else {
        Err(ApiError::vm_bad_power_state(
            &vm.to_string(),
            expected,
            &actual,
        ))
    }
}

/// Memory a VM takes on a host: `memory_static_max + memory_overhead`.
fn vm_footprint(db: &Database, vm: Ref) -> i64 {
    int(db, Class::Vm, vm, "memory_static_max").saturating_add(int(
        db,
        Class::Vm,
        vm,
        "memory_overhead",
    ))
}

/// Free memory of `host` for a new VM: `host_metrics.memory_total -
/// host.memory_overhead - Σ footprint of the VMs resident on it`.
pub fn host_free_memory(db: &Database, host: Ref) -> i64 {
    let metrics = db
        .field(Class::Host, host, "metrics")
        .and_then(|v| v.as_ref())
        .unwrap_or(Ref::NULL);
    let total = int(db, Class::HostMetrics, metrics, "memory_total");
    let resident: i64 = db
        .objects(Class::Vm)
        .map(|(r, _)| r)
        .filter(|r| {
            db.field(Class::Vm, *r, "resident_on")
                .and_then(|v| v.as_ref())
                == Some(host)
        })
        .map(|r| vm_footprint(db, r))
        .sum();
    total
        .saturating_sub(int(db, Class::Host, host, "memory_overhead"))
        .saturating_sub(resident)
}

/// The driver's spec from the VM record (disks: none yet, VBDs are not
/// modelled).
pub fn vm_spec(db: &Database, vm: Ref) -> Result<VmSpec, ApiError> {
    let uuid_text = text(db, Class::Vm, vm, "uuid");
    let uuid = Uuid::parse_str(&uuid_text)
        .map_err(|_| ApiError::internal(&format!("VM {vm} has no valid uuid")))?;
    let config = match db.field(Class::Vm, vm, "driver_config") {
        Some(Value::Map(pairs)) => pairs
            .iter()
            .map(|(k, v)| (k.to_wire(), to_text(v)))
            .collect(),
        _ => Default::default(),
    };
    Ok(VmSpec {
        uuid,
        name: text(db, Class::Vm, vm, "name_label"),
        memory_bytes: u64::try_from(int(db, Class::Vm, vm, "memory_static_max")).unwrap_or(0),
        vcpus: u32::try_from(int(db, Class::Vm, vm, "VCPUs_at_startup")).unwrap_or(0),
        driver: text(db, Class::Vm, vm, "driver"),
        config,
        disks: Vec::new(),
    })
}

/// A `message` record with xapi's name and body for VM `vm`.
fn message(
    db: &Database,
    caller: &Caller,
    fresh: &mut Fresh,
    name: &str,
    body: String,
    vm: Ref,
) -> Change {
    Change::Create {
        class: Class::Message,
        r#ref: fresh.r#ref(),
        fields: vec![
            ("uuid".into(), Value::String(fresh.uuid())),
            ("name".into(), Value::String(name.into())),
            ("priority".into(), Value::Int(MESSAGE_PRIORITY)),
            ("cls".into(), Value::Enum("VM".into())),
            (
                "obj_uuid".into(),
                Value::String(text(db, Class::Vm, vm, "uuid")),
            ),
            ("timestamp".into(), Value::DateTime(caller.now)),
            ("body".into(), Value::String(body)),
        ],
    }
}

fn host_label(db: &Database, host: Ref) -> String {
    format!(
        "{} (uuid: {})",
        text(db, Class::Host, host, "name_label"),
        text(db, Class::Host, host, "uuid")
    )
}

/// Checks a start of `vm` on `host`: Halted, driver offered, memory free.
fn check_start(db: &Database, vm: Ref, host: Ref, start_paused: bool) -> Result<(), ApiError> {
    expect_state(db, vm, "Halted")?;
    if start_paused {
        return Err(ApiError::operation_not_allowed(
            "start_paused: the VM drivers cannot start a VM paused",
        ));
    }
    let driver = text(db, Class::Vm, vm, "driver");
    let offered = match db.field(Class::Host, host, "vm_drivers") {
        Some(Value::Set(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if driver.is_empty() {
        return Err(ApiError::operation_not_allowed(
            "the VM has no driver: set VM.driver (qemu or process)",
        ));
    }
    if !offered.contains(&driver) {
        return Err(ApiError::operation_not_allowed(&format!(
            "host {} does not offer VM driver {driver} (it offers: {})",
            host_label(db, host),
            offered.join(", ")
        )));
    }
    let needed = vm_footprint(db, vm);
    let available = host_free_memory(db, host);
    if needed > available {
        return Err(ApiError::new(
            "HOST_NOT_ENOUGH_FREE_MEMORY",
            [needed.to_string(), available.to_string()],
        ));
    }
    Ok(())
}

/// The changes of a VM now running on `host`, with a `VM_STARTED` message.
fn started_changes(db: &Database, caller: &Caller, vm: Ref, host: Ref) -> Vec<Change> {
    let mut fresh = Fresh::new(db, caller);
    let body = format!(
        "VM '{}' started on host: {}",
        text(db, Class::Vm, vm, "name_label"),
        host_label(db, host)
    );
    vec![
        Change::set(Class::Vm, vm, "power_state", Value::Enum("Running".into())),
        Change::set(Class::Vm, vm, "resident_on", Value::Ref(host)),
        message(db, caller, &mut fresh, "VM_STARTED", body, vm),
    ]
}

/// The changes of a VM that is no longer running, with a `VM_SHUTDOWN`
/// message; `clear_always_run` for a shutdown through the API.
fn halted_changes(
    db: &Database,
    now: DateTime,
    seed: Uuid,
    vm: Ref,
    clear_always_run: bool,
) -> Vec<Change> {
    let caller = Caller {
        now,
        seed,
        this_host: Ref::NULL,
    };
    let mut fresh = Fresh::new(db, &caller);
    let body = format!("VM '{}' shut down", text(db, Class::Vm, vm, "name_label"));
    let mut changes = vec![
        Change::set(Class::Vm, vm, "power_state", Value::Enum("Halted".into())),
        Change::set(Class::Vm, vm, "resident_on", Value::Ref(Ref::NULL)),
    ];
    if clear_always_run {
        changes.push(Change::set(
            Class::Vm,
            vm,
            "ha_always_run",
            Value::Bool(false),
        ));
    }
    changes.push(message(db, &caller, &mut fresh, "VM_SHUTDOWN", body, vm));
    changes
}

fn bool_arg(name: &str, v: &Value) -> Result<bool, ApiError> {
    match coerce::coerce(&crate::db::schema::Ty::Bool, name, v)? {
        Value::Bool(b) => Ok(b),
        _ => Err(ApiError::field_type_error(name)),
    }
}

/// A VM of this host: running here, or an error saying where it is.
fn resident_here(db: &Database, caller: &Caller, vm: Ref) -> Result<(), ApiError> {
    let on = db
        .field(Class::Vm, vm, "resident_on")
        .and_then(|v| v.as_ref())
        .unwrap_or(Ref::NULL);
    if on == caller.this_host {
        Ok(())
    } else {
        Err(ApiError::operation_not_allowed(&format!(
            "VM {vm} runs on host {on}, not on this host: power calls for it go to that host"
        )))
    }
}

/// `VM.start(vm, start_paused, force)`: on this host. `force` is accepted
/// and ignored (xapi's force skips a version check we do not have).
pub fn start(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", &args[0])?;
    let paused = bool_arg("start_paused", &args[1])?;
    bool_arg("force", &args[2])?;
    start_here(db, caller, vm, paused)
}

/// `VM.start_on(vm, host, start_paused, force)`: only this host can start
/// a VM (the agent starts VMs on the host it runs on).
pub fn start_on(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", &args[0])?;
    let host = coerce::object(db, Class::Host, "host", &args[1])?;
    let paused = bool_arg("start_paused", &args[2])?;
    bool_arg("force", &args[3])?;
    if host != caller.this_host {
        return Err(ApiError::operation_not_allowed(&format!(
            "VM.start_on: host {host} is not this host; call that host's agent"
        )));
    }
    start_here(db, caller, vm, paused)
}

fn start_here(db: &Database, caller: &Caller, vm: Ref, paused: bool) -> Result<Outcome, ApiError> {
    let host = caller.this_host;
    check_start(db, vm, host, paused)?;
    crate::ha::overcommit::check_start(db, vm, host)?;
    Ok(Outcome {
        effects: vec![Effect::StartVm {
            vm,
            spec: vm_spec(db, vm)?,
        }],
        changes: started_changes(db, caller, vm, host),
        ..Outcome::value(Value::Void)
    })
}

/// `VM.clean_shutdown(vm)` / `VM.hard_shutdown(vm)`: clears `ha_always_run`.
pub fn shutdown(
    db: &Database,
    caller: &Caller,
    arg: &Value,
    hard: bool,
) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", arg)?;
    expect_state(db, vm, "Running")?;
    resident_here(db, caller, vm)?;
    let spec = vm_spec(db, vm)?;
    Ok(Outcome {
        effects: vec![Effect::StopVm {
            vm,
            uuid: spec.uuid,
            hard,
        }],
        changes: halted_changes(db, caller.now, caller.seed, vm, true),
        ..Outcome::value(Value::Void)
    })
}

/// `VM.clean_reboot(vm)` / `VM.hard_reboot(vm)`: stop, then start again on
/// this host; the record stays Running here (no message, as xapi sends
/// none for a reboot through the API).
pub fn reboot(
    db: &Database,
    caller: &Caller,
    arg: &Value,
    hard: bool,
) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", arg)?;
    expect_state(db, vm, "Running")?;
    resident_here(db, caller, vm)?;
    let spec = vm_spec(db, vm)?;
    Ok(Outcome {
        effects: vec![
            Effect::StopVm {
                vm,
                uuid: spec.uuid,
                hard,
            },
            Effect::StartVm { vm, spec },
        ],
        changes: Vec::new(),
        ..Outcome::value(Value::Void)
    })
}

/// The changes for a VM the driver reports stopped (by itself, or by us
/// with the API's changes already committed): none unless the record still
/// says it runs on `host`. `ha_always_run` is left as it is.
pub fn stopped_by_itself(
    db: &Database,
    now: DateTime,
    seed: Uuid,
    host: Ref,
    vm_uuid: &str,
) -> Vec<Change> {
    let Some((Class::Vm, vm)) = db.by_uuid(vm_uuid) else {
        return Vec::new();
    };
    let on = db
        .field(Class::Vm, vm, "resident_on")
        .and_then(|v| v.as_ref());
    if on != Some(host) || power_state(db, vm) == "Halted" {
        return Vec::new();
    }
    halted_changes(db, now, seed, vm, false)
}

/// Reconciles the database with the VMs the drivers run on `host` at agent
/// start: a VM recorded running here that is not running becomes Halted
/// (no `ha_always_run` change); a running VM recorded elsewhere or Halted
/// becomes Running here (it really runs here, and is never started again).
pub fn reconcile(db: &Database, caller: &Caller, running: &[Uuid]) -> Vec<Change> {
    let host = caller.this_host;
    let mut changes = Vec::new();
    let mut n = 0u64;
    for (vm, obj) in db.objects(Class::Vm) {
        let uuid = obj.uuid().to_owned();
        let runs = running.iter().any(|u| u.hyphenated().to_string() == uuid);
        let on = db
            .field(Class::Vm, vm, "resident_on")
            .and_then(|v| v.as_ref());
        let state = power_state(db, vm);
        n += 1;
        let seed = Uuid::new_v5(&caller.seed, &n.to_le_bytes());
        if runs && (on != Some(host) || state != "Running") {
            let c = Caller {
                seed,
                ..caller.clone()
            };
            changes.extend(started_changes(db, &c, vm, host));
        } else if !runs && on == Some(host) && state != "Halted" {
            changes.extend(halted_changes(db, caller.now, seed, vm, false));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::bootstrap::{HostInfo, new_pool};
    use crate::api::call;

    fn caller(n: u128, host: Ref) -> Caller {
        Caller {
            now: DateTime::from_unix(1_742_357_784),
            seed: Uuid::from_u128(n),
            this_host: host,
        }
    }

    /// A host with 8 GiB (1 GiB overhead) offering `process`, and a VM.
    fn pool(vm_memory: i64) -> (Database, Ref, Ref) {
        let mut db = Database::new();
        let info = HostInfo {
            uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e".into(),
            name_label: "h1".into(),
            address: "10.0.0.1".into(),
            hostname: "h1".into(),
            memory_total: 8 << 30,
            memory_overhead: 1 << 30,
            vm_drivers: vec!["process".into()],
        };
        let (host, changes) = new_pool(&db, &caller(0, Ref::NULL), &info);
        let _ = db.apply(&changes).unwrap();
        let vm = add_vm(&mut db, host, 1, vm_memory);
        (db, host, vm)
    }

    fn add_vm(db: &mut Database, host: Ref, n: u128, memory: i64) -> Ref {
        let rec = Value::Record(vec![
            ("name_label".into(), Value::String(format!("vm{n}"))),
            ("memory_static_max".into(), Value::Int(memory)),
            ("driver".into(), Value::String("process".into())),
            ("ha_always_run".into(), Value::Bool(true)),
        ]);
        let out = call(db, &caller(100 + n, host), "VM.create", &[rec]).unwrap();
        let _ = db.apply(&out.changes).unwrap();
        out.result.as_ref().unwrap()
    }

    fn start(db: &Database, host: Ref, vm: Ref) -> Result<Outcome, ApiError> {
        let args = [Value::Ref(vm), Value::Bool(false), Value::Bool(false)];
        call(db, &caller(7, host), "VM.start", &args)
    }

    #[test]
    fn a_start_is_an_effect_then_running_here_with_a_message() {
        let (mut db, host, vm) = pool(1 << 30);
        let out = start(&db, host, vm).unwrap();
        assert!(
            matches!(&out.effects[..], [Effect::StartVm { vm: v, spec }] if *v == vm && spec.driver == "process" && spec.memory_bytes == 1 << 30)
        );
        let _ = db.apply(&out.changes).unwrap();
        assert_eq!(power_state(&db, vm), "Running");
        assert_eq!(
            db.field(Class::Vm, vm, "resident_on"),
            Some(Value::Ref(host))
        );
        assert_eq!(db.count(Class::Message), 1);
        let e = start(&db, host, vm).unwrap_err();
        assert_eq!(e.code, "VM_BAD_POWER_STATE");
        assert_eq!(e.params[1..], ["halted", "running"]);
    }

    #[test]
    fn free_memory_counts_total_overhead_and_resident_vms() {
        // 8 GiB - 1 GiB overhead; a 4 GiB VM runs, a second one does not fit.
        let (mut db, host, vm) = pool(4 << 30);
        let out = start(&db, host, vm).unwrap();
        let _ = db.apply(&out.changes).unwrap();
        assert_eq!(host_free_memory(&db, host), 3 << 30);
        let other = add_vm(&mut db, host, 2, 4 << 30);
        let e = start(&db, host, other).unwrap_err();
        assert_eq!(e.code, "HOST_NOT_ENOUGH_FREE_MEMORY");
        assert_eq!(
            e.params,
            [(4i64 << 30).to_string(), (3i64 << 30).to_string()]
        );
    }

    #[test]
    fn a_driver_the_host_lacks_is_refused_by_name() {
        let (mut db, host, vm) = pool(1 << 30);
        let _ = db
            .apply(&[Change::set(
                Class::Vm,
                vm,
                "driver",
                Value::String("qemu".into()),
            )])
            .unwrap();
        let e = start(&db, host, vm).unwrap_err();
        assert_eq!(e.code, "OPERATION_NOT_ALLOWED");
        assert!(
            e.params[0].contains("does not offer VM driver qemu"),
            "{e:?}"
        );
    }

    #[test]
    fn api_shutdown_clears_ha_always_run_and_a_stop_by_itself_does_not() {
        let (mut db, host, vm) = pool(1 << 30);
        let out = start(&db, host, vm).unwrap();
        let _ = db.apply(&out.changes).unwrap();
        let mut by_itself = db.clone();
        let out = call(
            &db,
            &caller(8, host),
            "VM.clean_shutdown",
            &[Value::Ref(vm)],
        )
        .unwrap();
        assert!(matches!(
            &out.effects[..],
            [Effect::StopVm { hard: false, .. }]
        ));
        let _ = db.apply(&out.changes).unwrap();
        assert_eq!(power_state(&db, vm), "Halted");
        assert_eq!(
            db.field(Class::Vm, vm, "ha_always_run"),
            Some(Value::Bool(false))
        );

        let uuid = by_itself.get(Class::Vm, vm).unwrap().uuid().to_owned();
        let c = stopped_by_itself(
            &by_itself,
            DateTime::from_unix(0),
            Uuid::from_u128(9),
            host,
            &uuid,
        );
        let _ = by_itself.apply(&c).unwrap();
        assert_eq!(power_state(&by_itself, vm), "Halted");
        assert_eq!(
            by_itself.field(Class::Vm, vm, "ha_always_run"),
            Some(Value::Bool(true))
        );
        // Reported again (our own stop, already committed): nothing more.
        assert!(
            stopped_by_itself(
                &by_itself,
                DateTime::from_unix(0),
                Uuid::from_u128(10),
                host,
                &uuid
            )
            .is_empty()
        );
    }

    #[test]
    fn reconcile_halts_the_missing_and_records_the_running() {
        let (mut db, host, vm) = pool(1 << 30);
        let out = start(&db, host, vm).unwrap();
        let _ = db.apply(&out.changes).unwrap();
        let other = add_vm(&mut db, host, 2, 1 << 30);
        let other_uuid: Uuid = db.get(Class::Vm, other).unwrap().uuid().parse().unwrap();
        // `vm` is recorded running but gone; `other` runs but is recorded Halted.
        let c = reconcile(&db, &caller(11, host), &[other_uuid]);
        let _ = db.apply(&c).unwrap();
        assert_eq!(power_state(&db, vm), "Halted");
        assert_eq!(
            db.field(Class::Vm, vm, "ha_always_run"),
            Some(Value::Bool(true))
        );
        assert_eq!(power_state(&db, other), "Running");
        assert!(reconcile(&db, &caller(12, host), &[other_uuid]).is_empty());
    }
}
