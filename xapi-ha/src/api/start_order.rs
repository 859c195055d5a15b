//! `order` and `start_delay` for starts of several VMs (`xe vm-start
//! --multiple`, the HA restart engine), as xapi does them
//! (../shared/reference/xenapi.md §4.3, "Execution"):
//!
//! - the VMs are grouped by `order`, ascending; a **negative order sorts
//!   last**: it counts as `i64::MAX`, so every negative order (and
//!   `i64::MAX` itself) is one last group;
//! - the VMs of one group start in parallel, and the next group starts only
//!   when the whole group is done, including each VM's `start_delay`
//!   (xapi's `VM.start` sleeps `start_delay` seconds after a successful
//!   start before it returns), so a group takes its slowest start plus
//!   the largest `start_delay` of its VMs that started; a VM whose start
//!   failed does not sleep;
//! - within a group the VMs keep the order they were given in.
//!
//! [`start_groups`] is the pure plan; [`run_groups`] performs it with the
//! caller's start and sleep functions (threads for the parallel starts), so
//! the same code serves xe and the engine, and tests run it without clocks.

use std::time::Duration;

/// One VM to start, with its `order` and `start_delay` (seconds; a negative
/// delay counts as 0, as the schema refuses one anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartVm<T> {
    pub vm: T,
    pub order: i64,
    pub start_delay: i64,
}

/// VMs started together; the next group waits for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartGroup<T> {
    /// The group's effective order ([`effective_order`]).
    pub order: i64,
    /// In the order given.
    pub vms: Vec<StartVm<T>>,
}

/// A VM's place in the sequence: `order`, with a negative one last.
pub fn effective_order(order: i64) -> i64 {
    if order < 0 { i64::MAX } else { order }
}

/// The groups to start one after the other, by ascending effective order.
pub fn start_groups<T>(vms: impl IntoIterator<Item = StartVm<T>>) -> Vec<StartGroup<T>> {
    let mut groups: Vec<StartGroup<T>> = Vec::new();
    for v in vms {
        let order = effective_order(v.order);
        match groups.binary_search_by_key(&order, |g| g.order) {
            Ok(i) => groups[i].vms.push(v),
            Err(i) => groups.insert(
                i,
                StartGroup {
                    order,
                    vms: vec![v],
                },
            ),
        }
    }
    groups
}

/// How long a group waits after its starts returned: the largest
/// `start_delay` among the VMs that started (`started[i]` for `vms[i]`).
pub fn group_delay<T>(group: &StartGroup<T>, started: &[bool]) -> Duration {
    let secs = group
        .vms
        .iter()
        .zip(started)
        .filter(|(_, ok)| **ok)
        .map(|(v, _)| v.start_delay.max(0))
        .max()
        .unwrap_or(0);
    Duration::from_secs(secs.unsigned_abs())
}

