//! The QEMU command line for a VM (docs/vm-drivers.md, "QEMU command line").

use std::ffi::OsString;
use std::path::Path;

use super::accel::Accel;
use crate::VmSpec;

pub const MIB: u64 = 1024 * 1024;
/// Below 96 MiB the test guest resets silently; 128 MiB leaves room.
pub const MEMORY_MIN_BYTES: u64 = 128 * MIB;

/// Everything the command line depends on besides the spec.
pub struct Launch<'a> {
    pub accel: Accel,
    pub dir: &'a Path,
    pub kernel: &'a str,
    pub initrd: Option<&'a str>,
    pub host: &'a str,
    pub tsc_khz: Option<u64>,
    pub t0_ms: u64,
    pub stamp: bool,
    pub slot: u64,
    pub extra_cmdline: Option<&'a str>,
    /// Target of a live migration: paused (`-S`), waiting for
    /// `migrate-incoming` (`-incoming defer`).
    pub incoming: bool,
}

/// The machine: microvm without the legacy PIT and 8259 PIC. With them,
/// the PIT (counting from reset) raises IRQ 0 through a PIC whose vector
/// base is still 0, and when the kernel first enables interrupts in
/// `start_kernel` a pending tick arrives as vector 0, a "divide error" in
/// the idle task: panic, and the guest spins silently (before the console
/// exists) at full CPU for ever. It hit most boots on an idle host, few on
/// a loaded one (docs/vm-drivers.md, "The boot hang"). The guest needs neither: the LAPIC timer and the IOAPIC do
/// the work, and `tsc_early_khz` replaces the PIT calibration.
pub const MACHINE: &str = "microvm,pit=off,pic=off";

/// QEMU's option syntax: a comma inside a value is written twice.
fn esc(s: &str) -> String {
    s.replace(',', ",,")
}

pub fn build(spec: &VmSpec, l: &Launch<'_>) -> Vec<OsString> {
    let dir = |name: &str| esc(&l.dir.join(name).display().to_string());
    let mut cmdline = vec!["console=ttyS0".to_owned(), "quiet".into()];
    if let Some(k) = l.tsc_khz {
        // Without it about one boot in eight hangs at "Marking TSC unstable" under TCG.
        cmdline.push(format!("tsc_early_khz={k}"));
    }
    cmdline.push(format!("xha.vm={}", spec.uuid.hyphenated()));
    cmdline.push(format!("xha.host={}", l.host));
    cmdline.push(format!("xha.t0={}", l.t0_ms));
    cmdline.push(format!("xha.slot={}", l.slot));
    if !l.stamp {
        cmdline.push("xha.stamp=0".into());
    }
    if let Some(extra) = l.extra_cmdline {
        cmdline.push(extra.to_owned());
    }
    let mut a: Vec<String> = vec![
        "-name".into(),
        esc(&spec.name),
        "-uuid".into(),
        spec.uuid.hyphenated().to_string(),
        "-M".into(),
        MACHINE.into(),
        "-accel".into(),
        l.accel.as_str().into(),
        "-m".into(),
        format!("{}M", spec.memory_bytes / MIB),
        "-smp".into(),
        spec.vcpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-serial".into(),
        format!("file:{}", dir("console.log")),
        "-pidfile".into(),
        dir("qemu.pid"),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", dir("qmp.sock")),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", dir("events.sock")),
        "-kernel".into(),
        l.kernel.into(),
    ];
    if let Some(i) = l.initrd {
        a.extend(["-initrd".into(), i.into()]);
    }
    a.extend(["-append".into(), cmdline.join(" ")]);
    for (i, d) in spec.disks.iter().enumerate() {
        // cache=none: writes go to the (shared) storage, not this host's page
        // cache. Image locking stays on (QEMU's default).
        if let Some(r) = spec.disk_region(i) {
            // A region of a block SR's device: the raw format driver's
            // offset and size keep every guest access inside it.
            let file_driver = if is_block_device(d) {
                "host_device"
            } else {
                "file"
            };
            a.push("-blockdev".into());
            a.push(format!(
                "driver=raw,node-name=disk{i},offset={},size={},cache.direct=on,file.driver={file_driver},file.filename={},file.cache.direct=on",
                r.offset,
                r.size,
                esc(&d.display().to_string())
            ));
            a.push("-device".into());
            a.push(format!("virtio-blk-device,drive=disk{i}"));
            continue;
        }
        a.push("-drive".into());
        a.push(format!(
            "file={},format=raw,if=none,id=disk{i},cache=none",
            esc(&d.display().to_string())
        ));
        a.push("-device".into());
        a.push(format!("virtio-blk-device,drive=disk{i}"));
    }
    if l.incoming {
        a.extend(["-S".into(), "-incoming".into(), "defer".into()]);
    }
    a.into_iter().map(OsString::from).collect()
}

/// Whether `path` is a block device (QEMU's `host_device` driver) rather
/// than a regular file.
fn is_block_device(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// The host's TSC frequency in kHz, from /proc/cpuinfo's `cpu MHz`.
pub fn host_tsc_khz() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = text
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::DiskRegion;

    /// blocksr: a disk that is a region of a block SR's device is a raw
    /// `-blockdev` with the region's offset and size; a whole file stays a
    /// `-drive`.
    #[test]
    fn a_region_disk_is_a_raw_blockdev_with_offset_and_size() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lun = dir.path().join("lun,1");
        let whole = dir.path().join("whole.img");
        std::fs::write(&lun, b"").expect("lun");
        std::fs::write(&whole, b"").expect("whole");
        let spec = VmSpec {
            uuid: uuid::Uuid::from_u128(1),
            name: "r".into(),
            memory_bytes: 256 * MIB,
            vcpus: 1,
            driver: "qemu".into(),
            config: Default::default(),
            disks: vec![lun.clone(), whole.clone()],
            disk_regions: vec![
                Some(DiskRegion {
                    offset: 1 << 20,
                    size: 8 << 20,
                }),
                None,
            ],
        };
        let launch = Launch {
            accel: Accel::Tcg,
            dir: dir.path(),
            kernel: "/k",
            initrd: None,
            host: "h",
            tsc_khz: None,
            t0_ms: 0,
            stamp: false,
            slot: 0,
            extra_cmdline: None,
            incoming: false,
        };
        let argv: Vec<String> = build(&spec, &launch)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let at = argv
            .iter()
            .position(|a| a == "-blockdev")
            .expect("blockdev");
        assert_eq!(
            argv[at + 1],
            format!(
                "driver=raw,node-name=disk0,offset=1048576,size=8388608,cache.direct=on,file.driver=file,file.filename={},file.cache.direct=on",
                lun.display().to_string().replace(',', ",,")
            )
        );
        assert_eq!(argv[at + 3], "virtio-blk-device,drive=disk0");
        let drive = argv.iter().position(|a| a == "-drive").expect("drive");
        assert!(argv[drive + 1].contains("id=disk1"), "{}", argv[drive + 1]);
        assert_eq!(argv.iter().filter(|a| *a == "-blockdev").count(), 1);
    }
}
