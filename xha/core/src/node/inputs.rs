//! The node's inputs: heartbeats, I/O completions and control requests.

use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, PoolBlock, PoolState, Slot, SlotError};

use super::Node;
use super::io::Observed;
use crate::action::{Action, ControlError, Warning};
use crate::ids::{HostIndex, RequestId, StatefileIndex};
use crate::input::{ControlRequest, IoFailure, StatefileRead};
use crate::timer::Timer;

impl Node {
    /// Record a heartbeat. Returns whether it needs an evaluation at once: a
    /// fence request for this host.
    pub(super) fn on_heartbeat(&mut self, from: usize, slot: Slot) -> bool {
        if from >= self.config.hosts.len()
            || from == self.config.local
            || usize::from(slot.host_index) != from
            || slot.host_uuid != self.config.hosts[from]
        {
            return false;
        }
        let me = self.config.local;
        // In statefile-lost mode rounds advance on every heartbeat, so that
        // a large pool completes its first rounds well within one lease.
        let lost_mode = self.membership.joined() && !self.io.access();
        let urgent = lost_mode || (slot.fence_request && !slot.proposed.contains(me));
        // A reordered or duplicated older packet keeps the newer state (see
        // `peers`): nothing to evaluate.
        let timeout = self.config.timeouts.heartbeat_timeout;
        self.peers.heartbeat(from, slot, self.now, timeout) && urgent
    }

    pub(super) fn on_read(
        &mut self,
        f: usize,
        request: RequestId,
        result: Result<StatefileRead, IoFailure>,
    ) {
        let Some(issued) = self.io.take_read(f, request) else {
            return;
        };
        let latency = self.now.saturating_since(issued);
        let in_time = latency <= self.config.timeouts.io_deadline;
        self.latency_warning(f, latency);
        let read = match result {
            Ok(read) => read,
            Err(_) => {
                self.io.read_failed(f);
                return;
            }
        };
        self.io.read_succeeded(f, issued, self.now, in_time);
        match read.pool {
            Ok(block) => self.lock.pool_read(block),
            Err(SlotError::NeverWritten) => {}
            Err(_) => self.push(Action::Warning(Warning::StatefileCorrupt {
                statefile: StatefileIndex(f),
                host: None,
            })),
        }
        let n = self.config.hosts.len();
        let mut slots = read.slots;
        slots.resize(n, Err(SlotError::NeverWritten));
        for (p, result) in slots.into_iter().enumerate().take(n) {
            self.observe_slot(f, p, result);
        }
        // My own slot was never written (or is unreadable): start at 1.
        self.io.sequence_known();
    }

    /// Record what read `f` found in slot `p`; any change is a lease anchor.
    fn observe_slot(&mut self, f: usize, p: usize, result: Result<Slot, SlotError>) {
        let me = self.config.local;
        let result = result.and_then(|s| {
            if s.host_uuid == self.config.hosts[p] {
                Ok(s)
            } else {
                Err(SlotError::BadField {
                    field: "host_uuid",
                    reason: format!("{} is not host {p}'s uuid", s.host_uuid),
                })
            }
        });
        let identity: Observed = match &result {
            Ok(s) => Ok(s.sequence),
            Err(e) => Err(e.clone()),
        };
        let previous = self.io.observe(f, p, identity.clone());
        let changed = previous.as_ref() != Some(&identity);
        if changed && p != me {
            self.io.anchor(f, p, self.now);
            if identity.is_ok() {
                self.peers.slot_changed(p, self.now);
            }
            if let Err(e) = &identity
                && *e != SlotError::NeverWritten
                && previous.is_some()
            {
                self.push(Action::Warning(Warning::StatefileCorrupt {
                    statefile: StatefileIndex(f),
                    host: Some(HostIndex(p)),
                }));
            }
        }
        let joined = self.membership.joined();
        if p == me && !joined && matches!(&result, Err(e) if *e != SlotError::NeverWritten) {
            // Unreadable (torn?) own slot: assume an earlier member incarnation.
            self.membership.was_member_before();
        }
        let Ok(slot) = result else {
            return;
        };
        if p == me {
            if !joined && !slot.starting {
                // An earlier incarnation of this host was a member.
                self.membership.was_member_before();
            }
            // Never reuse a sequence number, even one written by an earlier
            // incarnation of this host: readers rely on every write changing
            // the slot.
            self.io.own_slot_seen(slot.sequence);
            return;
        }
        self.peers.slot_read(p, slot);
    }

