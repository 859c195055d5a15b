//! One simulated host as the driver sees it: the simulated clock, network,
//! statefile paths and watchdog behind `xha_driver`'s traits. The same
//! driver runs in `xhad` over real sockets, files and watchdogs.

use std::rc::Rc;

use xha::core::{Action, Instant, Node, RequestId, Slot, StatefileIndex};
use xha_driver::{
    Clock, Completion, Done, Host, Network, Op, Refused, Storage, Watchdog, WatchdogFailed,
};

use super::super::checker::Life;
use super::super::storage::{Block, IoKind, IoOp, IoOutcome};
use super::super::trace::Entry;
use super::{Cluster, Event, Pending, Publication, WARNINGS_MAX, Watchdog as SimWatchdog};

/// Host `h` of the cluster, while its driver runs.
pub(super) struct SimEnv<'a> {
    pub(super) c: &'a mut Cluster,
    pub(super) h: usize,
}

impl Clock for SimEnv<'_> {
    fn now(&self) -> Instant {
        Instant(self.c.host_now(self.h))
    }
}

impl Network for SimEnv<'_> {
    fn send_heartbeat(&mut self, slot: Slot) {
        let (c, h) = (&mut *self.c, self.h);
        c.trace.record(
            c.now,
            Some(h),
            Entry::Heartbeat {
                seq: slot.sequence,
                live: slot.liveset.0,
                proposed: slot.proposed.0,
                phase: slot.phase as u8,
                round: slot.fault_round,
            },
        );
        let slot = Rc::new(slot);
        c.hosts[h].packets_sent += 1;
        let sent = c.hosts[h].packets_sent;
        for p in 0..c.hosts.len() {
            if p == h {
                continue;
            }
            let d = c.net.transmit(&mut c.rng, h, p);
            for delay in d.iter() {
                c.queue.push(
                    c.now + delay,
                    Event::Packet {
                        from: h,
                        to: p,
                        sent,
                        slot: Rc::clone(&slot),
                    },
                );
            }
        }
    }
}

impl Storage for SimEnv<'_> {
    fn submit(&mut self, sf: StatefileIndex, request: RequestId, op: Op) -> Result<(), Refused> {
        let (c, h) = (&mut *self.c, self.h);
        let (sf, request) = (sf.0, request.0);
        let kind = match op {
            Op::WriteSlot(slot) => {
                c.trace.record(
                    c.now,
                    Some(h),
                    Entry::Write {
                        sf,
                        request,
                        seq: slot.sequence,
                        live: slot.liveset.0,
                        phase: slot.phase as u8,
                    },
                );
                IoKind::Write {
                    block: Block::Slot(h),
                    bytes: slot.to_bytes(c.generation),
                }
            }
            Op::WritePool(block) => {
                c.trace.record(
                    c.now,
                    Some(h),
                    format!(
                        "write pool sf{sf} req{request} {:?} master {:?} epoch {}",
                        block.state, block.master, block.master_epoch
                    ),
                );
                IoKind::Write {
                    block: Block::Pool,
                    bytes: block.to_bytes(c.generation),
                }
            }
            Op::ReadAll => {
                c.trace.record(c.now, Some(h), Entry::Read { sf, request });
                IoKind::Read
            }
        };
        c.next_op += 1;
        let op = IoOp {
            id: c.next_op,
            request,
            incarnation: c.hosts[h].incarnation,
            kind,
            issued: c.now,
        };
        match c.hosts[h].paths[sf].submit(op, c.now, &mut c.rng) {
            Ok(done) => {
                if let Some((at, op, epoch)) = done {
                    c.queue.push(
                        at,
                        Event::IoDone {
                            host: h,
                            sf,
                            op,
                            epoch,
                        },
                    );
                }
                Ok(())
            }
            Err(op) => {
                c.hosts[h].io.refused += 1;
                c.trace.record(
                    c.now,
                    Some(h),
                    format!("sf{sf} req{} refused: path at capacity", op.request),
                );
                Err(Refused(format!(
                    "statefile {sf}: every worker is stuck; request not started"
                )))
            }
        }
    }

    fn abandon(&mut self, sf: StatefileIndex, request: RequestId) {
        let c = &mut *self.c;
        c.hosts[self.h].io.abandoned += 1;
        c.trace.record(
            c.now,
            Some(self.h),
            format!("read sf{sf} req{request} timed out"),
        );
    }
}

impl Watchdog for SimEnv<'_> {
    fn arm(&mut self, _now: Instant, until: Instant) -> Result<(), WatchdogFailed> {
        if self.c.hosts[self.h].watchdog_lost {
            return Err(WatchdogFailed("the watchdog is gone".into()));
        }
        let c = &mut *self.c;
        c.trace
            .record(c.now, Some(self.h), format!("watchdog armed until {until}"));
        c.set_watchdog(self.h, until);
        Ok(())
    }

    fn kick(&mut self, now: Instant, until: Instant) -> Result<(), WatchdogFailed> {
        let (c, h) = (&mut *self.c, self.h);
        if c.hosts[h].watchdog_lost {
            c.trace.record(c.now, Some(h), "kick failed: watchdog lost");
            return Err(WatchdogFailed("the watchdog is gone".into()));
        }
        // The daemon drops a kick it executes after `until`.
        if now <= until && c.hosts[h].watchdog.is_some() {
            c.set_watchdog(h, until);
        } else {
            c.trace
                .record(c.now, Some(h), "kick dropped (late or unarmed)");
        }
        Ok(())
    }

    fn disarm(&mut self) {
        let c = &mut *self.c;
        c.trace.record(c.now, Some(self.h), "watchdog disarmed");
        c.hosts[self.h].watchdog = None;
    }
}

