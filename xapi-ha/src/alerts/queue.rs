//! The mail queue, a pure state machine over the pool database's `mail`
//! objects (so it survives an agent restart and a master failover with the
//! database):
//!
//! - [`enqueue`]: every message committed since `pool.mail_enqueued_through`
//!   (a database generation) that passes the priority filter becomes a
//!   queued mail, or joins a queued mail of identical alerts (same name,
//!   class, object and body: `count` grows). An identical alert within
//!   `mail-coalesce-seconds` of a mail that went out waits until the window
//!   ends, gathering more. The watermark moves in the same batch, so each
//!   message is looked at exactly once.
//! - [`due`]: the queued mails whose `next_attempt` has come.
//! - [`record`]: what the server answered. Sent: the mail is kept as `sent`
//!   for the coalescing window ([`expire`] removes it after). Connection
//!   failure or 4xx: retried with exponential backoff (`mail-retry-seconds`
//!   doubling up to `mail-retry-max-seconds`). 5xx: dropped, and a
//!   `MAIL_DELIVERY_FAILED` message says so.

use uuid::Uuid;

use super::catalog;
use super::settings::MailSettings;
use crate::api::Caller;
use crate::api::ids::Fresh;
use crate::db::{Change, Class, Database};
use crate::value::{DateTime, Ref, Value};

/// The pool field holding the watermark.
pub const WATERMARK: &str = "mail_enqueued_through";

/// One mail of the queue, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub r: Ref,
    pub name: String,
    pub priority: i64,
    pub cls: String,
    pub obj_uuid: String,
    pub body: String,
    pub message_uuid: String,
    pub count: i64,
    pub first: DateTime,
    pub last: DateTime,
    pub sent: bool,
    pub attempts: i64,
    pub next_attempt: DateTime,
    pub sent_at: DateTime,
    pub last_answer: String,
}

impl Mail {
    fn same_alert(&self, name: &str, cls: &str, obj_uuid: &str, body: &str) -> bool {
        self.name == name && self.cls == cls && self.obj_uuid == obj_uuid && self.body == body
    }

    fn fields(&self) -> Vec<(String, Value)> {
        vec![
            ("name".into(), Value::String(self.name.clone())),
            ("priority".into(), Value::Int(self.priority)),
            ("cls".into(), Value::Enum(self.cls.clone())),
            ("obj_uuid".into(), Value::String(self.obj_uuid.clone())),
            ("body".into(), Value::String(self.body.clone())),
            (
                "message_uuid".into(),
                Value::String(self.message_uuid.clone()),
            ),
            ("count".into(), Value::Int(self.count)),
            ("first".into(), Value::DateTime(self.first)),
            ("last".into(), Value::DateTime(self.last)),
            (
                "state".into(),
                Value::Enum(if self.sent { "sent" } else { "queued" }.into()),
            ),
            ("attempts".into(), Value::Int(self.attempts)),
            ("next_attempt".into(), Value::DateTime(self.next_attempt)),
            ("sent_at".into(), Value::DateTime(self.sent_at)),
            (
                "last_answer".into(),
                Value::String(self.last_answer.clone()),
            ),
        ]
    }

    fn modify(&self) -> Change {
        Change::Modify {
            class: Class::Mail,
            r#ref: self.r,
            fields: self.fields(),
        }
    }
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_owned()
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_int).unwrap_or(0)
}

fn date(v: Option<&Value>) -> DateTime {
    match v {
        Some(Value::DateTime(d)) => *d,
        _ => DateTime::EPOCH,
    }
}

