//! `xe`: the operator CLI, with XenServer-style `key=value` arguments.
//!
//! `run` does the work and writes the result into a buffer; `main` prints it
//! only on success, so a failing command prints nothing on stdout and one
//! line on stderr. The reference is `docs/cli.md`.

pub mod args;
pub mod catalog;
pub mod completion;
pub mod error;
pub mod help;
pub mod lab_cmd;
pub mod live;
mod planner_cmds;
pub mod render;
pub mod table;

use std::io::Write;

use error::{CliError, UsageError};

/// Runs one command line (without the program name).
pub fn run(argv: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    // xe's connection options (`-s`, `-pw`, ...) may come before the
    // command name too.
    let (connect, live_argv) = live::options::extract(argv)?;
    // haenable: pool-ha-enable, pool-ha-disable, pool-ha-status.
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = live::ha_cmds::find(name)
    {
        return live::ha_cmds::run(command, name, &connect, rest, out);
    }
    // emerg: the emergency commands.
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = live::emergency_cmds::find(name)
    {
        return live::emergency_cmds::run(command, name, &connect, rest, out);
    }
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = live::find(name)
    {
        return live::run(command, name, &connect, rest, out);
    }
    // maint: host maintenance commands.
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = live::host_cmds::find(name)
    {
        return live::host_cmds::run(command, name, &connect, rest, out);
    }
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = live::pool_cmds::find(name)
    {
        return live::pool_cmds::run(command, name, &connect, rest, out);
    }
    // The planner commands run on the live pool when no pool-file= is
    // given, so they take the connection options too.
    if let Some((name, rest)) = live_argv.split_first()
        && let Some(command) = table::find(name)
        && planner_cmds::LIVE_CAPABLE.contains(&command.name)
        && !rest.iter().any(|a| a == "--help" || a == "-h")
    {
        let invocation = args::parse(command, rest)?;
        if invocation.value("pool-file").is_none() {
            let pool = live::planning::fetch_pool(&connect)?;
            return planner_cmds::run_on(command.name, &invocation, pool, out);
        }
        return (command.run)(&invocation, out);
    }
    let Some((name, rest)) = argv.split_first() else {
        return Err(UsageError::NoCommand.into());
    };
    if matches!(name.as_str(), "help" | "--help" | "-h") {
        return help::run(rest, out);
    }
    let command = table::find(name).ok_or_else(|| UsageError::UnknownCommand {
        name: name.clone(),
        suggestion: help::suggest_command(name).or_else(|| live::suggest(name)),
    })?;
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        return help::describe(command, out);
    }
    // `xe lab` takes `--name VALUE` options and streams its progress: it
    // parses and prints for itself.
    if command.name == lab_cmd::NAME {
        return lab_cmd::run(rest, out);
    }
    let invocation = args::parse(command, rest)?;
    (command.run)(&invocation, out)
}
