//! Periodic work: heartbeats, slot writes, statefile reads, watchdog kicks
//! and the timers that schedule them.

use std::time::Duration;

use rand::Rng;

use super::Node;
use super::io::WriteRound;
use crate::action::{Action, Warning};
use crate::freshness::{self, OwnView};
use crate::ids::{HostIndex, StatefileIndex};
use crate::time::Instant;
use crate::timer::Timer;

impl Node {
    pub(super) fn send_heartbeat(&mut self) {
        let t = self.config.timeouts;
        // Up to 10% early, so that hosts started together do not send in lockstep.
        let jitter_ns = self
            .rng
            .gen_range(0..=t.heartbeat_interval.as_nanos() as u64 / 10);
        let next = self.now + (t.heartbeat_interval - Duration::from_nanos(jitter_ns));
        self.timers.set(Timer::Heartbeat, next);
        self.last_heartbeat_at = Some(self.now);
        let slot = self.current_slot();
        if self.membership.joined() && !slot.statefile_access {
            self.lease.lost_heartbeat(self.now);
        }
        self.push(Action::SendHeartbeat { slot });
        self.heartbeat_warnings();
    }

    /// May this host write its slot now?
    fn may_write(&self) -> bool {
        if !self.io.sequence_is_known() {
            return false;
        }
        let lease_valid = self.lease.holds_at(self.now);
        if self.membership.joined() {
            // A member writes only while its lease holds and it is in the
            // survivor set it computes itself: a loser stops renewing.
            let standing = self.membership.survivors().contains(self.config.local);
            // Starting writes still in flight may land after member writes:
            // harmless, every landing is a change for the readers' anchors.
            // A loser still publishes a view that lost something (it does not
            // renew its lease with it: see `issue_writes`).
            return lease_valid && (standing || self.must_publish());
        }
        if self.membership.join_requested() && !lease_valid {
            return false;
        }
        // A rebooted host still in some member's liveset stays silent until
        // the members removed it, so its old lease can be proven over.
        !self.silent()
    }

    /// A member that lost must still write: its slot claims more than it
    /// knows (see `freshness::must_publish`).
    /// Also once more when every earlier write has completed, if the last
    /// one overlapped others: with slow storage an older write (claiming
    /// more) may have landed after it, and the slot must end on the
    /// current view.
    pub(super) fn must_publish(&self) -> bool {
        self.membership.joined()
            && (freshness::must_publish(self.io.written_view(), self.own_view())
                || self.io.overlap_settled())
    }

    fn own_view(&self) -> OwnView {
        OwnView {
            heard: self.heard_view(),
            access: self.io.access(),
        }
    }

    fn silent(&self) -> bool {
        let me = self.config.local;
        if self.membership.join_requested() {
            // Members may include this host now because they admitted it.
            return false;
        }
        // A host that was never a member (its own slot never showed a member
        // write) has no old lease to prove over: members counting it in did
        // so at formation or admission.
        self.membership.was_member()
            && self.live_members().iter().any(|m| {
                !self.peers.get(m).saw_without_me
                    && self.row(m).is_some_and(|r| r.liveset.contains(me))
            })
    }

    pub(super) fn issue_writes(&mut self) {
        if !self.may_write() {
            return;
        }
        let cap = self.config.timeouts.max_outstanding_writes;
        let targets = self.io.write_targets(cap);
        if targets.is_empty() {
            return;
        }
        let Some(sequence) = self.io.take_sequence() else {
            return;
        };
        let mut slot = self.current_slot();
        slot.sequence = sequence;
        // A member outside its own survivor set only publishes its view: the
        // write must not renew its lease (a loser stops renewing at once).
        let joined = self.membership.joined();
        let renews = !joined || self.membership.survivors().contains(self.config.local);
        self.io.round_starts(OwnView {
            heard: slot.heard,
            access: slot.statefile_access,
        });
        let deadline = self.now + self.config.timeouts.io_deadline;
        for &f in &targets {
            let request = self.request_id();
            self.io.write_issued(f, request, sequence);
            self.push(Action::WriteSlot {
                statefile: StatefileIndex(f),
                request,
                slot: slot.clone(),
                deadline,
            });
        }
        let round = WriteRound::new(
            sequence,
            self.now,
            targets.len(),
            renews,
            joined,
            slot.liveset,
        );
        self.io.round_issued(round, cap);
    }

