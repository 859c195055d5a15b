//! The field tables, one per class. Names, types and qualifiers follow
//! XenAPI (`../shared/reference/xenapi-fields.txt`); a field with a
//! dedicated XenAPI setter (`VM.set_order`, `pool.set_ha_host_failures_to_tolerate`)
//! is `Rw` here, so the generic setter serves it with the field's `Check`.
//! Our additions are marked `.ours()`.

use super::{
    Access, Check, Class, ClassDef, Default, FieldDef, HA_RESTART_PRIORITIES, STRING_MAP,
    STRING_SET, Ty,
};
use Access::{Create, Derived, Ro, Rw};

const fn f(name: &'static str, ty: Ty, access: Access) -> FieldDef {
    FieldDef {
        name,
        ty,
        access,
        default: Default::Zero,
        check: Check::None,
        ours: false,
    }
}

impl FieldDef {
    const fn or(self, default: Default) -> FieldDef {
        FieldDef { default, ..self }
    }
    const fn check(self, check: Check) -> FieldDef {
        FieldDef { check, ..self }
    }
    const fn ours(self) -> FieldDef {
        FieldDef { ours: true, ..self }
    }
}

const UUID: FieldDef = f("uuid", Ty::String, Ro);
const NAME_LABEL: FieldDef = f("name_label", Ty::String, Rw);
const NAME_DESCRIPTION: FieldDef = f("name_description", Ty::String, Rw);
const OTHER_CONFIG: FieldDef = f("other_config", STRING_MAP, Rw);
const TAGS: FieldDef = f("tags", STRING_SET, Rw);

pub const POWER_STATES: &[&str] = &["Halted", "Paused", "Running", "Suspended"];
pub const ON_NORMAL_EXIT: &[&str] = &["destroy", "restart"];
pub const ON_CRASH: &[&str] = &[
    "destroy",
    "coredump_and_destroy",
    "restart",
    "coredump_and_restart",
    "preserve",
    "rename_restart",
];
pub const DOMAIN_TYPES: &[&str] = &["hvm", "pv", "pv_in_pvh", "pvh", "unspecified"];
pub const VDI_TYPES: &[&str] = &[
    "system",
    "user",
    "ephemeral",
    "suspend",
    "crashdump",
    "ha_statefile",
    "metadata",
    "redo_log",
];
pub const MESSAGE_CLASSES: &[&str] = &[
    "VM",
    "Host",
    "SR",
    "Pool",
    "VMPP",
    "VMSS",
    "PVS_proxy",
    "VDI",
    "Certificate",
];
pub const TASK_STATUS: &[&str] = &["pending", "success", "failure", "cancelling", "cancelled"];

const POOL: &[FieldDef] = &[
    UUID,
    NAME_LABEL,
    NAME_DESCRIPTION,
    f("master", Ty::Ref(Class::Host), Ro),
    f("default_SR", Ty::Ref(Class::Sr), Rw),
    OTHER_CONFIG,
    f("ha_enabled", Ty::Bool, Ro),
    f("ha_configuration", STRING_MAP, Ro),
    f("ha_statefiles", STRING_SET, Ro),
    f("ha_host_failures_to_tolerate", Ty::Int, Rw).check(Check::NonNegative),
    f("ha_plan_exists_for", Ty::Int, Ro),
    f("ha_allow_overcommit", Ty::Bool, Rw),
    f("ha_overcommitted", Ty::Bool, Ro),
    f("ha_cluster_stack", Ty::String, Ro),
    f("ha_reboot_vm_on_internal_shutdown", Ty::Bool, Rw).or(Default::Bool(true)),
    f("redo_log_enabled", Ty::Bool, Ro),
    TAGS,
    // restart engine (area `engine`): `pool.ha_prevent_restarts_for` sets it.
    f("ha_restarts_prevented_until", Ty::DateTime, Ro).ours(),
    // mail: the generation through which messages were looked at for mail
    // (`alerts::queue::enqueue`).
    f("mail_enqueued_through", Ty::Int, Ro).ours(),
    // haenable: what xhad reports, followed through `watch` (docs/ha-enable.md).
    f("ha_generation", Ty::String, Ro).ours(),
    f("ha_master", Ty::Ref(Class::Host), Ro).ours(),
    f("ha_master_epoch", Ty::Int, Ro).ours(),
    f("ha_warnings", STRING_SET, Ro).ours(),
    f("ha_statefile_lost", Ty::Bool, Ro).ours(),
];

const HOST: &[FieldDef] = &[
    UUID,
    NAME_LABEL,
    NAME_DESCRIPTION,
    f("memory_overhead", Ty::Int, Ro),
    f("API_version_major", Ty::Int, Ro).or(Default::Int(2)),
    f("API_version_minor", Ty::Int, Ro).or(Default::Int(21)),
    f("enabled", Ty::Bool, Ro).or(Default::Bool(true)),
    OTHER_CONFIG,
    f(
        "resident_VMs",
        Ty::Set(&Ty::Ref(Class::Vm)),
        Derived(Class::Vm, "resident_on"),
    ),
    f("hostname", Ty::String, Rw),
    f("address", Ty::String, Rw),
    f("metrics", Ty::Ref(Class::HostMetrics), Ro),
    f("ha_statefiles", STRING_SET, Ro),
    f("ha_network_peers", STRING_SET, Ro),
    TAGS,
    f("vm_drivers", STRING_SET, Ro).ours(),
];

