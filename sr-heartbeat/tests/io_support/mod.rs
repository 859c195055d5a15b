//! Helpers shared by the device tests and the benchmark: root detection, loop
//! devices that always detach, and a frozen filesystem that always thaws.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether we run as root (owner of /proc/self is the effective uid).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Print why a root-only test is skipped; call sites return right after.
pub fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    println!("skipped: needs root for losetup ({what})");
    eprintln!("skipped: needs root for losetup ({what})");
    true
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A loop device over an image file; detached on drop, even after a panic.
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    /// `losetup --find --show --sector-size N --direct-io=on IMAGE` (falls
    /// back to buffered loop I/O if the backing filesystem refuses direct I/O).
    pub fn attach(image: &Path, sector_size: u32) -> Result<LoopDevice, String> {
        let ss = sector_size.to_string();
        let direct = run(Command::new("losetup")
            .args(["--find", "--show", "--sector-size", &ss, "--direct-io=on"])
            .arg(image));
        let path = match direct {
            Ok(p) => p,
            Err(_) => run(Command::new("losetup")
                .args(["--find", "--show", "--sector-size", &ss])
                .arg(image))?,
        };
        Ok(LoopDevice {
            path: PathBuf::from(path),
        })
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("losetup").arg("-d").arg(&self.path)) {
            eprintln!("warning: could not detach {}: {e}", self.path.display());
        }
    }
}

/// A sparse image file of `size` bytes.
pub fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("create image");
    f.set_len(size).expect("size image");
    p
}

/// An ext4 filesystem on its own loop device, mounted on a private directory.
/// `freeze()` makes every write to it block in the kernel (a real hung
/// device for writers); drop thaws, unmounts and detaches, in that order.
pub struct FreezableFs {
    pub mount: PathBuf,
    frozen: bool,
    mounted: bool,
    // Dropped after the filesystem is unmounted (field order).
    pub dev: LoopDevice,
}

impl FreezableFs {
    pub fn create(dir: &Path) -> Result<FreezableFs, String> {
        let img = image(dir, "fs.img", 64 << 20);
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img))?;
        let dev = LoopDevice::attach(&img, 4096)?;
        let mount = dir.join("mnt");
        std::fs::create_dir_all(&mount).map_err(|e| e.to_string())?;
        let mut fs = FreezableFs {
            mount,
            frozen: false,
            mounted: false,
            dev,
        };
        run(Command::new("mount").arg(&fs.dev.path).arg(&fs.mount))?;
        fs.mounted = true;
        Ok(fs)
    }

    /// Freeze it, after checking that the directory really is our
    /// filesystem (freezing the wrong one would hang the machine's writers).
    pub fn freeze(&mut self) -> Result<(), String> {
        let mnt = std::fs::metadata(&self.mount).map_err(|e| e.to_string())?;
        let dev = std::fs::metadata(&self.dev.path).map_err(|e| e.to_string())?;
        if mnt.dev() != dev.rdev() {
            return Err(format!(
                "{} is not mounted from {}: refusing to freeze",
                self.mount.display(),
                self.dev.path.display()
            ));
        }
        run(Command::new("fsfreeze").arg("-f").arg(&self.mount))?;
        self.frozen = true;
        Ok(())
    }

    pub fn thaw(&mut self) -> Result<(), String> {
        if self.frozen {
            run(Command::new("fsfreeze").arg("-u").arg(&self.mount))?;
            self.frozen = false;
        }
        Ok(())
    }
}

impl Drop for FreezableFs {
    fn drop(&mut self) {
        if let Err(e) = self.thaw() {
            eprintln!("warning: could not thaw {}: {e}", self.mount.display());
        }
        if self.mounted {
            // Late writes may still be completing: retry briefly.
            for _ in 0..50 {
                if run(Command::new("umount").arg(&self.mount)).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}
