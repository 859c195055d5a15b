//! VM disks (VDI.create, VBD.create/destroy, the VM's spec) and agility
//! (VM.assert_agile, VM.get_agility_problems, VM.get_possible_hosts),
//! through `call`, on a pool of two hosts.

use uuid::Uuid;

use super::bootstrap::{HostInfo, new_pool};
use super::*;
use crate::db::Class;
use crate::value::{Key, Ref};

struct Pool {
    db: Database,
    h1: Ref,
    h2: Ref,
    n: u128,
}

fn caller(n: u128, host: Ref) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784),
        seed: Uuid::from_u128(n),
        this_host: host,
    }
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Key::String((*k).into()), v.clone()))
            .collect(),
    )
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

impl Pool {
    /// h1 offers process and qemu, h2 only process; 8 GiB each.
    fn new() -> Pool {
        let mut db = Database::new();
        let info = |uuid: &str, name: &str, drivers: &[&str]| HostInfo {
            uuid: uuid.into(),
            name_label: name.into(),
            address: "10.0.0.1".into(),
            hostname: name.into(),
            memory_total: 8 << 30,
            memory_overhead: 1 << 30,
            vm_drivers: drivers.iter().map(|d| (*d).to_owned()).collect(),
        };
        let (h1, changes) = new_pool(
            &db,
            &caller(0, Ref::NULL),
            &info(
                "11111111-1111-4111-8111-111111111111",
                "h1",
                &["process", "qemu"],
            ),
        );
        let _ = db.apply(&changes).unwrap();
        // A second host as pool.join would add it: the same records again.
        let (h2, changes) = new_pool(
            &db,
            &caller(1, Ref::NULL),
            &info("22222222-2222-4222-8222-222222222222", "h2", &["process"]),
        );
        let changes: Vec<_> = changes
            .into_iter()
            .filter(|c| {
                !matches!(
                    c,
                    crate::db::Change::Create {
                        class: Class::Pool,
                        ..
                    }
                )
            })
            .collect();
        let _ = db.apply(&changes).unwrap();
        Pool { db, h1, h2, n: 10 }
    }

    fn call(&mut self, method: &str, args: &[Value]) -> Result<Value, ApiError> {
        self.n += 1;
        let out = call(&self.db, &caller(self.n, self.h1), method, args)?;
        let _ = self.db.apply(&out.changes).expect("handler changes apply");
        self.db.check_invariants().unwrap();
        Ok(out.result)
    }

    fn outcome(&mut self, method: &str, args: &[Value]) -> Outcome {
        self.n += 1;
        let out = call(&self.db, &caller(self.n, self.h1), method, args).unwrap();
        let _ = self.db.apply(&out.changes).unwrap();
        out
    }

    fn err(&mut self, method: &str, args: &[Value]) -> ApiError {
        let before = self.db.clone();
        let e = self.call(method, args).unwrap_err();
        assert_eq!(self.db, before, "a refused call changes nothing");
        e
    }

    fn sr(&mut self, sr_type: &str, key: &str, path: &str, shared: bool) -> Ref {
        let args = [
            Value::Ref(self.h1),
            map(&[(key, s(path))]),
            Value::Int(0),
            s(&format!("{sr_type}-sr")),
            s(""),
            s(sr_type),
            s(""),
            Value::Bool(shared),
            map(&[]),
        ];
        self.call("SR.create", &args).unwrap().as_ref().unwrap()
    }

    fn vm(&mut self, driver: &str) -> Ref {
        let rec = map(&[
            ("name_label", s("vm")),
            ("memory_static_max", Value::Int(1 << 30)),
            ("driver", s(driver)),
        ]);
        self.call("VM.create", &[rec]).unwrap().as_ref().unwrap()
    }

    fn vdi(&mut self, sr: Ref, size: i64) -> (Ref, Outcome) {
        let out = self.outcome(
            "VDI.create",
            &[map(&[
                ("SR", Value::Ref(sr)),
                ("virtual_size", Value::Int(size)),
            ])],
        );
        (out.result.as_ref().unwrap(), out)
    }

    fn vbd(&mut self, vm: Ref, vdi: Ref, device: &str) -> Result<Value, ApiError> {
        self.call(
            "VBD.create",
            &[map(&[
                ("VM", Value::Ref(vm)),
                ("VDI", Value::Ref(vdi)),
                ("userdevice", s(device)),
                ("bootable", Value::Bool(true)),
            ])],
        )
    }

