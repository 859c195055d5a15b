//! Joining: a starting host asks to join, is admitted, or forms the first
//! liveset with every other starting host (`docs/fault-handling.md`, "Join").

use sr_heartbeat::statefile::{HostSet, Phase};

use super::Node;
use crate::action::Action;
use crate::timer::Timer;

impl Node {
    /// Live members as seen from a starting host.
    pub(super) fn live_members(&self) -> HostSet {
        let heard = self.heard_view();
        let seen = self.seen_view();
        (0..self.config.hosts.len())
            .filter(|&p| p != self.config.local && (heard.contains(p) || seen.contains(p)))
            .filter(|&p| self.row(p).is_some_and(|r| !r.starting))
            .collect()
    }

    pub(super) fn evaluate_joining(&mut self) {
        let me = self.config.local;
        self.membership.phase = Phase::Normal;
        if self.lock.pool().is_none() {
            return;
        }
        if !self.io.access() || !self.io.sequence_is_known() {
            return;
        }
        // Joining needs a lease with room for the watchdog.
        let t = self.config.timeouts;
        let lease_ok = self
            .lease
            .end()
            .is_some_and(|end| end >= self.now + t.watchdog_min + t.kick_interval * 2);
        let members = self.live_members();
        if members.is_empty() {
            // Announce the request at once: a host that forms first counts
            // this one in and must see it as a candidate, not as a loser.
            if lease_ok && !self.excluded {
                self.membership.request_join();
            }
            self.try_form();
            return;
        }
        let clean = members
            .iter()
            .all(|m| !self.membership.was_member() || self.peers.get(m).saw_without_me);
        if clean && lease_ok && !self.excluded {
            self.membership.request_join();
        }
        if !self.membership.join_requested() {
            return;
        }
        let included = members
            .iter()
            .all(|m| self.row(m).is_some_and(|r| r.liveset.contains(me)));
        // After the request, inclusion means admission (the request was only
        // sent once every member had been seen without this host).
        if included && lease_ok {
            let base = members
                .lowest()
                .and_then(|m| self.row(m))
                .map(|r| r.liveset);
            let ls = base.unwrap_or(HostSet::EMPTY).union(HostSet::single(me));
            self.become_member(ls);
        }
    }

    /// First liveset of a pool: every non-excluded host is starting, heard,
    /// seen and hears me; then all of them form the liveset together.
    fn try_form(&mut self) {
        let me = self.config.local;
        let t = self.config.timeouts;
        let lease_ok = self
            .lease
            .end()
            .is_some_and(|end| end >= self.now + t.watchdog_min + t.kick_interval * 2);
        if !lease_ok || self.excluded {
            return;
        }
        let heard = self.heard_view();
        let seen = self.seen_view();
        let mut all = HostSet::single(me);
        for p in 0..self.config.hosts.len() {
            if p == me {
                continue;
            }
            let row = self.row(p);
            if row.as_ref().is_some_and(|r| r.excluded) {
                continue;
            }
            // Its join request proves it holds a lease from a write issued
            // already (see `set_pending`).
            let ready = row.as_ref().is_some_and(|r| {
                r.starting
                    && r.proposed.contains(p)
                    && r.statefile_access
                    && r.heard.contains(me)
                    && !r.excluded
            });
            if !(ready && heard.contains(p) && seen.contains(p)) {
                return;
            }
            all.insert(p);
        }
        self.membership.request_join();
        self.become_member(all);
    }

    fn become_member(&mut self, ls: HostSet) {
        self.membership.become_member(ls, self.now);
        self.set_pending(ls);
        if self.armed
            && !self.watchdog_armed
            && let Some(end) = self.lease.end()
        {
            self.watchdog_armed = true;
            self.push(Action::ArmWatchdog { until: end });
            self.timers
                .set(Timer::Kick, self.now + self.config.timeouts.kick_interval);
        }
    }
}
