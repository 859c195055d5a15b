"""Drives a running xapi-ha agent with the official XenAPI package (PyPI),
over XML-RPC, as a real client would. Run by xapi-ha/tests/api_python.rs:

    python3 xenapi_client.py URL USER PASSWORD

Prints one "ok <check>" line per check; exits 1 with "FAIL <check>: why"
at the first broken expectation (a Python exception also fails the run).
"""
import sys

import XenAPI

url, user, password = sys.argv[1], sys.argv[2], sys.argv[3]


def check(name, cond, why=""):
    if not cond:
        print(f"FAIL {name}: {why}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)


def failure(fn, *args):
    """The details of the XenAPI.Failure that fn(*args) raises."""
    try:
        fn(*args)
    except XenAPI.Failure as f:
        return f.details
    return None


# TLS with a self-signed certificate: verification off (the package's own
# ignore_ssl option; xe pins the fingerprint instead, that is the CLI's part).
session = XenAPI.Session(url, ignore_ssl=url.startswith("https"))

details = failure(session.login_with_password, user, password + "x", "1.0", "test")
check("wrong password", details and details[0] == "SESSION_AUTHENTICATION_FAILED", details)

session.login_with_password(user, password, "1.0", "xapi-ha-test")
handle = session.handle
check("login", handle.startswith("OpaqueRef:"), handle)
x = session.xenapi

pools = x.pool.get_all_records()
check("pool.get_all_records", len(pools) == 1, pools)
(pool_ref, pool), = pools.items()
hosts = x.host.get_all_records()
check("host.get_all_records", len(hosts) == 1 and pool["master"] in hosts, (pool, list(hosts)))
host = hosts[pool["master"]]
# The test agent serves TLS too, so its fingerprint is recorded.
check("host fields", host["enabled"] is True and len(host["other_config"].get("tls_fingerprint", "")) == 95, host)
metrics = x.host_metrics.get_record(host["metrics"])
check("host_metrics", int(metrics["memory_total"]) > 0 and metrics["live"] is True, metrics)

vm = x.VM.create({"name_label": "py-vm", "memory_static_max": str(1 << 30)})
check("VM.create", vm.startswith("OpaqueRef:") and vm != "OpaqueRef:NULL", vm)
x.VM.set_ha_restart_priority(vm, "restart")
x.VM.set_order(vm, "3")
rec = x.VM.get_record(vm)
check("read back ha_restart_priority", rec["ha_restart_priority"] == "restart", rec)
# Integers travel as bare text in xapi's XML-RPC: Python sees strings.
check("read back order", rec["order"] == "3", rec["order"])
check("read back name", x.VM.get_name_label(vm) == "py-vm", rec)
check("VM.get_all_records", vm in x.VM.get_all_records())
check("VM.get_by_uuid", x.VM.get_by_uuid(rec["uuid"]) == vm)

bogus = "OpaqueRef:00000000-0000-0000-0000-000000000001"
d = failure(x.VM.get_record, bogus)
check("HANDLE_INVALID", d and d[0] == "HANDLE_INVALID" and bogus in d, d)
d = failure(x.VM.get_by_uuid, "no-such-uuid")
check("UUID_INVALID", d and d[0] == "UUID_INVALID", d)
d = failure(x.VM.no_such_call, vm)
check("MESSAGE_METHOD_UNKNOWN", d and d == ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_call"], d)
d = failure(x.VM.set_order, vm)
check("MESSAGE_PARAMETER_COUNT_MISMATCH", d and d[0] == "MESSAGE_PARAMETER_COUNT_MISMATCH", d)
d = failure(x.VM.set_ha_restart_priority, vm, "sometimes")
check("bad enum value", d and d[0] in ("INVALID_VALUE", "FIELD_TYPE_ERROR"), d)
d = failure(x.VM.set_order, vm, "three")
check("bad int", d and d[0] in ("INVALID_VALUE", "FIELD_TYPE_ERROR"), d)
check("failures changed nothing", x.VM.get_record(vm)["order"] == "3" and x.VM.get_ha_restart_priority(vm) == "restart")

session.xenapi.session.logout()
raw = getattr(session, "VM.get_all")(handle)
check("SESSION_INVALID after logout", raw.get("ErrorDescription") == ["SESSION_INVALID", handle], raw)
print("all checks passed", flush=True)