    pub(super) fn issue_reads(&mut self) {
        let t = self.config.timeouts;
        let mut next = self.now + t.statefile_interval;
        for f in 0..self.config.statefiles {
            if self.io.read_in_flight(f) {
                continue;
            }
            let request = self.request_id();
            self.io.read_issued(f, request, self.now);
            self.push(Action::ReadStatefile {
                statefile: StatefileIndex(f),
                request,
                deadline: self.now + t.io_deadline,
            });
        }
        // A read exactly when a removal becomes provable saves an interval.
        if self.membership.joined() {
            let liveset = self.effective_liveset();
            for x in liveset.difference(self.membership.survivors()).iter() {
                for f in 0..self.io.count() {
                    if let Some(at) = self.proof_time(x, f)
                        && at > self.now
                    {
                        next = next.min(at);
                    }
                }
            }
        }
        self.timers.set(Timer::StatefileRead, next);
    }

    pub(super) fn kick(&mut self) {
        if !self.watchdog_armed || !self.timers.due(Timer::Kick, self.now) {
            return;
        }
        let t = self.config.timeouts;
        self.timers.set(Timer::Kick, self.now + t.kick_interval);
        // The watchdog fires at the lease end, never later: a host frozen
        // after this kick is reset by then. With less than `watchdog_min`
        // left the kick is skipped and the previous, earlier deadline stands.
        if let Some(end) = self.lease.end()
            && self.now + t.watchdog_min <= end
        {
            self.push(Action::KickWatchdog { until: end });
        }
    }

    pub(super) fn set_timers(&mut self) {
        let now = self.now;
        match self.lease.end() {
            Some(end)
                if self.armed
                    && (self.membership.joined() || self.membership.join_requested())
                    && end > now =>
            {
                self.timers.set(Timer::LeaseEnd, end)
            }
            _ => self.timers.stop(Timer::LeaseEnd),
        }
        // Wake when an outstanding I/O crosses its deadline (access may drop)
        // and when the survivor set has settled.
        let t = self.config.timeouts;
        let mut wake: Option<Instant> = None;
        for issued in self.io.in_flight_issues() {
            wake = min_future(wake, issued + t.io_deadline + Duration::from_nanos(1), now);
        }
        if self.membership.joined() && self.membership.survivors() != self.effective_liveset() {
            wake = min_future(wake, self.membership.survivors_since() + t.settle, now);
        }
        match wake {
            Some(at) => self.timers.set(Timer::Evaluate, at),
            None => self.timers.stop(Timer::Evaluate),
        }
        if !self.watchdog_armed {
            self.timers.stop(Timer::Kick);
        }
    }

    /// Warn of members silent for more than half the heartbeat timeout.
    fn heartbeat_warnings(&mut self) {
        let t = self.config.timeouts;
        let me = self.config.local;
        for p in self.effective_liveset().iter().filter(|&p| p != me) {
            let warn = self
                .peers
                .silence_warning(p, self.now, t.heartbeat_timeout, t.base);
            if let Some(silence) = warn {
                self.push(Action::Warning(Warning::HeartbeatLatency {
                    host: HostIndex(p),
                    silence,
                }));
            }
        }
    }
}

fn min_future(current: Option<Instant>, at: Instant, now: Instant) -> Option<Instant> {
    if at <= now {
        return current;
    }
    Some(current.map_or(at, |c| c.min(at)))
}
