//! The schema: every class, its fields, their types, who may write them and
//! their defaults. One table ([`classes`]) feeds the database (what a record
//! holds and what `apply` checks), the generic calls (`get_<field>`,
//! `set_<field>` for RW fields, `add_to_<map>`, ...), `system.listMethods`
//! and `docs/pool-database.md` (a test checks the document against it).

mod classes;

/// mail: xe prints a message's class as named here (`Host`, not `host`).
pub use classes::MESSAGE_CLASSES;

use crate::value::{DateTime, Key, Ref, Value};

/// The classes of the pool database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Pool,
    Host,
    HostMetrics,
    Vm,
    Sr,
    Vdi,
    Message,
    Task,
    /// vmlife: a VM's disk (VM, VDI, device).
    Vbd,
    /// Ours (area mail): the durable mail queue (`alerts::queue`).
    Mail,
}

impl Class {
    /// Every class, in table order.
    pub const ALL: [Class; 10] = [
        Class::Pool,
        Class::Host,
        Class::HostMetrics,
        Class::Vm,
        Class::Sr,
        Class::Vdi,
        Class::Message,
        Class::Task,
        Class::Vbd,
        Class::Mail,
    ];

    /// The name in method names and errors (`VM`, `host_metrics`).
    #[must_use]
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The lower-case name `event.from` uses (`vm`, `host_metrics`).
    #[must_use]
    pub fn event_name(self) -> String {
        self.name().to_lowercase()
    }

    /// Index into per-class tables.
    #[must_use]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class named `name` as in method names (`VM`), case-sensitive.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class named `name` in `event.from` (lower case).
    #[must_use]
    pub fn from_event_name(name: &str) -> Option<Class> {
        Class::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// This class's definition.
    #[must_use]
    pub fn def(self) -> &'static ClassDef {
        &classes::CLASSES[self.index()]
    }

    /// The fields, in record order.
    #[must_use]
    pub fn fields(self) -> &'static [FieldDef] {
        self.def().fields
    }

    /// The position of field `name`.
    #[must_use]
    pub fn field_index(self, name: &str) -> Option<usize> {
        self.fields().iter().position(|f| f.name == name)
    }

    /// The field `name`.
    #[must_use]
    pub fn field(self, name: &str) -> Option<&'static FieldDef> {
        self.fields().iter().find(|f| f.name == name)
    }
}

/// One class: its name and fields. Field 0 is always `uuid`.
#[derive(Debug)]
pub struct ClassDef {
    pub class: Class,
    pub name: &'static str,
    pub fields: &'static [FieldDef],
}

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    String,
    Int,
    Float,
    Bool,
    DateTime,
    /// A reference to an object of the class (or `OpaqueRef:NULL`).
    Ref(Class),
    /// One of the listed names.
    Enum(&'static [&'static str]),
    Set(&'static Ty),
    Map(&'static Ty, &'static Ty),
}

pub const STRING_SET: Ty = Ty::Set(&Ty::String);
pub const STRING_MAP: Ty = Ty::Map(&Ty::String, &Ty::String);

impl Ty {
    /// The XenAPI spelling (`(string -> string) map`, `host ref`).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Ty::String => "string".into(),
            Ty::Int => "int".into(),
            Ty::Float => "float".into(),
            Ty::Bool => "bool".into(),
            Ty::DateTime => "datetime".into(),
            Ty::Ref(c) => format!("{} ref", c.name()),
            Ty::Enum(vs) => format!("enum {}", vs.join("|")),
            Ty::Set(t) => format!("{} set", t.describe()),
            Ty::Map(k, v) => format!("({} -> {}) map", k.describe(), v.describe()),
        }
    }

    /// The zero value: `""`, 0, false, NULL, the epoch, the first enum
    /// name, empty set or map.
    #[must_use]
    pub fn zero(&self) -> Value {
        match self {
            Ty::String => Value::String(String::new()),
            Ty::Int => Value::Int(0),
            Ty::Float => Value::Float(0.0),
            Ty::Bool => Value::Bool(false),
            Ty::DateTime => Value::DateTime(DateTime::EPOCH),
            Ty::Ref(_) => Value::Ref(Ref::NULL),
            Ty::Enum(vs) => Value::Enum(vs.first().copied().unwrap_or_default().to_owned()),
            Ty::Set(_) => Value::Set(Vec::new()),
            Ty::Map(..) => Value::Map(Vec::new()),
        }
    }

    /// Whether `v` is a well-formed value of this type, in the database's
    /// canonical form (typed refs and enums, finite floats, maps with
    /// sorted unique keys).
    #[must_use]
    pub fn holds(&self, v: &Value) -> bool {
        match (self, v) {
            (Ty::String, Value::String(_))
            | (Ty::Int, Value::Int(_))
            | (Ty::Bool, Value::Bool(_))
            | (Ty::DateTime, Value::DateTime(_))
            | (Ty::Ref(_), Value::Ref(_)) => true,
            (Ty::Float, Value::Float(f)) => f.is_finite(),
            (Ty::Enum(vs), Value::Enum(s)) => vs.contains(&s.as_str()),
            // A XenAPI "set" is a list: repeats are allowed in storage
            // (`task.error_info` keeps them); calls that add to a set keep
            // it free of them.
            (Ty::Set(t), Value::Set(items)) => items.iter().all(|i| t.holds(i)),
            (Ty::Map(k, t), Value::Map(pairs)) => {
                pairs
                    .iter()
                    .all(|(key, val)| k.holds_key(key) && t.holds(val))
                    && pairs.windows(2).all(|w| w[0].0 < w[1].0)
            }
            _ => false,
        }
    }

    fn holds_key(&self, k: &Key) -> bool {
        matches!(
            (self, k),
            (Ty::String | Ty::Enum(_), Key::String(_))
                | (Ty::Ref(_), Key::Ref(_))
                | (Ty::Int, Key::Int(_))
        ) && match (self, k) {
            (Ty::Enum(vs), Key::String(s)) => vs.contains(&s.as_str()),
            _ => true,
        }
    }
}

