//! The run directory: one subdirectory per VM, named by its UUID, holding
//! everything needed to find the VM again after an agent restart.
//!
//! | file | written by | content |
//! |---|---|---|
//! | `vm.json` | driver, before the keeper starts | [`VmRecord`] |
//! | `keeper.pid` | keeper | `PID START_TICKS` of the keeper |
//! | `vm.pid` | keeper, after spawning | `PID START_TICKS` of the VM process |
//! | `exit` | keeper, when the VM exits | `code N`, `signal N` or `spawn-failed TEXT` |
//! | `stop` | driver, before it signals | `clean`, `clean-forced`, `hard` or `migrated` |
//! | `shutdown` | QEMU driver, on a QMP `SHUTDOWN` event | `guest REASON` or `host REASON` |
//! | `stdout.log`, `stderr.log` | the VM process | its output |
//!
//! Small files are written to a temporary name and renamed, so a reader
//! sees all of a file or none of it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{DriverError, io};
use crate::{ExitStatus, StopRequest, VmSpec};

/// A process named by pid and start time (/proc/PID/stat field 22).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcId {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcId {
    pub fn of(pid: i32) -> Option<Self> {
        crate::procfs::stat(pid).map(|s| ProcId {
            pid,
            start_ticks: s.start_ticks,
        })
    }

    pub fn is_alive(&self) -> bool {
        crate::procfs::is_same_live(self.pid, self.start_ticks)
    }

    fn encode(&self) -> String {
        format!("{} {}\n", self.pid, self.start_ticks)
    }

    fn decode(text: &str) -> Option<Self> {
        let mut it = text.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start_ticks = it.next()?.parse().ok()?;
        (pid > 0).then_some(ProcId { pid, start_ticks })
    }
}

/// What the driver records about a VM before starting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    pub spec: VmSpec,
    pub driver: String,
    pub host: String,
    pub started_ms: u64,
}

/// How the keeper saw the VM end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitRecord {
    Status(ExitStatus),
    SpawnFailed(String),
}

/// One VM's directory.
#[derive(Debug, Clone)]
pub struct VmDir {
    path: PathBuf,
}

impl VmDir {
    pub fn new(run_dir: &Path, uuid: Uuid) -> Self {
        Self {
            path: run_dir.join(uuid.hyphenated().to_string()),
        }
    }

    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The VM directories under `run_dir` (names that are UUIDs).
    pub fn list(run_dir: &Path) -> Result<Vec<(Uuid, VmDir)>, DriverError> {
        let entries = match fs::read_dir(run_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(run_dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Some(uuid) = name.to_str().and_then(|n| Uuid::try_parse(n).ok()) {
                out.push((uuid, VmDir::at(entry.path())));
            }
        }
        out.sort_by_key(|(u, _)| *u);
        Ok(out)
    }

    /// Creates the directory afresh (a leftover of an earlier run is removed).
    pub fn create(&self) -> Result<(), DriverError> {
        if self.path.exists() {
            fs::remove_dir_all(&self.path).map_err(io(&self.path))?;
        }
        fs::create_dir_all(&self.path).map_err(io(&self.path))
    }

    pub fn remove(&self) -> Result<(), DriverError> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&self.path)(e)),
            _ => Ok(()),
        }
    }

    pub fn write_atomic(&self, name: &str, contents: &[u8]) -> Result<(), DriverError> {
        let tmp = self.file(&format!(".{name}.tmp"));
        let dst = self.file(name);
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(contents).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &dst).map_err(io(&dst))
    }

    fn read(&self, name: &str) -> Option<String> {
        fs::read_to_string(self.file(name)).ok()
    }

    pub fn write_record(&self, r: &VmRecord) -> Result<(), DriverError> {
        let json = serde_json::to_vec_pretty(r).map_err(|e| io(self.file("vm.json"))(e.into()))?;
        self.write_atomic("vm.json", &json)
    }

    pub fn read_record(&self) -> Result<VmRecord, DriverError> {
        let path = self.file("vm.json");
        let text = fs::read_to_string(&path).map_err(io(&path))?;
        serde_json::from_str(&text).map_err(|e| io(&path)(e.into()))
    }

    pub fn write_proc(&self, name: &str, p: ProcId) -> Result<(), DriverError> {
        self.write_atomic(name, p.encode().as_bytes())
    }

    pub fn read_proc(&self, name: &str) -> Option<ProcId> {
        ProcId::decode(&self.read(name)?)
    }

    pub fn write_exit(&self, e: &ExitRecord) -> Result<(), DriverError> {
        let text = match e {
            ExitRecord::Status(ExitStatus::Code(c)) => format!("code {c}\n"),
            ExitRecord::Status(ExitStatus::Signal(s)) => format!("signal {s}\n"),
            ExitRecord::SpawnFailed(why) => format!("spawn-failed {}\n", why.replace('\n', " ")),
        };
        self.write_atomic("exit", text.as_bytes())
    }

    pub fn read_exit(&self) -> Option<ExitRecord> {
        let text = self.read("exit")?;
        let (kind, rest) = text.trim_end().split_once(' ')?;
        match kind {
            "code" => Some(ExitRecord::Status(ExitStatus::Code(rest.parse().ok()?))),
            "signal" => Some(ExitRecord::Status(ExitStatus::Signal(rest.parse().ok()?))),
            "spawn-failed" => Some(ExitRecord::SpawnFailed(rest.to_owned())),
            _ => None,
        }
    }

    pub fn write_stop(&self, r: StopRequest) -> Result<(), DriverError> {
        let text = match r {
            StopRequest::Clean => "clean",
            StopRequest::CleanForced => "clean-forced",
            StopRequest::Hard => "hard",
            StopRequest::Migrated => "migrated",
        };
        self.write_atomic("stop", text.as_bytes())
    }

    pub fn read_stop(&self) -> Option<StopRequest> {
        match self.read("stop")?.trim() {
            "clean" => Some(StopRequest::Clean),
            "clean-forced" => Some(StopRequest::CleanForced),
            "hard" => Some(StopRequest::Hard),
            "migrated" => Some(StopRequest::Migrated),
            _ => None,
        }
    }

    /// The last lines of the VM's stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        let text = self.read("stderr.log").unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }
}
