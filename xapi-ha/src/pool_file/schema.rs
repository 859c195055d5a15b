//! The schema walker: turns the format-neutral tree into a `Pool`, checking
//! every key, type, range and cross-reference on the way.

use std::collections::HashMap;

use uuid::Uuid;

use super::error::{Entry, PoolFileError};
use super::memory::{MemoryError, parse_memory};
use super::node::{Node, shorten};
use super::suggest::nearest;
use super::{host_uuid_from_name, vm_uuid_from_name};
use crate::model::{Host, Pool, PowerState, RestartPriority, Vm};

const TOP_KEYS: &[&str] = &["pool", "host", "vm"];
const POOL_KEYS: &[&str] = &["ha-host-failures-to-tolerate"];
const HOST_KEYS: &[&str] = &[
    "name",
    "uuid",
    "memory-total",
    "memory-overhead",
    "enabled",
    "live",
];
const VM_KEYS: &[&str] = &[
    "name",
    "uuid",
    "memory",
    "memory-overhead",
    "ha-restart-priority",
    "order",
    "power-state",
    "resident-on",
    "agile",
    "affinity",
];

type Result<T> = std::result::Result<T, PoolFileError>;

/// Builds a pool from a parsed document.
pub(crate) fn pool_from_node(document: &Node) -> Result<Pool> {
    let Node::Table(items) = document else {
        return Err(PoolFileError::WrongType {
            entry: Entry::TopLevel,
            key: "the document",
            expected: "a table (a JSON object)",
            got: document.describe(),
        });
    };
    let top = Fields::new(Entry::TopLevel, items, TOP_KEYS)?;
    let target = match top.get("pool") {
        None => 0,
        Some(Node::Table(pool)) => pool_section(pool)?,
        Some(other) => return Err(top.wrong_type("pool", "a table", other)),
    };
    let host_nodes = top.array_of_tables("host")?;
    if host_nodes.is_empty() {
        return Err(PoolFileError::NoHosts);
    }
    let vm_nodes = top.array_of_tables("vm")?;

    let hosts = host_nodes
        .iter()
        .enumerate()
        .map(|(i, items)| host_entry(i + 1, items))
        .collect::<Result<Vec<_>>>()?;
    check_unique_names("host", hosts.iter().map(|h| h.host.name.as_str()))?;
    let raw_vms = vm_nodes
        .iter()
        .enumerate()
        .map(|(i, items)| vm_entry(i + 1, items))
        .collect::<Result<Vec<_>>>()?;
    check_unique_names("vm", raw_vms.iter().map(|v| v.name.as_str()))?;
    check_unique_uuids(
        hosts
            .iter()
            .map(|h| (h.host.uuid, &h.entry))
            .chain(raw_vms.iter().map(|v| (v.uuid, &v.entry))),
    )?;

    let resolver = HostResolver::new(&hosts);
    let vms = raw_vms
        .into_iter()
        .map(|raw| raw.resolve(&resolver))
        .collect::<Result<Vec<_>>>()?;
    check_capacity(&hosts, &vms)?;
    Ok(Pool {
        ha_host_failures_to_tolerate: target,
        hosts: hosts.into_iter().map(|h| h.host).collect(),
        vms,
    })
}

fn pool_section(items: &[(String, Node)]) -> Result<u32> {
    let fields = Fields::new(Entry::Pool, items, POOL_KEYS)?;
    let key = "ha-host-failures-to-tolerate";
    match fields.integer(key)? {
        None => Ok(0),
        Some(n) => u32::try_from(n).map_err(|_| PoolFileError::OutOfRange {
            entry: Entry::Pool,
            key,
            expected: "a non-negative integer below 2^32",
            got: n.to_string(),
        }),
    }
}

struct ParsedHost {
    entry: Entry,
    host: Host,
}

