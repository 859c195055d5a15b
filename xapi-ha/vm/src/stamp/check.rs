//! The double-run checker: from the stamps on the VMs' disks, proves that no
//! two boots of one VM ran at the same time and that a protected VM was never
//! down longer than a bound.
//!
//! A boot's window is [first stamp, last stamp] of that boot. Two boots of one
//! VM whose windows intersect ran at the same time: a violation. Times are
//! wall-clock milliseconds written by the VM (host clock for process VMs, the
//! start time the driver passed plus guest uptime for QEMU guests), so the
//! check tolerates no skew: a lab on one machine has none.
//!
//! A ring keeps 204.8 s of history per slot, and a later boot of a VM can
//! overwrite an earlier boot's last records. For longer runs and VMs that
//! boot again, read the disks repeatedly into one [`StampLog`] (it keeps
//! every record it ever saw).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use uuid::Uuid;

use super::record::StampRecord;
use super::region::RegionError;

/// Every record seen so far, deduplicated.
#[derive(Debug, Default, Clone)]
pub struct StampLog {
    records: BTreeSet<StampRecord>,
    /// Blocks seen damaged (offset, reason), for the report.
    pub damaged: Vec<(String, u64, String)>,
}

/// A boot of a VM as the stamps show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootWindow {
    pub vm: Uuid,
    pub boot: Uuid,
    pub host: String,
    pub first_ms: u64,
    pub last_ms: u64,
    pub records: usize,
}

/// What the checker found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Two boots of `vm` wrote in overlapping time windows.
    Overlap {
        vm: Uuid,
        a: BootWindow,
        b: BootWindow,
    },
    /// `vm` wrote no stamp from `from_ms` to `to_ms`, longer than the bound.
    Down { vm: Uuid, from_ms: u64, to_ms: u64 },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Overlap { vm, a, b } => write!(
                f,
                "VM {vm} ran twice: boot {} on {} wrote {}..{} and boot {} on {} wrote {}..{}",
                a.boot, a.host, a.first_ms, a.last_ms, b.boot, b.host, b.first_ms, b.last_ms
            ),
            Violation::Down { vm, from_ms, to_ms } => write!(
                f,
                "VM {vm} was down {} ms (no stamp from {from_ms} to {to_ms})",
                to_ms - from_ms
            ),
        }
    }
}

/// How strict a check is.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// VMs that must never be down longer than `max_down_ms`.
    pub protected: BTreeSet<Uuid>,
    /// The bound on a protected VM's time without stamps.
    pub max_down_ms: u64,
    /// The interval that must be covered, if any: a protected VM must stamp
    /// within `max_down_ms` of its start and of its end.
    pub span_ms: Option<(u64, u64)>,
}

impl StampLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, record: StampRecord) {
        self.records.insert(record);
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn records(&self) -> impl Iterator<Item = &StampRecord> {
        self.records.iter()
    }

    /// Reads slot `slot` of `disk` and adds what it holds.
    pub fn read_disk(&mut self, disk: &Path, slot: u64) -> Result<usize, RegionError> {
        self.read_disk_in(disk, super::region::DiskArea::default(), slot)
    }

    /// Like [`StampLog::read_disk`], for a disk that is `area` of the
    /// device at `disk` (a VDI on a block SR).
    pub fn read_disk_in(
        &mut self,
        disk: &Path,
        area: super::region::DiskArea,
        slot: u64,
    ) -> Result<usize, RegionError> {
        let read = super::region::read_region_in(disk, area, slot)?;
        let n = read.records.len();
        self.records.extend(read.records);
        for (off, e) in read.damaged {
            self.damaged
                .push((disk.display().to_string(), off, e.to_string()));
        }
        Ok(n)
    }

