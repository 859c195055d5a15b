//! The deadlock `agent::lock_off_worker` prevents, reproduced on a
//! runtime with one worker: a blocking thread holds the lock and waits for
//! a task it spawned; an async task then wants the lock on the only
//! worker. With a plain lock the worker blocks, the spawned task never
//! runs and nothing moves again; with `lock_off_worker` the worker's queue
//! moves to another thread and both finish.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::agent::lock_off_worker;

/// Runs the scenario; whether both sides finished within `wait` (they
/// finish in milliseconds or never: `wait` only ends the test).
fn scenario(wait: Duration, locker: fn(&Mutex<u32>) -> MutexGuard<'_, u32>) -> bool {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let m = Arc::new(Mutex::new(0u32));
    let (held_tx, held_rx) = tokio::sync::oneshot::channel::<()>();
    let (locking_tx, locking_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();

    // The holder: a blocking thread that keeps the lock while it waits
    // for a task on the runtime (as pool.join waits for its login).
    let holder = {
        let m = Arc::clone(&m);
        let done = done_tx.clone();
        let handle = rt.handle().clone();
        rt.spawn_blocking(move || {
            let mut g = lock_off_worker(&m);
            let _ = held_tx.send(());
            // The locker is about to lock; give it time to block there.
            let _ = locking_rx.recv();
            std::thread::sleep(Duration::from_millis(200));
            let n = handle.block_on(async { tokio::spawn(async { 1 }).await.unwrap_or(0) });
            *g += n;
            drop(g);
            let _ = done.send("holder");
        })
    };
    // The locker: an async task on the only worker.
    {
        let m = Arc::clone(&m);
        rt.spawn(async move {
            let _ = held_rx.await;
            let _ = locking_tx.send(());
            *locker(&m) += 1;
            let _ = done_tx.send("locker");
        });
    }
    let mut finished = Vec::new();
    while finished.len() < 2 {
        match done_rx.recv_timeout(wait) {
            Ok(who) => finished.push(who),
            Err(_) => break,
        }
    }
    drop(holder);
    // A deadlocked runtime cannot be shut down cleanly; leak it then.
    if finished.len() == 2 {
        rt.shutdown_timeout(Duration::from_secs(5));
        assert_eq!(
            *m.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
            2
        );
        true
    } else {
        std::mem::forget(rt);
        false
    }
}

#[test]
fn a_contended_lock_on_the_only_worker_does_not_stall_the_holders_task() {
    assert!(
        scenario(Duration::from_secs(30), lock_off_worker),
        "the holder's task never ran: the worker blocked on the lock"
    );
}

/// The same scenario with a plain lock: it deadlocks (the reason for
/// `lock_off_worker`, and proof that the scenario above reproduces the
/// hazard). The stuck runtime's two threads are leaked; they end with the
/// test process.
#[test]
fn a_plain_lock_on_the_only_worker_deadlocks() {
    fn plain(m: &Mutex<u32>) -> MutexGuard<'_, u32> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    assert!(!scenario(Duration::from_secs(5), plain), "no deadlock");
}