fn host_entry(index: usize, items: &[(String, Node)]) -> Result<ParsedHost> {
    let entry = Entry::Host {
        index,
        name: usable_name(items),
    };
    let fields = Fields::new(entry.clone(), items, HOST_KEYS)?;
    let name = fields.name()?;
    let uuid = fields
        .uuid("uuid")?
        .unwrap_or_else(|| host_uuid_from_name(&name));
    let memory_total = fields.required_memory("memory-total")?;
    if memory_total == 0 {
        return Err(fields.out_of_range("memory-total", "greater than 0", "0"));
    }
    let memory_overhead = fields.memory("memory-overhead")?.unwrap_or(0);
    if memory_overhead > memory_total {
        return Err(PoolFileError::OverheadExceedsTotal {
            entry,
            overhead: memory_overhead,
            total: memory_total,
        });
    }
    let enabled = fields.bool("enabled")?.unwrap_or(true);
    let live = fields.bool("live")?.unwrap_or(true);
    Ok(ParsedHost {
        entry,
        host: Host {
            uuid,
            name,
            memory_total,
            memory_overhead,
            enabled,
            live,
        },
    })
}

/// A VM whose host references are still names or UUIDs as written.
struct RawVm {
    entry: Entry,
    uuid: Uuid,
    name: String,
    memory: u64,
    memory_overhead: u64,
    priority: RestartPriority,
    order: i64,
    power_state: Option<PowerState>,
    resident_on: Option<String>,
    agile: bool,
    affinity: Option<String>,
}

fn vm_entry(index: usize, items: &[(String, Node)]) -> Result<RawVm> {
    let entry = Entry::Vm {
        index,
        name: usable_name(items),
    };
    let fields = Fields::new(entry.clone(), items, VM_KEYS)?;
    let name = fields.name()?;
    let uuid = fields
        .uuid("uuid")?
        .unwrap_or_else(|| vm_uuid_from_name(&name));
    let memory = fields.required_memory("memory")?;
    if memory == 0 {
        return Err(fields.out_of_range("memory", "greater than 0", "0"));
    }
    let memory_overhead = fields.memory("memory-overhead")?.unwrap_or(0);
    let priority = match fields.get("ha-restart-priority") {
        None => RestartPriority::Unprotected,
        Some(Node::String(s)) if s == "restart" => RestartPriority::Restart,
        Some(Node::String(s)) if s == "best-effort" => RestartPriority::BestEffort,
        Some(Node::String(s)) if s.is_empty() => RestartPriority::Unprotected,
        Some(other) => {
            return Err(PoolFileError::InvalidPriority {
                entry,
                got: other.describe(),
            });
        }
    };
    let order = match fields.integer("order")? {
        None => 0,
        Some(n) => i64::try_from(n)
            .map_err(|_| fields.out_of_range("order", "a 64-bit integer", &n.to_string()))?,
    };
    let power_state = match fields.get("power-state") {
        None => None,
        Some(Node::String(s)) if s == "running" => Some(PowerState::Running),
        Some(Node::String(s)) if s == "halted" => Some(PowerState::Halted),
        Some(other) => {
            return Err(PoolFileError::InvalidPowerState {
                entry,
                got: other.describe(),
            });
        }
    };
    Ok(RawVm {
        uuid,
        name,
        memory,
        memory_overhead,
        priority,
        order,
        power_state,
        resident_on: fields.string("resident-on")?.map(str::to_owned),
        agile: fields.bool("agile")?.unwrap_or(true),
        affinity: fields.string("affinity")?.map(str::to_owned),
        entry,
    })
}