    /// Every boot of every VM, ordered by VM then first stamp.
    pub fn windows(&self) -> Vec<BootWindow> {
        let mut by_boot: BTreeMap<(Uuid, Uuid), BootWindow> = BTreeMap::new();
        for r in &self.records {
            let w = by_boot.entry((r.vm, r.boot)).or_insert_with(|| BootWindow {
                vm: r.vm,
                boot: r.boot,
                host: r.host.clone(),
                first_ms: r.time_ms,
                last_ms: r.time_ms,
                records: 0,
            });
            w.first_ms = w.first_ms.min(r.time_ms);
            w.last_ms = w.last_ms.max(r.time_ms);
            w.records += 1;
        }
        let mut out: Vec<_> = by_boot.into_values().collect();
        out.sort_by_key(|w| (w.vm, w.first_ms, w.boot));
        out
    }

    /// Runs the check; an empty list means it passed.
    pub fn check(&self, opts: &CheckOptions) -> Vec<Violation> {
        let windows = self.windows();
        let mut out = Vec::new();
        for (i, a) in windows.iter().enumerate() {
            for b in windows[i + 1..].iter().take_while(|b| b.vm == a.vm) {
                if b.first_ms <= a.last_ms {
                    out.push(Violation::Overlap {
                        vm: a.vm,
                        a: a.clone(),
                        b: b.clone(),
                    });
                }
            }
        }
        for vm in &opts.protected {
            let mut times: Vec<u64> = self
                .records
                .iter()
                .filter(|r| r.vm == *vm)
                .map(|r| r.time_ms)
                .collect();
            if let Some((start, end)) = opts.span_ms {
                times.retain(|t| (start..=end).contains(t));
                times.insert(0, start);
                times.push(end);
            }
            times.sort_unstable();
            for pair in times.windows(2) {
                if pair[1] - pair[0] > opts.max_down_ms {
                    out.push(Violation::Down {
                        vm: *vm,
                        from_ms: pair[0],
                        to_ms: pair[1],
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(vm: u128, boot: u128, seq: u64, time_ms: u64) -> StampRecord {
        StampRecord {
            vm: Uuid::from_u128(vm),
            host: "h".into(),
            boot: Uuid::from_u128(boot),
            seq,
            time_ms,
        }
    }

    fn log_of(boots: &[(u128, u64, u64)]) -> StampLog {
        // (boot, first_ms, last_ms), every 200 ms.
        let mut log = StampLog::new();
        for &(boot, first, last) in boots {
            for (seq, t) in (first..=last).step_by(200).enumerate() {
                log.add(rec(1, boot, seq as u64, t));
            }
        }
        log
    }

    #[test]
    fn one_boot_after_another_passes() {
        let log = log_of(&[(10, 1_000, 5_000), (11, 5_200, 9_000)]);
        let opts = CheckOptions {
            protected: [Uuid::from_u128(1)].into(),
            max_down_ms: 1_000,
            span_ms: None,
        };
        assert_eq!(log.check(&opts), vec![]);
        assert_eq!(log.windows().len(), 2);
    }

    #[test]
    fn two_overlapping_writers_fail() {
        let log = log_of(&[(10, 1_000, 5_000), (11, 4_800, 9_000)]);
        let v = log.check(&CheckOptions::default());
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            matches!(&v[0], Violation::Overlap { a, b, .. } if a.boot == Uuid::from_u128(10) && b.boot == Uuid::from_u128(11))
        );
        assert!(v[0].to_string().contains("ran twice"));
    }

    #[test]
    fn down_longer_than_the_bound_fails() {
        let log = log_of(&[(10, 1_000, 5_000), (11, 8_000, 9_000)]);
        let opts = CheckOptions {
            protected: [Uuid::from_u128(1)].into(),
            max_down_ms: 2_000,
            span_ms: None,
        };
        assert_eq!(
            log.check(&opts),
            vec![Violation::Down {
                vm: Uuid::from_u128(1),
                from_ms: 5_000,
                to_ms: 8_000
            }]
        );
        // The span makes a VM that never started, or stopped early, a violation too.
        let opts = CheckOptions {
            span_ms: Some((0, 12_000)),
            ..opts
        };
        assert_eq!(log.check(&opts).len(), 2);
    }
}
