//! A live command line: `key=value`, `key:sub=value` and `--flag`
//! arguments, split once and looked up by the commands.

use xapi_ha::db::Class;
use xapi_ha::db::schema::FieldDef;

use super::fields::by_cli_name;
use crate::error::UsageError;

/// A live command line: `key=value`, `key:sub=value`, `--flag`.
#[derive(Debug, Default)]
pub struct Args {
    pub(super) values: Vec<(String, Option<String>, String)>,
    pub(super) flags: Vec<String>,
}

impl Args {
    /// Splits the arguments (connection options already removed).
    pub fn parse(_name: &str, args: &[String]) -> Result<Args, UsageError> {
        let mut parsed = Args::default();
        for arg in args {
            if arg.starts_with("--") {
                if parsed.flags.contains(arg) {
                    return Err(UsageError::DuplicateKey { key: arg.clone() });
                }
                parsed.flags.push(arg.clone());
                continue;
            }
            let not_kv = || UsageError::NotKeyValue { arg: arg.clone() };
            let (key, value) = arg.split_once('=').ok_or_else(not_kv)?;
            let (name, sub) = match key.split_once(':') {
                Some((n, s)) => (n, Some(s.to_owned())),
                None => (key, None),
            };
            if name.is_empty() || sub.as_deref().is_some_and(str::is_empty) {
                return Err(not_kv());
            }
            if parsed.values.iter().any(|(n, s, _)| n == name && *s == sub) {
                return Err(UsageError::DuplicateKey {
                    key: key.to_owned(),
                });
            }
            parsed.values.push((name.to_owned(), sub, value.to_owned()));
        }
        Ok(parsed)
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, s, _)| n == name && s.is_none())
            .map(|(_, _, v)| v.as_str())
    }

    pub(super) fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub(super) fn map(&self, name: &str) -> Vec<(&str, &str)> {
        self.values
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, s, v)| Some((s.as_deref()?, v.as_str())))
            .collect()
    }
}

/// The value of a key that [`super::commands::check`] made sure is present.
pub(super) fn required<'a>(args: &'a Args, key: &str) -> &'a str {
    // `check` made sure of it.
    args.get(key).unwrap_or_default()
}

/// The field `param-name=` names.
pub(super) fn field_of(class: Class, args: &Args) -> &'static FieldDef {
    // `check` resolved param-name against the schema.
    let name = required(args, "param-name");
    by_cli_name(class, name).unwrap_or(&class.fields()[0])
}