impl Host for SimEnv<'_> {
    /// The host is gone (fenced, stopped, or its daemon exited).
    type Stop = ();

    fn arm_failed(&mut self, e: WatchdogFailed) {
        // `xhad` exits (status 4) before it counts on the watchdog.
        let c = &mut *self.c;
        c.trace.record(
            c.now,
            Some(self.h),
            format!("arming failed ({e}): the daemon exits"),
        );
        c.kill(self.h, Life::Crashed);
    }

    fn decided(&mut self, _node: &Node, action: Action) -> Result<(), ()> {
        let (c, h) = (&mut *self.c, self.h);
        match action {
            Action::Fence { reason } => {
                c.trace.record(c.now, Some(h), format!("FENCE {reason:?}"));
                c.kill(h, Life::Fenced);
                return Err(());
            }
            Action::LivesetChanged { liveset } => {
                c.trace.record(c.now, Some(h), format!("LIVESET {liveset}"));
                let truth = c.truth();
                c.checker.liveset_published(c.now, h, liveset, &truth);
                let host = &mut c.hosts[h];
                host.published = Some(liveset);
                if liveset.contains(h) {
                    host.member = true;
                }
                c.publications.push(Publication {
                    at: c.now,
                    host: h,
                    incarnation: host.incarnation,
                    liveset,
                });
            }
            Action::MasterChanged { is_master, epoch } => {
                let what = if is_master { "gained" } else { "lost" };
                c.trace
                    .record(c.now, Some(h), format!("MASTER {what} epoch {epoch}"));
            }
            Action::Reply(r) => {
                c.trace.record(c.now, Some(h), format!("reply {r:?}"));
                c.hosts[h].replies.push((c.now, r));
            }
            Action::Warning(w) => {
                c.trace.record(c.now, Some(h), format!("warning {w:?}"));
                let host = &mut c.hosts[h];
                if host.warnings.len() < WARNINGS_MAX {
                    host.warnings.push((c.now, w));
                }
            }
            Action::Stopped => {
                // A clean shutdown: the host powers off after its daemon stopped.
                c.trace.record(c.now, Some(h), "stopped: host shuts down");
                c.kill(h, Life::ShutDown);
                return Err(());
            }
            // The simulator reads the status when it needs it.
            Action::StatusChanged => {}
            other => unreachable!("the driver performs {other:?} itself"),
        }
        Ok(())
    }
}

/// A watchdog that is set fires when the host clock reaches its `until`.
impl Cluster {
    pub(super) fn set_watchdog(&mut self, h: usize, until: Instant) {
        let host = &mut self.hosts[h];
        host.watchdog_seq += 1;
        let seq = host.watchdog_seq;
        host.watchdog = Some(SimWatchdog { seq });
        let at = host.clock.real_time(until.0).max(self.now);
        self.queue.push(at, Event::Watchdog { host: h, seq });
    }
}

impl Cluster {
    /// Request `op` on host `h`'s path to `sf` completes (if the path epoch
    /// is still `epoch`): a write lands what it lands, even for a host that
    /// died; the completion goes to the incarnation that issued it.
    pub(super) fn io_done(&mut self, h: usize, sf: usize, op: u64, epoch: u64) {
        let Some((op, outcome)) = self.hosts[h].paths[sf].complete(op, epoch, &mut self.rng) else {
            return;
        };
        let result = match outcome {
            IoOutcome::Done => Ok(()),
            IoOutcome::Failed => Err("EIO".to_owned()),
            IoOutcome::Torn { .. } => Err("EIO (torn write)".to_owned()),
        };
        let done = match &op.kind {
            IoKind::Read => Done::Read(result.map(|()| self.statefiles[sf].read())),
            IoKind::Write { block, bytes } => {
                let landed = match outcome {
                    IoOutcome::Done => bytes.len(),
                    IoOutcome::Failed => 0,
                    IoOutcome::Torn { landed } => landed,
                };
                if landed > 0 {
                    self.statefiles[sf].land(*block, bytes, landed);
                }
                if landed != bytes.len() || op.incarnation != self.hosts[h].incarnation {
                    self.trace.record(
                        self.now,
                        Some(h),
                        format!(
                            "write sf{sf} req{} (incarnation {}) landed {landed} bytes",
                            op.request, op.incarnation
                        ),
                    );
                }
                match block {
                    Block::Pool => Done::PoolWritten(result),
                    Block::Slot(_) => Done::SlotWritten(result),
                }
            }
        };
        if op.incarnation == self.hosts[h].incarnation && self.hosts[h].life.is_up() {
            let ok = outcome == IoOutcome::Done;
            let request = op.request;
            self.trace
                .record(self.now, Some(h), Entry::Completed { sf, request, ok });
            let completion = Completion {
                statefile: StatefileIndex(sf),
                request: RequestId(request),
                done,
            };
            if self.hosts[h]
                .driver
                .as_ref()
                .is_some_and(|d| d.is_late(&completion))
            {
                self.hosts[h].io.late += 1;
            }
            self.deliver(h, Pending::Completion(completion));
        }
    }
}
