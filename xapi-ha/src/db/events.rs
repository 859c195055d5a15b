//! `event.from` as a pure query: the events since a token for some classes,
//! and the new token. The server does the waiting (see `api::EventWait`).
//!
//! Semantics (after xapi's `xapi_event.ml`, `../shared/reference/xenapi.md`
//! 1.7):
//! - token `""`: an `add` event for every existing object subscribed to;
//! - otherwise the changes after the token's generation, coalesced per
//!   object: `add` if it was created since (with its current record), `mod`
//!   if it changed, `del` if it was deleted (only when it existed at the
//!   token: an object created and deleted since shows nothing);
//! - a token is two zero-padded 20-digit numbers, `<generation>,<message
//!   generation>`; both come from the database's one generation counter
//!   (the second is the last change of a message), so tokens compare as
//!   strings and survive restarts;
//! - a token older than the deletions still remembered, or newer than the
//!   database (a token from another database), gets `EVENTS_LOST`: the
//!   client starts again from `""`.

use super::database::Database;
use super::schema::Class;
use crate::api::ApiError;
use crate::value::{Key, Ref, Value};

/// What a client subscribed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// `*`: every class.
    All,
    /// `vm`: every object of a class.
    Class(Class),
    /// `vm/OpaqueRef:...`: one object.
    Object(Class, Ref),
}

impl Subscription {
    /// Parses one entry of `classes`.
    pub fn parse(entry: &str) -> Result<Subscription, ApiError> {
        let fail = || ApiError::event_subscription_parse_failure(entry);
        if entry == "*" {
            return Ok(Subscription::All);
        }
        match entry.split_once('/') {
            None => Class::from_event_name(entry)
                .map(Subscription::Class)
                .ok_or_else(fail),
            Some((c, r)) => {
                let class = Class::from_event_name(c).ok_or_else(fail)?;
                let r = Ref::parse(r).filter(|r| !r.is_null()).ok_or_else(fail)?;
                Ok(Subscription::Object(class, r))
            }
        }
    }

    fn covers_class(&self, class: Class) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(c) | Subscription::Object(c, _) => *c == class,
        }
    }

    fn covers(&self, class: Class, r: Ref) -> bool {
        match self {
            Subscription::All => true,
            Subscription::Class(c) => *c == class,
            Subscription::Object(c, o) => *c == class && *o == r,
        }
    }
}

/// A position in the change stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token {
    pub generation: u64,
    pub message_generation: u64,
}

impl Token {
    /// Parses a token; `""` is `None` (from the beginning).
    pub fn parse(s: &str) -> Result<Option<Token>, ApiError> {
        if s.is_empty() {
            return Ok(None);
        }
        let fail = || ApiError::event_from_token_parse_failure(s);
        let (a, b) = s.split_once(',').ok_or_else(fail)?;
        let num = |t: &str| -> Result<u64, ApiError> {
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(fail());
            }
            t.parse().map_err(|_| fail())
        };
        Ok(Some(Token {
            generation: num(a)?,
            message_generation: num(b)?,
        }))
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:020},{:020}", self.generation, self.message_generation)
    }
}

/// A parsed `event.from` request (without its timeout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    pub subscriptions: Vec<Subscription>,
    /// `None`: from the beginning.
    pub since: Option<Token>,
}

impl EventQuery {
    /// Parses `classes` and `token` as `event.from` takes them.
    pub fn parse(classes: &[String], token: &str) -> Result<EventQuery, ApiError> {
        Ok(EventQuery {
            subscriptions: classes
                .iter()
                .map(|c| Subscription::parse(c))
                .collect::<Result<_, _>>()?,
            since: Token::parse(token)?,
        })
    }

    fn covers_class(&self, class: Class) -> bool {
        self.subscriptions.iter().any(|s| s.covers_class(class))
    }

    fn covers(&self, class: Class, r: Ref) -> bool {
        self.subscriptions.iter().any(|s| s.covers(class, r))
    }
}

/// `add`, `mod` or `del`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Add,
    Mod,
    Del,
}

impl Operation {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Operation::Add => "add",
            Operation::Mod => "mod",
            Operation::Del => "del",
        }
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The generation of the change (messages: 0, as xapi sends them).
    pub id: u64,
    pub class: Class,
    pub operation: Operation,
    pub r#ref: Ref,
    /// The current record (`None` for `del`).
    pub snapshot: Option<Value>,
}

/// The answer to one `event.from` poll.
#[derive(Clone, Debug, PartialEq)]
pub struct EventBatch {
    pub events: Vec<Event>,
    /// Objects per subscribed class.
    pub valid_ref_counts: Vec<(Class, usize)>,
    pub token: Token,
}

impl EventBatch {
    /// The result struct `event.from` returns:
    /// `{events, valid_ref_counts, token}`.
    #[must_use]
    pub fn to_value(&self) -> Value {
        let events = self
            .events
            .iter()
            .map(|e| {
                let id = if e.class == Class::Message { 0 } else { e.id };
                let mut fields = vec![
                    ("id".to_owned(), Value::String(id.to_string())),
                    ("timestamp".to_owned(), Value::String("0.0".to_owned())),
                    ("class".to_owned(), Value::String(e.class.event_name())),
                    (
                        "operation".to_owned(),
                        Value::Enum(e.operation.name().to_owned()),
                    ),
                    ("ref".to_owned(), Value::Ref(e.r#ref)),
                ];
                if let Some(s) = &e.snapshot {
                    fields.push(("snapshot".to_owned(), s.clone()));
                }
                Value::Record(fields)
            })
            .collect();
        let counts = self
            .valid_ref_counts
            .iter()
            .map(|(c, n)| (Key::String(c.event_name()), Value::Int(*n as i64)))
            .collect();
        Value::Record(vec![
            ("events".to_owned(), Value::Set(events)),
            ("valid_ref_counts".to_owned(), Value::Map(counts)),
            ("token".to_owned(), Value::String(self.token.to_string())),
        ])
    }
}

impl Database {
    /// The token for the current state.
    #[must_use]
    pub fn token(&self) -> Token {
        Token {
            generation: self.generation(),
            message_generation: self.message_generation(),
        }
    }

    /// The events `query` asks for, in generation order.
    pub fn events(&self, query: &EventQuery) -> Result<EventBatch, ApiError> {
        let since = match query.since {
            Some(t)
                if t.generation > self.generation()
                    || t.generation < self.events_lost_through() =>
            {
                return Err(ApiError::events_lost());
            }
            Some(t) => t.generation,
            None => 0,
        };
        let mut events = Vec::new();
        let mut counts = Vec::new();
        for class in Class::ALL.into_iter().filter(|c| query.covers_class(*c)) {
            counts.push((class, self.count(class)));
            for (r, obj) in self.objects(class) {
                if obj.modified() <= since || !query.covers(class, r) {
                    continue;
                }
                let operation = if obj.created() > since {
                    Operation::Add
                } else {
                    Operation::Mod
                };
                events.push(Event {
                    id: obj.modified(),
                    class,
                    operation,
                    r#ref: r,
                    snapshot: Some(self.record_of(class, r, obj)),
                });
            }
        }
        for t in self.tombstones() {
            if t.generation > since && t.created <= since && query.covers(t.class, t.r#ref) {
                events.push(Event {
                    id: t.generation,
                    class: t.class,
                    operation: Operation::Del,
                    r#ref: t.r#ref,
                    snapshot: None,
                });
            }
        }
        events.sort_by_key(|e| e.id);
        Ok(EventBatch {
            events,
            valid_ref_counts: counts,
            token: self.token(),
        })
    }
}
