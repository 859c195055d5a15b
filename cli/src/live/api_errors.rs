//! API errors printed as xe prints them (xapi's `cli_util.ml`): the error's
//! sentence from the datamodel, then one `name: value` line per parameter
//! (`<extra>: v` past the declared ones, `<name>: <unknown>` for missing
//! ones). A code we have no sentence for prints `Error code: CODE` and
//! `Error parameters: p1, p2`.

/// (code, sentence, parameter names) for the errors the agent sends to
/// the calls `xe` makes. Sentences are xapi's (`datamodel_errors.ml`).
const KNOWN: &[(&str, &str, &[&str])] = &[
    (
        "HANDLE_INVALID",
        "You gave an invalid object reference.  The object may have recently been deleted.  The class parameter gives the type of reference given, and the handle parameter echoes the bad value given.",
        &["class", "handle"],
    ),
    (
        "UUID_INVALID",
        "The uuid you supplied was invalid.",
        &["type", "uuid"],
    ),
    (
        "SESSION_INVALID",
        "You gave an invalid session reference.  It may have been invalidated by a server restart, or timed out.  Get a new session handle, using one of the session.login_ calls.  This error does not invalidate the current connection.  The handle parameter echoes the bad value given.",
        &["handle"],
    ),
    (
        "HOST_IS_SLAVE",
        "You cannot make regular API calls directly on a supporter. Please pass API calls via the coordinator host.",
        &["Master IP address"],
    ),
    (
        "INVALID_VALUE",
        "The value given is invalid",
        &["field", "value"],
    ),
    (
        "FIELD_TYPE_ERROR",
        "The value specified is of the wrong type",
        &["field"],
    ),
    (
        "MESSAGE_METHOD_UNKNOWN",
        "You tried to call a method that does not exist.  The method name that you used is echoed.",
        &["method"],
    ),
    (
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "You tried to call a method with the incorrect number of parameters.  The fully-qualified method name that you used, and the number of received and expected parameters are returned.",
        &["method", "expected", "received"],
    ),
    (
        "MAP_DUPLICATE_KEY",
        "You tried to add a key-value pair to a map, but that key is already there.",
        &["type", "param_name", "uuid", "key"],
    ),
    (
        "SR_UNKNOWN_DRIVER",
        "The SR could not be connected because the driver was not recognised.",
        &["driver"],
    ),
    (
        "SR_DEVICE_IN_USE",
        "The SR operation cannot be performed because a device underlying the SR is in use by the host.",
        // Ours: the device and what it holds (xapi sends none); `sr-create
        // --force` overwrites it.
        &["device", "holds"],
    ),
    (
        "VM_BAD_POWER_STATE",
        "You attempted an operation on a VM that was not in an appropriate power state at the time; for example, you attempted to start a VM that was already running.  The parameters returned are the VM's handle, and the expected and actual VM state at the time of the call.",
        &["vm", "expected", "actual"],
    ),
    (
        "HA_IS_ENABLED",
        "The operation could not be performed because HA is enabled on the Pool",
        &[],
    ),
    // emerg: the emergency commands' errors.
    ("HOST_STILL_BOOTING", "The host is still booting.", &[]),
    (
        "HA_HEARTBEAT_DAEMON_STARTUP_FAILED",
        "The host could not join the liveset because the HA daemon failed to start.",
        &[],
    ),
    (
        "HA_HOST_CANNOT_ACCESS_STATEFILE",
        "The host could not join the liveset because the HA daemon could not access the heartbeat disk.",
        &[],
    ),
    (
        "OPERATION_NOT_ALLOWED",
        "You attempted an operation that was not allowed.",
        &["reason"],
    ),
    // maint: host maintenance (xapi's sentences, datamodel_errors.ml).
    (
        "HOST_DISABLED",
        "The specified host is disabled.",
        &["host"],
    ),
    (
        "HOST_NOT_DISABLED",
        "This operation cannot be performed because the host is not disabled. Please disable the host and then try again.",
        &[],
    ),
    (
        "NO_HOSTS_AVAILABLE",
        "There were no servers available to complete the specified operation.",
        &[],
    ),
    (
        "HOST_NOT_ENOUGH_FREE_MEMORY",
        "Not enough server memory is available to perform this operation.",
        &["needed", "available"],
    ),
    (
        "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN",
        "This operation cannot be performed because it would invalidate VM failover planning such that the system would be unable to guarantee to restart protected VMs after a Host failure.",
        &[],
    ),
    (
        "INTERNAL_ERROR",
        "The server failed to handle your request, due to an internal error. The given message may give details useful for debugging the problem.",
        &["message"],
    ),
];

/// The lines xe prints for `code` with `params`.
#[must_use]
pub fn describe(code: &str, params: &[String]) -> Vec<String> {
    if code == "SESSION_AUTHENTICATION_FAILED" {
        return vec![
            "Authentication failed".to_owned(),
            "For usage run: 'xe help'".to_owned(),
        ];
    }
    let Some((_, sentence, names)) = KNOWN.iter().find(|(c, _, _)| *c == code) else {
        return vec![
            format!("Error code: {code}"),
            format!("Error parameters: {}", params.join(", ")),
        ];
    };
    let mut lines = vec![(*sentence).to_owned()];
    for (i, name) in names.iter().enumerate() {
        let value = params.get(i).map_or("<unknown>", String::as_str);
        lines.push(format!("{name}: {value}"));
    }
    for extra in params.iter().skip(names.len()) {
        lines.push(format!("<extra>: {extra}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn known_unknown_missing_extra() {
        assert_eq!(
            describe("UUID_INVALID", &["VM".into(), "x".into()]),
            ["The uuid you supplied was invalid.", "type: VM", "uuid: x"]
        );
        assert_eq!(
            describe("FIELD_TYPE_ERROR", &[]),
            [
                "The value specified is of the wrong type",
                "field: <unknown>"
            ]
        );
        assert_eq!(
            describe("HA_IS_ENABLED", &["a".into()]),
            [
                "The operation could not be performed because HA is enabled on the Pool",
                "<extra>: a"
            ]
        );
        assert_eq!(
            describe("NO_SUCH", &["a".into(), "b".into()]),
            ["Error code: NO_SUCH", "Error parameters: a, b"]
        );
    }
}
