//! The store on a real file (O_DIRECT | O_DSYNC): what is committed is
//! what a reopen finds; refused batches write nothing; compaction keeps the
//! state; a member installs the master's copy durably; corruption is
//! reported, never half used.

use std::os::unix::fs::FileExt;
use std::path::Path;

use sr_heartbeat::metadata::Layout;
use uuid::Uuid;
use xapi_ha::api::bootstrap::{HostInfo, new_pool};
use xapi_ha::api::{self, Caller};
use xapi_ha::db::encode::{decode_snapshot, encode_snapshot};
use xapi_ha::db::{Change, Class, Database, Store, StoreError};
use xapi_ha::value::{DateTime, Key, Ref, Value};

fn caller(n: u128) -> Caller {
    Caller {
        now: DateTime::from_unix(1_763_000_000),
        seed: Uuid::from_u128(n),
        this_host: Ref::NULL,
    }
}

fn info(uuid: &str) -> HostInfo {
    HostInfo {
        uuid: uuid.into(),
        name_label: "h".into(),
        address: "10.0.0.1".into(),
        hostname: "h".into(),
        memory_total: 1 << 34,
        memory_overhead: 1 << 30,
        vm_drivers: vec!["process".into()],
    }
}

fn small() -> Layout {
    Layout::for_volume(2 << 20).expect("layout")
}

fn open(path: &Path) -> Store<sr_heartbeat::io::BlockDevice> {
    Store::open_file(path, small(), 0).expect("open store").0
}

fn call(
    store: &mut Store<sr_heartbeat::io::BlockDevice>,
    n: u128,
    m: &str,
    args: &[Value],
) -> Value {
    let out = api::call(store.database(), &caller(n), m, args).expect(m);
    store.commit(&out.changes).expect("commit");
    out.result
}

#[test]
fn committed_state_survives_reopen_and_compaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pool.db");
    let mut store = open(&path);
    assert_eq!(store.database(), &Database::new());
    let (_, changes) = new_pool(
        store.database(),
        &caller(0),
        &info("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    store.commit(&changes).expect("bootstrap");
    let mut vms = Vec::new();
    // Enough commits to fill the 2 MiB layout's delta area several times.
    for i in 0..300u128 {
        let rec = Value::Map(vec![(
            Key::String("name_label".into()),
            Value::String(format!("vm{i}")),
        )]);
        vms.push(call(&mut store, i + 1, "VM.create", &[rec]));
        if i % 3 == 0 {
            call(
                &mut store,
                1000 + i,
                "VM.add_to_other_config",
                &[vms[0].clone(), Value::String(format!("k{i}")), "v".into()],
            );
        }
        if vms.len() > 20 {
            call(&mut store, 2000 + i, "VM.destroy", &[vms.remove(1)]);
        }
    }
    assert!(
        store.snapshots_written() >= 3,
        "compacted {} times",
        store.snapshots_written()
    );
    let g = store.database().generation();
    let before = store.database().clone();
    // A refused batch: nothing changes, nothing is written.
    let free = store.free_log_bytes();
    let bad = [Change::set(
        Class::Vm,
        Ref::from_uuid(Uuid::from_u128(1)),
        "name_label",
        "x".into(),
    )];
    assert!(matches!(store.commit(&bad), Err(StoreError::Refused(_))));
    assert_eq!(store.commit(&[]).expect("empty batch"), g);
    assert_eq!(store.free_log_bytes(), free);
    assert_eq!(store.database(), &before);
    drop(store);
    let (store, report) = Store::open_file(&path, small(), 0).expect("reopen");
    assert_eq!(store.database(), &before);
    assert_eq!(report.stopped_at, None);
    store.database().check_invariants().expect("invariants");
}

#[test]
fn a_member_installs_the_masters_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut master = open(&dir.path().join("master.db"));
    let (_, changes) = new_pool(
        master.database(),
        &caller(0),
        &info("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    master.commit(&changes).expect("bootstrap");
    call(&mut master, 1, "VM.create", &[Value::Map(vec![])]);
    // What the master pushes, and what the member decodes and installs.
    let copy = encode_snapshot(master.database());
    let member_path = dir.path().join("member.db");
    let mut member = open(&member_path);
    let (_, own) = new_pool(
        member.database(),
        &caller(5),
        &info("7a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    member
        .commit(&own)
        .expect("member's own pool before joining");
    member
        .install(decode_snapshot(&copy).expect("copy decodes"))
        .expect("install");
    assert_eq!(member.database(), master.database());
    drop(member);
    assert_eq!(open(&member_path).database(), master.database());
}

#[test]
fn corruption_is_reported_not_half_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pool.db");
    let mut store = open(&path);
    let (_, changes) = new_pool(
        store.database(),
        &caller(0),
        &info("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    store.commit(&changes).expect("bootstrap");
    store.compact().expect("snapshot");
    drop(store);
    // Flip a byte inside the committed snapshot's data (half 1 after one
    // compaction; its data starts one block after the half's header).
    let layout = small();
    let at = layout.snapshot_offset(1) + 4096 + 40;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open raw");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at).expect("read");
    f.write_all_at(&[b[0] ^ 0x20], at).expect("write");
    f.sync_all().expect("sync");
    match Store::open_file(&path, layout, 0) {
        Err(e) => assert!(e.to_string().contains("snapshot"), "{e}"),
        Ok(_) => panic!("a corrupt snapshot was used"),
    }
}

#[test]
fn on_the_shared_volume_path_an_older_master_epoch_is_refused() {
    use sr_heartbeat::metadata::{MetaError, MetadataVolume, ThreadedIo};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.img");
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(small().volume_bytes).expect("size");
    drop(f);
    // The daemon's path: the deadline-enforcing I/O thread.
    let io = ThreadedIo::open(&path).expect("io thread");
    drop(MetadataVolume::format_with_layout(io, small()).expect("format"));
    let volume = || MetadataVolume::open(ThreadedIo::open(&path).expect("io")).expect("open");
    let (mut master, _) = Store::open(volume(), 3).expect("master under epoch 3");
    let (_, changes) = new_pool(
        master.database(),
        &caller(0),
        &info("6a0b3b2e-8f2e-4d0b-9a57-0c3c2a4b5d6e"),
    );
    master.commit(&changes).expect("commit");
    let committed = master.database().clone();
    drop(master);
    match Store::open(volume(), 2) {
        Err(StoreError::Log(MetaError::StaleEpoch {
            mine: 2,
            on_disk: 3,
        })) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("an older master became the writer"),
    }
    let (newer, _) = Store::open(volume(), 4).expect("a newer master takes over");
    assert_eq!(newer.database(), &committed);
}
