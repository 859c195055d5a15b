//! A set of host indexes, stored as a 64-bit bitmap (bit i = host index i).
//!
//! The statefile and the network heartbeat carry every view (heard, seen,
//! liveset, proposed liveset, lock requests and grants) in this form. 64 is the
//! pool-size limit, so one `u64` always suffices; `MAX_HOSTS_LIMIT` ties the two.

use serde::{Deserialize, Serialize};

/// The largest pool a bitmap can describe. The statefile header's `max_hosts`
/// field may be smaller, never larger.
pub const MAX_HOSTS_LIMIT: usize = 64;

const _: () = assert!(MAX_HOSTS_LIMIT == u64::BITS as usize);

/// A set of host indexes `0..64`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostSet(pub u64);

impl HostSet {
    pub const EMPTY: HostSet = HostSet(0);

    /// The set `{0, 1, ..., n - 1}`.
    #[must_use]
    pub fn first_n(n: usize) -> HostSet {
        assert!(n <= MAX_HOSTS_LIMIT, "first_n({n}) beyond the bitmap");
        if n == MAX_HOSTS_LIMIT {
            HostSet(u64::MAX)
        } else {
            HostSet((1u64 << n) - 1)
        }
    }

    #[must_use]
    pub fn single(index: usize) -> HostSet {
        assert!(index < MAX_HOSTS_LIMIT, "host index {index} out of range");
        HostSet(1u64 << index)
    }

    #[must_use]
    pub fn contains(self, index: usize) -> bool {
        index < MAX_HOSTS_LIMIT && self.0 & (1u64 << index) != 0
    }

    pub fn insert(&mut self, index: usize) {
        assert!(index < MAX_HOSTS_LIMIT, "host index {index} out of range");
        self.0 |= 1u64 << index;
    }

    pub fn remove(&mut self, index: usize) {
        assert!(index < MAX_HOSTS_LIMIT, "host index {index} out of range");
        self.0 &= !(1u64 << index);
    }

    #[must_use]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    #[must_use]
    pub fn union(self, other: HostSet) -> HostSet {
        HostSet(self.0 | other.0)
    }

    #[must_use]
    pub fn intersection(self, other: HostSet) -> HostSet {
        HostSet(self.0 & other.0)
    }

    #[must_use]
    pub fn difference(self, other: HostSet) -> HostSet {
        HostSet(self.0 & !other.0)
    }

    #[must_use]
    pub fn is_subset(self, other: HostSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The lowest index in the set, if any.
    #[must_use]
    pub fn lowest(self) -> Option<usize> {
        (self.0 != 0).then(|| self.0.trailing_zeros() as usize)
    }

    /// Indexes in ascending order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(i)
        })
    }
}

impl FromIterator<usize> for HostSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = HostSet::EMPTY;
        for i in iter {
            set.insert(i);
        }
        set
    }
}

impl std::fmt::Debug for HostSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl std::fmt::Display for HostSet {
    /// `{0,2,5}`: compact, for logs and the dump table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (n, i) in self.iter().enumerate() {
            if n > 0 {
                f.write_str(",")?;
            }
            write!(f, "{i}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let a: HostSet = [0, 3, 63].into_iter().collect();
        assert_eq!(a.len(), 3);
        assert!(a.contains(63) && !a.contains(1) && !a.contains(64));
        assert_eq!(a.lowest(), Some(0));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 3, 63]);
        assert_eq!(HostSet::first_n(64), HostSet(u64::MAX));
        assert_eq!(HostSet::first_n(3), HostSet(0b111));
        assert!(HostSet::single(3).is_subset(a));
        assert_eq!(a.difference(HostSet::single(0)).lowest(), Some(3));
        assert_eq!(format!("{a}"), "{0,3,63}");
    }
}
