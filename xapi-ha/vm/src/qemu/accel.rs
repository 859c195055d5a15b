//! Choosing the accelerator: KVM only when a test boot under KVM prints its
//! first console line within 10 s, else TCG. `/dev/kvm` existing proves
//! nothing (on nested hosts it may hang every stock kernel), and QEMU's own
//! `-accel kvm:tcg` does not fall back when the guest hangs. The probe's
//! answer is cached in a file, keyed by the QEMU binary and the kernel.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a KVM test boot may take to print its first console line.
pub const PROBE_DEADLINE: Duration = Duration::from_secs(10);

/// The accelerator the driver is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccelChoice {
    /// Probe KVM once (cached), TCG when it fails.
    Auto,
    Kvm,
    Tcg,
}

/// The accelerator a VM runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

fn identity(p: &Path) -> String {
    let meta = std::fs::metadata(p).ok();
    let mtime = meta
        .as_ref()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    format!(
        "{} {} {}",
        p.display(),
        meta.map_or(0, |m| m.len()),
        mtime.map_or(0, |d| d.as_secs())
    )
}

/// The accelerator for `choice`, probing (and caching in `cache`) when Auto.
pub fn choose(
    choice: AccelChoice,
    qemu: &Path,
    kernel: &Path,
    initrd: Option<&Path>,
    cache: &Path,
) -> Accel {
    match choice {
        AccelChoice::Kvm => return Accel::Kvm,
        AccelChoice::Tcg => return Accel::Tcg,
        AccelChoice::Auto => {}
    }
    if !Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let key = format!("qemu={} kernel={}", identity(qemu), identity(kernel));
    if let Ok(text) = std::fs::read_to_string(cache)
        && let Some((k, v)) = text.trim_end().rsplit_once('\t')
        && k == key
    {
        return if v == "kvm" { Accel::Kvm } else { Accel::Tcg };
    }
    let accel = if probe_kvm(qemu, kernel, initrd) {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    tracing::info!(accel = accel.as_str(), "KVM probe boot done");
    if let Some(dir) = cache.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(cache, format!("{key}\t{}\n", accel.as_str()));
    accel
}

/// Boots `kernel` under KVM; true when a console line arrives in time.
pub fn probe_kvm(qemu: &Path, kernel: &Path, initrd: Option<&Path>) -> bool {
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-M",
        super::args::MACHINE,
        "-accel",
        "kvm",
        "-m",
        "128",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
    ])
    .args(["-serial", "stdio", "-kernel"])
    .arg(kernel)
    .args(["-append", "console=ttyS0 xha.stamp=0"]);
    if let Some(i) = initrd {
        cmd.arg("-initrd").arg(i);
    }
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut line = String::new();
            let got = BufReader::new(out)
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false);
            let _ = tx.send(got);
        });
    }
    let ok = matches!(rx.recv_timeout(PROBE_DEADLINE), Ok(true));
    let _ = child.kill();
    let _ = child.wait();
    ok
}

/// Default cache file for the probe's answer.
pub fn default_cache() -> PathBuf {
    PathBuf::from("/var/cache/xha-vm/accel-probe")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_need_no_probe() {
        let p = Path::new("/nonexistent");
        assert_eq!(choose(AccelChoice::Tcg, p, p, None, p), Accel::Tcg);
        assert_eq!(choose(AccelChoice::Kvm, p, p, None, p), Accel::Kvm);
    }

    #[test]
    fn a_cached_answer_for_the_same_binary_and_kernel_is_reused() {
        if !Path::new("/dev/kvm").exists() {
            eprintln!("SKIP: no /dev/kvm, so Auto is TCG without probe or cache");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (qemu, kernel, cache) = (
            tmp.path().join("qemu"),
            tmp.path().join("vmlinux"),
            tmp.path().join("cache"),
        );
        std::fs::write(&qemu, b"q").unwrap();
        std::fs::write(&kernel, b"k").unwrap();
        let key = format!("qemu={} kernel={}", identity(&qemu), identity(&kernel));
        // A cached "kvm" is believed without probing (the fake qemu could not run).
        std::fs::write(&cache, format!("{key}\tkvm\n")).unwrap();
        assert_eq!(
            choose(AccelChoice::Auto, &qemu, &kernel, None, &cache),
            Accel::Kvm
        );
        // Another kernel: the cache does not apply, the probe runs and fails (no such
        // QEMU), TCG is chosen and cached.
        std::fs::write(&kernel, b"another kernel").unwrap();
        assert_eq!(
            choose(AccelChoice::Auto, &qemu, &kernel, None, &cache),
            Accel::Tcg
        );
        assert!(
            std::fs::read_to_string(&cache)
                .unwrap()
                .ends_with("\ttcg\n")
        );
    }
}
