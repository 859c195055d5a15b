//! The discrete-event queue: events ordered by real time, ties broken by the
//! order in which they were scheduled, so a run is a pure function of its seed.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::time::Nanos;

struct Entry<E> {
    at: Nanos,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A priority queue of `(instant, event)`.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            next_seq: 0,
        }
    }
}

impl<E> EventQueue<E> {
    pub fn push(&mut self, at: Nanos, event: E) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry { at, seq, event });
    }

    /// The instant of the earliest event.
    #[must_use]
    pub fn peek_time(&self) -> Option<Nanos> {
        self.heap.peek().map(|e| e.at)
    }

    /// Removes the earliest event if it is due at or before `limit`.
    pub fn pop_until(&mut self, limit: Nanos) -> Option<(Nanos, E)> {
        if self.heap.peek()?.at > limit {
            return None;
        }
        self.heap.pop().map(|e| (e.at, e.event))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_fifo() {
        let mut q = EventQueue::default();
        q.push(5, "c");
        q.push(1, "a");
        q.push(5, "d");
        q.push(1, "b");
        let mut out = vec![];
        while let Some((_, e)) = q.pop_until(4) {
            out.push(e);
        }
        assert_eq!(out, ["a", "b"]);
        while let Some((_, e)) = q.pop_until(u64::MAX) {
            out.push(e);
        }
        assert_eq!(out, ["a", "b", "c", "d"]);
    }
}