/// Who writes a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read-only, written by the agent itself (`RO/runtime`).
    Ro,
    /// Read-only, but given in the constructor's record (`VM.create`).
    Create,
    /// Read-write: `set_<field>` (and `add_to_`/`remove_from_` for maps,
    /// `add_`/`remove_` for sets); also given in the constructor's record.
    Rw,
    /// Computed, never stored: the set of references of the objects of
    /// that class whose field names this object (`host.resident_VMs` from
    /// `VM.resident_on`).
    Derived(Class, &'static str),
}

impl Access {
    /// The XenAPI qualifier (`RO`, `RW`).
    #[must_use]
    pub fn qualifier(self) -> &'static str {
        match self {
            Access::Rw => "RW",
            Access::Ro | Access::Create | Access::Derived(..) => "RO",
        }
    }

    /// Whether the constructor takes it.
    #[must_use]
    pub fn in_constructor(self) -> bool {
        matches!(self, Access::Create | Access::Rw)
    }
}

/// A field's default when a constructor leaves it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Default {
    /// The type's zero ([`Ty::zero`]).
    Zero,
    Int(i64),
    Bool(bool),
    /// For strings and enums.
    Str(&'static str),
}

/// A rule on a field's value beyond its type, checked by `apply` and so by
/// every call that writes the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    None,
    /// An int that must be 0 or more.
    NonNegative,
    /// A string that must be one of these.
    OneOf(&'static [&'static str]),
}

impl Check {
    /// Whether `v` passes (its type already checked).
    #[must_use]
    pub fn allows(self, v: &Value) -> bool {
        match (self, v) {
            (Check::None, _) => true,
            (Check::NonNegative, Value::Int(i)) => *i >= 0,
            (Check::OneOf(vs), Value::String(s)) => vs.contains(&s.as_str()),
            _ => false,
        }
    }
}

/// One field.
#[derive(Debug)]
pub struct FieldDef {
    /// XenAPI name (snake_case, as the datamodel flattens it).
    pub name: &'static str,
    pub ty: Ty,
    pub access: Access,
    pub default: Default,
    pub check: Check,
    /// True for our own additions (not in XenAPI); documented in
    /// `docs/pool-database.md`.
    pub ours: bool,
}

impl FieldDef {
    /// The value a constructor gives when the field is left out.
    #[must_use]
    pub fn default_value(&self) -> Value {
        match self.default {
            Default::Zero => self.ty.zero(),
            Default::Int(i) => Value::Int(i),
            Default::Bool(b) => Value::Bool(b),
            Default::Str(s) => match self.ty {
                Ty::Enum(_) => Value::Enum(s.to_owned()),
                _ => Value::String(s.to_owned()),
            },
        }
    }

    /// Whether the field is stored (not derived).
    #[must_use]
    pub fn stored(&self) -> bool {
        !matches!(self.access, Access::Derived(..))
    }

    /// Whether `v` is a valid stored value: right type and its check.
    #[must_use]
    pub fn accepts(&self, v: &Value) -> bool {
        self.ty.holds(v) && self.check.allows(v)
    }
}

/// Valid values of `VM.ha_restart_priority` (xapi's `constants.ml`).
pub const HA_RESTART_PRIORITIES: &[&str] = &["restart", "best-effort", ""];

#[cfg(test)]
mod tests;
