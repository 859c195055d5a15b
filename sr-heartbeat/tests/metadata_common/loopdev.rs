//! Loop devices for the device suites: attached with a chosen logical sector
//! size, detached on drop (even after a panic).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether we run as root (losetup needs it).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A sparse image file of `size` bytes.
pub fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let p = dir.join(name);
    let f = std::fs::File::create(&p).expect("create image");
    f.set_len(size).expect("size image");
    p
}

/// `losetup --find --show --sector-size N IMAGE`; `losetup -d` on drop.
pub struct LoopDevice {
    pub path: PathBuf,
}

impl LoopDevice {
    /// Retries a few times: parallel tests attaching at once may race for
    /// the same free loop device.
    pub fn attach(image: &Path, sector_size: usize) -> LoopDevice {
        let mut last = String::new();
        for attempt in 0..5 {
            let out = Command::new("losetup")
                .args([
                    "--find",
                    "--show",
                    "--sector-size",
                    &sector_size.to_string(),
                ])
                .arg(image)
                .output()
                .expect("run losetup");
            if out.status.success() {
                return LoopDevice {
                    path: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
                };
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            std::thread::sleep(std::time::Duration::from_millis(100 * (attempt + 1)));
        }
        panic!(
            "losetup --sector-size {sector_size} {}: {last}",
            image.display()
        );
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        match Command::new("losetup").arg("-d").arg(&self.path).output() {
            Ok(o) if o.status.success() => {}
            other => eprintln!(
                "warning: could not detach {}: {other:?}",
                self.path.display()
            ),
        }
    }
}
