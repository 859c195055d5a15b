//! The storage fault layer: two `faultfs` mounts ("host A" and "host B") of
//! one backing statefile, reached with the same O_DIRECT I/O as the daemon.
//! Faults switched on A must show on A only, a hang must hold writes and let
//! them land when released, and the drop guard must clean up even while A
//! hangs or its server is frozen.
//!
//! Needs root (or fusermount3) and /dev/fuse; prints why and passes otherwise.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ha_tests::faultfs::{FaultFs, Mode, fuse_available};
use sr_heartbeat::io::{BlockDevice, DeadlineIo, IoError, OpenMode};
use sr_heartbeat::statefile::{STATEFILE_SIZE, Slot, SlotError, Statefile, StatefileError};
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_faultfs");
/// Generous bound for anything that should be quick on a loaded machine.
const QUICK: Duration = Duration::from_secs(10);

/// Two mounts of one formatted statefile; fields drop in order, so the
/// mounts go before their directory.
struct Rig {
    a: FaultFs,
    b: FaultFs,
    backing: PathBuf,
    dir: tempfile::TempDir,
}

fn rig(test: &str) -> Option<Rig> {
    if let Err(why) = fuse_available() {
        println!("skipping {test}: {why}");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = dir.path().join("backing");
    let file = std::fs::File::create(&backing).expect("create backing");
    file.set_len(STATEFILE_SIZE).expect("size backing");
    drop(file);
    let dev = BlockDevice::open(&backing, OpenMode::ReadWrite).expect("open backing");
    drop(Statefile::format(dev, Uuid::new_v4(), 64).expect("format"));
    let a = mount(dir.path(), &backing, "a");
    let b = mount(dir.path(), &backing, "b");
    Some(Rig { a, b, backing, dir })
}

fn mount(dir: &Path, backing: &Path, name: &str) -> FaultFs {
    let at = dir.join(name);
    std::fs::create_dir(&at).expect("mount dir");
    FaultFs::mount(Path::new(BIN), backing, &at).expect("faultfs mount")
}

fn open(path: &Path) -> Statefile {
    let dev = BlockDevice::open(path, OpenMode::ReadWrite).expect("open O_DIRECT");
    Statefile::open(dev).expect("open statefile")
}

fn slot(index: u16, sequence: u64) -> Slot {
    Slot {
        host_uuid: Uuid::from_u128(0xfa017 + u128::from(index)),
        host_index: index,
        sequence,
        status: format!("host {index} write {sequence}"),
        ..Slot::default()
    }
}

fn is_eio(e: &StatefileError) -> bool {
    matches!(e, StatefileError::Io(IoError::Io { source, .. }) if source.raw_os_error() == Some(libc::EIO))
}

fn mounted(dir: &Path) -> bool {
    let table = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.to_str().expect("utf-8 temp path");
    table.lines().any(|l| l.split(' ').nth(4) == Some(dir))
}

/// Poll `f` until it returns true, at most `bound`.
fn eventually(bound: Duration, mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + bound;
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn faultfs_write_through_one_mount_is_read_through_the_other() {
    let Some(rig) = rig("faultfs_write_through_one_mount_is_read_through_the_other") else {
        return;
    };
    let (sa, sb) = (open(rig.a.path()), open(rig.b.path()));
    for seq in 1..=50 {
        // Alternate the writer: every write is visible through the other
        // mount at once, and in the backing file.
        let (writer, reader) = if seq % 2 == 0 { (&sa, &sb) } else { (&sb, &sa) };
        writer.write_slot(&slot(0, seq)).expect("write");
        assert_eq!(reader.read_slot(0).expect("read"), Ok(slot(0, seq)));
    }
    let direct = open(&rig.backing);
    assert_eq!(direct.read_slot(0).expect("read backing"), Ok(slot(0, 50)));
    let stats = rig.a.stats().expect("stats");
    assert_eq!((stats.mode, stats.errors, stats.held), (Mode::Ok, 0, 0));
    assert!(stats.reads >= 25 && stats.writes >= 25, "{stats:?}");
}

#[test]
fn faultfs_error_fails_one_host_only() {
    let Some(rig) = rig("faultfs_error_fails_one_host_only") else {
        return;
    };
    let (sa, sb) = (open(rig.a.path()), open(rig.b.path()));
    sa.write_slot(&slot(0, 1)).expect("write before the fault");

    rig.a.set_mode(Mode::Error).expect("mode error");
    let write = sa
        .write_slot(&slot(0, 2))
        .expect_err("write through A fails");
    assert!(is_eio(&write), "write: {write}");
    let read = sa.read_all().expect_err("read through A fails");
    assert!(is_eio(&read), "read: {read}");
    sb.write_slot(&slot(1, 1)).expect("B writes");
    assert_eq!(
        sb.read_slot(0).expect("B reads"),
        Ok(slot(0, 1)),
        "failed write landed"
    );
    assert_eq!(sb.read_slot(1).expect("B reads"), Ok(slot(1, 1)));
    let stats = rig.a.stats().expect("stats");
    assert_eq!((stats.mode, stats.errors), (Mode::Error, 2), "{stats:?}");

    rig.a.set_mode(Mode::Ok).expect("mode ok");
    assert_eq!(sa.read_slot(1).expect("A reads again"), Ok(slot(1, 1)));
    assert_eq!(rig.b.stats().expect("stats").errors, 0);
}

#[test]
fn faultfs_hang_holds_a_write_until_released() {
    let Some(rig) = rig("faultfs_hang_holds_a_write_until_released") else {
        return;
    };
    let deadline = Duration::from_millis(500);
    let dev = BlockDevice::open(rig.a.path(), OpenMode::ReadWrite).expect("open A");
    let sa = Statefile::open(DeadlineIo::spawn(dev, deadline).expect("io thread")).expect("sf A");
    let sb = open(rig.b.path());

    rig.a.set_mode(Mode::Hang).expect("mode hang");
    let started = Instant::now();
    let err = sa
        .write_slot(&slot(2, 7))
        .expect_err("held write times out");
    let waited = started.elapsed();
    assert!(
        matches!(&err, StatefileError::Io(e) if e.is_timeout()),
        "{err}"
    );
    assert!(
        waited >= deadline && waited < QUICK,
        "timed out after {waited:?}"
    );
    assert!(eventually(QUICK, || rig
        .a
        .stats()
        .is_ok_and(|s| s.held == 1)));

    // B is unaffected and does not see the held write.
    assert_eq!(
        sb.read_slot(2).expect("B reads"),
        Err(SlotError::NeverWritten)
    );
    sb.write_slot(&slot(3, 1)).expect("B writes");
    assert_eq!(sb.read_slot(3).expect("B reads"), Ok(slot(3, 1)));

    // Released, the held write lands, late for its caller.
    rig.a.set_mode(Mode::Ok).expect("mode ok");
    assert!(
        eventually(QUICK, || sb.read_slot(2).ok() == Some(Ok(slot(2, 7)))),
        "the held write never landed"
    );
    let io = sa.device().thread();
    assert!(eventually(QUICK, || io.latency().late_completions == 1));
    assert_eq!(rig.a.stats().expect("stats").held, 0);
    println!("held write timed out after {waited:?} and landed once released");
}

#[test]
fn faultfs_delay_slows_one_host_only() {
    let Some(rig) = rig("faultfs_delay_slows_one_host_only") else {
        return;
    };
    let (sa, sb) = (open(rig.a.path()), open(rig.b.path()));
    let delay = Duration::from_millis(300);
    rig.a.set_mode(Mode::Delay(delay)).expect("mode delay");
    let started = Instant::now();
    sa.write_slot(&slot(4, 1)).expect("delayed write");
    let write = started.elapsed();
    let started = Instant::now();
    assert_eq!(sa.read_slot(4).expect("delayed read"), Ok(slot(4, 1)));
    let read = started.elapsed();
    let reads = rig.a.stats().expect("stats").reads;
    let started = Instant::now();
    sa.read_all().expect("delayed read_all");
    let read_all = started.elapsed();
    // 65 blocks in one I/O are one FUSE request (max_pages negotiated).
    assert_eq!(rig.a.stats().expect("stats").reads, reads + 1);
    println!("through A with delay 300: write {write:?}, read {read:?}, read_all {read_all:?}");
    for took in [write, read, read_all] {
        assert!(took >= delay && took < delay + QUICK, "took {took:?}");
    }

    // While a request waits on A, B, A's attributes and A's control socket
    // all answer: the delay sleeps on no shared thread.
    let long = Duration::from_secs(3);
    rig.a.set_mode(Mode::Delay(long)).expect("mode delay 3000");
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let res = sa.write_slot(&slot(4, 2));
        let _ = done.send((res.map_err(|e| e.to_string()), started.elapsed()));
    });
    assert!(eventually(QUICK, || rig
        .a
        .stats()
        .is_ok_and(|s| s.delayed == 1)));
    let started = Instant::now();
    sb.write_slot(&slot(5, 1)).expect("B writes");
    assert_eq!(sb.read_slot(5).expect("B reads"), Ok(slot(5, 1)));
    std::fs::metadata(rig.a.path()).expect("stat through A");
    let quick = started.elapsed();
    let stats = rig.a.stats().expect("stats");
    assert_eq!(
        stats.delayed, 1,
        "B and stat finished while A's write waited"
    );
    println!("through B and stat of A while A's write waits: {quick:?}");

    let (res, took) = finished.recv_timeout(long + QUICK).expect("A's write ends");
    res.expect("A's delayed write");
    assert!(took >= long, "A's write took {took:?}");
    assert_eq!(sb.read_slot(4).expect("B reads"), Ok(slot(4, 2)));
}

