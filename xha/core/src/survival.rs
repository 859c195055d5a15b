//! The survival rules: which hosts of a liveset survive a fault.
//!
//! Pure functions of a view matrix, so that every host holding the same views
//! computes the same answer. The rules (after XenServer's SR1/SR2):
//!
//! 1. Candidates are the liveset members that report statefile access.
//! 2. If there is a candidate, the survivors are the largest set of candidates
//!    that are pairwise connected in both directions on the network (a
//!    clique of the mutual-hearing graph). Ties: the set holding the current
//!    master wins (the pool keeps its master and avoids an election), then the
//!    set holding the lowest host index.
//! 3. If no member reports statefile access, every non-excluded member
//!    survives if they are all pairwise connected (the network is whole);
//!    otherwise nobody survives.
//! 4. Every other host fences.
//!
//! One-way links resolve to a fully connected set because only mutual edges
//! count.

use sr_heartbeat::statefile::{HostSet, MAX_HOSTS_LIMIT};

/// What one host knows about every liveset member, as used by the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewMatrix {
    /// The current liveset.
    pub liveset: HostSet,
    /// `heard[p]`: the hosts `p` hears on the network (own bit ignored).
    pub heard: [HostSet; MAX_HOSTS_LIMIT],
    /// Members reporting statefile access.
    pub access: HostSet,
    /// Members marked excluded (leaving cleanly; not waited for).
    pub excluded: HostSet,
    /// The current master, if known.
    pub master: Option<usize>,
}

impl ViewMatrix {
    /// An empty matrix over `liveset` (nobody hears anybody).
    #[must_use]
    pub fn new(liveset: HostSet) -> ViewMatrix {
        ViewMatrix {
            liveset,
            heard: [HostSet::EMPTY; MAX_HOSTS_LIMIT],
            access: HostSet::EMPTY,
            excluded: HostSet::EMPTY,
            master: None,
        }
    }

    /// Hosts of `within` mutually connected with `p`.
    #[must_use]
    pub fn neighbours(&self, p: usize, within: HostSet) -> HostSet {
        within
            .iter()
            .filter(|&q| q != p && self.heard[p].contains(q) && self.heard[q].contains(p))
            .collect()
    }

    /// Is every pair of `set` mutually connected?
    #[must_use]
    pub fn is_clique(&self, set: HostSet) -> bool {
        set.iter().all(|p| {
            set.difference(HostSet::single(p))
                .is_subset(self.neighbours(p, set))
        })
    }
}

/// The surviving set (empty: nobody survives).
#[must_use]
pub fn survivors(m: &ViewMatrix) -> HostSet {
    let candidates = m.liveset.intersection(m.access);
    if !candidates.is_empty() {
        return best_clique(m, candidates);
    }
    let waited = m.liveset.difference(m.excluded);
    if !waited.is_empty() && m.is_clique(waited) {
        waited
    } else {
        HostSet::EMPTY
    }
}

/// Is `a` a better survivor set than `b`? Larger wins, then holding the
/// master, then holding the lowest index where they differ.
#[must_use]
pub fn better(a: HostSet, b: HostSet, master: Option<usize>) -> bool {
    if a.len() != b.len() {
        return a.len() > b.len();
    }
    if let Some(m) = master
        && a.contains(m) != b.contains(m)
    {
        return a.contains(m);
    }
    match HostSet(a.0 ^ b.0).lowest() {
        Some(i) => a.contains(i),
        None => false,
    }
}

/// Cap on search steps; beyond it the greedy answer is used (it is still a
/// clique, so still safe; only possibly smaller). Deterministic either way.
const SEARCH_BUDGET: u32 = 200_000;

/// The best clique of the mutual-hearing graph within `within`.
#[must_use]
pub fn best_clique(m: &ViewMatrix, within: HostSet) -> HostSet {
    let adj: Vec<u64> = (0..MAX_HOSTS_LIMIT)
        .map(|p| {
            if within.contains(p) {
                m.neighbours(p, within).0
            } else {
                0
            }
        })
        .collect();
    let mut search = Search {
        adj: &adj,
        master: m.master,
        best: HostSet::EMPTY,
        steps: 0,
    };
    search.expand(0, within.0, 0);
    if search.steps > SEARCH_BUDGET {
        let g = greedy_clique(m, within);
        if better(g, search.best, m.master) {
            return g;
        }
    }
    debug_assert!(m.is_clique(search.best));
    search.best
}

