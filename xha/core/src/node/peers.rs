//! What this node knows of every peer, and the views built from it.
//!
//! Rules kept here:
//! - a heartbeat older than the one kept is ignored while the kept one is
//!   recent, unless it is at least as new as the peer's slot on disk (a
//!   forged packet with a high sequence must not silence the real sender);
//! - a peer's slot on disk is kept only if at least as new as the one kept;
//! - the freshest state (`row`) of a recently heard peer is its heartbeat;
//!   otherwise whichever of heartbeat and slot has the higher sequence;
//! - the heard view holds the peers heard within the heartbeat timeout, the
//!   seen view those whose slot changed within the statefile timeout.
//!
//! This host's own entry is never written.

use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, Slot};

use crate::time::Instant;

/// What this node knows about one peer.
#[derive(Clone, Debug, Default)]
pub(super) struct PeerState {
    pub(super) last_heard: Option<Instant>,
    /// Latest heartbeat content.
    pub(super) net: Option<Slot>,
    /// Latest decoded slot from any statefile (highest sequence).
    pub(super) disk: Option<Slot>,
    /// Last time any statefile showed this slot changing.
    pub(super) disk_changed: Option<Instant>,
    /// Joining: this host was seen as a member whose liveset lacks me.
    pub(super) saw_without_me: bool,
    /// When the last heartbeat-latency warning about it was raised.
    warned_at: Option<Instant>,
}

/// Every host's [`PeerState`], by host index.
#[derive(Clone, Debug)]
pub(super) struct Peers {
    local: usize,
    hosts: Vec<PeerState>,
}

impl Peers {
    pub(super) fn new(local: usize, hosts: usize) -> Peers {
        assert!(local < hosts);
        Peers {
            local,
            hosts: vec![PeerState::default(); hosts],
        }
    }

    pub(super) fn get(&self, p: usize) -> &PeerState {
        &self.hosts[p]
    }

    /// Was `p` heard within `timeout` before `now`?
    fn heard_recently(&self, p: usize, now: Instant, timeout: Duration) -> bool {
        self.hosts[p]
            .last_heard
            .is_some_and(|at| now.saturating_since(at) < timeout)
    }

    /// Checked by the node after every input.
    pub(super) fn check_invariants(&self) {
        let own = &self.hosts[self.local];
        debug_assert!(
            own.last_heard.is_none() && own.net.is_none() && own.disk.is_none(),
            "this host's own peer entry was written"
        );
    }

    /// A heartbeat from `from` at `now`. Returns whether it was kept (false:
    /// an older, reordered or duplicated packet).
    pub(super) fn heartbeat(
        &mut self,
        from: usize,
        slot: Slot,
        now: Instant,
        timeout: Duration,
    ) -> bool {
        assert_ne!(from, self.local, "a heartbeat from this host");
        let recent = self.heard_recently(from, now, timeout);
        let peer = &mut self.hosts[from];
        // Both drivers deliver one sender's packets in order, so this only
        // matters after forgery (pool secret).
        if recent
            && peer
                .disk
                .as_ref()
                .is_none_or(|d| slot.sequence < d.sequence)
            && peer
                .net
                .as_ref()
                .is_some_and(|n| slot.sequence < n.sequence)
        {
            return false;
        }
        debug_assert!(peer.last_heard.is_none_or(|at| at <= now));
        peer.last_heard = Some(now);
        if !slot.starting && !slot.liveset.contains(self.local) {
            peer.saw_without_me = true;
        }
        peer.net = Some(slot);
        true
    }

    /// A read showed `p`'s slot changing at `now`.
    pub(super) fn slot_changed(&mut self, p: usize, now: Instant) {
        assert_ne!(p, self.local);
        self.hosts[p].disk_changed = Some(now);
    }

    /// A read found `slot` in `p`'s slot.
    pub(super) fn slot_read(&mut self, p: usize, slot: Slot) {
        assert_ne!(p, self.local);
        let peer = &mut self.hosts[p];
        if !slot.starting && !slot.liveset.contains(self.local) {
            peer.saw_without_me = true;
        }
        if peer
            .disk
            .as_ref()
            .is_none_or(|d| slot.sequence >= d.sequence)
        {
            peer.disk = Some(slot);
        }
    }

    /// Hosts heard on the network within `timeout` (and this host).
    pub(super) fn heard(&self, now: Instant, timeout: Duration) -> HostSet {
        let mut set: HostSet = (0..self.hosts.len())
            .filter(|&p| self.heard_recently(p, now, timeout))
            .collect();
        set.insert(self.local);
        set
    }

    /// Hosts whose slot changed on the statefile within `timeout` (and this
    /// host, when it has access).
    pub(super) fn seen(&self, now: Instant, timeout: Duration, access: bool) -> HostSet {
        let mut set: HostSet = (0..self.hosts.len())
            .filter(|&p| {
                self.hosts[p]
                    .disk_changed
                    .is_some_and(|at| now.saturating_since(at) < timeout)
            })
            .collect();
        if access {
            set.insert(self.local);
        } else {
            set.remove(self.local);
        }
        set
    }

