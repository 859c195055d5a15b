//! The run's trace: the last events in a ring buffer (printed when an
//! invariant fails) and a running hash of every event (to test determinism).

use std::collections::VecDeque;
use std::fmt::Write as _;

use super::time::{Nanos, secs};

/// How many recent events a failure report shows.
pub const TRACE_TAIL: usize = 80;

/// What a trace line says. The frequent events are kept as numbers and
/// only rendered when a failure is printed, so tracing costs little.
#[derive(Clone, Debug)]
pub enum Entry {
    Text(String),
    /// A heartbeat sent: sequence, liveset, proposed liveset, phase, round.
    Heartbeat {
        seq: u64,
        live: u64,
        proposed: u64,
        phase: u8,
        round: u64,
    },
    /// A slot write issued.
    Write {
        sf: usize,
        request: u64,
        seq: u64,
        live: u64,
        phase: u8,
    },
    /// A statefile read issued.
    Read {
        sf: usize,
        request: u64,
    },
    /// An I/O completion delivered to the host's core.
    Completed {
        sf: usize,
        request: u64,
        ok: bool,
    },
}

impl From<&str> for Entry {
    fn from(s: &str) -> Entry {
        Entry::Text(s.to_string())
    }
}

impl From<String> for Entry {
    fn from(s: String) -> Entry {
        Entry::Text(s)
    }
}

impl std::fmt::Display for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use sr_heartbeat::statefile::HostSet;
        match self {
            Entry::Text(s) => f.write_str(s),
            Entry::Heartbeat {
                seq,
                live,
                proposed,
                phase,
                round,
            } => write!(
                f,
                "send hb seq{seq} live{} prop{} phase{phase} round{round}",
                HostSet(*live),
                HostSet(*proposed)
            ),
            Entry::Write {
                sf,
                request,
                seq,
                live,
                phase,
            } => write!(
                f,
                "write slot sf{sf} req{request} seq{seq} live{} phase{phase}",
                HostSet(*live)
            ),
            Entry::Read { sf, request } => write!(f, "read sf{sf} req{request}"),
            Entry::Completed { sf, request, ok } => {
                write!(
                    f,
                    "done sf{sf} req{request} {}",
                    if *ok { "ok" } else { "error" }
                )
            }
        }
    }
}

/// One line of the trace.
#[derive(Clone, Debug)]
pub struct TraceLine {
    pub at: Nanos,
    /// The host concerned, if any.
    pub host: Option<usize>,
    pub entry: Entry,
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

    /// Records an event (hashes it; keeps it in the tail, and in the
    /// full log when asked).
    pub fn record(&mut self, at: Nanos, host: Option<usize>, entry: impl Into<Entry>) {
        let entry = entry.into();
        self.events += 1;
        self.mix(at);
        self.mix(host.map_or(u64::MAX, |h| h as u64));
        match &entry {
            Entry::Text(text) => {
                for chunk in text.as_bytes().chunks(8) {
                    let mut b = [0u8; 8];
                    b[..chunk.len()].copy_from_slice(chunk);
                    self.mix(u64::from_le_bytes(b));
                }
            }
            Entry::Heartbeat {
                seq,
                live,
                proposed,
                phase,
                round,
            } => {
                for v in [1, *seq, *live, *proposed, u64::from(*phase), *round] {
                    self.mix(v);
                }
            }
            Entry::Write {
                sf,
                request,
                seq,
                live,
                phase,
            } => {
                for v in [2, *sf as u64, *request, *seq, *live, u64::from(*phase)] {
                    self.mix(v);
                }
            }
            Entry::Read { sf, request } => {
                for v in [3, *sf as u64, *request] {
                    self.mix(v);
                }
            }
            Entry::Completed { sf, request, ok } => {
                for v in [4, *sf as u64, *request, u64::from(*ok)] {
                    self.mix(v);
                }
            }
        }
        let line = TraceLine { at, host, entry };
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
        let _ = writeln!(s, "{:>11.6} {:>4} {}", secs(l.at), host, l.entry);
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
        a.record(1, Some(0), "x");
        a.record(2, None, "y");
        b.record(2, None, "y");
        b.record(1, Some(0), "x");
        assert_ne!(a.hash(), b.hash());
        let mut c = Trace::default();
        c.record(1, Some(0), "x");
        c.record(2, None, "y");
        assert_eq!(a.hash(), c.hash());
        assert!(a.render_tail().contains("h0 x"));
    }
}
