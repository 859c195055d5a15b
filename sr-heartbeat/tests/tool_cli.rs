//! The `sr-heartbeat` binary: format, dump (table and JSON), check, demo, and
//! bad input (one line on stderr, exit 2, nothing written).

use std::path::{Path, PathBuf};
use std::process::Command;

use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::{HostSet, STATEFILE_SIZE, Slot, Statefile};
use uuid::Uuid;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn tool(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_sr-heartbeat"))
        .args(args)
        .output()
        .expect("run sr-heartbeat");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn format(path: &Path, pool: Uuid) -> Out {
    tool(&[
        "format-statefile",
        p(path),
        "--pool-uuid",
        &pool.to_string(),
    ])
}

/// Bad input: exit 2, exactly one line on stderr, and the file unchanged.
fn refused(args: &[&str], path: &Path, mention: &str) {
    let before = contents(path);
    let out = tool(args);
    assert_eq!(out.code, 2, "{args:?}: {}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "{args:?}: stderr {:?}",
        out.stderr
    );
    assert!(out.stderr.starts_with("sr-heartbeat: "), "{:?}", out.stderr);
    assert!(
        out.stderr.contains(mention),
        "{args:?}: {:?} lacks {mention:?}",
        out.stderr
    );
    assert_eq!(
        contents(path),
        before,
        "{args:?} changed {}",
        path.display()
    );
}

/// The bytes of a regular file (a FIFO is compared by type only: reading it
/// would block).
fn contents(path: &Path) -> Option<Vec<u8>> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => std::fs::read(path).ok(),
        Ok(_) => Some(Vec::new()),
        Err(_) => None,
    }
}

fn write_slots(path: &Path, slots: &[Slot]) {
    let sf = Statefile::open(BlockDevice::open(path, OpenMode::ReadWrite).expect("open"))
        .expect("statefile");
    for s in slots {
        sf.write_slot(s).expect("write");
    }
}

fn host(index: u16, seq: u64) -> Slot {
    Slot {
        host_uuid: Uuid::from_u128(0x1000 + u128::from(index)),
        host_index: index,
        sequence: seq,
        liveset: HostSet(0b111),
        status: format!("host {index}"),
        ..Slot::default()
    }
}

fn flip(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 0x04;
    f.write_all_at(&b, offset).expect("write");
    f.sync_all().expect("sync");
}

