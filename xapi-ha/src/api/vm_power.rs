//! The VM power calls: `VM.start`, `VM.start_on`, `VM.clean_shutdown`,
//! `VM.hard_shutdown`, `VM.clean_reboot`, `VM.hard_reboot` (docs/api.md,
//! "The VM lifecycle").
//!
//! Each checks the VM's power state (`VM_BAD_POWER_STATE [vm; expected;
//! actual]`), for a start the host's free memory
//! (`HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]`) and that the host
//! offers the VM's driver (`OPERATION_NOT_ALLOWED [reason]`), and returns
//! the [`Effect`]s to perform on the VM's host (this one, or another host
//! of the pool through [`Effect::OnHost`]: forwarding, docs/pool.md) plus
//! the changes to commit once they succeeded: `power_state`, `resident_on`, a `VM_STARTED` /
//! `VM_SHUTDOWN` message and, for an API shutdown, `ha_always_run = false`.
//! A VM that stops by itself is the server's (`server::vms`), through
//! [`stopped_by_itself`], which leaves `ha_always_run` alone.

use uuid::Uuid;
use xapi_vm::VmSpec;

use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref, Value};

use super::coerce::{self, to_text};
use super::ids::Fresh;
use super::vbd::vm_disks;
use super::{ApiError, Caller, Effect, Outcome};

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

pub fn expect_state(db: &Database, vm: Ref, expected: &str) -> Result<(), ApiError> {
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
pub fn vm_footprint(db: &Database, vm: Ref) -> i64 {
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

/// The driver's spec from the VM record; its disks are the volumes of its
/// VBDs in device order ([`super::vbd::vm_disks`]).
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
        disk_regions: vm_disks(db, vm)
            .into_iter()
            .map(|d| {
                d.region
                    .map(|(offset, size)| xapi_vm::spec::DiskRegion { offset, size })
            })
            .collect(),
        disks: vm_disks(db, vm)
            .into_iter()
            .map(|d| {
                d.path.ok_or_else(|| {
                    ApiError::operation_not_allowed(&format!(
                        "disk {} of the VM (VDI {}) has no volume file on its SR",
                        d.device,
                        text(db, Class::Vdi, d.vdi, "uuid")
                    ))
                })
            })
            .collect::<Result<_, _>>()?,
    })
}

/// The `message` record of `alert` (`alerts::catalog`), named from `fresh`.
fn message(caller: &Caller, fresh: &mut Fresh, alert: &crate::alerts::Alert) -> Change {
    let r = fresh.r#ref();
    crate::alerts::catalog::raise_as(r, fresh.uuid(), caller.now, alert)
}

pub fn host_label(db: &Database, host: Ref) -> String {
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
    check_room(db, vm, host)
}

