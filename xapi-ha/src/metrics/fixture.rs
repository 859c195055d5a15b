//! A small pool database for the metrics and status page unit tests, made
//! through the API calls as the server makes it.

use uuid::Uuid;

use crate::api::bootstrap::{HostInfo, add_host, new_pool};
use crate::api::{Caller, call};
use crate::db::{Change, Class, Database};
use crate::ha::view::pool_ref;
use crate::value::{DateTime, Key, Ref, Value};

const GIB: i64 = 1 << 30;

/// The pool and its hosts.
pub struct Fixture {
    pub db: Database,
    pub hosts: Vec<Ref>,
    n: u128,
}

fn caller(n: u128, host: Ref) -> Caller {
    Caller {
        now: DateTime::from_unix(1_742_357_784 + i64::try_from(n).unwrap_or(0)),
        seed: Uuid::from_u128(n),
        this_host: host,
    }
}

/// The UUID of host `i`.
pub fn host_uuid(i: usize) -> String {
    Uuid::from_u128(0x1000 + i as u128).hyphenated().to_string()
}

fn info(i: usize) -> HostInfo {
    HostInfo {
        uuid: host_uuid(i),
        name_label: format!("h{i}"),
        address: format!("10.0.0.{i}"),
        hostname: format!("h{i}"),
        memory_total: 16 * GIB,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    }
}

impl Fixture {
    /// A pool of `hosts` hosts, HA on with target `ntol`.
    pub fn new(hosts: usize, ntol: i64) -> Fixture {
        let mut db = Database::new();
        let (h0, changes) = new_pool(&db, &caller(0, Ref::NULL), &info(0));
        let _ = db.apply(&changes).expect("pool");
        let mut refs = vec![h0];
        for i in 1..hosts {
            let (h, changes) = add_host(&db, &caller(i as u128, Ref::NULL), &info(i));
            let _ = db.apply(&changes).expect("host");
            refs.push(h);
        }
        let pool = pool_ref(&db).expect("a pool");
        let _ = db
            .apply(&[Change::Modify {
                class: Class::Pool,
                r#ref: pool,
                fields: vec![
                    ("ha_enabled".into(), Value::Bool(true)),
                    ("ha_host_failures_to_tolerate".into(), Value::Int(ntol)),
                    ("ha_plan_exists_for".into(), Value::Int(ntol)),
                    ("ha_master_epoch".into(), Value::Int(3)),
                ],
            }])
            .expect("pool fields");
        Fixture {
            db,
            hosts: refs,
            n: 100,
        }
    }

    /// Runs an API call on the master and applies its changes.
    pub fn call(&mut self, method: &str, args: &[Value]) -> Value {
        self.n += 1;
        let out = call(&self.db, &caller(self.n, self.hosts[0]), method, args).expect(method);
        let _ = self.db.apply(&out.changes).expect("changes apply");
        out.result
    }

    /// A VM of `gib` GiB named `name`, halted.
    pub fn vm(&mut self, name: &str, gib: i64, priority: &str) -> Ref {
        let rec = Value::Map(
            [
                ("name_label", Value::String(name.into())),
                ("memory_static_max", Value::Int(gib * GIB)),
                ("memory_dynamic_max", Value::Int(gib * GIB)),
                ("memory_dynamic_min", Value::Int(gib * GIB)),
                ("memory_static_min", Value::Int(gib * GIB)),
                ("driver", Value::String("process".into())),
                ("ha_restart_priority", Value::String(priority.into())),
            ]
            .into_iter()
            .map(|(k, v)| (Key::String(k.into()), v))
            .collect(),
        );
        self.call("VM.create", &[rec]).as_ref().expect("a VM ref")
    }

    /// Records the VM running on `host`.
    pub fn run(&mut self, vm: Ref, host: Ref) {
        let _ = self
            .db
            .apply(&[Change::Modify {
                class: Class::Vm,
                r#ref: vm,
                fields: vec![
                    ("power_state".into(), Value::Enum("Running".into())),
                    ("resident_on".into(), Value::Ref(host)),
                    ("ha_state".into(), Value::String("started".into())),
                ],
            }])
            .expect("running");
    }

    /// Sets a field of host `i`'s metrics.
    pub fn host_metric(&mut self, i: usize, name: &str, v: Value) {
        let m = self
            .db
            .field(Class::Host, self.hosts[i], "metrics")
            .and_then(|m| m.as_ref())
            .expect("host metrics");
        let _ = self
            .db
            .apply(&[Change::set(Class::HostMetrics, m, name, v)])
            .expect("host metric");
    }

    /// A message about `obj_uuid`.
    pub fn message(&mut self, name: &str, obj_uuid: &str, body: &str) {
        self.call(
            "message.create",
            &[
                Value::String(name.into()),
                Value::Int(1),
                Value::String("Host".into()),
                Value::String(obj_uuid.into()),
                Value::String(body.into()),
            ],
        );
    }
}
