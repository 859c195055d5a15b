//! [`Driver`]: the loop body shared by `xhad` and the simulator.

use std::collections::VecDeque;

use xha_core::{Action, Input, Instant, IoFailure, Node, RequestId, StatefileIndex};

use crate::host::Host;
use crate::io::{Completion, Done, Op};

/// A read in flight and when it is reported as timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PendingRead {
    statefile: StatefileIndex,
    request: RequestId,
    deadline: Instant,
}

/// The core and the I/O bookkeeping around it. Every method that feeds the
/// core then performs its actions, in order, until it has nothing more to
/// say (inputs produced while performing them, such as refused I/O, are fed
/// after the batch).
pub struct Driver {
    node: Node,
    reads: Vec<PendingRead>,
    deferred: VecDeque<Input>,
}

impl Driver {
    #[must_use]
    pub fn new(node: Node) -> Driver {
        Driver {
            node,
            reads: Vec::new(),
            deferred: VecDeque::new(),
        }
    }

    /// The core, for queries.
    #[must_use]
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// When to call [`Driver::timers`] next: the core's timer or the
    /// earliest read deadline.
    #[must_use]
    pub fn next_wake(&self) -> Option<Instant> {
        let read = self.reads.iter().map(|r| r.deadline).min();
        [self.node.poll_timeout(), read].into_iter().flatten().min()
    }

    /// Reads in flight (not yet completed nor timed out).
    #[must_use]
    pub fn reads_in_flight(&self) -> usize {
        self.reads.len()
    }

    /// Feed `input` (a heartbeat, a control request) and perform what
    /// follows.
    pub fn handle<H: Host>(&mut self, host: &mut H, input: Input) -> Result<(), H::Stop> {
        self.node.handle(host.now(), input);
        self.drain(host)
    }

    /// Timers are due: reads past their deadline are reported as timed out
    /// (and abandoned), then the core is ticked.
    pub fn timers<H: Host>(&mut self, host: &mut H) -> Result<(), H::Stop> {
        let now = host.now();
        let mut due = Vec::new();
        self.reads.retain(|r| {
            let keep = r.deadline > now;
            if !keep {
                due.push(*r);
            }
            keep
        });
        for r in due {
            host.abandon(r.statefile, r.request);
            self.node.handle(
                now,
                Input::StatefileRead {
                    statefile: r.statefile,
                    request: r.request,
                    result: Err(IoFailure::Timeout),
                },
            );
        }
        self.node.handle(now, Input::Tick);
        self.drain(host)
    }

    /// Whether `c` is a read already reported as timed out (or never
    /// asked for): [`Driver::completion`] ignores it.
    #[must_use]
    pub fn is_late(&self, c: &Completion) -> bool {
        matches!(c.done, Done::Read(_))
            && !self
                .reads
                .iter()
                .any(|r| r.statefile == c.statefile && r.request == c.request)
    }

    /// A statefile operation finished. A late read is ignored; a read's
    /// slots beyond the pool's hosts are dropped.
    pub fn completion<H: Host>(&mut self, host: &mut H, c: Completion) -> Result<(), H::Stop> {
        if self.is_late(&c) {
            return Ok(());
        }
        let Completion {
            statefile,
            request,
            done,
        } = c;
        let failure = IoFailure::Error;
        let input = match done {
            Done::Read(result) => {
                self.reads
                    .retain(|r| !(r.statefile == statefile && r.request == request));
                let hosts = self.node.config().hosts.len();
                Input::StatefileRead {
                    statefile,
                    request,
                    result: result
                        .map(|mut r| {
                            r.slots.truncate(hosts);
                            r
                        })
                        .map_err(failure),
                }
            }
            Done::SlotWritten(result) => Input::SlotWritten {
                statefile,
                request,
                result: result.map_err(failure),
            },
            Done::PoolWritten(result) => Input::PoolWritten {
                statefile,
                request,
                result: result.map_err(failure),
            },
        };
        self.handle(host, input)
    }

    /// Perform the core's pending actions (after it was built, or after
    /// inputs fed without the driver), feeding back refused I/O.
    pub fn drain<H: Host>(&mut self, host: &mut H) -> Result<(), H::Stop> {
        loop {
            while let Some(action) = self.node.poll_action() {
                self.perform(host, action)?;
            }
            let Some(input) = self.deferred.pop_front() else {
                return Ok(());
            };
            self.node.handle(host.now(), input);
        }
    }

    fn perform<H: Host>(&mut self, host: &mut H, action: Action) -> Result<(), H::Stop> {
        match action {
            Action::SendHeartbeat { slot } => host.send_heartbeat(slot),
            Action::WriteSlot {
                statefile,
                request,
                slot,
                ..
            } => {
                if let Err(e) = host.submit(statefile, request, Op::WriteSlot(slot)) {
                    self.deferred.push_back(Input::SlotWritten {
                        statefile,
                        request,
                        result: Err(IoFailure::Error(e.0)),
                    });
                }
            }
            Action::ReadStatefile {
                statefile,
                request,
                deadline,
            } => match host.submit(statefile, request, Op::ReadAll) {
                Ok(()) => self.reads.push(PendingRead {
                    statefile,
                    request,
                    deadline,
                }),
                Err(e) => self.deferred.push_back(Input::StatefileRead {
                    statefile,
                    request,
                    result: Err(IoFailure::Error(e.0)),
                }),
            },
            Action::WritePool {
                statefile,
                request,
                block,
                ..
            } => {
                if let Err(e) = host.submit(statefile, request, Op::WritePool(block)) {
                    self.deferred.push_back(Input::PoolWritten {
                        statefile,
                        request,
                        result: Err(IoFailure::Error(e.0)),
                    });
                }
            }
            Action::ArmWatchdog { until } => {
                let now = host.now();
                if let Err(e) = host.arm(now, until) {
                    return Err(host.arm_failed(e));
                }
            }
            Action::KickWatchdog { until } => {
                let now = host.now();
                if host.kick(now, until).is_err() {
                    // The core drops its pending actions and fences (when
                    // armed); the host kept the error for its fence record.
                    self.node.handle(now, Input::WatchdogLost);
                }
            }
            Action::DisarmWatchdog => host.disarm(),
            decided @ (Action::Fence { .. }
            | Action::LivesetChanged { .. }
            | Action::MasterChanged { .. }
            | Action::Reply(_)
            | Action::Warning(_)
            | Action::Stopped
            | Action::StatusChanged) => host.decided(&self.node, decided)?,
        }
        Ok(())
    }
}