    fn set_of_text(&mut self, method: &str, vm: Ref) -> Vec<String> {
        match self.call(method, &[Value::Ref(vm)]).unwrap() {
            Value::Set(items) => items.iter().map(coerce::to_text).collect(),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_vdi_on_a_file_sr_is_a_file_effect() {
    let mut p = Pool::new();
    let sr = p.sr("file", "path", "/srv/sr1", true);
    let (vdi, out) = p.vdi(sr, 8 << 20);
    let uuid = p.db.get(Class::Vdi, vdi).unwrap().uuid().to_owned();
    let file = format!("{uuid}.img");
    assert_eq!(
        out.effects,
        vec![Effect::CreateVdi {
            path: std::path::Path::new("/srv/sr1").join(&file),
            size: 8 << 20
        }]
    );
    assert_eq!(p.db.field(Class::Vdi, vdi, "location"), Some(s(&file)));
    assert_eq!(
        p.db.field(Class::Vdi, vdi, "type"),
        Some(Value::Enum("user".into()))
    );
    assert_eq!(
        p.err("VDI.create", &[map(&[("virtual_size", Value::Int(1))])])
            .code,
        "INVALID_VALUE"
    );
    let e = p.err(
        "VDI.create",
        &[map(&[
            ("SR", Value::Ref(sr)),
            ("virtual_size", Value::Int(-1)),
        ])],
    );
    assert_eq!(e.params[0], "virtual_size");
}

#[test]
fn vbds_give_the_vm_its_disks_in_device_order() {
    let mut p = Pool::new();
    let sr = p.sr("file", "path", "/srv/sr1", true);
    let vm = p.vm("process");
    let (a, _) = p.vdi(sr, 1 << 20);
    let (b, _) = p.vdi(sr, 1 << 20);
    p.vbd(vm, b, "1").unwrap();
    p.vbd(vm, a, "0").unwrap();
    let spec = vm_power::vm_spec(&p.db, vm).unwrap();
    let path = |v| vdi::volume_path(&p.db, v).unwrap();
    assert_eq!(spec.disks, vec![path(a), path(b)]);
    // Taken device numbers, bad ones, autodetect.
    let (c, _) = p.vdi(sr, 1 << 20);
    assert_eq!(p.vbd(vm, c, "1").unwrap_err().code, "DEVICE_ALREADY_EXISTS");
    assert_eq!(p.vbd(vm, c, "xvda").unwrap_err().code, "INVALID_VALUE");
    let r = p.vbd(vm, c, "autodetect").unwrap().as_ref().unwrap();
    assert_eq!(p.db.field(Class::Vbd, r, "userdevice"), Some(s("2")));
    // Not while the VM runs; destroy removes the VBD, VM.destroy the rest.
    let args = [Value::Ref(vm), Value::Bool(false), Value::Bool(false)];
    p.call("VM.start", &args).unwrap();
    let (d, _) = p.vdi(sr, 1 << 20);
    assert_eq!(p.vbd(vm, d, "3").unwrap_err().code, "VM_BAD_POWER_STATE");
    assert_eq!(
        p.err("VBD.destroy", &[Value::Ref(r)]).code,
        "VM_BAD_POWER_STATE"
    );
    p.call("VM.hard_shutdown", &[Value::Ref(vm)]).unwrap();
    p.call("VBD.destroy", &[Value::Ref(r)]).unwrap();
    assert_eq!(vm_power::vm_spec(&p.db, vm).unwrap().disks.len(), 2);
    p.call("VM.destroy", &[Value::Ref(vm)]).unwrap();
    assert_eq!(p.db.count(Class::Vbd), 0);
    assert_eq!(p.db.count(Class::Vdi), 4);
}

#[test]
fn agility_needs_shared_disks_and_the_driver_on_every_host() {
    let mut p = Pool::new();
    let shared = p.sr("file", "path", "/srv/shared", true);
    let local = p.sr("file", "path", "/srv/local", false);
    let vm = p.vm("process");
    let (a, _) = p.vdi(shared, 1 << 20);
    p.vbd(vm, a, "0").unwrap();
    assert!(p.set_of_text("VM.get_agility_problems", vm).is_empty());
    p.call("VM.assert_agile", &[Value::Ref(vm)]).unwrap();
    let hosts = p.set_of_text("VM.get_possible_hosts", vm);
    assert_eq!(hosts, vec![p.h1.to_string(), p.h2.to_string()]);

    // A disk on a local SR: not agile, with the SR named.
    let (b, _) = p.vdi(local, 1 << 20);
    p.vbd(vm, b, "1").unwrap();
    let e = p.err("VM.assert_agile", &[Value::Ref(vm)]);
    assert_eq!(
        (e.code.as_str(), e.params.clone()),
        (
            "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED",
            vec![local.to_string()]
        )
    );
    let why = p.set_of_text("VM.get_agility_problems", vm);
    assert_eq!(why.len(), 1);
    assert!(
        why[0].contains("disk 1") && why[0].contains("not shared"),
        "{why:?}"
    );

    // A qemu VM: h2 lacks the driver, so it can run on h1 only.
    let q = p.vm("qemu");
    let why = p.set_of_text("VM.get_agility_problems", q);
    assert_eq!(why.len(), 1);
    assert!(
        why[0].contains("h2") && why[0].contains("does not offer VM driver qemu"),
        "{why:?}"
    );
    assert_eq!(
        p.err("VM.assert_agile", &[Value::Ref(q)]).code,
        "OPERATION_NOT_ALLOWED"
    );
    assert_eq!(
        p.set_of_text("VM.get_possible_hosts", q),
        vec![p.h1.to_string()]
    );

    // Memory: a VM bigger than any host's free memory can run nowhere.
    let big = p
        .call(
            "VM.create",
            &[map(&[
                ("name_label", s("big")),
                ("memory_static_max", Value::Int(16 << 30)),
                ("driver", s("process")),
            ])],
        )
        .unwrap()
        .as_ref()
        .unwrap();
    assert!(p.set_of_text("VM.get_possible_hosts", big).is_empty());
    let none = p.vm("");
    assert!(p.set_of_text("VM.get_agility_problems", none)[0].contains("no driver"));
}

/// blocksr: VDIs on a block SR are regions, placed first fit from the
/// records, freed by VDI.destroy; bad sizes are refused naming the field.
#[test]
fn a_vdi_on_a_block_sr_is_a_region_of_its_device() {
    let mut p = Pool::new();
    let sr = p.sr("block", "device", "/dev/sdz", true);
    let region = |p: &Pool, v| vdi_region::region_of(&p.db, v).unwrap();
    let (a, out) = p.vdi(sr, 8 << 20);
    let lun = std::path::PathBuf::from("/dev/sdz");
    let uuid = p.db.get(Class::Vdi, a).unwrap().uuid().to_owned();
    assert_eq!(region(&p, a), (1 << 20, 8 << 20));
    assert_eq!(
        out.effects,
        vec![Effect::CreateRegion {
            device: lun.clone(),
            volume: sr_heartbeat::srlabel::Volume {
                uuid: Uuid::parse_str(&uuid).unwrap(),
                kind: sr_heartbeat::srlabel::VolumeKind::Disk,
                offset: 1 << 20,
                size: 8 << 20,
            }
        }]
    );
    assert_eq!(p.db.field(Class::Vdi, a, "location"), Some(s(&uuid)));
    let (b, _) = p.vdi(sr, 4096);
    assert_eq!(region(&p, b), (9 << 20, 4096));
    // The VM's spec names the device and the region.
    let vm = p.vm("process");
    p.vbd(vm, b, "0").unwrap();
    let spec = vm_power::vm_spec(&p.db, vm).unwrap();
    assert_eq!(spec.disks, vec![lun.clone()]);
    assert_eq!(
        spec.disk_regions,
        vec![Some(xapi_vm::spec::DiskRegion {
            offset: 9 << 20,
            size: 4096
        })]
    );
    assert!(p.set_of_text("VM.get_agility_problems", vm).is_empty());
    // Destroy frees a's region (the effect) and the first fit reuses it.
    let out = p.outcome("VDI.destroy", &[Value::Ref(a)]);
    assert_eq!(
        out.effects,
        vec![Effect::DeleteVolume {
            path: lun.clone(),
            region: Some(Uuid::parse_str(&uuid).unwrap())
        }]
    );
    assert!(p.db.get(Class::Vdi, a).is_none());
    let (c, _) = p.vdi(sr, 2 << 20);
    assert_eq!(region(&p, c), (1 << 20, 2 << 20));
    // Bad sizes.
    for bad in [0, -4096, 1000, (1 << 20) + 1] {
        let e = p.err(
            "VDI.create",
            &[map(&[
                ("SR", Value::Ref(sr)),
                ("virtual_size", Value::Int(bad)),
            ])],
        );
        assert_eq!(e.code, "INVALID_VALUE", "{bad}");
        assert_eq!(e.params[0], "virtual_size", "{bad}");
    }
    // Not while a running VM has it; its VBDs go with it.
    let args = [Value::Ref(vm), Value::Bool(false), Value::Bool(false)];
    p.call("VM.start", &args).unwrap();
    let e = p.err("VDI.destroy", &[Value::Ref(b)]);
    assert_eq!(e.code, "VDI_IN_USE");
    p.call("VM.hard_shutdown", &[Value::Ref(vm)]).unwrap();
    p.call("VDI.destroy", &[Value::Ref(b)]).unwrap();
    assert_eq!(p.db.count(Class::Vbd), 0);
}
