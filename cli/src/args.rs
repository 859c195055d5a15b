//! XenServer-style arguments: `key=value`, `key:subkey=value` for map
//! parameters, and `--flags`, in any order, checked against the command's
//! entry in the table.

use xapi_ha::pool_file::nearest;

use crate::error::UsageError;
use crate::table::{Command, ParamKind};

/// Output flags that cannot be combined.
const EXCLUSIVE_FLAGS: &[(&str, &str)] = &[
    ("--json", "--minimal"),
    ("--json", "--explain"),
    ("--minimal", "--explain"),
];

/// A command line checked against its command.
#[derive(Debug)]
pub struct Invocation {
    pub command: &'static Command,
    /// (parameter, map key, value) in the order given.
    values: Vec<(&'static str, Option<String>, String)>,
    flags: Vec<&'static str>,
}

impl Invocation {
    /// The value of a parameter given once (the first, if repeatable).
    #[must_use]
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(p, _, _)| *p == name)
            .map(|(_, _, v)| v.as_str())
    }

    /// Every value of a repeatable parameter, in the order given.
    #[must_use]
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(p, _, _)| *p == name)
            .map(|(_, _, v)| v.as_str())
            .collect()
    }

    /// The `name:key=value` entries of a map parameter, in the order given.
    #[must_use]
    pub fn map(&self, name: &str) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .filter(|(p, _, _)| *p == name)
            .filter_map(|(_, k, v)| Some((k.as_deref()?, v.as_str())))
            .collect()
    }

    /// Whether a flag was given.
    #[must_use]
    pub fn flag(&self, name: &str) -> bool {
        self.flags.contains(&name)
    }
}

/// Checks the arguments that follow the command name.
pub fn parse(command: &'static Command, args: &[String]) -> Result<Invocation, UsageError> {
    let mut invocation = Invocation {
        command,
        values: Vec::new(),
        flags: Vec::new(),
    };
    for arg in args {
        if arg.starts_with("--") {
            add_flag(&mut invocation, arg)?;
        } else {
            add_value(&mut invocation, arg)?;
        }
    }
    check_complete(&invocation)?;
    Ok(invocation)
}

fn add_flag(invocation: &mut Invocation, arg: &str) -> Result<(), UsageError> {
    let command = invocation.command;
    let flag = command.flag(arg).ok_or_else(|| {
        let names: Vec<&str> = command.flags.iter().map(|f| f.name).collect();
        UsageError::UnknownFlag {
            command: command.name.to_owned(),
            flag: arg.to_owned(),
            suggestion: nearest(arg, &names).map(str::to_owned),
        }
    })?;
    if invocation.flags.contains(&flag.name) {
        return Err(UsageError::DuplicateFlag { flag: flag.name });
    }
    if let Some(&(first, second)) = EXCLUSIVE_FLAGS.iter().find(|(a, b)| {
        (*a == flag.name && invocation.flags.contains(b))
            || (*b == flag.name && invocation.flags.contains(a))
    }) {
        return Err(UsageError::ConflictingFlags { first, second });
    }
    invocation.flags.push(flag.name);
    Ok(())
}

fn add_value(invocation: &mut Invocation, arg: &str) -> Result<(), UsageError> {
    let command = invocation.command;
    let not_key_value = || UsageError::NotKeyValue {
        arg: arg.to_owned(),
    };
    let (key, value) = arg.split_once('=').ok_or_else(not_key_value)?;
    let (name, map_key) = match key.split_once(':') {
        Some((name, map_key)) => (name, Some(map_key)),
        None => (key, None),
    };
    if name.is_empty() || map_key.is_some_and(str::is_empty) {
        return Err(not_key_value());
    }
    let param = command.param(name).ok_or_else(|| {
        let names: Vec<&str> = command.params.iter().map(|p| p.name).collect();
        UsageError::UnknownKey {
            command: command.name.to_owned(),
            key: key.to_owned(),
            suggestion: nearest(name, &names).map(str::to_owned),
        }
    })?;
    match (param.kind, map_key) {
        (ParamKind::Value, Some(_)) => {
            return Err(UsageError::InvalidValue {
                key: key.to_owned(),
                expected: "written as key=value (this parameter has no sub-keys)",
                got: arg.to_owned(),
            });
        }
        (ParamKind::Map, None) => {
            return Err(UsageError::InvalidValue {
                key: key.to_owned(),
                expected: "written as key:subkey=value",
                got: arg.to_owned(),
            });
        }
        _ => {}
    }
    let repeated = invocation
        .values
        .iter()
        .any(|(p, k, _)| *p == param.name && k.as_deref() == map_key);
    if repeated && !param.repeatable {
        return Err(UsageError::DuplicateKey {
            key: key.to_owned(),
        });
    }
    invocation
        .values
        .push((param.name, map_key.map(str::to_owned), value.to_owned()));
    Ok(())
}