#[test]
fn tool_format_dump_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sf");
    let pool = Uuid::new_v4();
    let out = format(&path, pool);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&pool.to_string()));
    assert_eq!(
        std::fs::metadata(&path).expect("created").len(),
        STATEFILE_SIZE
    );

    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("ok (0 slot(s) in use)"),
        "{}",
        out.stdout
    );

    write_slots(&path, &[host(0, 10), host(1, 20), host(2, 30)]);
    let out = tool(&["dump", p(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("pool:   state init, master -"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&Uuid::from_u128(0x1001).to_string()));
    assert!(
        out.stdout.contains("never written: 61 slot(s): 3-63"),
        "{}",
        out.stdout
    );

    let out = tool(&["dump", "--json", p(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["kind"], "statefile");
    assert_eq!(v["header"]["generation"], pool.to_string());
    assert_eq!(v["header"]["max_hosts"], 64);
    assert_eq!(v["pool"]["state"], "init");
    let slots = v["slots"].as_array().expect("slots");
    assert_eq!(slots.len(), 64);
    assert_eq!(slots[2]["status"], "ok");
    assert_eq!(slots[2]["slot"]["sequence"], 30);
    assert_eq!(slots[2]["slot"]["status"], "host 2");
    assert_eq!(slots[3]["status"], "never_written");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));

    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("ok (3 slot(s) in use)"),
        "{}",
        out.stdout
    );

    // Damage slot 1's sequence and the pool block: check lists both, exit 1;
    // dump still shows everything else.
    flip(&path, 8192 + 4096 + 48);
    flip(&path, 4096 + 40);
    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("slot 1: checksum mismatch"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("pool block: checksum mismatch"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 problem(s)"), "{}", out.stdout);
    let out = tool(&["dump", "--json", p(&path)]);
    assert_eq!(out.code, 0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["slots"][1]["status"], "invalid");
    assert_eq!(v["slots"][0]["status"], "ok");
    assert_eq!(v["slots"][2]["status"], "ok");
    assert_eq!(v["pool"]["ok"], false);

    // A damaged header is a problem too (it is still recognisably ours).
    flip(&path, 20);
    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 1);
    assert!(
        out.stdout.contains("header: header checksum mismatch"),
        "{}",
        out.stdout
    );
}

#[test]
fn tool_format_refuses_what_it_must_not_overwrite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sf");
    assert_eq!(format(&path, Uuid::new_v4()).code, 0);
    let again = Uuid::new_v4().to_string();
    refused(
        &["format-statefile", p(&path), "--pool-uuid", &again],
        &path,
        "holds an HA statefile",
    );
    let out = tool(&[
        "format-statefile",
        p(&path),
        "--pool-uuid",
        &again,
        "--force",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains(&again));

    // An empty file is sized to 4 MiB; a bad --hosts creates nothing.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").expect("empty");
    let out = tool(&[
        "format-statefile",
        p(&empty),
        "--pool-uuid",
        &again,
        "--hosts",
        "3",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&tool(&["dump", "--json", p(&empty)]).stdout).expect("json");
    assert_eq!(v["header"]["max_hosts"], 3);
    let none = dir.path().join("none");
    let out = tool(&[
        "format-statefile",
        p(&none),
        "--pool-uuid",
        &again,
        "--hosts",
        "65",
    ]);
    assert_eq!(
        (out.code, out.stderr.lines().count()),
        (2, 1),
        "{}",
        out.stderr
    );
    assert!(!none.exists());
}

/// One of each kind of bad input, in a fresh directory `dir/sub`.
fn bad_inputs(dir: &Path, sub: &str) -> Vec<(PathBuf, &'static str)> {
    let dir = &dir.join(sub);
    std::fs::create_dir(dir).expect("mkdir");
    let missing = dir.join("missing");
    let small = dir.join("small");
    std::fs::write(&small, vec![7u8; 100_000]).expect("small");
    let unaligned = dir.join("unaligned");
    std::fs::write(&unaligned, vec![0u8; STATEFILE_SIZE as usize + 100]).expect("unaligned");
    let foreign = dir.join("foreign");
    let mut bytes = vec![0u8; STATEFILE_SIZE as usize];
    bytes[..12].copy_from_slice(b"hello world\n");
    std::fs::write(&foreign, bytes).expect("foreign");
    let fifo = dir.join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    vec![
        (missing, "No such file or directory"),
        (small, "too small: need 4194304 bytes, have 100000"),
        (unaligned, "not a multiple of the 4096-byte sector"),
        (foreign, "not an HA statefile or metadata volume (bad magic"),
        (fifo, "is a FIFO"),
    ]
}

#[test]
fn tool_bad_input_one_line_and_nothing_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, mention) in bad_inputs(dir.path(), "a") {
        refused(&["dump", p(&path)], &path, mention);
        refused(&["dump", "--json", p(&path)], &path, mention);
        refused(&["check", p(&path)], &path, mention);
    }
    // format: a missing path is created, so give it a missing directory.
    let pool = Uuid::new_v4().to_string();
    let missing_dir = dir.path().join("no-such-dir").join("sf");
    let out = tool(&["format-statefile", p(&missing_dir), "--pool-uuid", &pool]);
    assert_eq!(
        (out.code, out.stderr.lines().count()),
        (2, 1),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("No such file or directory"),
        "{}",
        out.stderr
    );
    for (path, mention) in bad_inputs(dir.path(), "b").into_iter().skip(1) {
        let mention = if mention.starts_with("not an HA statefile") {
            "refusing to overwrite it without --force"
        } else {
            mention
        };
        refused(
            &["format-statefile", p(&path), "--pool-uuid", &pool],
            &path,
            mention,
        );
    }
}

#[test]
fn tool_demo_runs_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tool(&["demo", "--dir", p(dir.path())]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("all three sequences advanced"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("did not complete within 300ms"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("device busy"), "{}", out.stdout);
    assert!(out.stdout.contains("latency last"), "{}", out.stdout);
    assert!(out.stdout.contains("removed "), "{}", out.stdout);
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "demo left {left:?}");
}