/// Drop `fs` (timed) and check the mount and the process are gone.
fn drop_and_check(fs: FaultFs) -> Duration {
    let (dir, pid) = (fs.dir().to_owned(), fs.pid());
    assert!(mounted(&dir));
    let started = Instant::now();
    drop(fs);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "drop took {took:?}");
    assert!(!mounted(&dir), "{} still mounted", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "faultfs {pid} left"
    );
    took
}

/// A read through `sf` in another thread; its result arrives later.
fn blocked_read(sf: Statefile) -> mpsc::Receiver<Result<(), String>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sf.read_all().map(drop).map_err(|e| e.to_string()));
    });
    rx
}

#[test]
fn faultfs_drop_cleans_up_while_hung() {
    let Some(rig) = rig("faultfs_drop_cleans_up_while_hung") else {
        return;
    };
    let Rig { a, b, dir, .. } = rig;
    let (sa, sb) = (open(a.path()), open(b.path()));
    a.set_mode(Mode::Hang).expect("mode hang");
    let reader = blocked_read(sa);
    assert!(eventually(QUICK, || a.stats().is_ok_and(|s| s.held == 1)));
    let took = drop_and_check(a);
    let res = reader.recv_timeout(QUICK).expect("held read ends");
    // The guard released the held read before stopping the server.
    assert_eq!(res, Ok(()), "held read");
    println!("hung mount dropped in {took:?}; the held read was answered");

    // A frozen server (SIGSTOP) answers neither requests nor its control
    // socket: drop aborts the connection and kills it.
    let pid = nix::unistd::Pid::from_raw(b.pid() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).expect("SIGSTOP");
    let reader = blocked_read(sb);
    std::thread::sleep(Duration::from_millis(200));
    let took = drop_and_check(b);
    let res = reader.recv_timeout(QUICK).expect("stuck read ends");
    assert!(res.is_err(), "a read on a killed server failed: {res:?}");
    println!("frozen mount dropped in {took:?}; the stuck read ended with {res:?}");
    drop(dir);
}

#[test]
fn faultfs_abort_fails_one_host_and_drop_still_unmounts() {
    let Some(rig) = rig("faultfs_abort_fails_one_host_and_drop_still_unmounts") else {
        return;
    };
    let Rig { a, b, dir, .. } = rig;
    let (sa, sb) = (open(a.path()), open(b.path()));
    let later = open(a.path());
    a.set_mode(Mode::Hang).expect("mode hang");
    let reader = blocked_read(sa);
    assert!(eventually(QUICK, || a.stats().is_ok_and(|s| s.held == 1)));
    a.abort().expect("abort");
    let res = reader.recv_timeout(QUICK).expect("held read ends");
    assert!(res.is_err(), "held read after abort: {res:?}");
    let res = later.read_all().map(drop);
    assert!(res.is_err(), "read after abort: {res:?}");
    sb.write_slot(&slot(6, 1)).expect("B writes");
    assert_eq!(sb.read_slot(6).expect("B reads"), Ok(slot(6, 1)));
    drop_and_check(a);
    drop(b);
    drop(dir);
}