struct Search<'a> {
    adj: &'a [u64],
    master: Option<usize>,
    best: HostSet,
    steps: u32,
}

impl Search<'_> {
    /// Bron-Kerbosch with pivoting over bitmaps; `r` is the clique so far,
    /// `p` the candidates, `x` the excluded.
    fn expand(&mut self, r: u64, p: u64, x: u64) {
        self.steps += 1;
        if self.steps > SEARCH_BUDGET {
            return;
        }
        if p == 0 {
            if x == 0 && better(HostSet(r), self.best, self.master) {
                self.best = HostSet(r);
            }
            return;
        }
        // Even taking every candidate cannot beat the best size: prune.
        if (r.count_ones() + p.count_ones()) < self.best.len() as u32 {
            return;
        }
        let pivot = HostSet(p | x)
            .iter()
            .max_by_key(|&u| (self.adj[u] & p).count_ones())
            .unwrap_or(0);
        let mut p = p;
        let mut x = x;
        for v in HostSet(p & !self.adj[pivot]).iter() {
            let bit = 1u64 << v;
            self.expand(r | bit, p & self.adj[v], x & self.adj[v]);
            p &= !bit;
            x |= bit;
        }
    }
}

/// Remove the worst-connected host (fewest mutual edges; ties: not the
/// master, then the highest index) until the rest is a clique.
#[must_use]
pub fn greedy_clique(m: &ViewMatrix, within: HostSet) -> HostSet {
    let mut set = within;
    while !m.is_clique(set) {
        let worst = set
            .iter()
            .min_by_key(|&p| {
                let degree = m.neighbours(p, set).len();
                (degree, Some(p) == m.master, std::cmp::Reverse(p))
            })
            .unwrap_or(0);
        set.remove(worst);
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(n: usize) -> ViewMatrix {
        let live = HostSet::first_n(n);
        let mut m = ViewMatrix::new(live);
        for p in 0..n {
            m.heard[p] = live;
        }
        m.access = live;
        m
    }

    fn cut(m: &mut ViewMatrix, a: usize, b: usize) {
        m.heard[a].remove(b);
        m.heard[b].remove(a);
    }

    fn set(v: &[usize]) -> HostSet {
        v.iter().copied().collect()
    }

    /// Reference: the best clique by brute force over every subset.
    fn brute(m: &ViewMatrix) -> HostSet {
        let cands = m.liveset.intersection(m.access);
        if cands.is_empty() {
            let waited = m.liveset.difference(m.excluded);
            return if !waited.is_empty() && m.is_clique(waited) {
                waited
            } else {
                HostSet::EMPTY
            };
        }
        let mut best = HostSet::EMPTY;
        for bits in 0u64..(1 << 6) {
            let s = HostSet(bits);
            if s.is_subset(cands) && m.is_clique(s) && better(s, best, m.master) {
                best = s;
            }
        }
        best
    }

    #[test]
    fn whole_pool_survives() {
        assert_eq!(survivors(&full(5)), HostSet::first_n(5));
    }

    #[test]
    fn network_loss_of_one_host() {
        let mut m = full(4);
        for q in 0..4 {
            if q != 2 {
                cut(&mut m, 2, q);
            }
        }
        assert_eq!(survivors(&m), set(&[0, 1, 3]));
    }

    #[test]
    fn statefile_loss_of_one_host() {
        let mut m = full(4);
        m.access.remove(1);
        assert_eq!(survivors(&m), set(&[0, 2, 3]));
    }

    #[test]
    fn every_host_lost_the_statefile_network_whole() {
        let mut m = full(4);
        m.access = HostSet::EMPTY;
        assert_eq!(survivors(&m), HostSet::first_n(4));
        // ...an excluded host is not waited for, even if silent.
        m.excluded.insert(3);
        cut(&mut m, 3, 0);
        assert_eq!(survivors(&m), set(&[0, 1, 2]));
        // ...and with the network broken too, nobody survives.
        cut(&mut m, 1, 2);
        assert_eq!(survivors(&m), HostSet::EMPTY);
    }

    #[test]
    fn two_host_split_prefers_master_then_lowest() {
        let mut m = full(2);
        cut(&mut m, 0, 1);
        assert_eq!(survivors(&m), set(&[0]));
        m.master = Some(1);
        assert_eq!(survivors(&m), set(&[1]));
    }

    #[test]
    fn three_two_split_of_five() {
        let mut m = full(5);
        for a in [0, 1] {
            for b in [2, 3, 4] {
                cut(&mut m, a, b);
            }
        }
        m.master = Some(0);
        assert_eq!(survivors(&m), set(&[2, 3, 4]));
    }

    #[test]
    fn asymmetric_link_resolves_to_a_clique() {
        let mut m = full(3);
        // 0 hears 1 but 1 does not hear 0.
        m.heard[1].remove(0);
        let w = survivors(&m);
        assert_eq!(w, set(&[0, 2]));
        assert!(m.is_clique(w));
    }

    #[test]
    fn greedy_is_a_clique() {
        let mut m = full(6);
        cut(&mut m, 0, 1);
        cut(&mut m, 2, 3);
        cut(&mut m, 4, 5);
        let g = greedy_clique(&m, m.liveset);
        assert!(m.is_clique(g));
        assert_eq!(survivors(&m).len(), 3);
    }

    /// Exhaustive over every directed hearing matrix of 3 hosts, every access
    /// set and master choice, and over all matrices of 4 hosts with full
    /// access: the search equals brute force, is a clique of candidates, and
    /// every survivor is connected to every other.
    #[test]
    fn exhaustive_small_matrices() {
        let edges3: Vec<(usize, usize)> = (0..3)
            .flat_map(|a| (0..3).filter(move |&b| b != a).map(move |b| (a, b)))
            .collect();
        for bits in 0u32..(1 << edges3.len()) {
            for access in 0u64..8 {
                for master in [None, Some(0), Some(1), Some(2)] {
                    let mut m = ViewMatrix::new(HostSet::first_n(3));
                    for (k, &(a, b)) in edges3.iter().enumerate() {
                        if bits & (1 << k) != 0 {
                            m.heard[a].insert(b);
                        }
                    }
                    m.access = HostSet(access);
                    m.master = master;
                    let w = survivors(&m);
                    assert_eq!(w, brute(&m), "{m:?}");
                    assert!(m.is_clique(w));
                }
            }
        }
        let edges4: Vec<(usize, usize)> = (0..4)
            .flat_map(|a| (0..4).filter(move |&b| b != a).map(move |b| (a, b)))
            .collect();
        for bits in 0u32..(1 << edges4.len()) {
            let mut m = ViewMatrix::new(HostSet::first_n(4));
            m.access = HostSet::first_n(4);
            m.master = Some((bits % 4) as usize);
            for (k, &(a, b)) in edges4.iter().enumerate() {
                if bits & (1 << k) != 0 {
                    m.heard[a].insert(b);
                }
            }
            let w = survivors(&m);
            assert_eq!(w, brute(&m));
            assert!(!w.is_empty(), "some candidate always survives");
        }
    }

    #[test]
    fn sixty_four_hosts_one_silent() {
        let mut m = full(64);
        for q in 0..64 {
            if q != 17 {
                cut(&mut m, 17, q);
            }
        }
        let w = survivors(&m);
        assert_eq!(w.len(), 63);
        assert!(!w.contains(17));
    }

    #[test]
    fn better_is_a_strict_order() {
        let a = set(&[0, 2]);
        let b = set(&[1, 2]);
        assert!(better(a, b, None));
        assert!(!better(b, a, None));
        assert!(!better(a, a, None));
        assert!(better(b, a, Some(1)));
    }
}