/// Performs the plan: each group's starts run in parallel (one thread per
/// VM), then `sleep(group_delay)`, then the next group. Returns every VM
/// with its start's result, group by group. A failed start does not stop
/// the sequence (xapi goes on with the other VMs).
pub fn run_groups<T, R, E>(
    groups: Vec<StartGroup<T>>,
    start: impl Fn(&T) -> Result<R, E> + Sync,
    mut sleep: impl FnMut(Duration),
) -> Vec<(T, Result<R, E>)>
where
    T: Sync,
    R: Send,
    E: Send,
{
    let mut out = Vec::new();
    for group in groups {
        let results: Vec<Result<R, E>> = std::thread::scope(|s| {
            let start = &start;
            let handles: Vec<_> = group
                .vms
                .iter()
                .map(|v| s.spawn(move || start(&v.vm)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        let started: Vec<bool> = results.iter().map(Result::is_ok).collect();
        let delay = group_delay(&group, &started);
        out.extend(group.vms.into_iter().map(|v| v.vm).zip(results));
        if !delay.is_zero() {
            sleep(delay);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn vm(name: &'static str, order: i64, start_delay: i64) -> StartVm<&'static str> {
        StartVm {
            vm: name,
            order,
            start_delay,
        }
    }

    /// Each group's effective order and VM names.
    type Names = Vec<(i64, Vec<&'static str>)>;

    fn names(groups: &[StartGroup<&'static str>]) -> Names {
        groups
            .iter()
            .map(|g| (g.order, g.vms.iter().map(|v| v.vm).collect()))
            .collect()
    }

    #[test]
    fn groups_by_ascending_order_with_negative_orders_last() {
        let max = i64::MAX;
        let table: Vec<(Vec<StartVm<&'static str>>, Names)> = vec![
            (vec![], vec![]),
            (vec![vm("a", 0, 0)], vec![(0, vec!["a"])]),
            // All order 0: one group, in the order given.
            (
                vec![vm("b", 0, 0), vm("a", 0, 0), vm("c", 0, 0)],
                vec![(0, vec!["b", "a", "c"])],
            ),
            // Ascending, whatever the input order.
            (
                vec![vm("late", 5, 0), vm("first", 1, 0), vm("mid", 3, 0)],
                vec![(1, vec!["first"]), (3, vec!["mid"]), (5, vec!["late"])],
            ),
            // Negative orders go last, together, after any large order.
            (
                vec![
                    vm("neg1", -1, 0),
                    vm("zero", 0, 0),
                    vm("neg100", -100, 0),
                    vm("big", 1_000_000, 0),
                ],
                vec![
                    (0, vec!["zero"]),
                    (1_000_000, vec!["big"]),
                    (max, vec!["neg1", "neg100"]),
                ],
            ),
            // i64::MAX is the same group as the negative orders.
            (
                vec![vm("max", max, 0), vm("neg", -1, 0)],
                vec![(max, vec!["max", "neg"])],
            ),
            // Groups interleaved in the input.
            (
                vec![vm("a", 2, 0), vm("b", 1, 0), vm("c", 2, 0), vm("d", 1, 0)],
                vec![(1, vec!["b", "d"]), (2, vec!["a", "c"])],
            ),
        ];
        for (input, want) in table {
            let desc = format!("{input:?}");
            assert_eq!(names(&start_groups(input)), want, "{desc}");
        }
    }

    #[test]
    fn a_group_waits_for_the_largest_delay_of_the_vms_that_started() {
        let g = StartGroup {
            order: 0,
            vms: vec![vm("a", 0, 3), vm("b", 0, 10), vm("c", 0, -5)],
        };
        let table = [
            ([true, true, true], 10),
            ([true, false, true], 3),
            ([false, false, true], 0),
            ([false, false, false], 0),
        ];
        for (started, secs) in table {
            assert_eq!(
                group_delay(&g, &started),
                Duration::from_secs(secs),
                "{started:?}"
            );
        }
    }

    #[test]
    fn run_starts_each_group_after_the_previous_one_and_its_delay() {
        // A log of what happened, in order: starts and sleeps.
        let log = Mutex::new(Vec::<String>::new());
        let groups = start_groups(vec![
            vm("web", 2, 0),
            vm("db", 1, 30),
            vm("cache", 1, 5),
            vm("batch", -1, 7),
            vm("broken", 2, 60),
        ]);
        let out = run_groups(
            groups,
            |name: &&str| {
                log.lock().unwrap().push(format!("start {name}"));
                if *name == "broken" {
                    Err("no memory")
                } else {
                    Ok(())
                }
            },
            |d| log.lock().unwrap().push(format!("sleep {}", d.as_secs())),
        );
        let log = log.into_inner().unwrap();
        // Within a group the starts run in parallel: compare as sets.
        let pos = |s: &str| log.iter().position(|l| l == s).unwrap();
        assert!(pos("start db") < pos("sleep 30") && pos("start cache") < pos("sleep 30"));
        assert!(pos("sleep 30") < pos("start web") && pos("sleep 30") < pos("start broken"));
        // Group 2: `broken` failed, so its 60 s do not count and `web` has none.
        assert!(pos("start batch") > pos("start web"));
        assert!(pos("start batch") > pos("start broken"));
        assert_eq!(log.last().unwrap(), "sleep 7");
        assert_eq!(log.iter().filter(|l| l.starts_with("sleep")).count(), 2);
        assert_eq!(
            out.iter().map(|(n, r)| (*n, r.is_ok())).collect::<Vec<_>>(),
            vec![
                ("db", true),
                ("cache", true),
                ("web", true),
                ("broken", false),
                ("batch", true)
            ]
        );
    }
}
