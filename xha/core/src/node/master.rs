//! The master lock as this host takes part in it: its request, its grant,
//! taking the lock and losing it (`docs/fault-handling.md`, "Master lock";
//! the rules every host applies are `core::master_lock`, the state is
//! `lock::LockState`).

use sr_heartbeat::statefile::{HostSet, PoolBlock, PoolState};

use super::Node;
use crate::action::Action;
use crate::ids::StatefileIndex;
use crate::master_lock;

impl Node {
    pub(super) fn master_lock(&mut self) {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        if !self.membership.joined() || !self.is_member() {
            self.lock.grant = None;
            self.lock.request_started = None;
            return;
        }
        let master_index = self.pool_master_index().filter(|&p| liveset.contains(p));
        let requesting = self.requesting();
        if self.lock.is_master() && !requesting {
            self.lock.lose();
            self.push(Action::MasterChanged {
                is_master: false,
                epoch: self.lock.master_epoch(),
            });
        }
        let taken = self.lock.pool().filter(|pool| {
            self.lock.is_master()
                && pool.master != Some(self.config.hosts[me])
                && pool.master_epoch > self.lock.master_epoch()
        });
        if let Some(epoch) = taken.map(|pool| pool.master_epoch) {
            // Someone took the lock with a newer epoch: only possible after
            // this host was removed, which means it should have fenced.
            self.lock.lose();
            self.push(Action::MasterChanged {
                is_master: false,
                epoch,
            });
        }
        if !requesting {
            self.lock.request_started = None;
        } else if self.lock.request_started.is_none() {
            self.lock.request_started = Some(self.now);
        }
        let requesters = self.requesters(requesting);
        self.lock.grant = master_lock::grant(liveset, requesters, master_index, self.lock.grant);
        if !requesting || self.lock.is_master() || self.lock.writing() || !self.io.access() {
            return;
        }
        // A grant counts only from a heartbeat heard at least a heartbeat
        // timeout after this request began, that knows of the request: so it
        // was sent for this request, not for an earlier one of this host or
        // of an earlier incarnation (heartbeats from one sender arrive in
        // order, within the timeout, or never).
        let fresh_after = self
            .lock
            .request_started
            .map(|at| at + self.config.timeouts.heartbeat_timeout);
        let grants: Vec<Option<usize>> = (0..self.config.hosts.len())
            .map(|p| {
                if p == me {
                    return self.lock.grant;
                }
                let peer = self.peers.get(p);
                let fresh = match (peer.last_heard, fresh_after) {
                    (Some(heard), Some(after)) => heard >= after,
                    _ => false,
                };
                peer.net
                    .as_ref()
                    .filter(|r| fresh && r.lock_request.contains(me))
                    .and_then(|r| r.lock_grant.lowest())
            })
            .collect();
        if !master_lock::holds(me, liveset, &grants) {
            return;
        }
        let Some(pool) = self.lock.pool().cloned() else {
            return;
        };
        let known = liveset
            .iter()
            .filter(|&p| p != me)
            .filter_map(|p| self.row(p).map(|r| r.master_epoch))
            .chain([pool.master_epoch, self.lock.master_epoch()]);
        let epoch = master_lock::next_epoch(known);
        let state = if pool.state == PoolState::Init {
            PoolState::Active
        } else {
            pool.state
        };
        let block = PoolBlock {
            state,
            master: Some(self.config.hosts[me]),
            master_epoch: epoch,
            update_seq: pool.update_seq.saturating_add(1),
        };
        self.write_pool(block);
    }

    /// The host reported as master: the pool block's master while it still
    /// asks for the lock. One that stopped asking (its agent withdrew, or
    /// the agent's lease lapsed: `Config::master_lease`) is reported as no
    /// master, so the agents of the other hosts propose themselves; a host
    /// whose state this node has not read yet still counts.
    pub(super) fn lock_holder_index(&self) -> Option<usize> {
        let me = self.config.local;
        self.pool_master_index().filter(|&p| {
            if p == me {
                !self.membership.joined() || self.lock.is_master() || self.requesting()
            } else {
                self.row(p).is_none_or(|r| r.lock_request.contains(p))
            }
        })
    }

    /// Liveset members asking for the lock (their own bit), and me if I ask.
    pub(super) fn requesters(&self, requesting: bool) -> HostSet {
        let me = self.config.local;
        let liveset = self.effective_liveset();
        let mut set: HostSet = liveset
            .iter()
            .filter(|&p| p != me)
            .filter(|&p| self.row(p).is_some_and(|r| r.lock_request.contains(p)))
            .collect();
        if requesting {
            set.insert(me);
        }
        set
    }

    /// Does this host ask for the master lock? When told to, or, as a
    /// candidate, while no live host holds it (or it holds it itself).
    pub(super) fn requesting(&self) -> bool {
        if !self.membership.joined() || self.lock.refuses() {
            return false;
        }
        let me = self.config.local;
        let liveset = self.effective_liveset();
        // The pool block's master counts only while it is live and still
        // asks for the lock (a master that gave it up frees it for others).
        let master_index = self.pool_master_index().filter(|&p| {
            liveset.contains(p)
                && (p == me || self.row(p).is_some_and(|r| r.lock_request.contains(p)))
        });
        let asks = self.lock.wants(self.now)
            || (self.config.master_candidate && master_index.is_none_or(|m| m == me));
        if !asks {
            return false;
        }
        if self.lock.is_master() || self.lock.writing() {
            return true;
        }
        // Lowest index wins contention: defer to a lower-index requester
        // (never once acquiring, so nobody withdraws a grant it may be using).
        // The live master asking for the lock is no contender: every grant
        // is its own while it asks (`master_lock::grant`), so a standby
        // request beside it (the agents' standing `propose-master`, docs/
        // master-failover.md) cannot take the lock, but its clock runs: the
        // freshness wait below is behind it when the master goes, and the
        // takeover needs only the grants' next heartbeats.
        !liveset
            .iter()
            .filter(|&p| p < me && Some(p) != master_index)
            .any(|p| {
                self.row(p)
                    .is_some_and(|r| !r.starting && r.lock_request.contains(p))
            })
    }

    pub(super) fn write_pool(&mut self, block: PoolBlock) {
        let deadline = self.now + self.config.timeouts.io_deadline;
        let mut requests = Vec::new();
        for f in 0..self.config.statefiles {
            let request = self.request_id();
            self.io.pool_write_issued(f, request, self.now);
            requests.push(request);
            self.push(Action::WritePool {
                statefile: StatefileIndex(f),
                request,
                block: block.clone(),
                deadline,
            });
        }
        self.lock.write_started(block, requests);
    }
}
