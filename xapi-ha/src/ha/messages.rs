//! The HA messages with xapi's names, priorities, classes and bodies
//! (`../shared/reference/xenapi.md` 4.3, 4.4, 4.10), built in one place and
//! turned into `message` records in one place.

use crate::api::Caller;
use crate::api::ids::Fresh;
use crate::db::{Change, Class};
use crate::value::Value;

/// A message to raise: what `message.create` would store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaMessage {
    pub name: &'static str,
    /// 1 = most severe ... 5 = informational.
    pub priority: i64,
    /// `message.cls`: `VM`, `Host` or `Pool`.
    pub cls: &'static str,
    pub obj_uuid: String,
    pub body: String,
}

/// `HA_HOST_FAILED`: a host left the liveset, proven fenced.
#[must_use]
pub fn host_failed(host_uuid: &str, host_name: &str) -> HaMessage {
    HaMessage {
        name: "HA_HOST_FAILED",
        priority: 3,
        cls: "Host",
        obj_uuid: host_uuid.to_owned(),
        body: format!("Server '{host_name}' has failed"),
    }
}

/// `HA_PROTECTED_VM_RESTART_FAILED`: a protected VM could not be restarted
/// (raised once until it runs again).
#[must_use]
pub fn protected_vm_restart_failed(vm_uuid: &str) -> HaMessage {
    HaMessage {
        name: "HA_PROTECTED_VM_RESTART_FAILED",
        priority: 2,
        cls: "VM",
        obj_uuid: vm_uuid.to_owned(),
        body: String::new(),
    }
}

/// `HA_POOL_OVERCOMMITTED`: on the false-to-true edge of `ha_overcommitted`.
#[must_use]
pub fn pool_overcommitted(pool_uuid: &str, pool_name: &str) -> HaMessage {
    HaMessage {
        name: "HA_POOL_OVERCOMMITTED",
        priority: 3,
        cls: "Pool",
        obj_uuid: pool_uuid.to_owned(),
        body: format!(
            "The failover tolerance for pool '{pool_name}' has dropped and the initially \
             specified number of host failures to tolerate can no longer be guaranteed"
        ),
    }
}

/// `HA_POOL_DROP_IN_PLAN_EXISTS_FOR`: `ha_plan_exists_for` dropped to `n`.
#[must_use]
pub fn pool_drop_in_plan_exists_for(pool_uuid: &str, n: i64) -> HaMessage {
    HaMessage {
        name: "HA_POOL_DROP_IN_PLAN_EXISTS_FOR",
        priority: 3,
        cls: "Pool",
        obj_uuid: pool_uuid.to_owned(),
        body: n.to_string(),
    }
}

impl HaMessage {
    /// The `message` record to commit, stamped with the caller's clock.
    #[must_use]
    pub fn to_change(&self, caller: &Caller, fresh: &mut Fresh) -> Change {
        Change::Create {
            class: Class::Message,
            r#ref: fresh.r#ref(),
            fields: vec![
                ("uuid".into(), Value::String(fresh.uuid())),
                ("name".into(), Value::String(self.name.into())),
                ("priority".into(), Value::Int(self.priority)),
                ("cls".into(), Value::Enum(self.cls.into())),
                ("obj_uuid".into(), Value::String(self.obj_uuid.clone())),
                ("timestamp".into(), Value::DateTime(caller.now)),
                ("body".into(), Value::String(self.body.clone())),
            ],
        }
    }
}
