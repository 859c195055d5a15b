//! Task records for `Async.*` calls (the server runs the call and keeps the
//! task current): the changes that create a pending task and finish it.
//! xapi stores a task's `result` as an XML-RPC `<value>` fragment; the
//! server's codec makes that string, this module only records it.

use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref, Value};

use super::ids::Fresh;
use super::{ApiError, Caller};

/// A new pending task named `name_label` (the call, e.g. `Async.VM.start`),
/// created now on this host. Returns its reference and the change.
pub fn create(db: &Database, caller: &Caller, name_label: &str) -> (Ref, Change) {
    let mut fresh = Fresh::new(db, caller);
    let r = fresh.r#ref();
    let resident_on = if db.get(Class::Host, caller.this_host).is_some() {
        caller.this_host
    } else {
        Ref::NULL
    };
    let change = Change::Create {
        class: Class::Task,
        r#ref: r,
        fields: vec![
            ("uuid".into(), Value::String(fresh.uuid())),
            ("name_label".into(), Value::String(name_label.to_owned())),
            ("created".into(), Value::DateTime(caller.now)),
            ("status".into(), Value::Enum("pending".into())),
            ("resident_on".into(), Value::Ref(resident_on)),
        ],
    };
    (r, change)
}

/// The task succeeded with `result` (already encoded by the server).
#[must_use]
pub fn succeed(task: Ref, now: DateTime, result: String) -> Change {
    Change::Modify {
        class: Class::Task,
        r#ref: task,
        fields: vec![
            ("status".into(), Value::Enum("success".into())),
            ("finished".into(), Value::DateTime(now)),
            ("progress".into(), Value::Float(1.0)),
            ("result".into(), Value::String(result)),
        ],
    }
}

/// The task failed with `error` (`error_info` is `[code, params...]`, in
/// order, repeats kept: a "set" in XenAPI is a list).
#[must_use]
pub fn fail(task: Ref, now: DateTime, error: &ApiError) -> Change {
    let info = std::iter::once(error.code.clone()).chain(error.params.iter().cloned());
    Change::Modify {
        class: Class::Task,
        r#ref: task,
        fields: vec![
            ("status".into(), Value::Enum("failure".into())),
            ("finished".into(), Value::DateTime(now)),
            ("progress".into(), Value::Float(1.0)),
            (
                "error_info".into(),
                Value::Set(info.map(Value::String).collect()),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_created_pending_and_finishes() {
        let mut db = Database::new();
        let caller = Caller {
            now: DateTime::from_unix(10),
            seed: uuid::Uuid::from_u128(1),
            this_host: Ref::NULL,
        };
        let (t, c) = create(&db, &caller, "Async.VM.create");
        let _kept = db.apply(&[c]).unwrap();
        assert_eq!(
            db.field(Class::Task, t, "status"),
            Some(Value::Enum("pending".into()))
        );
        let _kept = db
            .apply(&[fail(
                t,
                DateTime::from_unix(11),
                &ApiError::invalid_value("x", "x"),
            )])
            .unwrap();
        assert_eq!(
            db.field(Class::Task, t, "error_info"),
            Some(Value::string_set(["INVALID_VALUE", "x", "x"]))
        );
        let _kept = db
            .apply(&[succeed(
                t,
                DateTime::from_unix(12),
                "<value>x</value>".into(),
            )])
            .unwrap();
        db.check_invariants().unwrap();
    }
}
