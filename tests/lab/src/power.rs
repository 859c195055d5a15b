//! A host of an agent pool dies as in a power cut: every process of it
//! SIGKILLed at once: its agent, `xhad`, `xha-supervisor`, VM keepers
//! (their command lines name the host's directory) and the process VMs its
//! driver started (their environment names the host and the VM). The one
//! copy of this logic: `xe lab` and the agent pool tests
//! (`xapi-ha/tests/pool_support`) both use it.

use std::path::Path;
use std::time::{Duration, Instant};

use super::LabError;

/// Every process id in `/proc`.
fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether process `pid` exists (and is not a zombie).
#[must_use]
pub fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// Every live process whose command line names `dir` (e.g. an agent's
/// directory: the agent, its daemons, supervisors and VM keepers), except
/// this process and its parent (`xe lab stop DIR` names it too).
#[must_use]
pub fn processes_naming(dir: &Path) -> Vec<i32> {
    let marker = dir.to_string_lossy().into_owned();
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    let parent = nix::unistd::getppid().as_raw();
    all_pids()
        .into_iter()
        .filter(|&pid| pid != me && pid != parent)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&marker))
                && process_alive(*pid)
        })
        .collect()
}

/// The environment of process `pid` as `KEY=VALUE` strings.
fn environ(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|b| {
            b.split(|c| *c == 0)
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every live process of the host whose agent runs in `dir`, named `name`
/// in its configuration: [`processes_naming`] `dir`, and the process VMs
/// its driver started (`XHA_HOST` is `name` and `XHA_VM_UUID` one of
/// `vms`).
#[must_use]
pub fn host_processes(dir: &Path, name: &str, vms: &[String]) -> Vec<i32> {
    let mut pids = processes_naming(dir);
    let host_env = format!("XHA_HOST={name}");
    for pid in all_pids() {
        let env = environ(pid);
        let ours = env.contains(&host_env)
            && env.iter().any(|kv| {
                kv.strip_prefix("XHA_VM_UUID=")
                    .is_some_and(|u| vms.iter().any(|v| v == u))
            });
        if ours && process_alive(pid) && !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The wall-clock time in ms since the epoch (what stamp records use).
#[must_use]
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The host whose agent runs in `dir` dies as in a power cut: every
/// process of it ([`host_processes`]) SIGKILLed, scanning again until none
/// is left. Returns the fault's instant and its wall-clock time in ms.
pub fn kill_host(dir: &Path, name: &str, vms: &[String]) -> Result<(Instant, u64), LabError> {
    let fault = (Instant::now(), wall_ms());
    for _ in 0..50 {
        let pids = host_processes(dir, name, vms);
        if pids.is_empty() {
            return Ok(fault);
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(LabError::Spec(format!(
        "processes of {name} survive SIGKILL: {:?}",
        host_processes(dir, name, vms)
    )))
}

/// SIGKILL every process whose command line names `dir` until none is
/// left (a few seconds at most); the pids still there after that.
pub fn kill_all_naming(dir: &Path) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let pids = processes_naming(dir);
        if pids.is_empty() || Instant::now() > deadline {
            return pids;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
