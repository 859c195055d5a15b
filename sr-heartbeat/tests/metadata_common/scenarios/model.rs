//! Random operations against the volume and a model, with an optional
//! crash: recovery gives the model's history, or at the crash the history
//! before or after the operation in flight.

use super::*;

/// One step of the model test.
#[derive(Clone, Debug)]
pub enum Op {
    Append {
        len: usize,
        byte: u8,
    },
    Snapshot,
    Reopen,
    /// Reopen with the epoch raised by this much.
    NewEpoch(u64),
}

/// Runs `ops` against the volume and a model, with an optional crash at
/// the `n`-th write from the start (tear kind 0..4), then checks recovery:
/// before the crash, the recovered history after every operation is the
/// model's; at the crash, it is the history before or after the operation
/// in flight.
pub fn run_model<D: Disk>(d: &D, ops: &[Op], crash: Option<(usize, u8)>) {
    fresh(d);
    let sector = d.io().sector_size();
    let tear = match crash.map(|c| c.1) {
        None | Some(0) => Tear::Nothing,
        Some(1) => Tear::Prefix(sector),
        Some(2) => Tear::PrefixThenGarbage(sector),
        Some(_) => Tear::PrefixThenGarbage(0),
    };
    // Writes left before the crash, carried across reopened writers.
    let mut budget = crash.map_or(usize::MAX, |c| c.0);
    let open = |epoch: u64, budget: usize| {
        MetadataVolume::open(Faulty::new(d.io(), budget, tear))
            .expect("open")
            .into_writer(epoch)
            .map(|(w, _)| w)
    };
    let mut epoch = 1;
    let mut w = match open(epoch, budget) {
        Ok(w) => w,
        Err(e) => {
            // The crash hit the first writer's epoch record: still empty.
            assert!(crash.is_some(), "first writer: {e}");
            assert!(history(&recover(d)).is_empty());
            return;
        }
    };
    let mut h: Vec<Vec<u8>> = Vec::new();
    for op in ops {
        // The history if the operation in flight completes.
        let mut next = h.clone();
        let result = match op {
            Op::Append { len, byte } => {
                let p = vec![*byte; *len];
                next.push(p.clone());
                match w.append_delta(&p) {
                    Err(MetaError::DeltaFull { .. }) => w
                        .write_snapshot(&encode_history(&h))
                        .and_then(|_| w.append_delta(&p).map(|_| ())),
                    r => r.map(|_| ()),
                }
            }
            Op::Snapshot => w.write_snapshot(&encode_history(&h)),
            Op::Reopen | Op::NewEpoch(_) => {
                if let Op::NewEpoch(k) = op {
                    epoch += k;
                }
                budget = budget.saturating_sub(w.io_mut().writes_seen);
                open(epoch, budget).map(|nw| w = nw)
            }
        };
        match result {
            Ok(()) => h = next,
            Err(e) => {
                assert!(crash.is_some(), "{op:?} failed without a crash: {e}");
                let got = history(&recover(d));
                assert!(
                    got == h || got == next,
                    "after {op:?} failed ({e}): recovered {} changes, expected {} or {}",
                    got.len(),
                    h.len(),
                    next.len()
                );
                return;
            }
        }
        assert_eq!(history(&recover(d)), h, "after {op:?}");
    }
}
