//! The fault schedule of each class, drawn from the run's RNG.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::super::fault::{Control, Fault};
use super::super::storage::PathMode;
use super::super::time::{MILLISECOND, Nanos};
use super::Class;

/// Background network noise within the "no fault" envelope.
fn noise(rng: &mut ChaCha8Rng, max_loss_ppm: u32) -> Fault {
    let delay_max = rng.gen_range(1..=30) * MILLISECOND;
    Fault::NetQuality {
        loss_ppm: rng.gen_range(0..=max_loss_ppm),
        dup_ppm: rng.gen_range(0..=50_000),
        delay_min: MILLISECOND / 10,
        delay_max,
    }
}

pub(super) fn build_schedule(
    rng: &mut ChaCha8Rng,
    class: Class,
    hosts: usize,
    statefiles: usize,
    big_t: Nanos,
    t0: Nanos,
    safety: Nanos,
) -> Vec<(Nanos, Fault)> {
    let mut s = Vec::new();
    let at = |rng: &mut ChaCha8Rng, lo: f64, hi: f64| {
        t0 + rng.gen_range((safety as f64 * lo) as u64..(safety as f64 * hi) as u64)
    };
    match class {
        Class::Benign => {
            s.push((t0, noise(rng, 100_000)));
            for _ in 0..rng.gen_range(0..=hosts.min(6)) {
                let host = rng.gen_range(0..hosts);
                let max = big_t * 49 / 100;
                let lo = rng.gen_range(0..max);
                let when = at(rng, 0.0, 0.8);
                s.push((
                    when,
                    Fault::StorageLatency {
                        host,
                        sf: rng.gen_range(0..statefiles),
                        min: lo,
                        max: rng.gen_range(lo..=max),
                    },
                ));
            }
            if rng.gen_bool(0.5) {
                let host = rng.gen_range(0..hosts);
                let when = at(rng, 0.1, 0.6);
                s.push((
                    when,
                    Fault::Control {
                        host,
                        request: Control::ProposeMaster(true),
                    },
                ));
            }
        }
        Class::AllLoseStatefile => {
            s.push((t0, noise(rng, 20_000)));
            let when = at(rng, 0.05, 0.3);
            let mode = if rng.gen_bool(0.5) {
                PathMode::Failing
            } else {
                PathMode::Hung
            };
            for host in 0..hosts {
                for sf in 0..statefiles {
                    s.push((when, Fault::Storage { host, sf, mode }));
                }
            }
        }
        Class::SingleHost => {
            s.push((t0, noise(rng, 20_000)));
            let v = rng.gen_range(0..hosts);
            let when = at(rng, 0.05, 0.3);
            let fault = match rng.gen_range(0..6) {
                0 => vec![Fault::Crash(v)],
                1 => vec![Fault::Freeze(v)],
                2 => vec![Fault::Isolate(v)],
                3 | 4 => {
                    let mode = if rng.gen_bool(0.5) {
                        PathMode::Failing
                    } else {
                        PathMode::Hung
                    };
                    (0..statefiles)
                        .map(|sf| Fault::Storage { host: v, sf, mode })
                        .collect()
                }
                _ => (0..hosts)
                    .filter(|&p| p != v)
                    .map(|p| Fault::OneWay {
                        from: v,
                        to: p,
                        up: false,
                    })
                    .collect(),
            };
            for f in fault {
                s.push((when, f));
            }
        }
        Class::NetworkOutage => {
            s.push((t0, noise(rng, 20_000)));
            let when = at(rng, 0.05, 0.15);
            if rng.gen_bool(0.5) {
                // The switch fails: every link at one instant.
                s.push((when, Fault::Partition(Vec::new())));
            } else {
                // Singletons, one link (both directions) at a time within T/10.
                for a in 0..hosts {
                    for b in a + 1..hosts {
                        let cut = when + rng.gen_range(0..big_t / 10);
                        s.push((
                            cut,
                            Fault::OneWay {
                                from: a,
                                to: b,
                                up: false,
                            },
                        ));
                        s.push((
                            cut,
                            Fault::OneWay {
                                from: b,
                                to: a,
                                up: false,
                            },
                        ));
                    }
                }
            }
            if rng.gen_bool(0.4) {
                // Slow storage during the cut, up to T/4 on every host.
                let max = rng.gen_range(big_t / 50..=big_t / 4);
                for host in 0..hosts {
                    for sf in 0..statefiles {
                        let min = rng.gen_range(0..=max);
                        s.push((when, Fault::StorageLatency { host, sf, min, max }));
                    }
                }
            }
            if rng.gen_bool(0.25) {
                // The switch comes back, before or after the losers fence.
                let heal = when + big_t / 10 + rng.gen_range(big_t / 10..2 * big_t);
                s.push((heal, Fault::HealNetwork));
            }
        }
        Class::Chaos => {
            s.push((t0, noise(rng, 150_000)));
            if rng.gen_bool(0.3) {
                s.push((
                    t0,
                    Fault::TornWrites {
                        ppm: rng.gen_range(1_000..=100_000),
                    },
                ));
            }
            for _ in 0..rng.gen_range(2..=8) {
                let when = at(rng, 0.0, 0.6);
                let h = rng.gen_range(0..hosts);
                let f = match rng.gen_range(0..14) {
                    0 => Fault::Crash(h),
                    1 => Fault::Freeze(h),
                    2 => Fault::Thaw(h),
                    3 => Fault::Restart(h),
                    4 => Fault::Isolate(h),
                    5 => {
                        let mut order: Vec<usize> = (0..hosts).collect();
                        order.shuffle(rng);
                        let cut = rng.gen_range(0..=hosts);
                        Fault::Partition(vec![
                            order[..cut].iter().copied().collect(),
                            order[cut..].iter().copied().collect(),
                        ])
                    }
                    6 => Fault::OneWay {
                        from: h,
                        to: rng.gen_range(0..hosts),
                        up: false,
                    },
                    7 => Fault::HealNetwork,
                    8 => Fault::Storage {
                        host: h,
                        sf: rng.gen_range(0..statefiles),
                        mode: PathMode::Failing,
                    },
                    9 => Fault::Storage {
                        host: h,
                        sf: rng.gen_range(0..statefiles),
                        mode: PathMode::Hung,
                    },
                    10 => Fault::HealStorage,
                    11 => {
                        let lo = rng.gen_range(0..big_t);
                        Fault::StorageLatency {
                            host: h,
                            sf: rng.gen_range(0..statefiles),
                            min: lo,
                            max: lo + rng.gen_range(0..big_t),
                        }
                    }
                    12 => Fault::Control {
                        host: h,
                        request: Control::ProposeMaster(rng.gen_bool(0.7)),
                    },
                    _ => noise(rng, 300_000),
                };
                s.push((when, f));
            }
        }
    }
    s.sort_by_key(|(at, _)| *at);
    s
}
