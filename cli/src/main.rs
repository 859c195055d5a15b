//! The `xe` binary: see `docs/cli.md`.

use std::io::Write;
use std::process::ExitCode;

use xe::error::{CliError, EXIT_OK, UsageError};

fn main() -> ExitCode {
    let mut argv = Vec::new();
    for (index, arg) in std::env::args_os().skip(1).enumerate() {
        match arg.into_string() {
            Ok(arg) => argv.push(arg),
            Err(_) => return fail(&UsageError::NotUtf8 { index: index + 1 }.into()),
        }
    }
    let mut output = Vec::new();
    if let Err(error) = xe::run(&argv, &mut output) {
        return fail(&error);
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_all(&output).and_then(|()| stdout.flush()) {
        // A reader that went away (`xe ... | head -1`) is not worth a
        // message, as with tools killed by SIGPIPE; the exit code still says
        // the output is incomplete.
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::from(CliError::Output(error).exit_code());
        }
        return fail(&CliError::Output(error));
    }
    ExitCode::from(EXIT_OK)
}

fn fail(error: &CliError) -> ExitCode {
    // Errors quote names from pool files and daemons: no raw control
    // characters on the terminal.
    if let CliError::Api { .. } = error {
        // As xe prints an API error: its sentence, then one line per
        // parameter, each escaped.
        for line in error.to_string().lines() {
            eprintln!("{}", xe::render::escape_control(line));
        }
    } else {
        eprintln!("xe: {}", xe::render::escape_control(&error.to_string()));
    }
    ExitCode::from(error.exit_code())
}