/// Checks that `host` can take `vm`: it offers the VM's driver
/// (`OPERATION_NOT_ALLOWED`) and has its footprint free
/// (`HOST_NOT_ENOUGH_FREE_MEMORY [needed; available]`). For a start and
/// for the target of a migration.
pub fn check_room(db: &Database, vm: Ref, host: Ref) -> Result<(), ApiError> {
    // maint: a disabled host takes no new VM (api/host_maint.rs).
    if !super::host_maint::is_enabled(db, host) {
        return Err(super::host_maint::host_disabled(host));
    }
    let driver = text(db, Class::Vm, vm, "driver");
    let offered = super::diagnostics::host_drivers(db, host);
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
    // xapi's text (../shared/reference/xenapi.md, VM.start), from the catalogue.
    let alert = crate::alerts::catalog::vm_started(db, vm, host);
    vec![
        Change::set(Class::Vm, vm, "power_state", Value::Enum("Running".into())),
        Change::set(Class::Vm, vm, "resident_on", Value::Ref(host)),
        message(caller, &mut fresh, &alert),
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
    // xapi's text (../shared/reference/xenapi.md, VM.clean_shutdown), from
    // the catalogue.
    let alert = crate::alerts::catalog::vm_shutdown(db, vm);
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
    changes.push(message(&caller, &mut fresh, &alert));
    changes
}

fn bool_arg(name: &str, v: &Value) -> Result<bool, ApiError> {
    match coerce::coerce(&crate::db::schema::Ty::Bool, name, v)? {
        Value::Bool(b) => Ok(b),
        _ => Err(ApiError::field_type_error(name)),
    }
}

/// The host a running VM is resident on (power calls for it run there:
/// here, or forwarded to that host's agent).
pub fn resident_host(db: &Database, vm: Ref) -> Result<Ref, ApiError> {
    db.field(Class::Vm, vm, "resident_on")
        .and_then(|v| v.as_ref())
        .filter(|r| !r.is_null() && db.get(Class::Host, *r).is_some())
        .ok_or_else(|| ApiError::internal(&format!("VM {vm} is running but resident on no host")))
}

/// `VM.start(vm, start_paused, force)`: placed on the VM's `affinity` host
/// if set, else this host, else the other hosts by most free memory; the
/// first that passes the checks runs it (forwarded if it is another host).
/// When none does, the error is the first candidate's (`NO_HOSTS_AVAILABLE
/// []` when every host is disabled). `force` is accepted
/// and ignored (xapi's force skips a version check we do not have).
pub fn start(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", &args[0])?;
    let paused = bool_arg("start_paused", &args[1])?;
    bool_arg("force", &args[2])?;
    let mut first_error = None;
    for host in placement(db, caller, vm) {
        match check_start(db, vm, host, paused).and_then(|()| start_on_host(db, caller, vm, host)) {
            Ok(outcome) => return Ok(outcome),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| ApiError::new("NO_HOSTS_AVAILABLE", Vec::<String>::new())))
}

/// The hosts `VM.start` tries, in order: the VM's affinity (if it names a
/// host), this host, then the others by most free memory (ties by
/// reference, so the order is a function of the database).
fn placement(db: &Database, caller: &Caller, vm: Ref) -> Vec<Ref> {
    let mut order = Vec::new();
    let affinity = db
        .field(Class::Vm, vm, "affinity")
        .and_then(|v| v.as_ref())
        .filter(|h| db.get(Class::Host, *h).is_some());
    order.extend(affinity);
    if db.get(Class::Host, caller.this_host).is_some() && !order.contains(&caller.this_host) {
        order.push(caller.this_host);
    }
    let mut others: Vec<(i64, Ref)> = db
        .objects(Class::Host)
        .map(|(h, _)| h)
        .filter(|h| !order.contains(h))
        .map(|h| (host_free_memory(db, h), h))
        .collect();
    others.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    order.extend(others.into_iter().map(|(_, h)| h));
    // maint: disabled hosts take no new VM.
    order.retain(|h| super::host_maint::is_enabled(db, *h));
    order
}

/// `VM.start_on(vm, host, start_paused, force)`: on `host`, forwarded to
/// its agent when it is another host of the pool.
pub fn start_on(db: &Database, caller: &Caller, args: &[Value]) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", &args[0])?;
    let host = coerce::object(db, Class::Host, "host", &args[1])?;
    let paused = bool_arg("start_paused", &args[2])?;
    bool_arg("force", &args[3])?;
    check_start(db, vm, host, paused)?;
    start_on_host(db, caller, vm, host)
}

fn start_on_host(db: &Database, caller: &Caller, vm: Ref, host: Ref) -> Result<Outcome, ApiError> {
    crate::ha::overcommit::check_start(db, vm, host)?;
    let mut outcome = start_outcome(db, caller, vm, host)?;
    // alerts: as xapi, a start makes a `restart` VM protected
    // (`ha_always_run := true`; xenapi.md, VM.start), which the overcommit
    // check above already assumes.
    let restart = text(db, Class::Vm, vm, "ha_restart_priority") == "restart";
    let protected = db.field(Class::Vm, vm, "ha_always_run") == Some(Value::Bool(true));
    if restart && !protected {
        outcome.changes.push(Change::set(
            Class::Vm,
            vm,
            "ha_always_run",
            Value::Bool(true),
        ));
    }
    Ok(outcome)
}

/// A start by the HA restart engine on `host`: the checks of a start
/// (power state, driver, memory) but not the overcommit check: an engine
/// restart is let through and the live plan then marks the pool
/// overcommitted, as xapi does. The changes also clear
/// `scheduled_to_be_resident_on` (set while the start is in flight).
pub fn ha_restart(db: &Database, caller: &Caller, vm: Ref, host: Ref) -> Result<Outcome, ApiError> {
    check_start(db, vm, host, false)?;
    let mut outcome = start_outcome(db, caller, vm, host)?;
    outcome.changes.push(Change::set(
        Class::Vm,
        vm,
        "scheduled_to_be_resident_on",
        Value::Ref(Ref::NULL),
    ));
    Ok(outcome)
}

