//! `xha-vm-keeper DIR -- PROGRAM [ARGS...]`: the parent of one VM process
//! (see `xapi_vm::keeper`). Started by the VM drivers, not by hand.

use std::ffi::OsString;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: xha-vm-keeper DIR -- PROGRAM [ARGS...]"))?,
    );
    anyhow::ensure!(
        args.next().as_deref() == Some(std::ffi::OsStr::new("--")),
        "usage: xha-vm-keeper DIR -- PROGRAM [ARGS...]"
    );
    let program = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("xha-vm-keeper: no PROGRAM"))?;
    let rest: Vec<OsString> = args.collect();
    xapi_vm::keeper::run(&dir, &program, &rest)?;
    Ok(())
}