    /// The freshest state of peer `p`: its heartbeat if heard within
    /// `timeout`, else its heartbeat or its slot, whichever carries the
    /// higher sequence (a heartbeat wins a tie: it is the newer state of the
    /// same write). Never asked for this host.
    pub(super) fn row(&self, p: usize, now: Instant, timeout: Duration) -> Option<&Slot> {
        assert_ne!(p, self.local, "row() of this host");
        let peer = &self.hosts[p];
        // A recent heartbeat is the sender's current state; its slot on disk
        // may be a late write of an earlier incarnation.
        let recent = self.heard_recently(p, now, timeout);
        match (&peer.net, &peer.disk) {
            (Some(n), Some(_)) if recent => Some(n),
            (Some(n), Some(d)) => Some(if n.sequence >= d.sequence { n } else { d }),
            (Some(n), None) => Some(n),
            (None, Some(d)) => Some(d),
            (None, None) => None,
        }
    }

    /// Has `p` been silent for more than half the heartbeat timeout (but
    /// less than all of it), with no warning in the last `every`? Returns
    /// the silence and records the warning.
    pub(super) fn silence_warning(
        &mut self,
        p: usize,
        now: Instant,
        timeout: Duration,
        every: Duration,
    ) -> Option<Duration> {
        let peer = &mut self.hosts[p];
        let silence = now.saturating_since(peer.last_heard?);
        let recently = peer
            .warned_at
            .is_some_and(|w| now.saturating_since(w) < every);
        if silence > timeout / 2 && silence < timeout && !recently {
            peer.warned_at = Some(now);
            Some(silence)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(1600);

    fn ms(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    fn slot(sequence: u64) -> Slot {
        Slot {
            host_index: 1,
            sequence,
            liveset: HostSet::first_n(2),
            ..Slot::default()
        }
    }

    #[test]
    fn an_older_heartbeat_is_ignored_unless_newer_than_the_disk() {
        let mut peers = Peers::new(0, 2);
        assert!(peers.heartbeat(1, slot(10), ms(0), TIMEOUT));
        assert!(!peers.heartbeat(1, slot(9), ms(100), TIMEOUT));
        assert_eq!(peers.get(1).last_heard, Some(ms(0)));
        // A forged packet claimed 100; the real sender's 11 is as new as
        // its slot on disk, so it is kept.
        assert!(peers.heartbeat(1, slot(100), ms(200), TIMEOUT));
        peers.slot_read(1, slot(11));
        assert!(peers.heartbeat(1, slot(11), ms(300), TIMEOUT));
        // After the timeout any heartbeat is current.
        assert!(peers.heartbeat(1, slot(50), ms(300) + TIMEOUT, TIMEOUT));
        assert!(peers.heartbeat(1, slot(3), ms(400) + TIMEOUT * 2, TIMEOUT));
    }

    #[test]
    fn the_row_prefers_a_recent_heartbeat_then_the_higher_sequence() {
        let mut peers = Peers::new(0, 2);
        assert_eq!(peers.row(1, ms(0), TIMEOUT), None);
        peers.slot_read(1, slot(20));
        assert_eq!(peers.row(1, ms(0), TIMEOUT).map(|r| r.sequence), Some(20));
        peers.heartbeat(1, slot(5), ms(0), TIMEOUT);
        assert_eq!(peers.row(1, ms(10), TIMEOUT).map(|r| r.sequence), Some(5));
        let later = ms(0) + TIMEOUT;
        assert_eq!(peers.row(1, later, TIMEOUT).map(|r| r.sequence), Some(20));
        // An older slot read later does not replace the newer one.
        peers.slot_read(1, slot(19));
        assert_eq!(peers.get(1).disk.as_ref().map(|d| d.sequence), Some(20));
    }

    #[test]
    fn views_hold_recent_peers_and_this_host() {
        let mut peers = Peers::new(0, 3);
        peers.heartbeat(1, slot(1), ms(0), TIMEOUT);
        peers.slot_changed(2, ms(0));
        let statefile_timeout = Duration::from_secs(10);
        assert_eq!(peers.heard(ms(1), TIMEOUT), HostSet::first_n(2));
        assert_eq!(peers.heard(ms(0) + TIMEOUT, TIMEOUT), HostSet::single(0));
        let seen = peers.seen(ms(1), statefile_timeout, false);
        assert_eq!(seen, HostSet::single(2));
        let seen = peers.seen(ms(1), statefile_timeout, true);
        assert!(seen.contains(0) && seen.contains(2));
    }

    #[test]
    fn a_member_without_me_is_noted_and_silence_warned_once() {
        let mut peers = Peers::new(0, 2);
        let mut without_me = slot(1);
        without_me.liveset = HostSet::single(1);
        peers.heartbeat(1, without_me, ms(0), TIMEOUT);
        assert!(peers.get(1).saw_without_me);
        let every = Duration::from_secs(10);
        assert_eq!(peers.silence_warning(1, ms(500), TIMEOUT, every), None);
        let w = peers.silence_warning(1, ms(900), TIMEOUT, every);
        assert_eq!(w, Some(Duration::from_millis(900)));
        assert_eq!(peers.silence_warning(1, ms(1000), TIMEOUT, every), None);
    }
}