const HOST_METRICS: &[FieldDef] = &[
    UUID,
    f("memory_total", Ty::Int, Ro),
    f("memory_free", Ty::Int, Ro),
    f("live", Ty::Bool, Ro),
    f("last_updated", Ty::DateTime, Ro),
    OTHER_CONFIG,
    // haenable: the host's xhad latencies (milliseconds, last measured).
    f("ha_statefile_latency_ms", Ty::Float, Ro).ours(),
    f("ha_heartbeat_latency_ms", Ty::Float, Ro).ours(),
];

const VM: &[FieldDef] = &[
    UUID,
    NAME_LABEL,
    NAME_DESCRIPTION,
    f("power_state", Ty::Enum(POWER_STATES), Create),
    f("user_version", Ty::Int, Rw).or(Default::Int(1)),
    f("is_a_template", Ty::Bool, Rw),
    f("is_default_template", Ty::Bool, Ro),
    f("resident_on", Ty::Ref(Class::Host), Ro),
    f("scheduled_to_be_resident_on", Ty::Ref(Class::Host), Ro),
    f("affinity", Ty::Ref(Class::Host), Rw),
    f("memory_overhead", Ty::Int, Ro),
    f("memory_static_max", Ty::Int, Create)
        .or(Default::Int(256 << 20))
        .check(Check::NonNegative),
    f("memory_dynamic_max", Ty::Int, Create)
        .or(Default::Int(256 << 20))
        .check(Check::NonNegative),
    f("memory_dynamic_min", Ty::Int, Create)
        .or(Default::Int(256 << 20))
        .check(Check::NonNegative),
    f("memory_static_min", Ty::Int, Create)
        .or(Default::Int(256 << 20))
        .check(Check::NonNegative),
    f("VCPUs_params", STRING_MAP, Rw),
    f("VCPUs_max", Ty::Int, Create)
        .or(Default::Int(1))
        .check(Check::NonNegative),
    f("VCPUs_at_startup", Ty::Int, Create)
        .or(Default::Int(1))
        .check(Check::NonNegative),
    f("actions_after_shutdown", Ty::Enum(ON_NORMAL_EXIT), Rw),
    f("actions_after_reboot", Ty::Enum(ON_NORMAL_EXIT), Rw).or(Default::Str("restart")),
    f("actions_after_crash", Ty::Enum(ON_CRASH), Create).or(Default::Str("restart")),
    f("platform", STRING_MAP, Rw),
    OTHER_CONFIG,
    f("domid", Ty::Int, Ro).or(Default::Int(-1)),
    f("is_control_domain", Ty::Bool, Ro),
    f("ha_always_run", Ty::Bool, Rw),
    f("ha_restart_priority", Ty::String, Rw).check(Check::OneOf(HA_RESTART_PRIORITIES)),
    f("is_a_snapshot", Ty::Bool, Ro),
    TAGS,
    f("start_delay", Ty::Int, Rw).check(Check::NonNegative),
    f("shutdown_delay", Ty::Int, Rw).check(Check::NonNegative),
    f("order", Ty::Int, Rw),
    f("domain_type", Ty::Enum(DOMAIN_TYPES), Create).or(Default::Str("unspecified")),
    f("driver", Ty::String, Rw).ours(),
    f("driver_config", STRING_MAP, Rw).ours(),
    // vmlife: the VM's disks (docs/vm-drivers.md, "VM disks").
    f(
        "VBDs",
        Ty::Set(&Ty::Ref(Class::Vbd)),
        Derived(Class::Vbd, "VM"),
    ),
    // restart engine (area `engine`): what HA is doing with the VM.
    f("ha_state", Ty::String, Ro)
        .check(Check::OneOf(crate::ha::state::HA_STATE_VALUES))
        .ours(),
];

const SR: &[FieldDef] = &[
    UUID,
    NAME_LABEL,
    NAME_DESCRIPTION,
    f(
        "VDIs",
        Ty::Set(&Ty::Ref(Class::Vdi)),
        Derived(Class::Vdi, "SR"),
    ),
    f("virtual_allocation", Ty::Int, Ro),
    f("physical_utilisation", Ty::Int, Ro),
    f("physical_size", Ty::Int, Create).check(Check::NonNegative),
    f("type", Ty::String, Create),
    f("content_type", Ty::String, Create),
    f("shared", Ty::Bool, Rw),
    OTHER_CONFIG,
    TAGS,
    f("sm_config", STRING_MAP, Create),
    f("device_config", STRING_MAP, Create).ours(),
];

