//! The run's trace: the last events in a ring buffer (printed when an
//! invariant fails) and a running hash of every event (to test determinism).

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::time::{Nanos, secs};

/// How many recent events a failure report shows.
pub const TRACE_TAIL: usize = 80;

/// One line of the trace.
#[derive(Clone, Debug)]
pub struct TraceLine {
    pub at: Nanos,
    /// The host concerned, if any.
    pub host: Option<usize>,
    pub text: String,
}

/// Recent lines plus a hash over everything recorded.
#[derive(Clone, Debug)]
pub struct Trace {
    tail: VecDeque<TraceLine>,
    hash: u64,
    events: u64,
    /// Keep every line (for `--verbose` replays and golden traces).
    keep_all: bool,
    all: Vec<TraceLine>,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            tail: VecDeque::with_capacity(TRACE_TAIL),
            hash: 0xcbf2_9ce4_8422_2325,
            events: 0,
            keep_all: false,
            all: Vec::new(),
        }
    }
}

impl Trace {
    #[must_use]
    pub fn keeping_all() -> Trace {
        Trace {
            keep_all: true,
            ..Trace::default()
        }
    }

    /// Records an event whose text is built only when needed: the hash is
    /// taken over `key` (cheap, always), the text only when it is kept.
    pub fn record(&mut self, at: Nanos, host: Option<usize>, text: String) {
        self.events += 1;
        self.mix(at);
        self.mix(host.map_or(u64::MAX, |h| h as u64));
        for chunk in text.as_bytes().chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(b));
        }
        let line = TraceLine { at, host, text };
        if self.keep_all {
            self.all.push(line.clone());
        }
        if self.tail.len() == TRACE_TAIL {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    /// FNV-1a over 64-bit words: stable across platforms and releases,
    /// unlike `DefaultHasher`.
    fn mix(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
    }

    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The recent events, one per line.
    #[must_use]
    pub fn render_tail(&self) -> String {
        render(self.tail.iter())
    }

    /// Every event (only when created with [`Trace::keeping_all`]).
    #[must_use]
    pub fn render_all(&self) -> String {
        render(self.all.iter())
    }
}

fn render<'a>(lines: impl Iterator<Item = &'a TraceLine>) -> String {
    let mut s = String::new();
    for l in lines {
        let host = l
            .host
            .map_or_else(|| "sim".to_string(), |h| format!("h{h}"));
        let _ = writeln!(s, "{:>11.6} {:>4} {}", secs(l.at), host, l.text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_content_and_order() {
        let mut a = Trace::default();
        let mut b = Trace::default();
        a.record(1, Some(0), "x".into());
        a.record(2, None, "y".into());
        b.record(2, None, "y".into());
        b.record(1, Some(0), "x".into());
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::default();
        c.record(1, Some(0), "x".into());
        c.record(2, None, "y".into());
        assert_eq!(a.hash(), c.hash());
        assert!(a.render_tail().contains("h0 x"));
    }
}
