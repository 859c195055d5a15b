//! Durability of the pool database: a child process commits a stream of
//! batches to a store on a plain file and prints each acknowledged batch;
//! the parent kills it with SIGKILL at random moments (60 times: after a
//! delay or after a number of acknowledgements, both drawn from a fixed
//! seed), and after every kill reopens the store and checks that
//! - every acknowledged batch is there,
//! - at most the one batch in flight at the kill is there besides them,
//! - the database is exactly the fresh database after whole batches
//!   1..=N (the parent builds that reference with the same batches), so no
//!   batch is ever half applied.
//!
//! The layout is small (2 MiB: 64 one-block deltas per half), so the writer
//! compacts (writes a new snapshot) every few dozen commits and kills land
//! in compactions too. Batches create, change and delete objects
//! (tombstones, derived fields, several changes per batch).
//!
//! The child is this test binary re-executed with an environment variable
//! (`child_committer` below does nothing when the variable is absent).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::metadata::Layout;
use uuid::Uuid;
use xapi_ha::db::{Change, Class, Database, Store};
use xapi_ha::value::{Ref, Value};

const ENV_PATH: &str = "XAPI_HA_DB_DURABILITY_PATH";
const KILLS: usize = 60;
const SEED: u64 = 0x00d0_7ab1_e5ee_d011;
const VOLUME_BYTES: u64 = 2 << 20;
/// The child stops committing after this batch (and waits for its kill):
/// every batch leaves a deletion tombstone in the database, so an unbounded
/// run (a fast machine, or a slow one in the delay-drawn kills) would grow
/// the snapshot past this small layout's snapshot area (about 252 KiB;
/// 900 batches make about 160 KiB).
const MAX_BATCHES: u64 = 900;

fn layout() -> Layout {
    Layout::for_volume(VOLUME_BYTES).expect("layout")
}

fn id(kind: u128, i: u64) -> Uuid {
    Uuid::from_u128((kind << 96) | 0x4000_8000_0000_0000 | u128::from(i))
}

fn host() -> Ref {
    Ref::from_uuid(id(1, 0))
}

fn vm(i: u64) -> Ref {
    Ref::from_uuid(id(2, i))
}

/// Batch `i` (from 1): batch 1 creates the host; every later batch creates
/// VM i resident on the host, renames VM i-1, records `i` in the host's
/// other_config and deletes VM i-8 (halting it first, in the same batch).
fn batch(i: u64) -> Vec<Change> {
    let s = |v: String| Value::String(v);
    if i == 1 {
        return vec![Change::Create {
            class: Class::Host,
            r#ref: host(),
            fields: vec![("uuid".into(), s(id(3, 0).to_string()))],
        }];
    }
    let mut changes = vec![Change::Create {
        class: Class::Vm,
        r#ref: vm(i),
        fields: vec![
            ("uuid".into(), s(id(4, i).to_string())),
            ("name_label".into(), s(format!("vm-{i}"))),
            ("power_state".into(), Value::Enum("Running".into())),
            ("resident_on".into(), Value::Ref(host())),
            ("order".into(), Value::Int(i as i64)),
        ],
    }];
    if i > 2 {
        changes.push(Change::set(
            Class::Vm,
            vm(i - 1),
            "name_label",
            s(format!("vm-{}-renamed", i - 1)),
        ));
    }
    changes.push(Change::set(
        Class::Host,
        host(),
        "other_config",
        Value::string_map([("batch", i.to_string())]),
    ));
    if i > 9 {
        changes.push(Change::Modify {
            class: Class::Vm,
            r#ref: vm(i - 8),
            fields: vec![
                ("power_state".into(), Value::Enum("Halted".into())),
                ("resident_on".into(), Value::Ref(Ref::NULL)),
            ],
        });
        changes.push(Change::Delete {
            class: Class::Vm,
            r#ref: vm(i - 8),
        });
    }
    changes
}

/// How many batches the database holds, read from the database itself.
fn batches_in(db: &Database) -> u64 {
    let Some(other) = db.field(Class::Host, host(), "other_config") else {
        return 0;
    };
    match other {
        Value::Map(pairs) if !pairs.is_empty() => pairs[0].1.as_str().unwrap().parse().unwrap(),
        _ => 1,
    }
}

