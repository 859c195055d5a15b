//! A `type=block` SR on a real loop device through the real agent: a VDI
//! is a region of the device (an entry of the label's volume table), a
//! process VM running `xha-stamp` writes its stamps inside that region and
//! nowhere else, VDI.destroy frees the region and the next VDI reuses it,
//! and bad sizes are refused with an error naming the field, changing
//! nothing. Needs root (losetup); otherwise each test says it skipped.

mod api_support;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use api_support::{Agent, call2, config_text, fail2, login, vm_binaries};
use serde_json::json;
use sr_heartbeat::srlabel::device::read_label;
use uuid::Uuid;
use xapi_vm::process::ProcessDriver;
use xapi_vm::stamp::region::REGION_BYTES;
use xapi_vm::stamp::{DiskArea, StampLog};
use xapi_vm::{DriverContext, StopMode, VmDriver as _};

const DEVICE_BYTES: u64 = 64 << 20;
const LONG: Duration = Duration::from_secs(60);

fn skip_unless_root(what: &str) -> bool {
    if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return false;
    }
    println!("skipped: needs root for losetup ({what})");
    eprintln!("skipped: needs root for losetup ({what})");
    true
}

/// A loop device over a sparse image; detached on drop, even after a panic.
struct LoopDevice(PathBuf);

impl LoopDevice {
    fn attach(image: &Path) -> LoopDevice {
        let mut last = String::new();
        for attempt in 0..5u64 {
            let out = Command::new("losetup")
                .args(["--find", "--show", "--sector-size", "512"])
                .arg(image)
                .output()
                .expect("run losetup");
            if out.status.success() {
                return LoopDevice(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            // Parallel tests may race for the same free device.
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
        }
        panic!("losetup {}: {last}", image.display());
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).output();
    }
}

/// Stops (hard) every VM still running under the agent's data directory
/// when dropped (declare after the agent).
struct StopVmsOnDrop(PathBuf);

impl Drop for StopVmsOnDrop {
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

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + LONG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn whole_device(path: &Path) -> Vec<u8> {
    use sr_heartbeat::io::{AlignedBuf, BlockDevice, OpenMode};
    let dev = BlockDevice::open(path, OpenMode::ReadOnly).expect("open device");
    let mut buf = AlignedBuf::new(dev.size_bytes() as usize).expect("buffer");
    dev.read_at(0, &mut buf).expect("read device");
    buf.to_vec()
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a number in a string: {v}"))
}

#[test]
fn a_vdi_on_a_block_sr_is_a_region_a_process_vm_stamps_inside() {
    if skip_unless_root("a block SR on a loop device") {
        return;
    }
    vm_binaries();
    let a = Agent::start_configured(|dir| {
        config_text(dir, "").replace("drivers = [\"qemu\"]", "drivers = [\"process\"]")
    });
    let _vms = StopVmsOnDrop(a.dir.path().join("data/vm-run"));
    let image = a.dir.path().join("lun.img");
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(DEVICE_BYTES))
        .expect("image");
    let lun = LoopDevice::attach(&image);
    let s = login(a.http);
    let host = call2(a.http, "host.get_all", json!([s]))[0]
        .as_str()
        .expect("host")
        .to_owned();
    let sr = call2(
        a.http,
        "SR.create",
        json!([s, host, {"device": lun.0.display().to_string()}, 0, "lun", "", "block", "", true, {}]),
    );

    // Bad sizes: refused naming the field; nothing created.
    for bad in [0, 1000, -4096] {
        let e = fail2(
            a.http,
            "VDI.create",
            json!([s, {"SR": sr, "virtual_size": bad}]),
        );
        assert_eq!(e[0], "INVALID_VALUE", "{bad}: {e:?}");
        assert_eq!(e[1], "virtual_size", "{bad}: {e:?}");
    }
    let e = fail2(
        a.http,
        "VDI.create",
        json!([s, {"SR": sr, "virtual_size": 1i64 << 30}]),
    );
    assert_eq!(e[0], "SR_BACKEND_FAILURE", "{e:?}");
    assert_eq!(e[1], "SR_FULL", "{e:?}");
    assert!(e[3].contains("does not fit"), "{e:?}");
    assert_eq!(call2(a.http, "VDI.get_all", json!([s])), json!([]));
    assert!(read_label(&lun.0).expect("label").volumes.is_empty());

    // A VDI: a region recorded in sm_config and in the label.
    let vdi = call2(
        a.http,
        "VDI.create",
        json!([s, {"SR": sr, "virtual_size": REGION_BYTES, "name_label": "disk0"}]),
    );
    let rec = call2(a.http, "VDI.get_record", json!([s, vdi]));
    let offset = num(&rec["sm_config"]["region_offset"]);
    let size = num(&rec["sm_config"]["region_size"]);
    assert_eq!((offset, size), (1 << 20, REGION_BYTES));
    let label = read_label(&lun.0).expect("label");
    assert_eq!(label.volumes.len(), 1);
    let volume = label.volumes[0];
    assert_eq!((volume.offset, volume.size), (offset, size));
    assert_eq!(
        volume.uuid.to_string(),
        rec["location"].as_str().expect("location")
    );

    // A process VM stamping on its first disk: the region.
    let stamp = vm_binaries().join("xha-stamp");
    let vm = call2(
        a.http,
        "VM.create",
        json!([s, {
            "name_label": "blocky",
            "memory_static_max": 64 << 20,
            "driver": "process",
            "driver_config": {"command": format!("exec {}", stamp.display())},
        }]),
    );
    call2(
        a.http,
        "VBD.create",
        json!([s, {"VM": vm, "VDI": vdi, "userdevice": "0", "bootable": true, "mode": "RW", "type": "Disk"}]),
    );
    call2(a.http, "VM.assert_agile", json!([s, vm]));
    let vm_uuid: Uuid = call2(a.http, "VM.get_uuid", json!([s, vm]))
        .as_str()
        .and_then(|u| u.parse().ok())
        .expect("uuid");
    call2(a.http, "VM.start", json!([s, vm, false, false]));
    let area = DiskArea {
        base: offset,
        len: Some(size),
    };
    wait_for("3 stamps in the region", || {
        let mut log = StampLog::new();
        let _ = log.read_disk_in(&lun.0, area, 0);
        (log.records().filter(|r| r.vm == vm_uuid).count() >= 3).then_some(())
    });
    call2(a.http, "VM.hard_shutdown", json!([s, vm]));
    // Nothing outside the region was written: the label region after the
    // two slots and everything after the region are still zero.
    let bytes = whole_device(&lun.0);
    assert!(bytes[8192..offset as usize].iter().all(|&b| b == 0));
    assert!(bytes[(offset + size) as usize..].iter().all(|&b| b == 0));
    assert!(
        bytes[offset as usize..(offset + size) as usize]
            .iter()
            .any(|&b| b != 0)
    );

    // Destroy: the region is freed in the label, the VBD goes with the
    // record, and the next VDI reuses the room.
    call2(a.http, "VDI.destroy", json!([s, vdi]));
    assert!(read_label(&lun.0).expect("label").volumes.is_empty());
    assert_eq!(call2(a.http, "VBD.get_all", json!([s])), json!([]));
    let again = call2(
        a.http,
        "VDI.create",
        json!([s, {"SR": sr, "virtual_size": 8192}]),
    );
    let rec = call2(a.http, "VDI.get_record", json!([s, again]));
    assert_eq!(num(&rec["sm_config"]["region_offset"]), offset);
    assert_eq!(read_label(&lun.0).expect("label").volumes.len(), 1);
}
