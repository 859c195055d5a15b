//! The command table: every command's name, parameters, flags and help.
//! Adding a command is one entry here plus its `run` function.

use std::io::Write;

use crate::args::Invocation;
use crate::error::CliError;
use crate::{lab_cmd, planner_cmds};

/// How a parameter is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `name=value`.
    Value,
    /// `name:key=value`, any number of keys (like `ha-config:timeout=30`).
    Map,
}

/// One `key=value` parameter of a command.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub required: bool,
    /// May be given more than once (then it is part of a `pairs` group, or a
    /// list in the order given).
    pub repeatable: bool,
    pub kind: ParamKind,
    /// What the value is, for `xe help COMMAND`.
    pub help: &'static str,
}

/// One `--flag`.
#[derive(Debug)]
pub struct Flag {
    pub name: &'static str,
    pub help: &'static str,
}

/// What a command writes to stdout (buffered: nothing is printed when the
/// command fails).
pub type RunFn = fn(&Invocation, &mut dyn Write) -> Result<(), CliError>;

/// One command.
pub struct Command {
    pub name: &'static str,
    /// One line, for `xe help`.
    pub summary: &'static str,
    /// More detail, for `xe help COMMAND`.
    pub description: &'static str,
    pub params: &'static [Param],
    pub flags: &'static [Flag],
    /// Parameters that repeat together and are matched by position: the
    /// first of each with the first of the others, and so on. Each group
    /// must appear the same number of times.
    pub pairs: &'static [&'static [&'static str]],
    pub run: RunFn,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command").field("name", &self.name).finish()
    }
}

impl Command {
    #[must_use]
    pub fn param(&self, name: &str) -> Option<&'static Param> {
        self.params.iter().find(|p| p.name == name)
    }

    #[must_use]
    pub fn flag(&self, name: &str) -> Option<&'static Flag> {
        self.flags.iter().find(|f| f.name == name)
    }
}

pub const JSON: Flag = Flag {
    name: "--json",
    help: "print a structured result as JSON",
};
pub const MINIMAL: Flag = Flag {
    name: "--minimal",
    help: "print only the value(s), comma-separated",
};
pub const EXPLAIN: Flag = Flag {
    name: "--explain",
    help: "after the number, print why it is what it is (limiting failure set, VMs left without room)",
};

pub const POOL_FILE: Param = Param {
    name: "pool-file",
    required: false,
    repeatable: false,
    kind: ParamKind::Value,
    help: "pool description file (.toml or .json), see docs/cli.md; without it, the live pool",
};

