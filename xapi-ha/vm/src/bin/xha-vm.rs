//! `xha-vm`: the VM drivers and the stamp checker from a shell (the lab,
//! tests that need a driver owner in another process, manual checks).
//!
//!   xha-vm --run-dir D --host H [--driver qemu|process] start SPEC.json
//!   xha-vm ... stop UUID [--hard] [--timeout-s 30]
//!   xha-vm ... adopt            (lists the VMs found running)
//!   xha-vm ... state UUID
//!   xha-vm check DISK[@SLOT]... [--protected UUID]... [--max-down-ms N]

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use uuid::Uuid;
use xapi_vm::process::ProcessDriver;
use xapi_vm::qemu::{QemuConfig, QemuDriver};
use xapi_vm::stamp::{CheckOptions, StampLog};
use xapi_vm::{DriverContext, StopMode, VmDriver, VmSpec};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "/run/xha-vm")]
    run_dir: PathBuf,
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, default_value = "process")]
    driver: String,
    /// The keeper binary (default: next to this one).
    #[arg(long)]
    keeper: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start the VM described by a JSON VmSpec file.
    Start {
        spec: PathBuf,
    },
    Stop {
        uuid: Uuid,
        #[arg(long)]
        hard: bool,
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
    Adopt,
    State {
        uuid: Uuid,
    },
    /// Check stamp disks (DISK or DISK@SLOT) for double runs and downtime.
    Check {
        disks: Vec<String>,
        #[arg(long)]
        protected: Vec<Uuid>,
        #[arg(long, default_value_t = 0)]
        max_down_ms: u64,
    },
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Cmd::Check {
        disks,
        protected,
        max_down_ms,
    } = &a.cmd
    {
        return check(disks, protected, *max_down_ms);
    }
    let keeper = match a.keeper {
        Some(k) => k,
        None => DriverContext::keeper_next_to_current_exe()
            .context("xha-vm-keeper not found next to xha-vm; give --keeper")?,
    };
    let ctx = DriverContext {
        host: a.host,
        run_dir: a.run_dir,
        keeper,
    };
    let mut driver: Box<dyn VmDriver> = match a.driver.as_str() {
        "process" => Box::new(ProcessDriver::new(ctx)),
        "qemu" => Box::new(QemuDriver::new(ctx, QemuConfig::default())),
        other => anyhow::bail!("--driver {other:?}: want qemu or process"),
    };
    // Every command starts the way an agent does: adopt first.
    let adopted = driver.adopt()?;
    match a.cmd {
        Cmd::Start { spec } => {
            let text =
                std::fs::read_to_string(&spec).with_context(|| spec.display().to_string())?;
            let spec: VmSpec =
                serde_json::from_str(&text).with_context(|| spec.display().to_string())?;
            let vm = driver.start(&spec)?;
            println!("started {} pid {}", vm.uuid, vm.pid);
        }
        Cmd::Stop {
            uuid,
            hard,
            timeout_s,
        } => {
            let mode = if hard {
                StopMode::Hard
            } else {
                StopMode::Clean {
                    timeout: Duration::from_secs(timeout_s),
                }
            };
            println!("stopped {uuid}: {:?}", driver.stop(uuid, mode)?);
        }
        Cmd::Adopt => {
            for vm in adopted {
                println!("running {} pid {} name {}", vm.uuid, vm.pid, vm.name);
            }
        }
        Cmd::State { uuid } => println!("{uuid} {:?}", driver.state(uuid)?),
        Cmd::Check { .. } => unreachable!("handled above"),
    }
    for ev in driver.poll_events() {
        println!("event {ev:?}");
    }
    Ok(())
}

fn check(disks: &[String], protected: &[Uuid], max_down_ms: u64) -> anyhow::Result<()> {
    let mut log = StampLog::new();
    for d in disks {
        let (path, slot) = match d.rsplit_once('@') {
            Some((p, s)) => (p, s.parse().with_context(|| format!("{d}: slot"))?),
            None => (d.as_str(), 0),
        };
        log.read_disk(std::path::Path::new(path), slot)?;
    }
    for w in log.windows() {
        println!(
            "boot vm {} boot {} host {} {}..{} ms ({} records)",
            w.vm, w.boot, w.host, w.first_ms, w.last_ms, w.records
        );
    }
    let opts = CheckOptions {
        protected: protected.iter().copied().collect(),
        max_down_ms,
        span_ms: None,
    };
    let v = log.check(&opts);
    for x in &v {
        println!("VIOLATION {x}");
    }
    anyhow::ensure!(v.is_empty(), "{} violation(s)", v.len());
    println!("ok: {} records, no VM ran twice", log.len());
    Ok(())
}