/// Every mail of the queue, oldest first.
#[must_use]
pub fn mails(db: &Database) -> Vec<Mail> {
    let mut out: Vec<(u64, Mail)> = db
        .objects(Class::Mail)
        .map(|(r, o)| {
            let rec = db.record_of(Class::Mail, r, o);
            let f = |n: &str| rec.field(n).cloned();
            (
                o.created(),
                Mail {
                    r,
                    name: text(f("name").as_ref()),
                    priority: int(f("priority").as_ref()),
                    cls: text(f("cls").as_ref()),
                    obj_uuid: text(f("obj_uuid").as_ref()),
                    body: text(f("body").as_ref()),
                    message_uuid: text(f("message_uuid").as_ref()),
                    count: int(f("count").as_ref()),
                    first: date(f("first").as_ref()),
                    last: date(f("last").as_ref()),
                    sent: text(f("state").as_ref()) == "sent",
                    attempts: int(f("attempts").as_ref()),
                    next_attempt: date(f("next_attempt").as_ref()),
                    sent_at: date(f("sent_at").as_ref()),
                    last_answer: text(f("last_answer").as_ref()),
                },
            )
        })
        .collect();
    out.sort_by_key(|(created, m)| (*created, m.r));
    out.into_iter().map(|(_, m)| m).collect()
}

fn pool(db: &Database) -> Option<Ref> {
    db.objects(Class::Pool).map(|(r, _)| r).next()
}

/// The watermark: messages created at or before this generation were
/// looked at already.
#[must_use]
pub fn watermark(db: &Database) -> u64 {
    pool(db)
        .and_then(|p| db.field(Class::Pool, p, WATERMARK))
        .and_then(|v| v.as_int())
        .and_then(|i| u64::try_from(i).ok())
        .unwrap_or(0)
}

/// Looks at the messages committed since the watermark: queues (or
/// coalesces) the ones `settings` mails, and moves the watermark. Without
/// settings (no `mail-destination`) the messages are passed over, as
/// xapi's mail-alarm does. Nothing to do: no changes.
#[must_use]
pub fn enqueue(
    db: &Database,
    settings: Option<&MailSettings>,
    now: DateTime,
    seed: Uuid,
) -> Vec<Change> {
    let Some(pool) = pool(db) else {
        return Vec::new();
    };
    let mark = watermark(db);
    let mut fresh_msgs: Vec<(u64, Ref, Value)> = db
        .objects(Class::Message)
        .filter(|(_, o)| o.created() > mark)
        .map(|(r, o)| (o.created(), r, db.record_of(Class::Message, r, o)))
        .collect();
    if fresh_msgs.is_empty() {
        return Vec::new();
    }
    fresh_msgs.sort_by_key(|(g, r, _)| (*g, *r));
    let through = fresh_msgs.iter().map(|(g, ..)| *g).max().unwrap_or(mark);
    let mut queue = mails(db);
    let known = queue.len();
    let mut touched: Vec<Ref> = Vec::new();
    let caller = Caller {
        now,
        seed,
        this_host: Ref::NULL,
    };
    let mut fresh = Fresh::new(db, &caller);
    if let Some(s) = settings {
        for (_, _, rec) in &fresh_msgs {
            let f = |n: &str| rec.field(n);
            let (name, prio) = (text(f("name")), int(f("priority")));
            if !s.mails(&name, prio) {
                continue;
            }
            let (cls, obj, body) = (text(f("cls")), text(f("obj_uuid")), text(f("body")));
            let at = date(f("timestamp"));
            if let Some(m) = queue
                .iter_mut()
                .find(|m| !m.sent && m.same_alert(&name, &cls, &obj, &body))
            {
                m.count += 1;
                m.last = m.last.max(at);
                touched.push(m.r);
                continue;
            }
            // Identical to one that went out within the window: wait for
            // the window's end, gathering more.
            let window_end = queue
                .iter()
                .filter(|m| m.sent && m.same_alert(&name, &cls, &obj, &body))
                .map(|m| DateTime::from_unix(m.sent_at.unix_seconds + s.coalesce_seconds))
                .filter(|end| *end > now)
                .max();
            queue.push(Mail {
                r: fresh.r#ref(),
                name,
                priority: prio,
                cls,
                obj_uuid: obj,
                body,
                message_uuid: text(f("uuid")),
                count: 1,
                first: at,
                last: at,
                sent: false,
                attempts: 0,
                next_attempt: window_end.unwrap_or(now),
                sent_at: DateTime::EPOCH,
                last_answer: String::new(),
            });
        }
    }
    let mut changes = Vec::new();
    for m in &queue[known..] {
        let mut fields = vec![("uuid".to_owned(), Value::String(fresh.uuid()))];
        fields.extend(m.fields());
        changes.push(Change::Create {
            class: Class::Mail,
            r#ref: m.r,
            fields,
        });
    }
    touched.sort();
    touched.dedup();
    for m in queue[..known].iter().filter(|m| touched.contains(&m.r)) {
        changes.push(m.modify());
    }
    changes.push(Change::set(
        Class::Pool,
        pool,
        WATERMARK,
        Value::Int(i64::try_from(through).unwrap_or(i64::MAX)),
    ));
    changes
}

