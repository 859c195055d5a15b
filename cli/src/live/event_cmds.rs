//! `event-wait class=CLASS [FIELD=VALUE | FIELD=/=VALUE ...] [timeout=S]`:
//! waits until an object of the class has every `FIELD=VALUE` (and none of
//! the `FIELD=/=VALUE`, xe's "not equal"), comparing printed values as the
//! `-list` filters do. Built on `event.from`: the first call (token `""`)
//! returns every object of the class, later calls block in the agent until
//! something of the class changes; nothing polls.
//!
//! Exit codes (docs/cli.md): 0 the condition holds (at once or later),
//! 9 `timeout=` seconds passed first, 1 a bad command line, 6 an API error,
//! 7 the agent cannot be reached.

use std::time::{Duration, Instant};

use xapi_ha::db::Class;
use xapi_ha::rpc::Rpc;

use super::args::{Args, required};
use super::fields::{Record, Resolver, by_cli_name, cli_name};
use super::read_cmds::matches;
use super::session::Session;
use super::{CLASSES, unknown_key};
use crate::error::{CliError, UsageError};

/// The longest one `event.from` is asked to wait: below the transport's
/// reply timeout, so a quiet pool is a long poll, not an error.
const CHUNK: Duration = Duration::from_secs(30);

/// xe's "not equal" prefix of a condition's value.
const NOT_EQUAL: &str = "/=";

fn class_named(text: &str) -> Result<Class, UsageError> {
    CLASSES
        .iter()
        .find(|(prefix, _)| *prefix == text)
        .map(|(_, c)| *c)
        .ok_or_else(|| UsageError::InvalidValue {
            key: "class".into(),
            expected: "one of pool, host, host-metrics, vm, sr, vdi, message",
            got: text.to_owned(),
        })
}

fn timeout(args: &Args) -> Result<Option<Duration>, UsageError> {
    let Some(text) = args.get("timeout") else {
        return Ok(None);
    };
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(|s| Some(Duration::from_secs_f64(s)))
        .ok_or_else(|| UsageError::InvalidValue {
            key: "timeout".into(),
            expected: "a number of seconds (0 or more)",
            got: text.to_owned(),
        })
}

/// Checks `class=`, `timeout=` and that every other key is a field of the
/// class (map keys as `FIELD:KEY=`).
pub(super) fn check(name: &str, args: &Args) -> Result<(), CliError> {
    if let Some(flag) = args.flags.first() {
        return Err(UsageError::UnknownFlag {
            command: name.to_owned(),
            flag: flag.clone(),
            suggestion: None,
        }
        .into());
    }
    let Some(class) = args.get("class") else {
        return Err(UsageError::MissingKey {
            command: name.to_owned(),
            key: "class",
        }
        .into());
    };
    let class = class_named(class)?;
    timeout(args)?;
    for (key, _, _) in &args.values {
        if key == "class" || key == "timeout" {
            continue;
        }
        if by_cli_name(class, key).is_none() {
            let known: Vec<String> = class.fields().iter().map(|f| cli_name(f.name)).collect();
            return Err(unknown_key(name, key, &known));
        }
    }
    Ok(())
}

/// The conditions: what must match, and what must not.
struct Conditions {
    equal: Args,
    not_equal: Vec<Args>,
}

fn conditions(args: &Args) -> Conditions {
    let mut equal = Args::default();
    let mut not_equal = Vec::new();
    for (key, sub, value) in &args.values {
        if key == "class" || key == "timeout" {
            continue;
        }
        match value.strip_prefix(NOT_EQUAL) {
            Some(v) => not_equal.push(Args {
                values: vec![(key.clone(), sub.clone(), v.to_owned())],
                flags: Vec::new(),
            }),
            None => equal.values.push((key.clone(), sub.clone(), value.clone())),
        }
    }
    Conditions { equal, not_equal }
}

fn holds(
    session: &mut Session,
    resolver: &mut Resolver,
    class: Class,
    c: &Conditions,
    record: &Record,
) -> bool {
    matches(session, resolver, class, &c.equal, record)
        && !c
            .not_equal
            .iter()
            .any(|n| matches(session, resolver, class, n, record))
}

/// Waits for the condition (see the module documentation).
pub(super) fn event_wait(session: &mut Session, args: &Args) -> Result<(), CliError> {
    let class = class_named(required(args, "class"))?;
    let limit = timeout(args)?;
    let deadline = limit.map(|t| Instant::now() + t);
    let wanted = conditions(args);
    let mut resolver = Resolver::default();
    let subscription = Rpc::Array(vec![Rpc::Str(class.name().to_lowercase())]);
    let mut token = String::new();
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(CHUNK),
            None => CHUNK,
        };
        let reply = session.call(
            "event.from",
            vec![
                subscription.clone(),
                Rpc::Str(token.clone()),
                Rpc::Float(wait.as_secs_f64()),
            ],
        )?;
        let Rpc::Struct(mut reply) = reply else {
            return Err(CliError::Connect(format!(
                "event.from returned {reply:?}, not a struct"
            )));
        };
        if let Some(Rpc::Array(events)) = reply.remove("events") {
            for event in events {
                let Rpc::Struct(mut event) = event else {
                    continue;
                };
                if let Some(Rpc::Struct(snapshot)) = event.remove("snapshot")
                    && holds(session, &mut resolver, class, &wanted, &snapshot)
                {
                    return Ok(());
                }
            }
        }
        match reply.remove("token") {
            Some(Rpc::Str(t)) => token = t,
            other => {
                return Err(CliError::Connect(format!(
                    "event.from returned the token {other:?}, not a string"
                )));
            }
        }
        if let (Some(d), Some(limit)) = (deadline, limit)
            && Instant::now() >= d
        {
            return Err(CliError::TimedOut(format!(
                "event-wait: no {} reached the condition within {} s",
                class.name(),
                limit.as_secs_f64()
            )));
        }
    }
}