fn check_complete(invocation: &Invocation) -> Result<(), UsageError> {
    let command = invocation.command;
    // Pairs first: "vm-uuid=A" alone is an unpaired argument, which says
    // more than "restart-priority is missing".
    for group in command.pairs {
        let counts: Vec<usize> = group
            .iter()
            .map(|name| invocation.values(name).len())
            .collect();
        if counts.iter().any(|c| *c != counts[0]) {
            let described: Vec<String> = group
                .iter()
                .zip(&counts)
                .map(|(name, count)| format!("{count} {name}"))
                .collect();
            let example: Vec<String> = group.iter().map(|name| format!("{name}=...")).collect();
            return Err(UsageError::Unpaired {
                counts: described.join(" but "),
                example: example.join(" "),
            });
        }
    }
    if let Some(missing) = command
        .params
        .iter()
        .find(|p| p.required && !invocation.values.iter().any(|(n, _, _)| *n == p.name))
    {
        return Err(UsageError::MissingKey {
            command: command.name.to_owned(),
            key: missing.name,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::find;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn pairs_and_flags() {
        let command = find("pool-ha-compute-hypothetical-max-host-failures-to-tolerate").unwrap();
        let inv = parse(
            command,
            &args(&[
                "--json",
                "pool-file=a.toml",
                "vm-uuid=a",
                "restart-priority=restart",
                "vm-uuid=b",
                "restart-priority=",
            ]),
        )
        .unwrap();
        assert!(inv.flag("--json"));
        assert_eq!(inv.value("pool-file"), Some("a.toml"));
        assert_eq!(inv.values("vm-uuid"), ["a", "b"]);
        assert_eq!(inv.values("restart-priority"), ["restart", ""]);
        let err = parse(
            command,
            &args(&[
                "pool-file=a",
                "vm-uuid=a",
                "vm-uuid=b",
                "restart-priority=restart",
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unpaired arguments: 2 vm-uuid but 1 restart-priority; give them in pairs (vm-uuid=... restart-priority=...)"
        );
    }

    #[test]
    fn value_with_equals_sign_and_map_keys() {
        let command = find("pool-ha-compute-max-host-failures-to-tolerate").unwrap();
        let inv = parse(command, &args(&["pool-file=a=b.toml"])).unwrap();
        assert_eq!(inv.value("pool-file"), Some("a=b.toml"));
        let err = parse(command, &args(&["pool-file:x=a"])).unwrap_err();
        assert!(matches!(err, UsageError::InvalidValue { .. }), "{err}");
        assert!(inv.map("pool-file").is_empty());
    }

    fn nothing(_: &Invocation, _: &mut dyn std::io::Write) -> Result<(), crate::error::CliError> {
        Ok(())
    }

    /// A command shaped like the coming `pool-ha-enable`, to check map
    /// parameters: `ha-config:timeout=30`.
    static WITH_MAP: Command = Command {
        name: "test-map",
        summary: "",
        description: "",
        params: &[crate::table::Param {
            name: "ha-config",
            required: false,
            repeatable: false,
            kind: ParamKind::Map,
            help: "",
        }],
        flags: &[],
        pairs: &[],
        run: nothing,
    };

    #[test]
    fn map_parameters() {
        let inv = parse(
            &WITH_MAP,
            &args(&["ha-config:timeout=30", "ha-config:mode=x=y"]),
        )
        .unwrap();
        assert_eq!(inv.map("ha-config"), [("timeout", "30"), ("mode", "x=y")]);
        let err = parse(
            &WITH_MAP,
            &args(&["ha-config:timeout=30", "ha-config:timeout=60"]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            UsageError::DuplicateKey {
                key: "ha-config:timeout".into()
            }
        );
        let err = parse(&WITH_MAP, &args(&["ha-config=30"])).unwrap_err();
        assert!(matches!(err, UsageError::InvalidValue { .. }), "{err}");
        let err = parse(&WITH_MAP, &args(&["ha-config:=30"])).unwrap_err();
        assert!(matches!(err, UsageError::NotKeyValue { .. }), "{err}");
    }
}
