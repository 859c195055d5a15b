//! The keys and flags of the live commands, as their parsers define them,
//! for the command catalogue (`crate::catalog`: `xe help`, the command
//! index of docs/cli.md and the shell completions).

use super::{Live, commands, message_cmds, vm_cmds};

/// The keys, map keys (`name:`) and flags of a generic or create command
/// (the table of `commands.rs`).
pub(crate) fn generic(command: Live) -> (Vec<String>, Vec<String>, &'static [&'static str]) {
    commands::keys_maps_flags(command)
}

/// The lifecycle operation of a `vm-OP` command, if it is one.
pub(crate) fn vm_operation(command: Live) -> Option<&'static str> {
    vm_cmds::operation(command)
}

/// The keys and flags of `vm-OP`.
pub(crate) fn vm(op: &str) -> (Vec<&'static str>, &'static [&'static str]) {
    vm_cmds::keys_and_flags(op)
}

/// Whether `name` is one of the alerts area's commands.
pub(crate) fn is_message_command(name: &str) -> bool {
    message_cmds::find(name).is_some()
}

/// The keys of one of the alerts area's commands.
pub(crate) fn message(name: &str) -> Vec<&'static str> {
    message_cmds::keys_of(name)
}