#[test]
fn child_committer() {
    let Ok(path) = std::env::var(ENV_PATH) else {
        return; // Not the child.
    };
    let (mut store, _) = Store::open_file(Path::new(&path), layout(), 0).expect("child open");
    let mut out = std::io::stdout().lock();
    let mut snapshots = 0;
    for i in batches_in(store.database()) + 1..=MAX_BATCHES {
        store.commit(&batch(i)).expect("child commit");
        if store.snapshots_written() != snapshots {
            snapshots = store.snapshots_written();
            writeln!(out, "snapshot").expect("stdout");
        }
        writeln!(out, "ack {i}").expect("stdout");
        out.flush().expect("flush");
    }
    writeln!(out, "done").expect("stdout");
    out.flush().expect("flush");
    loop {
        std::thread::park(); // Until the parent's SIGKILL.
    }
}

/// The child's stdout, line by line, from a reader thread (so that the
/// parent can wait with a deadline).
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pool.db");
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut model = Database::new();
    let mut model_batches = 0u64;
    let mut acked = 0u64;
    let mut snapshots = 0usize;
    let mut in_flight_landed = 0usize;
    for kill in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().expect("current_exe"))
            .args([
                "--exact",
                "child_committer",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(ENV_PATH, &path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        // Half the kills after a random delay (some during start-up and
        // recovery), half right after a random number of further
        // acknowledgements, so that the run makes progress (and compacts)
        // however fast or slow the machine is.
        let lines = lines_of(child.stdout.take().expect("stdout"));
        let mut acked_now = acked;
        let room = MAX_BATCHES - acked;
        let mut on_line = |line: String| {
            // libtest may print "test child_committer ... " before the
            // child's first line.
            let line = line.rsplit(" ... ").next().unwrap_or_default();
            if let Some(n) = line.strip_prefix("ack ") {
                let n: u64 = n.parse().expect("ack number");
                assert_eq!(n, acked_now + 1, "acks are consecutive across restarts");
                acked_now = n;
            } else if line == "snapshot" {
                snapshots += 1;
            }
        };
        if rng.gen_bool(0.5) || room == 0 {
            let delay = if rng.gen_bool(0.3) {
                rng.gen_range(0..15)
            } else {
                rng.gen_range(15..120)
            };
            std::thread::sleep(Duration::from_millis(delay));
        } else {
            let more = rng.gen_range(1..40).min(room);
            let mut seen = 0;
            while seen < more {
                let line = lines
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("kill {kill}: the child stalled: {e}"));
                seen += u64::from(line.contains("ack "));
                on_line(line);
            }
        }
        child.kill().expect("SIGKILL");
        let deadline = Instant::now() + Duration::from_secs(60);
        // The reader ends at end of file, when the killed child is gone.
        for line in lines.iter() {
            on_line(line);
        }
        let status = child.wait().expect("wait");
        assert!(Instant::now() < deadline);
        assert!(
            !status.success(),
            "the child only ends by the kill: {status:?}"
        );

        if !path.exists() {
            assert_eq!(
                acked_now, 0,
                "kill {kill}: acknowledged without a store file"
            );
            continue;
        }
        let (store, report) = Store::open_file(&path, layout(), 0)
            .unwrap_or_else(|e| panic!("kill {kill}: reopen failed: {e}"));
        let db = store.database();
        db.check_invariants().expect("invariants after recovery");
        let n = batches_in(db);
        assert!(
            n >= acked_now,
            "kill {kill}: batch {acked_now} was acknowledged, the store has {n} (report {report:?})"
        );
        assert!(
            n <= acked_now + 1,
            "kill {kill}: {n} batches, only {acked_now} acknowledged and one in flight"
        );
        in_flight_landed += usize::from(n > acked_now);
        while model_batches < n {
            model_batches += 1;
            let _ = model.apply(&batch(model_batches)).expect("model applies");
        }
        assert_eq!(
            *db, model,
            "kill {kill}: the recovered database is not batches 1..={n}"
        );
        acked = n;
        drop(store);
    }
    println!(
        "{KILLS} kills, {acked} batches committed, {snapshots} compactions seen, \
         the in-flight batch had landed at {in_flight_landed} kills"
    );
    assert!(acked > 100, "the child made progress: {acked} batches");
    assert!(
        snapshots > 0,
        "kills must also have hit runs with compactions"
    );
}
