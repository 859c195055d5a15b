//! Deadlines: a request against a device that does not answer returns
//! `Timeout` within its deadline plus a margin, the caller goes on, further
//! requests are refused with `Busy` instead of piling up, and the late
//! completion is collected.
//!
//! Two kinds of "does not answer": the I/O thread's fault-injection stall
//! (runs everywhere), and a real hang: an O_DIRECT write to a file on a
//! frozen ext4 filesystem blocks in the kernel until the thaw (root only).

mod io_support;

use std::time::{Duration, Instant};

use sr_heartbeat::io::{AlignedBuf, BlockDevice, IoError, IoOp, IoThread, OpenMode, QUEUE_DEPTH};

/// Generous: the machine running the tests may be loaded.
const MARGIN: Duration = Duration::from_millis(750);

fn file_thread(dir: &std::path::Path) -> IoThread {
    let path = io_support::image(dir, "dev", 1 << 20);
    IoThread::spawn(BlockDevice::open(&path, OpenMode::ReadWrite).expect("open")).expect("spawn")
}

fn wait_idle(t: &IoThread, bound: Duration) {
    let until = Instant::now() + bound;
    while t.latency().in_flight_for.is_some() {
        assert!(
            Instant::now() < until,
            "request still in flight after {bound:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn filled(byte: u8) -> AlignedBuf {
    let mut b = AlignedBuf::new(4096).expect("buf");
    b.fill(byte);
    b
}

#[test]
fn io_stalled_read_times_out_and_caller_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = file_thread(dir.path());
    t.inject_delay(Duration::from_secs(3));
    let deadline = Duration::from_millis(200);
    let start = Instant::now();
    let r = t.read(0, 4096, deadline);
    let took = start.elapsed();
    assert!(
        matches!(r, Err(IoError::Timeout { op: IoOp::Read, offset: 0, deadline: d }) if d == deadline),
        "{r:?}"
    );
    assert!(
        took >= deadline && took < deadline + MARGIN,
        "took {took:?}"
    );
    assert!(r.as_ref().err().is_some_and(IoError::is_timeout));

    // The device is still stuck: refused at once, not queued.
    let start = Instant::now();
    let r = t.read(4096, 4096, Duration::from_secs(10));
    assert!(
        matches!(
            r,
            Err(IoError::Busy {
                op: IoOp::Read,
                offset: 4096,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(start.elapsed() < MARGIN);
    let s = t.latency();
    assert!(s.in_flight_for.is_some(), "{s:?}");
    assert_eq!((s.timeouts, s.busy, s.completed), (1, 1, 0));
    let json = serde_json::to_value(&s).expect("stats serialise");
    assert_eq!(json["timeouts"], 1);

    // The late completion is collected; then the device serves again.
    wait_idle(&t, Duration::from_secs(30));
    let s = t.latency();
    assert_eq!((s.completed, s.late_completions), (1, 1), "{s:?}");
    assert!(s.max.is_some_and(|m| m >= Duration::from_secs(3)), "{s:?}");
    t.read(0, 4096, Duration::from_secs(10))
        .expect("read after recovery");
    assert_eq!(t.latency().completed, 2);
}

#[test]
fn io_expired_queued_write_never_lands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = file_thread(dir.path());
    t.write(0, filled(1), Duration::from_secs(10))
        .expect("write 1");
    t.inject_delay(Duration::from_millis(1500));
    let slow = t
        .submit_read(0, 4096, Duration::from_secs(20))
        .expect("submit slow");
    // Queued behind the slow read; its caller gives up first.
    let stale = t
        .submit_write(0, filled(2), Duration::from_millis(100))
        .expect("submit stale");
    assert!(matches!(
        stale.wait(),
        Err(IoError::Timeout {
            op: IoOp::Write,
            ..
        })
    ));
    let got = slow.wait().expect("slow read completes");
    assert!(got.iter().all(|&b| b == 1));
    wait_idle(&t, Duration::from_secs(30));
    let after = t.read(0, 4096, Duration::from_secs(10)).expect("read");
    assert!(after.iter().all(|&b| b == 1), "the expired write landed");
    assert_eq!(t.latency().expired_unrun, 1);
}

#[test]
fn io_queue_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = file_thread(dir.path());
    t.inject_delay(Duration::from_secs(1));
    let long = Duration::from_secs(30);
    let mut pending = vec![t.submit_read(0, 4096, long).expect("first")];
    let until = Instant::now() + Duration::from_secs(10);
    while t.latency().in_flight_for.is_none() {
        assert!(Instant::now() < until, "worker never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..QUEUE_DEPTH {
        pending.push(
            t.submit_read(0, 4096, long)
                .unwrap_or_else(|e| panic!("queued {i}: {e}")),
        );
    }
    assert!(matches!(
        t.submit_read(0, 4096, long),
        Err(IoError::Busy { .. })
    ));
    for p in pending {
        p.wait().expect("queued requests complete");
    }
    assert_eq!(t.latency().completed, 1 + QUEUE_DEPTH as u64);
}

#[test]
fn io_try_wait_polls_without_blocking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = file_thread(dir.path());
    t.inject_delay(Duration::from_millis(300));
    let mut p = t
        .submit_read(0, 4096, Duration::from_secs(20))
        .expect("submit");
    assert!(p.try_wait().is_none(), "reply before the stall ended");
    let until = Instant::now() + Duration::from_secs(20);
    let r = loop {
        if let Some(r) = p.try_wait() {
            break r;
        }
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(r.expect("read").len(), 4096);
    assert!(p.try_wait().is_none(), "a reply is delivered once");
}

/// A real hang: writes to a frozen filesystem block in the kernel.
#[test]
fn io_frozen_filesystem_write_times_out() {
    if io_support::skip_unless_root("ext4 on a loop device, frozen with fsfreeze") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fs = match io_support::FreezableFs::create(dir.path()) {
        Ok(fs) => fs,
        Err(e) => {
            println!("skipped: cannot build a freezable filesystem here: {e}");
            return;
        }
    };
    let path = fs.mount.join("statefile");
    let f = std::fs::File::create(&path).expect("create");
    f.set_len(1 << 20).expect("size");
    f.sync_all().expect("sync");
    drop(f);
    let t = IoThread::spawn(BlockDevice::open(&path, OpenMode::ReadWrite).expect("open"))
        .expect("spawn");
    // Allocate the block first, so the frozen-time write is a pure overwrite.
    t.write(0, filled(1), Duration::from_secs(30))
        .expect("write before freeze");

    fs.freeze().expect("freeze");
    let deadline = Duration::from_millis(300);
    let start = Instant::now();
    let r = t.write(0, filled(2), deadline);
    let took = start.elapsed();
    assert!(
        matches!(
            r,
            Err(IoError::Timeout {
                op: IoOp::Write,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        took >= deadline && took < deadline + MARGIN,
        "took {took:?}"
    );
    // The caller goes on: the next request is refused at once.
    let start = Instant::now();
    assert!(matches!(
        t.read(0, 4096, deadline),
        Err(IoError::Busy { .. })
    ));
    assert!(start.elapsed() < MARGIN);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        t.latency().in_flight_for.is_some(),
        "write finished while frozen"
    );

    fs.thaw().expect("thaw");
    wait_idle(&t, Duration::from_secs(30));
    let s = t.latency();
    assert_eq!(s.late_completions, 1, "{s:?}");
    // The late write landed (a timed-out write's outcome is unknown, not "not written").
    let got = t
        .read(0, 4096, Duration::from_secs(30))
        .expect("read after thaw");
    assert!(got.iter().all(|&b| b == 2));
}