    pub(super) fn on_slot_written(
        &mut self,
        f: usize,
        request: RequestId,
        result: Result<(), IoFailure>,
    ) {
        let deadline = self.config.timeouts.io_deadline;
        let Some(done) = self
            .io
            .write_done(f, request, result.is_ok(), self.now, deadline)
        else {
            return;
        };
        self.latency_warning(f, done.latency);
        if let Some(issued) = done.renew_from {
            self.lease
                .renew_by_write(issued, self.config.timeouts.lease);
        }
        if let Some(ls) = done.persisted {
            self.persisted(ls);
        }
    }

    /// A slot carrying liveset `ls` is on a majority of statefiles.
    fn persisted(&mut self, ls: HostSet) {
        if self.membership.persisted(ls) {
            self.push(Action::LivesetChanged { liveset: ls });
        }
    }

    pub(super) fn on_pool_written(
        &mut self,
        f: usize,
        request: RequestId,
        result: Result<(), IoFailure>,
    ) {
        let Some(issued) = self.io.take_pool_write(f, request) else {
            return;
        };
        let latency = self.now.saturating_since(issued);
        self.latency_warning(f, latency);
        let majority = self.io.majority();
        let Some(block) = self.lock.pool_written(request, result.is_ok(), majority) else {
            return;
        };
        let me_master = block.master == Some(self.config.hosts[self.config.local]);
        if me_master && !self.lock.is_master() && self.is_member() && self.requesting() {
            self.lock.gain();
            self.push(Action::MasterChanged {
                is_master: true,
                epoch: self.lock.master_epoch(),
            });
        }
    }

    pub(super) fn on_control(&mut self, request: ControlRequest) {
        let reply = match request {
            ControlRequest::ProposeMaster(on) => {
                let until = self.config.master_lease.map(|lease| self.now + lease);
                self.lock.propose(on, until);
                Ok(())
            }
            ControlRequest::DisarmFencing => {
                self.armed = false;
                if self.watchdog_armed {
                    self.watchdog_armed = false;
                    self.push(Action::DisarmWatchdog);
                }
                self.timers.stop(Timer::Kick);
                self.timers.stop(Timer::LeaseEnd);
                Ok(())
            }
            ControlRequest::SetExcluded => {
                self.excluded = true;
                Ok(())
            }
            ControlRequest::ClearExcluded => {
                self.excluded = false;
                Ok(())
            }
            ControlRequest::SetPoolState(state) => self.set_pool_state(state),
            ControlRequest::Stop => {
                if self.membership.joined() && self.armed && !self.excluded {
                    Err(ControlError::NotExcluded)
                } else {
                    self.stop();
                    return;
                }
            }
        };
        self.push(Action::Reply(reply));
    }

    fn stop(&mut self) {
        if self.watchdog_armed {
            self.watchdog_armed = false;
            self.push(Action::DisarmWatchdog);
        }
        if self.lock.lose() {
            self.push(Action::MasterChanged {
                is_master: false,
                epoch: self.lock.master_epoch(),
            });
        }
        self.stopped = true;
        self.timers.stop_all();
        self.push(Action::Reply(Ok(())));
        self.push(Action::Stopped);
    }

    fn set_pool_state(&mut self, state: PoolState) -> Result<(), ControlError> {
        if !self.lock.is_master() {
            return Err(ControlError::NotMaster);
        }
        let Some(pool) = self.lock.pool().cloned() else {
            return Err(ControlError::NotMaster);
        };
        if self.lock.writing() {
            return Err(ControlError::Busy);
        }
        let block = PoolBlock {
            state,
            update_seq: pool.update_seq.saturating_add(1),
            ..pool
        };
        self.write_pool(block);
        Ok(())
    }

    /// Warn (at most once per T per statefile) of an I/O that took longer
    /// than the warning threshold.
    pub(super) fn latency_warning(&mut self, f: usize, latency: Duration) {
        let t = self.config.timeouts;
        if latency <= t.latency_warning {
            return;
        }
        if !self.io.latency_warning_due(f, self.now, t.base) {
            return;
        }
        self.push(Action::Warning(Warning::StatefileLatency {
            statefile: StatefileIndex(f),
            latency,
        }));
    }
}
