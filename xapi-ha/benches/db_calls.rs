//! The pure call path with 1,000 VMs, beside baselines measured in the same
//! run:
//! - `VM.get_all_records` through `api::call` vs cloning the same
//!   ready-made result value (the least any answer must do: build the
//!   records);
//! - `VM.set_name_label` through `api::call`, then applying its change to
//!   the database, vs cloning one VM record;
//! - the same set through `Store::commit` on a file (O_DIRECT | O_DSYNC):
//!   what a durable commit adds.
//!
//! `cargo bench -p xapi_ha --bench db_calls` (figures in
//! docs/pool-database.md).

use criterion::{Criterion, criterion_group, criterion_main};
use sr_heartbeat::metadata::Layout;
use uuid::Uuid;
use xapi_ha::api::bootstrap::{HostInfo, new_pool};
use xapi_ha::api::{self, Caller};
use xapi_ha::db::{Class, Database, Store};
use xapi_ha::value::{DateTime, Key, Ref, Value};

const VMS: usize = 1000;

fn caller(n: u128) -> Caller {
    Caller {
        now: DateTime::from_unix(1_763_000_000),
        seed: Uuid::from_u128(n),
        this_host: Ref::NULL,
    }
}

fn pool_with_vms() -> (Database, Vec<Ref>) {
    let mut db = Database::new();
    let info = HostInfo {
        uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e".into(),
        name_label: "h1".into(),
        address: "10.0.0.1".into(),
        hostname: "h1".into(),
        memory_total: 1 << 40,
        memory_overhead: 0,
        vm_drivers: vec!["process".into()],
    };
    let (_, changes) = new_pool(&db, &caller(0), &info);
    let _kept = db.apply(&changes).expect("bootstrap");
    let mut vms = Vec::with_capacity(VMS);
    for i in 0..VMS {
        let rec = Value::Map(vec![
            (
                Key::String("name_label".into()),
                Value::String(format!("vm-{i}")),
            ),
            (Key::String("memory_static_max".into()), Value::Int(1 << 30)),
            (Key::String("ha_restart_priority".into()), "restart".into()),
            (
                Key::String("other_config".into()),
                Value::string_map([("owner", "bench")]),
            ),
        ]);
        let out = api::call(&db, &caller(i as u128 + 1), "VM.create", &[rec]).expect("create");
        let _kept = db.apply(&out.changes).expect("apply");
        vms.push(out.result.as_ref().expect("ref"));
    }
    (db, vms)
}

fn bench(c: &mut Criterion) {
    let (mut db, vms) = pool_with_vms();
    let ready = api::call(&db, &caller(0), "VM.get_all_records", &[])
        .expect("get_all_records")
        .result;
    let mut g = c.benchmark_group("get_all_records_1000_vms");
    g.bench_function("api::call", |b| {
        b.iter(|| api::call(&db, &caller(0), "VM.get_all_records", &[]).expect("call"))
    });
    g.bench_function("baseline: clone the result", |b| b.iter(|| ready.clone()));
    g.finish();

    let one = db.record(Class::Vm, vms[500]).expect("record");
    let target = Value::Ref(vms[500]);
    let mut g = c.benchmark_group("set_name_label_1000_vms");
    let mut n = 0u64;
    g.bench_function("api::call + apply", |b| {
        b.iter(|| {
            n += 1;
            let out = api::call(
                &db,
                &caller(0),
                "VM.set_name_label",
                &[target.clone(), Value::String(format!("n{}", n % 2))],
            )
            .expect("call");
            let _kept = db.apply(&out.changes).expect("apply");
        })
    });
    g.bench_function("baseline: clone one record", |b| b.iter(|| one.clone()));
    g.finish();

    let dir = tempfile::tempdir().expect("tempdir");
    let (mut store, _) =
        Store::open_file(&dir.path().join("pool.db"), Layout::standard(), 0).expect("store");
    let (_, changes) = new_pool(
        store.database(),
        &caller(0),
        &HostInfo {
            uuid: "6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6f".into(),
            name_label: "h".into(),
            address: String::new(),
            hostname: String::new(),
            memory_total: 0,
            memory_overhead: 0,
            vm_drivers: vec![],
        },
    );
    store.commit(&changes).expect("bootstrap commit");
    let out = api::call(
        store.database(),
        &caller(9),
        "VM.create",
        &[Value::Map(vec![])],
    )
    .expect("create");
    store.commit(&out.changes).expect("commit");
    let vm = out.result;
    let mut g = c.benchmark_group("set_name_label_durable");
    g.sample_size(20);
    g.bench_function("api::call + Store::commit (O_DSYNC file)", |b| {
        b.iter(|| {
            n += 1;
            let out = api::call(
                store.database(),
                &caller(0),
                "VM.set_name_label",
                &[vm.clone(), Value::String(format!("n{}", n % 2))],
            )
            .expect("call");
            store.commit(&out.changes).expect("commit")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
