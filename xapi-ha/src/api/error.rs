//! `ApiError`: a XenAPI failure, `[code, params...]` on the wire
//! (`ErrorDescription` in XML-RPC, `error` in JSON-RPC). The constructors
//! give each code the parameters xapi sends (`../shared/reference/xenapi.md`
//! 1.5, 1.6, 3); the code strings are written only here.

use std::fmt;

/// A XenAPI error: its code and its parameters, as xapi sends them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApiError {
    pub code: String,
    pub params: Vec<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)?;
        for p in &self.params {
            write!(f, " {p:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Error codes, one constant each (the wire's spelling).
pub mod code {
    pub const MESSAGE_METHOD_UNKNOWN: &str = "MESSAGE_METHOD_UNKNOWN";
    pub const MESSAGE_PARAMETER_COUNT_MISMATCH: &str = "MESSAGE_PARAMETER_COUNT_MISMATCH";
    pub const HANDLE_INVALID: &str = "HANDLE_INVALID";
    pub const UUID_INVALID: &str = "UUID_INVALID";
    pub const INVALID_VALUE: &str = "INVALID_VALUE";
    pub const FIELD_TYPE_ERROR: &str = "FIELD_TYPE_ERROR";
    pub const MAP_DUPLICATE_KEY: &str = "MAP_DUPLICATE_KEY";
    pub const SESSION_INVALID: &str = "SESSION_INVALID";
    pub const SESSION_AUTHENTICATION_FAILED: &str = "SESSION_AUTHENTICATION_FAILED";
    pub const HOST_IS_SLAVE: &str = "HOST_IS_SLAVE";
    pub const VM_BAD_POWER_STATE: &str = "VM_BAD_POWER_STATE";
    pub const OPERATION_NOT_ALLOWED: &str = "OPERATION_NOT_ALLOWED";
    pub const EVENT_SUBSCRIPTION_PARSE_FAILURE: &str = "EVENT_SUBSCRIPTION_PARSE_FAILURE";
    pub const EVENT_FROM_TOKEN_PARSE_FAILURE: &str = "EVENT_FROM_TOKEN_PARSE_FAILURE";
    pub const EVENTS_LOST: &str = "EVENTS_LOST";
    pub const SR_UNKNOWN_DRIVER: &str = "SR_UNKNOWN_DRIVER";
    pub const HA_IS_ENABLED: &str = "HA_IS_ENABLED";
    pub const MEMORY_CONSTRAINT_VIOLATION: &str = "MEMORY_CONSTRAINT_VIOLATION";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
}

impl ApiError {
    /// An error with any code (for codes without a constructor here).
    pub fn new(code: &str, params: impl IntoIterator<Item = impl Into<String>>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// `MESSAGE_METHOD_UNKNOWN [method]`.
    #[must_use]
    pub fn method_unknown(method: &str) -> ApiError {
        ApiError::new(code::MESSAGE_METHOD_UNKNOWN, [method])
    }

    /// `MESSAGE_PARAMETER_COUNT_MISMATCH [method; expected; received]`; the
    /// counts exclude the session argument, as xapi counts them.
    #[must_use]
    pub fn parameter_count_mismatch(method: &str, expected: usize, received: usize) -> ApiError {
        ApiError::new(
            code::MESSAGE_PARAMETER_COUNT_MISMATCH,
            [
                method.to_owned(),
                expected.to_string(),
                received.to_string(),
            ],
        )
    }

    /// `HANDLE_INVALID [class; handle]`: `handle` as the client sent it.
    #[must_use]
    pub fn handle_invalid(class: &str, handle: &str) -> ApiError {
        ApiError::new(code::HANDLE_INVALID, [class, handle])
    }

    /// `UUID_INVALID [class; uuid]`.
    #[must_use]
    pub fn uuid_invalid(class: &str, uuid: &str) -> ApiError {
        ApiError::new(code::UUID_INVALID, [class, uuid])
    }

    /// `INVALID_VALUE [field; value]`.
    #[must_use]
    pub fn invalid_value(field: &str, value: &str) -> ApiError {
        ApiError::new(code::INVALID_VALUE, [field, value])
    }

    /// `FIELD_TYPE_ERROR [field]`: a parameter or record field of the wrong type.
    #[must_use]
    pub fn field_type_error(field: &str) -> ApiError {
        ApiError::new(code::FIELD_TYPE_ERROR, [field])
    }

    /// `MAP_DUPLICATE_KEY [class; field; ref; key]` (`add_to_<map>` of a key
    /// that is already there).
    #[must_use]
    pub fn map_duplicate_key(class: &str, field: &str, obj: &str, key: &str) -> ApiError {
        ApiError::new(code::MAP_DUPLICATE_KEY, [class, field, obj, key])
    }

    /// `SESSION_INVALID [handle]`.
    #[must_use]
    pub fn session_invalid(handle: &str) -> ApiError {
        ApiError::new(code::SESSION_INVALID, [handle])
    }

    /// `SESSION_AUTHENTICATION_FAILED [uname; msg]` (xapi sends two
    /// parameters although the datamodel declares none).
    #[must_use]
    pub fn session_authentication_failed(uname: &str, msg: &str) -> ApiError {
        ApiError::new(code::SESSION_AUTHENTICATION_FAILED, [uname, msg])
    }

    /// `HOST_IS_SLAVE [master address]`.
    #[must_use]
    pub fn host_is_slave(master_address: &str) -> ApiError {
        ApiError::new(code::HOST_IS_SLAVE, [master_address])
    }

    /// `VM_BAD_POWER_STATE [vm; expected; actual]`, states lower-case.
    #[must_use]
    pub fn vm_bad_power_state(vm: &str, expected: &str, actual: &str) -> ApiError {
        ApiError::new(
            code::VM_BAD_POWER_STATE,
            [vm, &expected.to_lowercase(), &actual.to_lowercase()],
        )
    }

    /// `OPERATION_NOT_ALLOWED [reason]`.
    #[must_use]
    pub fn operation_not_allowed(reason: &str) -> ApiError {
        ApiError::new(code::OPERATION_NOT_ALLOWED, [reason])
    }

    /// `EVENT_SUBSCRIPTION_PARSE_FAILURE [entry]`.
    #[must_use]
    pub fn event_subscription_parse_failure(entry: &str) -> ApiError {
        ApiError::new(code::EVENT_SUBSCRIPTION_PARSE_FAILURE, [entry])
    }

    /// `EVENT_FROM_TOKEN_PARSE_FAILURE [token]`.
    #[must_use]
    pub fn event_from_token_parse_failure(token: &str) -> ApiError {
        ApiError::new(code::EVENT_FROM_TOKEN_PARSE_FAILURE, [token])
    }

    /// `EVENTS_LOST []`: the token is older than the deletions the database
    /// still remembers; the client must start again from token `""`.
    #[must_use]
    pub fn events_lost() -> ApiError {
        ApiError::new(code::EVENTS_LOST, Vec::<String>::new())
    }

    /// `SR_UNKNOWN_DRIVER [type]`: an SR type the agent does not have.
    #[must_use]
    pub fn sr_unknown_driver(sr_type: &str) -> ApiError {
        ApiError::new(code::SR_UNKNOWN_DRIVER, [sr_type])
    }

    /// `HA_IS_ENABLED []`: refused while HA is on.
    #[must_use]
    pub fn ha_is_enabled() -> ApiError {
        ApiError::new(code::HA_IS_ENABLED, Vec::<String>::new())
    }

    /// `MEMORY_CONSTRAINT_VIOLATION [constraint]`: a VM's memory limits out
    /// of order.
    #[must_use]
    pub fn memory_constraint_violation() -> ApiError {
        ApiError::new(
            code::MEMORY_CONSTRAINT_VIOLATION,
            ["Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max"],
        )
    }

    /// `INTERNAL_ERROR [what]`: a bug or a failure of the server's own I/O
    /// (the server uses it when a commit fails).
    #[must_use]
    pub fn internal(what: &str) -> ApiError {
        ApiError::new(code::INTERNAL_ERROR, [what])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_give_xapi_parameters() {
        let e = ApiError::parameter_count_mismatch("VM.get_record", 1, 0);
        assert_eq!(e.code, "MESSAGE_PARAMETER_COUNT_MISMATCH");
        assert_eq!(e.params, ["VM.get_record", "1", "0"]);
        let e = ApiError::vm_bad_power_state("OpaqueRef:NULL", "Halted", "Running");
        assert_eq!(e.params, ["OpaqueRef:NULL", "halted", "running"]);
        assert_eq!(
            ApiError::handle_invalid("VM", "x").to_string(),
            r#"HANDLE_INVALID "VM" "x""#
        );
        assert!(ApiError::events_lost().params.is_empty());
    }
}