/// The queued mails to try now, oldest first.
#[must_use]
pub fn due(db: &Database, now: DateTime) -> Vec<Mail> {
    mails(db)
        .into_iter()
        .filter(|m| !m.sent && m.next_attempt <= now)
        .collect()
}

/// When the queue next needs a look without a new commit: the earliest
/// retry, or the end of a sent mail's window (`None`: nothing waits).
#[must_use]
pub fn next_wakeup(db: &Database, settings: Option<&MailSettings>) -> Option<DateTime> {
    let window = settings.map_or(0, |s| s.coalesce_seconds);
    mails(db)
        .iter()
        .map(|m| {
            if m.sent {
                DateTime::from_unix(m.sent_at.unix_seconds + window)
            } else {
                m.next_attempt
            }
        })
        .min()
}

/// What the SMTP server made of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted (the server's answer).
    Sent(String),
    /// Try again later: no connection, a timeout, or a 4xx answer.
    Transient(String),
    /// Refused for good: a 5xx answer.
    Permanent(String),
}

/// The delay before attempt `attempts + 1` after `attempts` failures.
#[must_use]
pub fn backoff(settings: &MailSettings, attempts: i64) -> i64 {
    let shift = u32::try_from((attempts - 1).clamp(0, 30)).unwrap_or(30);
    settings
        .retry_seconds
        .saturating_mul(1_i64 << shift)
        .min(settings.retry_max_seconds)
}

/// Records the outcome of one attempt at `mail` (as [`due`] gave it).
/// `to` names the destinations (for the report of a dropped mail).
#[must_use]
pub fn record(
    db: &Database,
    mail: &Mail,
    outcome: &Delivery,
    settings: &MailSettings,
    now: DateTime,
    seed: Uuid,
) -> Vec<Change> {
    if db.get(Class::Mail, mail.r).is_none() {
        return Vec::new();
    }
    let mut m = mail.clone();
    m.attempts += 1;
    match outcome {
        Delivery::Sent(answer) => {
            if settings.coalesce_seconds == 0 {
                return vec![Change::Delete {
                    class: Class::Mail,
                    r#ref: m.r,
                }];
            }
            m.sent = true;
            m.sent_at = now;
            m.last_answer.clone_from(answer);
            vec![m.modify()]
        }
        Delivery::Transient(answer) => {
            m.next_attempt = DateTime::from_unix(now.unix_seconds + backoff(settings, m.attempts));
            m.last_answer.clone_from(answer);
            vec![m.modify()]
        }
        Delivery::Permanent(answer) => {
            let to = settings
                .destinations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            let subject = super::format::compose(db, settings, &m).subject;
            let alert = catalog::mail_delivery_failed(db, &subject, &to, answer);
            vec![
                Change::Delete {
                    class: Class::Mail,
                    r#ref: m.r,
                },
                catalog::raise(db, now, seed, &alert),
            ]
        }
    }
}

/// Removes sent mails whose coalescing window has passed.
#[must_use]
pub fn expire(db: &Database, settings: Option<&MailSettings>, now: DateTime) -> Vec<Change> {
    let window = settings.map_or(0, |s| s.coalesce_seconds);
    mails(db)
        .into_iter()
        .filter(|m| m.sent && m.sent_at.unix_seconds + window <= now.unix_seconds)
        .map(|m| Change::Delete {
            class: Class::Mail,
            r#ref: m.r,
        })
        .collect()
}

#[cfg(test)]
mod tests;