/// Every command, in the order `xe help` lists them.
pub static COMMANDS: &[Command] = &[
    Command {
        name: "pool-ha-compute-max-host-failures-to-tolerate",
        summary: "Compute how many hosts can fail at once with every protected VM still restartable",
        description: "Prints the largest number n such that, whichever n live hosts fail at once, \
                      every protected (ha-restart-priority=restart) agile VM can be restarted on the \
                      remaining live enabled hosts without moving running VMs; -1 when even no \
                      failure has a plan.",
        params: &[POOL_FILE],
        flags: &[JSON, MINIMAL, EXPLAIN],
        pairs: &[],
        run: planner_cmds::max_failures,
    },
    Command {
        name: "pool-ha-compute-hypothetical-max-host-failures-to-tolerate",
        summary: "The same, as if some VMs had a different ha-restart-priority",
        description: "Like pool-ha-compute-max-host-failures-to-tolerate, with each listed VM's \
                      ha-restart-priority replaced. vm-uuid and restart-priority come in pairs, \
                      matched in the order given.",
        params: &[
            POOL_FILE,
            Param {
                name: "vm-uuid",
                required: true,
                repeatable: true,
                kind: ParamKind::Value,
                help: "a VM of the pool file, by uuid or name",
            },
            Param {
                name: "restart-priority",
                required: true,
                repeatable: true,
                kind: ParamKind::Value,
                help: "restart, best-effort or empty (restart-priority=)",
            },
        ],
        flags: &[JSON, MINIMAL, EXPLAIN],
        pairs: &[&["vm-uuid", "restart-priority"]],
        run: planner_cmds::hypothetical_max_failures,
    },
    Command {
        name: "pool-ha-compute-vm-failover-plan",
        summary: "Show where each VM would restart if the given hosts failed at once",
        description: "Prints one line per running VM that loses its host (or has no live host): \
                      its destination host, or why it has none (no room, not agile, \
                      unprotected). Protected VMs come first by ascending order, then \
                      best-effort VMs, then the rest.",
        params: &[
            POOL_FILE,
            Param {
                name: "host-uuids",
                required: true,
                repeatable: false,
                kind: ParamKind::Value,
                help: "comma-separated live hosts that fail, by uuid or name (may be empty)",
            },
        ],
        flags: &[JSON, MINIMAL],
        pairs: &[],
        run: planner_cmds::failover_plan,
    },
    Command {
        name: "lab",
        summary: "Run a local pool of real agents with VMs, cut a host's power and time the failover",
        description: "Starts N xapi-ha agents on loopback, joins them into one pool with a shared \
                      file SR, enables HA (each agent launches its xhad and xha-supervisor), starts \
                      M VMs running the stamp workload (protected with orders 0 and 1, \
                      best-effort, unprotected; process VMs, or QEMU test guests with --driver \
                      qemu); cuts the power of the member holding the most \
                      protected VMs (SIGKILL to all its processes); prints when the survivors \
                      detect it, when the master declares it dead, when the liveset shrinks and \
                      when each VM runs again elsewhere; checks the stamps for a VM that ran \
                      twice; then stops everything and removes its files (--keep: leaves the pool \
                      running; xe lab stop DIR stops it). xe lab bench --runs K runs the failover \
                      K times and prints the median and maximum of each time beside XenServer's \
                      figure. Options are written --hosts N, --vms M, --timeout T, --driver D and \
                      --runs K. See docs/lab.md.",
        params: &[],
        flags: &[
            Flag {
                name: "--hosts",
                help: "N: number of hosts, 2 to 64 (default 3)",
            },
            Flag {
                name: "--vms",
                help: "M: number of VMs, 1 to 32 (default 4; 2 with --driver qemu)",
            },
            Flag {
                name: "--timeout",
                help: "T: base timeout of the daemons in seconds, 10 to 3600 (default 10)",
            },
            Flag {
                name: "--driver",
                help: "the VMs: process (default) or qemu (QEMU test guests; needs \
                       qemu-system-x86_64 and tests/guest/build.sh's guest)",
            },
            Flag {
                name: "--runs",
                help: "K: with xe lab bench, the number of failovers to measure, 1 to 1000 (default 5)",
            },
            Flag {
                name: "--json",
                help: "print one JSON object with the measurements; progress goes to stderr",
            },
            Flag {
                name: "--keep",
                help: "leave the pool running and print how to reach it (stop it with xe lab stop DIR)",
            },
        ],
        pairs: &[],
        run: lab_cmd::run_from_table,
    },
    // pkg: shell completions generated from the command catalogue.
    Command {
        name: "completion",
        summary: "Print the bash or zsh completion script for xe",
        description: "Prints the completion script for the shell, generated from the same \
                      command list as xe help: command names, parameter names, flags, fixed \
                      values and object UUIDs from the local agent (xe CLASS-list --minimal). \
                      The xha package installs both; see docs/packaging.md.",
        params: &[Param {
            name: "shell",
            required: true,
            repeatable: false,
            kind: ParamKind::Value,
            help: "bash or zsh",
        }],
        flags: &[],
        pairs: &[],
        run: crate::completion::run,
    },
];

/// The command with this exact name.
#[must_use]
pub fn find(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|c| c.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is consistent: unique names, pair groups name repeatable
    /// parameters, flags start with `--`.
    #[test]
    fn table_is_consistent() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert!(COMMANDS[..i].iter().all(|o| o.name != c.name), "{}", c.name);
            for (j, p) in c.params.iter().enumerate() {
                assert!(c.params[..j].iter().all(|o| o.name != p.name));
                assert!(!p.name.contains(['=', ':']));
            }
            for f in c.flags {
                assert!(f.name.starts_with("--"));
            }
            for group in c.pairs {
                for name in *group {
                    assert!(c.param(name).is_some_and(|p| p.repeatable), "{name}");
                }
            }
        }
    }
}