impl RawVm {
    fn resolve(self, hosts: &HostResolver<'_>) -> Result<Vm> {
        let resident_on = self
            .resident_on
            .as_deref()
            .map(|r| hosts.resolve(&self.entry, "resident-on", r))
            .transpose()?;
        let affinity = self
            .affinity
            .as_deref()
            .map(|r| hosts.resolve(&self.entry, "affinity", r))
            .transpose()?;
        // Power state defaults from residency; when both are given they must
        // agree, because a contradiction means the file does not say what
        // the operator thinks it says.
        let power_state = match (self.power_state, &self.resident_on) {
            (Some(PowerState::Running), None) => {
                return Err(PoolFileError::RunningWithoutHost { entry: self.entry });
            }
            (Some(PowerState::Halted), Some(host)) => {
                return Err(PoolFileError::HaltedWithHost {
                    entry: self.entry,
                    host: host.clone(),
                });
            }
            (Some(state), _) => state,
            (None, Some(_)) => PowerState::Running,
            (None, None) => PowerState::Halted,
        };
        Ok(Vm {
            uuid: self.uuid,
            name: self.name,
            memory: self.memory,
            memory_overhead: self.memory_overhead,
            priority: self.priority,
            order: self.order,
            power_state,
            resident_on,
            agile: self.agile,
            affinity,
        })
    }
}

/// Looks hosts up by name or by UUID.
struct HostResolver<'a> {
    by_name: HashMap<&'a str, &'a Host>,
    by_uuid: HashMap<Uuid, &'a Host>,
}

impl<'a> HostResolver<'a> {
    fn new(hosts: &'a [ParsedHost]) -> Self {
        Self {
            by_name: hosts
                .iter()
                .map(|h| (h.host.name.as_str(), &h.host))
                .collect(),
            by_uuid: hosts.iter().map(|h| (h.host.uuid, &h.host)).collect(),
        }
    }

    fn resolve(&self, entry: &Entry, key: &'static str, reference: &str) -> Result<Uuid> {
        let by_name = self.by_name.get(reference);
        let by_uuid = Uuid::parse_str(reference)
            .ok()
            .and_then(|u| self.by_uuid.get(&u));
        match (by_name, by_uuid) {
            (Some(a), Some(b)) if a.uuid != b.uuid => Err(PoolFileError::AmbiguousHost {
                entry: entry.clone(),
                key,
                reference: a.name.clone(),
                by_uuid: b.name.clone(),
            }),
            (Some(host), _) | (None, Some(host)) => Ok(host.uuid),
            (None, None) => Err(PoolFileError::UnknownHost {
                entry: entry.clone(),
                key,
                reference: shorten(reference),
            }),
        }
    }
}

fn check_unique_names<'a>(kind: &'static str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.insert(name, i + 1) {
            return Err(PoolFileError::DuplicateName {
                kind,
                name: name.to_owned(),
                first,
                second: i + 1,
            });
        }
    }
    Ok(())
}

fn check_unique_uuids<'a>(entries: impl Iterator<Item = (Uuid, &'a Entry)>) -> Result<()> {
    let mut seen: HashMap<Uuid, &Entry> = HashMap::new();
    for (uuid, entry) in entries {
        if let Some(first) = seen.insert(uuid, entry) {
            return Err(PoolFileError::DuplicateUuid {
                uuid,
                first: first.clone(),
                second: entry.clone(),
            });
        }
    }
    Ok(())
}

/// Running VMs must fit on their host: a pool where they do not cannot
/// exist, and its free memory would be negative.
fn check_capacity(hosts: &[ParsedHost], vms: &[Vm]) -> Result<()> {
    let mut used: HashMap<Uuid, u128> = HashMap::new();
    for vm in vms {
        if let (PowerState::Running, Some(host)) = (vm.power_state, vm.resident_on) {
            *used.entry(host).or_default() +=
                u128::from(vm.memory) + u128::from(vm.memory_overhead);
        }
    }
    for parsed in hosts {
        let host = &parsed.host;
        let needed = used.get(&host.uuid).copied().unwrap_or(0);
        let available = host.memory_total - host.memory_overhead;
        if needed > u128::from(available) {
            return Err(PoolFileError::HostOverfull {
                entry: parsed.entry.clone(),
                needed,
                available,
            });
        }
    }
    Ok(())
}

/// The entry's name, when it is a non-empty string, to label errors about
/// the entry's other fields.
fn usable_name(items: &[(String, Node)]) -> Option<String> {
    items.iter().find_map(|(k, v)| match v {
        Node::String(s) if k == "name" && !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    })
}

