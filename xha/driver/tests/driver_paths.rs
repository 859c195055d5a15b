//! The driver's own paths on a one-host pool over an in-memory statefile:
//! a read past its deadline is abandoned and its late completion ignored,
//! refused I/O is reported back to the core, a failed kick fences an armed
//! node (and only an armed one). The same driver runs in `xhad` and in the
//! simulator; these pin its behaviour without either.

use std::collections::VecDeque;
use std::time::Duration;

use uuid::Uuid;
use xha_core::{
    Action, Config, FenceReason, Input, Instant, Node, PoolBlock, PoolState, RequestId, Slot,
    SlotError, StatefileIndex, StatefileRead, Timeouts,
};
use xha_driver::{
    Clock, Completion, Done, Driver, Host, Network, Op, Refused, Storage, Watchdog, WatchdogFailed,
};

/// A one-host world: a manual clock, a statefile in memory whose
/// completions the test delivers, and a watchdog that can be lost.
struct World {
    now: Instant,
    slot: Option<Slot>,
    pool: PoolBlock,
    /// Completions not yet delivered.
    pending: VecDeque<Completion>,
    /// Reads are held (never completed) while set.
    hang_reads: bool,
    held: Vec<Completion>,
    refuse: bool,
    abandoned: Vec<RequestId>,
    armed: bool,
    watchdog_lost: bool,
    fenced: Option<FenceReason>,
}

impl World {
    fn new() -> World {
        World {
            now: Instant::from_nanos(1_000_000_000),
            slot: None,
            pool: PoolBlock {
                state: PoolState::Init,
                master: None,
                master_epoch: 0,
                update_seq: 0,
            },
            pending: VecDeque::new(),
            hang_reads: false,
            held: Vec::new(),
            refuse: false,
            abandoned: Vec::new(),
            armed: false,
            watchdog_lost: false,
            fenced: None,
        }
    }

    fn read(&self) -> StatefileRead {
        StatefileRead {
            pool: Ok(self.pool.clone()),
            slots: vec![self.slot.clone().ok_or(SlotError::NeverWritten)],
        }
    }
}

impl Clock for World {
    fn now(&self) -> Instant {
        self.now
    }
}

impl Network for World {
    fn send_heartbeat(&mut self, _slot: Slot) {}
}

impl Storage for World {
    fn submit(
        &mut self,
        statefile: StatefileIndex,
        request: RequestId,
        op: Op,
    ) -> Result<(), Refused> {
        if self.refuse {
            return Err(Refused("every worker is stuck".into()));
        }
        let done = match op {
            Op::WriteSlot(slot) => {
                self.slot = Some(slot);
                Done::SlotWritten(Ok(()))
            }
            Op::WritePool(block) => {
                self.pool = block;
                Done::PoolWritten(Ok(()))
            }
            Op::ReadAll => Done::Read(Ok(self.read())),
        };
        let c = Completion {
            statefile,
            request,
            done,
        };
        if self.hang_reads && matches!(c.done, Done::Read(_)) {
            self.held.push(c);
        } else {
            self.pending.push_back(c);
        }
        Ok(())
    }

    fn abandon(&mut self, _statefile: StatefileIndex, request: RequestId) {
        self.abandoned.push(request);
    }
}