#[test]
fn tool_metadata_volume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta");
    let out = tool(&["format-metadata", p(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::metadata(&path).expect("created").len(), 256 << 20);

    let out = tool(&["dump", p(&path)]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("metadata volume "), "{}", out.stdout);
    assert!(out.stdout.contains("(in force)"), "{}", out.stdout);
    let out = tool(&["dump", "--json", p(&path)]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["kind"], "metadata");
    assert_eq!(v["problems"].as_array().map(Vec::len), Some(0));
    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 0, "{}", out.stdout);

    // Neither format overwrites it without --force.
    refused(
        &["format-metadata", p(&path)],
        &path,
        "holds an HA metadata volume",
    );
    let pool = Uuid::new_v4().to_string();
    refused(
        &["format-statefile", p(&path), "--pool-uuid", &pool],
        &path,
        "holds an HA metadata volume",
    );
    // A statefile is not a metadata volume: refused, not overwritten.
    let sf = dir.path().join("sf");
    assert_eq!(format(&sf, Uuid::new_v4()).code, 0);
    refused(&["format-metadata", p(&sf)], &sf, "too small");

    // Damage the superblock in force: check lists it and exits 1.
    let v: serde_json::Value =
        serde_json::from_str(&tool(&["dump", "--json", p(&path)]).stdout).expect("json");
    let slot = v["in_force"].as_u64().expect("in_force");
    flip(&path, slot * 4096 + 20);
    let out = tool(&["check", p(&path)]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("problem(s)"), "{}", out.stdout);
}

#[path = "io_support/mod.rs"]
mod io_support;

/// The tool on real block devices: format, write, dump and check through a
/// 512-byte and a 4096-byte-sector loop device; a too-small device is
/// refused with one line and left untouched.
#[test]
fn tool_on_loop_devices() {
    if io_support::skip_unless_root("tool on loop devices") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for sector in [512u32, 4096] {
        let img = io_support::image(dir.path(), &format!("img{sector}"), STATEFILE_SIZE);
        let lo = io_support::LoopDevice::attach(&img, sector).expect("losetup");
        let pool = Uuid::new_v4();
        let out = format(&lo.path, pool);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains(&format!("{sector}-byte sectors")),
            "{}",
            out.stdout
        );
        write_slots(&lo.path, &[host(4, 44)]);
        let out = tool(&["dump", "--json", p(&lo.path)]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(v["device_sector_size"], sector);
        assert_eq!(v["header"]["sector_size"], sector);
        assert_eq!(v["slots"][4]["slot"]["sequence"], 44);
        let out = tool(&["check", p(&lo.path)]);
        assert_eq!(out.code, 0, "{}", out.stdout);
    }
    let small = io_support::image(dir.path(), "small", 1 << 20);
    let lo = io_support::LoopDevice::attach(&small, 4096).expect("losetup");
    let pool = Uuid::new_v4().to_string();
    let out = tool(&["format-statefile", p(&lo.path), "--pool-uuid", &pool]);
    assert_eq!(
        (out.code, out.stderr.lines().count()),
        (2, 1),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("too small: need 4194304 bytes, have 1048576"),
        "{}",
        out.stderr
    );
    drop(lo);
    assert!(std::fs::read(&small).expect("read").iter().all(|&b| b == 0));
}

/// A slot status holding `ESC [ 2 J` and a newline is shown escaped by
/// `dump`: raw, it cleared the terminal and forged a line of output.
#[test]
fn tool_dump_escapes_control_characters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sf");
    let pool = Uuid::new_v4();
    assert_eq!(format(&path, pool).code, 0);
    write_slots(
        &path,
        &[Slot {
            status: "evil\u{1b}[2J\n   9  forged row".into(),
            ..host(0, 1)
        }],
    );
    let out = tool(&["dump", p(&path)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    assert!(
        out.stdout.contains("evil\\x1b[2J\\n   9  forged row"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("   9  forged")),
        "{}",
        out.stdout
    );
    // JSON keeps the exact text (escaped by JSON itself).
    let json = tool(&["dump", p(&path), "--json"]);
    assert!(json.stdout.contains("evil\\u001b[2J\\n"), "{}", json.stdout);
}
