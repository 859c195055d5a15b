//! docs/cli.md documents every command, parameter, flag and exit code that
//! the command table and the error type define.

use xe::error::{
    EXIT_API, EXIT_CONNECT, EXIT_INTERRUPTED, EXIT_LAB, EXIT_OK, EXIT_OUTPUT, EXIT_POOL_FILE,
    EXIT_REQUEST, EXIT_TIMED_OUT, EXIT_UNTRUSTED, EXIT_USAGE,
};
use xe::table::COMMANDS;

fn reference() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cli.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn every_command_parameter_and_flag_is_documented() {
    let text = reference();
    for command in COMMANDS {
        let heading = format!("### `xe {}", command.name);
        let section_start = text
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/cli.md has no section {heading}"));
        let section = &text[section_start..];
        let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
        for param in command.params {
            assert!(
                section.contains(&format!("{}=", param.name)),
                "{}: parameter {} undocumented",
                command.name,
                param.name
            );
        }
        for flag in command.flags {
            assert!(
                section.contains(flag.name),
                "{}: flag {} undocumented",
                command.name,
                flag.name
            );
        }
    }
}

#[test]
fn every_exit_code_is_documented() {
    let text = reference();
    for code in [
        EXIT_OK,
        EXIT_USAGE,
        EXIT_POOL_FILE,
        EXIT_REQUEST,
        EXIT_OUTPUT,
        EXIT_LAB,
        EXIT_API,
        EXIT_CONNECT,
        EXIT_UNTRUSTED,
        EXIT_TIMED_OUT,
        EXIT_INTERRUPTED,
    ] {
        assert!(
            text.contains(&format!("\n| {code} |")),
            "exit code {code} undocumented"
        );
    }
}

#[test]
fn every_live_command_is_documented() {
    let text = reference();
    let start = text
        .find("## The live pool")
        .expect("docs/cli.md has a section \"The live pool\"");
    let live = &text[start..];
    for name in xe::live::OTHERS {
        assert!(
            live.contains(&format!("| `{name}")),
            "live command {name} has no row in docs/cli.md \"The live pool\""
        );
    }
    for op in xe::live::OPERATIONS {
        assert!(
            live.contains(&format!("`CLASS-{op}")),
            "live operation CLASS-{op} undocumented"
        );
    }
}