/// One table's entries, checked against the keys it may hold.
struct Fields<'a> {
    entry: Entry,
    items: &'a [(String, Node)],
}

impl<'a> Fields<'a> {
    fn new(
        entry: Entry,
        items: &'a [(String, Node)],
        allowed: &'static [&'static str],
    ) -> Result<Self> {
        for (i, (key, _)) in items.iter().enumerate() {
            if !allowed.contains(&key.as_str()) {
                return Err(PoolFileError::UnknownKey {
                    entry,
                    key: shorten(key),
                    suggestion: nearest(key, allowed),
                    allowed,
                });
            }
            if items[..i].iter().any(|(k, _)| k == key) {
                return Err(PoolFileError::DuplicateKey {
                    entry,
                    key: key.clone(),
                });
            }
        }
        Ok(Self { entry, items })
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn wrong_type(&self, key: &'static str, expected: &'static str, got: &Node) -> PoolFileError {
        PoolFileError::WrongType {
            entry: self.entry.clone(),
            key,
            expected,
            got: got.describe(),
        }
    }

    fn out_of_range(&self, key: &'static str, expected: &'static str, got: &str) -> PoolFileError {
        PoolFileError::OutOfRange {
            entry: self.entry.clone(),
            key,
            expected,
            got: got.to_owned(),
        }
    }

    fn name(&self) -> Result<String> {
        match self.get("name") {
            None => Err(PoolFileError::MissingKey {
                entry: self.entry.clone(),
                key: "name",
            }),
            Some(Node::String(s)) if s.trim().is_empty() => Err(PoolFileError::EmptyName {
                entry: self.entry.clone(),
            }),
            Some(Node::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.wrong_type("name", "a string", other)),
        }
    }

    fn string(&self, key: &'static str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    fn bool(&self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong_type(key, "true or false", other)),
        }
    }

    fn integer(&self, key: &'static str) -> Result<Option<i128>> {
        match self.get(key) {
            None => Ok(None),
            Some(Node::Integer(n)) => Ok(Some(*n)),
            Some(other) => Err(self.wrong_type(key, "an integer", other)),
        }
    }

    fn uuid(&self, key: &'static str) -> Result<Option<Uuid>> {
        match self.string(key)? {
            None => Ok(None),
            Some(text) => Uuid::parse_str(text)
                .map(Some)
                .map_err(|_| PoolFileError::InvalidUuid {
                    entry: self.entry.clone(),
                    key,
                    got: shorten(text),
                }),
        }
    }

    fn required_memory(&self, key: &'static str) -> Result<u64> {
        self.memory(key)?.ok_or_else(|| PoolFileError::MissingKey {
            entry: self.entry.clone(),
            key,
        })
    }

    fn memory(&self, key: &'static str) -> Result<Option<u64>> {
        let invalid = |node: &Node, reason| PoolFileError::InvalidMemory {
            entry: self.entry.clone(),
            key,
            got: node.describe(),
            reason,
        };
        match self.get(key) {
            None => Ok(None),
            Some(node @ Node::Integer(n)) if *n < 0 => Err(invalid(node, MemoryError::Negative)),
            Some(node @ Node::Integer(n)) => u64::try_from(*n)
                .map(Some)
                .map_err(|_| invalid(node, MemoryError::Overflow)),
            Some(node @ Node::String(s)) => parse_memory(s).map(Some).map_err(|e| invalid(node, e)),
            Some(other) => Err(self.wrong_type(
                key,
                "an integer number of bytes or a string with a unit (like \"16GiB\")",
                other,
            )),
        }
    }

    /// An optional array of tables (`[[host]]`); absent means empty.
    fn array_of_tables(&self, key: &'static str) -> Result<Vec<&'a [(String, Node)]>> {
        let expected = "an array of tables";
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Node::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Node::Table(entries) => Ok(entries.as_slice()),
                    other => Err(self.wrong_type(key, expected, other)),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(key, expected, other)),
        }
    }
}
