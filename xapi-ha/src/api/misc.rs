//! The remaining calls: `host.get_servertime`, the message read calls
//! (`message.get_since`, `message.get`; the rest are generic),
//! `event.from` (the query; the server waits), `event.get_current_id`,
//! `system.listMethods`.

use crate::db::Database;
use crate::db::events::EventQuery;
use crate::db::schema::{Class, Ty};
use crate::value::{DateTime, Key, Value};

use super::coerce;
use super::methods;
use super::{ApiError, Caller, EventWait, Outcome, SESSION_METHODS};

pub fn get_servertime(db: &Database, caller: &Caller, arg: &Value) -> Result<Outcome, ApiError> {
    coerce::object(db, Class::Host, "host", arg)?;
    Ok(Outcome::value(Value::DateTime(caller.now)))
}

fn since(arg: &Value) -> Result<DateTime, ApiError> {
    match coerce::coerce(&Ty::DateTime, "since", arg)? {
        Value::DateTime(d) => Ok(d),
        _ => Err(ApiError::field_type_error("since")),
    }
}

/// Messages newer than `since` that pass `keep`, as `ref -> record`.
fn messages_where(db: &Database, since: DateTime, keep: impl Fn(&Value) -> bool) -> Value {
    let ts = Class::Message.field_index("timestamp").unwrap_or(0);
    Value::Map(
        db.objects(Class::Message)
            .filter(|(_, o)| matches!(o.stored(ts), Value::DateTime(t) if *t > since))
            .map(|(r, o)| (r, db.record_of(Class::Message, r, o)))
            .filter(|(_, rec)| keep(rec))
            .map(|(r, rec)| (Key::Ref(r), rec))
            .collect(),
    )
}

pub fn message_get_since(db: &Database, arg: &Value) -> Result<Outcome, ApiError> {
    let since = since(arg)?;
    Ok(Outcome::value(messages_where(db, since, |_| true)))
}

pub fn message_get(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let cls_ty = Class::Message.field("cls").map_or(Ty::String, |f| f.ty);
    let cls = coerce::coerce(&cls_ty, "cls", &args[0])?;
    let obj_uuid = coerce::string("obj_uuid", &args[1])?;
    let since = since(&args[2])?;
    Ok(Outcome::value(messages_where(db, since, |rec| {
        rec.field("cls") == Some(&cls)
            && rec.field("obj_uuid").and_then(Value::as_str) == Some(&obj_uuid)
    })))
}

/// `event.from(classes, token, timeout)`: the pending events now; with
/// none and a positive timeout, `wait` tells the server to wait and poll.
pub fn event_from(db: &Database, args: &[Value]) -> Result<Outcome, ApiError> {
    let classes = coerce::strings("classes", &args[0])?;
    let token = coerce::string("token", &args[1])?;
    let timeout = match coerce::coerce(&Ty::Float, "timeout", &args[2])? {
        Value::Float(t) => t,
        _ => return Err(ApiError::field_type_error("timeout")),
    };
    let query = EventQuery::parse(&classes, &token)?;
    let batch = db.events(&query)?;
    let wait = (batch.events.is_empty() && timeout > 0.0).then(|| EventWait {
        query,
        generation: db.generation(),
        timeout_seconds: timeout,
    });
    Ok(Outcome {
        wait,
        ..Outcome::value(batch.to_value())
    })
}

/// The second half of a waiting `event.from`: the batch now (possibly empty
/// once the timeout has passed).
pub fn poll(db: &Database, query: &EventQuery) -> Result<Value, ApiError> {
    Ok(db.events(query)?.to_value())
}

pub fn event_get_current_id(db: &Database) -> Outcome {
    Outcome::value(Value::Int(
        i64::try_from(db.generation()).unwrap_or(i64::MAX),
    ))
}

/// Every method name: the server's `session.*` calls and every method of
/// [`methods::all`].
#[must_use]
pub fn list_methods() -> Value {
    Value::Set(
        SESSION_METHODS
            .iter()
            .map(|s| Value::String((*s).to_owned()))
            .chain(methods::all().into_iter().map(|m| Value::String(m.name())))
            .collect(),
    )
}