fn start_outcome(db: &Database, caller: &Caller, vm: Ref, host: Ref) -> Result<Outcome, ApiError> {
    let start = Effect::StartVm {
        vm,
        spec: vm_spec(db, vm)?,
    };
    Ok(Outcome {
        effects: vec![Effect::on(host, caller.this_host, start)],
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
    let host = resident_host(db, vm)?;
    let spec = vm_spec(db, vm)?;
    let stop = Effect::StopVm {
        vm,
        uuid: spec.uuid,
        hard,
    };
    Ok(Outcome {
        effects: vec![Effect::on(host, caller.this_host, stop)],
        changes: halted_changes(db, caller.now, caller.seed, vm, true),
        ..Outcome::value(Value::Void)
    })
}

/// `VM.clean_reboot(vm)` / `VM.hard_reboot(vm)`: stop, then start again on
/// the host it runs on (forwarded there if that is another host); the
/// record stays Running there (no message, as xapi sends
/// none for a reboot through the API).
pub fn reboot(
    db: &Database,
    caller: &Caller,
    arg: &Value,
    hard: bool,
) -> Result<Outcome, ApiError> {
    let vm = coerce::object(db, Class::Vm, "vm", arg)?;
    expect_state(db, vm, "Running")?;
    let host = resident_host(db, vm)?;
    let spec = vm_spec(db, vm)?;
    let here = caller.this_host;
    Ok(Outcome {
        effects: vec![
            Effect::on(
                host,
                here,
                Effect::StopVm {
                    vm,
                    uuid: spec.uuid,
                    hard,
                },
            ),
            Effect::on(host, here, Effect::StartVm { vm, spec }),
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
        let (m, _) = db.objects(Class::Message).next().unwrap();
        let vm_uuid = text(&db, Class::Vm, vm, "uuid");
        assert_eq!(
            text(&db, Class::Message, m, "body"),
            format!(
                "VM 'vm1' (uuid: {vm_uuid}) started on host: h1 (uuid: 6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e)"
            )
        );
        let e = start(&db, host, vm).unwrap_err();
        assert_eq!(e.code, "VM_BAD_POWER_STATE");
        assert_eq!(e.params[1..], ["halted", "running"]);
    }

    #[test]
    fn a_start_protects_a_restart_vm_as_xapi() {
        let (mut db, host, vm) = pool(1 << 30);
        let set = |db: &mut Database, field: &str, v: Value| {
            let _ = db.apply(&[Change::set(Class::Vm, vm, field, v)]).unwrap();
        };
        set(&mut db, "ha_always_run", Value::Bool(false));
        set(
            &mut db,
            "ha_restart_priority",
            Value::String("restart".into()),
        );
        let _ = db.apply(&start(&db, host, vm).unwrap().changes).unwrap();
        assert_eq!(
            db.field(Class::Vm, vm, "ha_always_run"),
            Some(Value::Bool(true))
        );
        // Best-effort VMs stay unprotected.
        let other = add_vm(&mut db, host, 2, 1 << 30);
        let _ = db
            .apply(&[
                Change::set(Class::Vm, other, "ha_always_run", Value::Bool(false)),
                Change::set(
                    Class::Vm,
                    other,
                    "ha_restart_priority",
                    Value::String("best-effort".into()),
                ),
            ])
            .unwrap();
        let _ = db.apply(&start(&db, host, other).unwrap().changes).unwrap();
        assert_eq!(
            db.field(Class::Vm, other, "ha_always_run"),
            Some(Value::Bool(false))
        );
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
    fn a_start_protects_a_restart_vm_again_and_leaves_others_alone() {
        // xenapi.md 4.6: starting a `restart` VM sets ha_always_run.
        for (priority, want) in [("restart", true), ("best-effort", false), ("", false)] {
            let (mut db, host, vm) = pool(1 << 30);
            let _ = db
                .apply(&[
                    Change::set(
                        Class::Vm,
                        vm,
                        "ha_restart_priority",
                        Value::String(priority.into()),
                    ),
                    Change::set(Class::Vm, vm, "ha_always_run", Value::Bool(false)),
                ])
                .unwrap();
            let out = start(&db, host, vm).unwrap();
            let _ = db.apply(&out.changes).unwrap();
            assert_eq!(
                db.field(Class::Vm, vm, "ha_always_run"),
                Some(Value::Bool(want)),
                "priority {priority:?}"
            );
        }
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
