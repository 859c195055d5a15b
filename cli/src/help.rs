//! `xe help` and `xe help COMMAND`.

use std::io::Write;

use xapi_ha::pool_file::nearest;

use crate::error::{CliError, UsageError};
use crate::table::{COMMANDS, Command, find};

/// Runs `xe help [COMMAND]`.
pub fn run(args: &[String], out: &mut dyn Write) -> Result<(), CliError> {
    match args {
        [] => list(out),
        [name] => {
            let command = find(name).ok_or_else(|| UsageError::UnknownHelpTopic {
                name: name.clone(),
                suggestion: suggest_command(name),
            })?;
            describe(command, out)
        }
        [_, extra, ..] => Err(UsageError::ExtraArgument { arg: extra.clone() }.into()),
    }
}

/// The nearest command name to a mistyped one.
#[must_use]
pub fn suggest_command(name: &str) -> Option<String> {
    let mut names: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    names.push("help");
    nearest(name, &names).map(str::to_owned)
}

fn list(out: &mut dyn Write) -> Result<(), CliError> {
    writeln!(
        out,
        "Usage: xe COMMAND [key=value ...] [--json] [--minimal]"
    )?;
    writeln!(out)?;
    // One list for help, docs/cli.md's command index and the completions
    // (crate::catalog).
    let entries = crate::catalog::entries();
    let label = |name: &str| {
        if name == "help" {
            "help [COMMAND]".to_owned()
        } else {
            name.to_owned()
        }
    };
    let width = entries
        .iter()
        .map(|e| label(&e.name).len())
        .max()
        .unwrap_or(0);
    writeln!(out, "Commands:")?;
    for entry in entries
        .iter()
        .filter(|e| !e.live || e.name.starts_with("pool-ha-compute"))
    {
        writeln!(out, "  {:width$}  {}", label(&entry.name), entry.summary)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Live pool (docs/cli.md, \"The live pool\"; CLASS: {}):",
        crate::live::CLASSES
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    for entry in entries
        .iter()
        .filter(|e| e.live && !e.name.starts_with("pool-ha-compute"))
    {
        writeln!(out, "  {:width$}  {}", entry.name, entry.summary)?;
    }
    writeln!(
        out,
        "  connection: [-s HOST [-p PORT] [--trust-new | --fingerprint=FP]] [--socket PATH] [-u USER] [-pw PASSWORD | -pwf FILE] (no password as root on the socket)"
    )?;
    writeln!(out)?;
    writeln!(out, "Run \"xe help COMMAND\" for a command's parameters.")?;
    writeln!(
        out,
        "Exit codes: 0 success, 1 usage error, 2 pool file error, 3 arguments that do not fit the pool, 4 output error, 5 a lab step failed, 6 the agent refused the call, 7 agent unreachable or no login, 8 untrusted TLS certificate, 130 lab interrupted."
    )?;
    Ok(())
}

/// `xe help` as printed, for docs/cli.md's generated copy.
#[must_use]
pub fn list_text() -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = list(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// XenServer's `xe help COMMAND` layout, plus one line per parameter.
pub fn describe(command: &Command, out: &mut dyn Write) -> Result<(), CliError> {
    let names = |required: bool| -> String {
        command
            .params
            .iter()
            .filter(|p| p.required == required)
            .map(|p| p.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let flags: Vec<&str> = command.flags.iter().map(|f| f.name).collect();
    writeln!(out, "command name            : {}", command.name)?;
    writeln!(out, "        reqd params     : {}", names(true))?;
    writeln!(out, "        optional params : {}", names(false))?;
    writeln!(out, "        flags           : {}", flags.join(", "))?;
    writeln!(out, "        description     : {}", command.description)?;
    writeln!(out)?;
    let width = command
        .params
        .iter()
        .map(|p| p.name.len())
        .chain(command.flags.iter().map(|f| f.name.len()))
        .max()
        .unwrap_or(0);
    for p in command.params {
        let repeat = if p.repeatable { " (repeatable)" } else { "" };
        writeln!(out, "  {:width$}  {}{repeat}", p.name, p.help)?;
    }
    for f in command.flags {
        writeln!(out, "  {:width$}  {}", f.name, f.help)?;
    }
    Ok(())
}