impl Watchdog for World {
    fn arm(&mut self, _now: Instant, _until: Instant) -> Result<(), WatchdogFailed> {
        self.armed = true;
        Ok(())
    }
    fn kick(&mut self, _now: Instant, _until: Instant) -> Result<(), WatchdogFailed> {
        if self.watchdog_lost {
            return Err(WatchdogFailed("supervisor gone".into()));
        }
        Ok(())
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Host for World {
    type Stop = FenceReason;
    fn arm_failed(&mut self, e: WatchdogFailed) -> FenceReason {
        panic!("arming failed: {e}")
    }
    fn decided(&mut self, _node: &Node, action: Action) -> Result<(), FenceReason> {
        if let Action::Fence { reason } = action {
            self.fenced = Some(reason);
            return Err(reason);
        }
        Ok(())
    }
}

fn driver(fencing_armed: bool) -> (Driver, World) {
    let world = World::new();
    let config = Config {
        pool_generation: Uuid::from_u128(7),
        hosts: vec![Uuid::from_u128(1)],
        local: 0,
        timeouts: Timeouts::derive_any(Duration::from_secs(10)),
        statefiles: 1,
        seed: 1,
        fencing_armed,
        master_candidate: true,
        master_lease: None,
    };
    let node = Node::new(config, world.now).expect("a valid one-host config");
    let mut d = Driver::new(node);
    let mut world = world;
    d.drain(&mut world).expect("no fence at start");
    (d, world)
}

/// Runs for `d` of the world's time: delivers completions, wakes the
/// driver when it asks. Stops at a fence.
fn run(d: &mut Driver, w: &mut World, span: Duration) -> Result<(), FenceReason> {
    let end = w.now + span;
    loop {
        while let Some(c) = w.pending.pop_front() {
            d.completion(w, c)?;
        }
        let Some(wake) = d.next_wake() else {
            return Ok(());
        };
        if wake > end {
            w.now = end;
            return Ok(());
        }
        w.now = wake.max(w.now);
        d.timers(w)?;
    }
}

#[test]
fn a_one_host_pool_forms() {
    let (mut d, mut w) = driver(true);
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    assert!(d.node().is_member(), "{}", d.node().status().text);
    assert!(w.armed, "the watchdog is armed on joining");
}

#[test]
fn a_read_past_its_deadline_is_abandoned_and_its_late_completion_ignored() {
    let (mut d, mut w) = driver(false);
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    w.hang_reads = true;
    run(&mut d, &mut w, Duration::from_secs(8)).expect("no fence (disarmed)");
    assert!(!w.abandoned.is_empty(), "a read timed out");
    assert!(!w.held.is_empty());
    let late = w.held.remove(0);
    assert!(w.abandoned.contains(&late.request));
    assert!(d.is_late(&late));
    let before = d.reads_in_flight();
    d.completion(&mut w, late).expect("ignored");
    assert_eq!(d.reads_in_flight(), before, "a late read changes nothing");
}

#[test]
fn refused_io_is_reported_to_the_core_as_failed() {
    let (mut d, mut w) = driver(false);
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    assert!(d.node().has_statefile_access());
    w.refuse = true;
    run(&mut d, &mut w, Duration::from_secs(20)).expect("no fence (disarmed)");
    assert_eq!(d.reads_in_flight(), 0, "a refused read is not waited for");
    assert!(
        !d.node().has_statefile_access(),
        "refused reads count as failed: {}",
        d.node().status().text
    );
    w.refuse = false;
    run(&mut d, &mut w, Duration::from_secs(20)).expect("no fence");
    assert!(d.node().has_statefile_access(), "access is back");
}

#[test]
fn a_failed_kick_fences_an_armed_node_at_once() {
    let (mut d, mut w) = driver(true);
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    assert!(w.armed);
    w.watchdog_lost = true;
    let lost_at = w.now;
    let r = run(&mut d, &mut w, Duration::from_secs(30));
    assert_eq!(r, Err(FenceReason::WatchdogLost));
    let kick = d.node().config().timeouts.kick_interval;
    assert!(w.now.saturating_since(lost_at) <= kick, "at the next kick");
    assert!(d.node().is_fenced());
}

#[test]
fn a_lost_watchdog_is_ignored_when_not_armed() {
    let (mut d, mut w) = driver(false);
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    assert!(!w.armed);
    d.handle(&mut w, Input::WatchdogLost)
        .expect("not armed: no fence");
    run(&mut d, &mut w, Duration::from_secs(30)).expect("no fence");
    assert!(!d.node().is_fenced());
    assert!(d.node().is_member());
}
