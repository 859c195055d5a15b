//! The simulated heartbeat network: one directed link per ordered pair of
//! hosts, each with its own delay range, loss, duplication and up/down state.
//!
//! Reordering comes from independent random delays per packet; a one-way
//! partition is a link that is down in one direction only.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use sr_heartbeat::statefile::HostSet;

use super::time::{MILLISECOND, Nanos};

/// Behaviour of one directed link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkParams {
    /// A down link drops every packet (a partition).
    pub up: bool,
    /// Probability of dropping a packet, in parts per million.
    pub loss_ppm: u32,
    /// Probability of delivering a packet twice, in parts per million.
    pub dup_ppm: u32,
    pub delay_min: Nanos,
    pub delay_max: Nanos,
}

impl Default for LinkParams {
    /// A healthy LAN: 0.1 ms to 2 ms, no loss.
    fn default() -> Self {
        LinkParams {
            up: true,
            loss_ppm: 0,
            dup_ppm: 0,
            delay_min: MILLISECOND / 10,
            delay_max: 2 * MILLISECOND,
        }
    }
}

/// All links of an `n`-host pool.
#[derive(Clone, Debug)]
pub struct Network {
    n: usize,
    links: Vec<LinkParams>,
}

impl Network {
    #[must_use]
    pub fn new(n: usize, params: LinkParams) -> Network {
        Network {
            n,
            links: vec![params; n * n],
        }
    }

    #[must_use]
    pub fn hosts(&self) -> usize {
        self.n
    }

    #[must_use]
    pub fn link(&self, from: usize, to: usize) -> &LinkParams {
        &self.links[from * self.n + to]
    }

    pub fn link_mut(&mut self, from: usize, to: usize) -> &mut LinkParams {
        &mut self.links[from * self.n + to]
    }

    /// Sets the same parameters on every link (keeps partitions).
    pub fn set_all_quality(&mut self, loss_ppm: u32, dup_ppm: u32, delay: (Nanos, Nanos)) {
        for l in &mut self.links {
            l.loss_ppm = loss_ppm;
            l.dup_ppm = dup_ppm;
            l.delay_min = delay.0;
            l.delay_max = delay.1;
        }
    }

    /// Cuts or restores the link `from -> to` only.
    pub fn set_one_way(&mut self, from: usize, to: usize, up: bool) {
        self.link_mut(from, to).up = up;
    }

    /// Cuts or restores both directions between `a` and `b`.
    pub fn set_both_ways(&mut self, a: usize, b: usize, up: bool) {
        self.set_one_way(a, b, up);
        self.set_one_way(b, a, up);
    }

    /// Cuts every link between `host` and anyone else (both directions).
    pub fn isolate(&mut self, host: usize) {
        for p in 0..self.n {
            if p != host {
                self.set_both_ways(host, p, false);
            }
        }
    }

    /// Splits the pool into groups: links inside a group are up, links
    /// between groups are down. Hosts in no group are isolated.
    pub fn partition(&mut self, groups: &[HostSet]) {
        let group_of = |h: usize| groups.iter().position(|g| g.contains(h));
        for a in 0..self.n {
            for b in 0..self.n {
                if a != b {
                    let same = matches!((group_of(a), group_of(b)), (Some(x), Some(y)) if x == y);
                    self.link_mut(a, b).up = same;
                }
            }
        }
    }

    /// Brings every link up (quality settings are kept).
    pub fn heal(&mut self) {
        for l in &mut self.links {
            l.up = true;
        }
    }

    /// Restores perfect links: up, no loss, no duplication, LAN delay.
    pub fn reset(&mut self) {
        for l in &mut self.links {
            *l = LinkParams::default();
        }
    }

    /// Whether every pair in `set` is connected in both directions.
    #[must_use]
    pub fn fully_connected(&self, set: HostSet) -> bool {
        set.iter()
            .all(|a| set.iter().all(|b| a == b || self.link(a, b).up))
    }

    /// Whether no link is down.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.fully_connected(HostSet::first_n(self.n))
    }

    /// Delays after which copies of one packet sent on `from -> to` arrive:
    /// none when lost or cut, two when duplicated.
    pub fn transmit(&self, rng: &mut ChaCha8Rng, from: usize, to: usize) -> Deliveries {
        let l = self.link(from, to);
        let mut out = Deliveries::default();
        if !l.up || chance(rng, l.loss_ppm) {
            return out;
        }
        out.push(delay(rng, l));
        if chance(rng, l.dup_ppm) {
            out.push(delay(rng, l));
        }
        out
    }
}

/// Up to two delivery delays (a packet and its duplicate).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deliveries {
    delays: [Nanos; 2],
    len: usize,
}

impl Deliveries {
    fn push(&mut self, d: Nanos) {
        self.delays[self.len] = d;
        self.len += 1;
    }

    pub fn iter(&self) -> impl Iterator<Item = Nanos> + '_ {
        self.delays[..self.len].iter().copied()
    }
}

/// True with probability `ppm` parts per million.
pub fn chance(rng: &mut ChaCha8Rng, ppm: u32) -> bool {
    ppm > 0 && rng.gen_range(0..1_000_000u32) < ppm
}

fn delay(rng: &mut ChaCha8Rng, l: &LinkParams) -> Nanos {
    if l.delay_max <= l.delay_min {
        l.delay_min
    } else {
        rng.gen_range(l.delay_min..=l.delay_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn partitions_and_one_way_links() {
        let mut net = Network::new(5, LinkParams::default());
        assert!(net.is_whole());
        net.partition(&[HostSet(0b00111), HostSet(0b11000)]);
        assert!(net.fully_connected(HostSet(0b00111)));
        assert!(net.fully_connected(HostSet(0b11000)));
        assert!(!net.fully_connected(HostSet(0b01001)));
        net.heal();
        net.set_one_way(0, 1, false);
        assert!(!net.link(0, 1).up && net.link(1, 0).up);
        assert!(!net.fully_connected(HostSet(0b11)));
    }

    #[test]
    fn loss_and_duplication_follow_their_rates() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut net = Network::new(2, LinkParams::default());
        net.set_all_quality(100_000, 50_000, (MILLISECOND, 3 * MILLISECOND));
        let (mut sent, mut got) = (0, 0);
        for _ in 0..20_000 {
            sent += 1;
            for d in net.transmit(&mut rng, 0, 1).iter() {
                assert!((MILLISECOND..=3 * MILLISECOND).contains(&d));
                got += 1;
            }
        }
        // 10% loss, then 5% of the rest duplicated: about 0.945 copies each.
        let ratio = got as f64 / sent as f64;
        assert!((0.92..0.97).contains(&ratio), "ratio {ratio}");
        net.set_one_way(0, 1, false);
        assert_eq!(net.transmit(&mut rng, 0, 1).iter().count(), 0);
    }
}