const VDI: &[FieldDef] = &[
    UUID,
    NAME_LABEL,
    NAME_DESCRIPTION,
    f("SR", Ty::Ref(Class::Sr), Create),
    f("virtual_size", Ty::Int, Create).check(Check::NonNegative),
    f("physical_utilisation", Ty::Int, Ro),
    f("type", Ty::Enum(VDI_TYPES), Create),
    f("sharable", Ty::Bool, Create),
    f("read_only", Ty::Bool, Create),
    OTHER_CONFIG,
    f("location", Ty::String, Ro),
    f("sm_config", STRING_MAP, Create),
    TAGS,
    // vmlife: the VBDs that attach this VDI to VMs.
    f(
        "VBDs",
        Ty::Set(&Ty::Ref(Class::Vbd)),
        Derived(Class::Vbd, "VDI"),
    ),
];

pub const VBD_MODES: &[&str] = &["RO", "RW"];
pub const VBD_TYPES: &[&str] = &["CD", "Disk", "Floppy"];

/// vmlife: a VM's disk: VDI `VDI` attached to `VM` as device `userdevice`.
const VBD: &[FieldDef] = &[
    UUID,
    f("VM", Ty::Ref(Class::Vm), Create),
    f("VDI", Ty::Ref(Class::Vdi), Create),
    f("userdevice", Ty::String, Create),
    f("bootable", Ty::Bool, Rw),
    f("mode", Ty::Enum(VBD_MODES), Create).or(Default::Str("RW")),
    f("type", Ty::Enum(VBD_TYPES), Create).or(Default::Str("Disk")),
    f("empty", Ty::Bool, Create),
    f("currently_attached", Ty::Bool, Ro),
    OTHER_CONFIG,
];

const MESSAGE: &[FieldDef] = &[
    UUID,
    f("name", Ty::String, Ro),
    f("priority", Ty::Int, Ro),
    f("cls", Ty::Enum(MESSAGE_CLASSES), Ro),
    f("obj_uuid", Ty::String, Ro),
    f("timestamp", Ty::DateTime, Ro),
    f("body", Ty::String, Ro),
];

const TASK: &[FieldDef] = &[
    UUID,
    f("name_label", Ty::String, Ro),
    f("name_description", Ty::String, Ro),
    f("created", Ty::DateTime, Ro),
    f("finished", Ty::DateTime, Ro),
    f("status", Ty::Enum(TASK_STATUS), Ro),
    f("resident_on", Ty::Ref(Class::Host), Ro),
    f("progress", Ty::Float, Ro),
    f("type", Ty::String, Ro),
    f("result", Ty::String, Ro),
    f("error_info", STRING_SET, Ro),
    OTHER_CONFIG,
    f("subtask_of", Ty::Ref(Class::Task), Ro),
    f(
        "subtasks",
        Ty::Set(&Ty::Ref(Class::Task)),
        Derived(Class::Task, "subtask_of"),
    ),
];

// mail: one queued (or recently sent) mail; it stands for `count`
// identical messages (`alerts::queue`, docs/alerts.md).
pub const MAIL_STATES: &[&str] = &["queued", "sent"];

const MAIL: &[FieldDef] = &[
    UUID,
    f("name", Ty::String, Ro).ours(),
    f("priority", Ty::Int, Ro).ours(),
    f("cls", Ty::Enum(MESSAGE_CLASSES), Ro).ours(),
    f("obj_uuid", Ty::String, Ro).ours(),
    f("body", Ty::String, Ro).ours(),
    f("message_uuid", Ty::String, Ro).ours(),
    f("count", Ty::Int, Ro).or(Default::Int(1)).ours(),
    f("first", Ty::DateTime, Ro).ours(),
    f("last", Ty::DateTime, Ro).ours(),
    f("state", Ty::Enum(MAIL_STATES), Ro).ours(),
    f("attempts", Ty::Int, Ro).ours(),
    f("next_attempt", Ty::DateTime, Ro).ours(),
    f("sent_at", Ty::DateTime, Ro).ours(),
    f("last_answer", Ty::String, Ro).ours(),
];

/// Indexed by `Class::index`.
pub static CLASSES: [ClassDef; 10] = [
    ClassDef {
        class: Class::Pool,
        name: "pool",
        fields: POOL,
    },
    ClassDef {
        class: Class::Host,
        name: "host",
        fields: HOST,
    },
    ClassDef {
        class: Class::HostMetrics,
        name: "host_metrics",
        fields: HOST_METRICS,
    },
    ClassDef {
        class: Class::Vm,
        name: "VM",
        fields: VM,
    },
    ClassDef {
        class: Class::Sr,
        name: "SR",
        fields: SR,
    },
    ClassDef {
        class: Class::Vdi,
        name: "VDI",
        fields: VDI,
    },
    ClassDef {
        class: Class::Message,
        name: "message",
        fields: MESSAGE,
    },
    ClassDef {
        class: Class::Task,
        name: "task",
        fields: TASK,
    },
    ClassDef {
        class: Class::Vbd,
        name: "VBD",
        fields: VBD,
    },
    ClassDef {
        class: Class::Mail,
        name: "mail",
        fields: MAIL,
    },
];
