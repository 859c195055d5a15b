//! End-to-end tests with real `xhad` processes on loopback (no root needed):
//! every host is a real daemon in its own process group with its own
//! `xha-supervisor`, sharing one O_DIRECT statefile; faults are real
//! signals (SIGKILL, SIGSTOP) and real forged UDP packets. T = 10 s (the
//! smallest accepted); bounds are generous (see `ha_tests::e2e`).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use ha_tests::e2e::{
    assert_fenced, assert_stable, forger, logs, non_master, others, poll_report, shrink_bound,
    spec, start_online, wait_shrunk,
};
use sr_heartbeat::statefile::{HostSet, Phase, Slot};
use xha::daemon::config::PoolSecret;
use xha::daemon::control::{Request, WarningKind};
use xha::daemon::wire::{Codec, PACKET_LEN, SLOT_PREFIX_LEN};
use xha_lab::{Lab, Signal};

const T: u64 = 10;

fn start(hosts: usize) -> (Lab, usize) {
    start_online(spec(hosts, T))
}

/// SIGKILL one non-master host: the others publish the smaller liveset
/// within the bound and the killed host's supervisor reports it gone.
fn sigkill_one(hosts: usize) {
    let (lab, master) = start(hosts);
    let victim = non_master(&lab, master);
    let survivors = others(&lab, &[victim]);
    let t0 = Instant::now();
    lab.kill_host(victim, Signal::SIGKILL).expect("SIGKILL");
    let shrink = wait_shrunk(&lab, &survivors, t0, shrink_bound(T));
    assert_fenced(&lab, victim, shrink_bound(T));
    eprintln!("{hosts} hosts: SIGKILL of host {victim}: shrink after {shrink:?}");
    assert_eq!(
        lab.master_among(&survivors),
        Some(master),
        "the master stays"
    );
    lab.stop().expect("clean stop");
}

#[test]
fn three_hosts_sigkill_one() {
    sigkill_one(3);
}

#[test]
fn five_hosts_sigkill_one() {
    sigkill_one(5);
}

/// A host frozen (SIGSTOP) for longer than T is killed by its supervisor
/// at its lease end, and the others shrink.
#[test]
fn sigstop_longer_than_t_fences() {
    let (lab, master) = start(3);
    let victim = non_master(&lab, master);
    let survivors = others(&lab, &[victim]);
    let t0 = Instant::now();
    lab.kill_host(victim, Signal::SIGSTOP).expect("SIGSTOP");
    // The lease is 0.7 T: the supervisor fires well before T.
    assert_fenced(&lab, victim, Duration::from_secs(2 * T));
    let fenced_after = t0.elapsed();
    assert!(
        fenced_after < Duration::from_secs(T),
        "fenced {fenced_after:?} after the freeze; the lease is 0.7 T"
    );
    let shrink = wait_shrunk(&lab, &survivors, t0, shrink_bound(T));
    eprintln!("SIGSTOP > T: fenced after {fenced_after:?}, shrink after {shrink:?}");
    lab.stop().expect("clean stop");
}

/// A freeze shorter than T/2 is tolerated: nobody fences, nobody is
/// removed.
#[test]
fn sigstop_shorter_than_half_t_is_tolerated() {
    let (lab, master) = start(3);
    let victim = non_master(&lab, master);
    lab.kill_host(victim, Signal::SIGSTOP).expect("SIGSTOP");
    std::thread::sleep(Duration::from_secs(T) * 3 / 10);
    lab.kill_host(victim, Signal::SIGCONT).expect("SIGCONT");
    assert_stable(&lab, &lab.all(), Duration::from_secs(2 * T));
    lab.stop().expect("clean stop");
}

/// Packets made by the test: a replay of host 0's first packet, a forged
/// one (bad MAC), one signed with another secret, a truncated one and
/// garbage. Host 1 drops and counts each, and the pool is unaffected.
#[test]
fn forged_and_replayed_packets_are_counted() {
    let (lab, _master) = start(3);
    let secret = std::fs::read(lab.dir().join("pool-secret")).expect("read the lab secret");
    let secret = PoolSecret::new(secret).expect("secret");
    let hosts: Vec<_> = lab.all().into_iter().map(|i| lab.uuid(i)).collect();
    let codec = Codec::new(lab.pool_generation(), hosts.clone(), 0, &secret);
    let incarnation: u64 = std::fs::read_to_string(lab.info(0).dir.join("state/incarnation"))
        .expect("host 0's incarnation")
        .trim()
        .parse()
        .expect("a number");
    let slot = Slot {
        sequence: 1,
        host_index: 0,
        host_uuid: hosts[0],
        phase: Phase::Normal,
        liveset: HostSet::EMPTY,
        starting: true,
        ..Slot::default()
    };
    // Sequence 1 of the running incarnation was sent long ago: a replay.
    let replay = codec.encode(incarnation, 1, &slot);
    let mut forged = replay;
    forged[PACKET_LEN - 1] ^= 0x55;
    let other_secret = PoolSecret::new(vec![7u8; 32]).expect("secret");
    let foreign_key = Codec::new(lab.pool_generation(), hosts, 0, &other_secret).encode(
        incarnation,
        u64::MAX / 2,
        &slot,
    );
    let target = lab.info(1).address;
    let before = lab.query(1).expect("query").dropped_packets;
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&replay, target).expect("send");
    sock.send_to(&forged, target).expect("send");
    sock.send_to(&foreign_key, target).expect("send");
    sock.send_to(&replay[..SLOT_PREFIX_LEN], target)
        .expect("send");
    sock.send_to(&[0xffu8; PACKET_LEN], target).expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let d = lab.query(1).expect("query").dropped_packets;
        if d.total() >= before.total() + 5 || Instant::now() > deadline {
            break d;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(after.replayed, before.replayed + 1, "{after:?}");
    assert_eq!(after.forged, before.forged + 2, "{after:?}");
    assert_eq!(after.truncated, before.truncated + 1, "{after:?}");
    assert_eq!(after.bad_magic, before.bad_magic + 1, "{after:?}");
    assert_stable(&lab, &lab.all(), Duration::from_secs(2));
    lab.stop().expect("clean stop");
}

/// Issue 9, section 4: one heartbeat forged with the pool secret, claiming
/// that the master is deciding and asks a healthy host to fence, with a
/// packet number far above the master's. The victim refuses the request
/// (its statefile slot does not carry it; the victim survives by its own
/// views), counts it and logs the sender; its replay floor for the master,
/// raised by the packet, falls back on statefile evidence, so it keeps
/// hearing the master; nobody fences and the liveset stays whole for 2 T.
#[test]
fn a_forged_fence_request_fences_nobody() {
    let (lab, master) = start(3);
    let victim = non_master(&lab, master);
    let (codec, incarnation, mut slot) = forger(&lab, master, lab.statefile());
    slot.sequence += 1;
    slot.phase = Phase::Deciding;
    slot.fence_request = true;
    slot.proposed = slot.liveset;
    slot.proposed.remove(victim);
    let packet = codec.encode(incarnation, 1 << 32, &slot);
    let before = lab.query(victim).expect("query");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&packet, lab.info(victim).address)
        .expect("send");
    let counted = poll_report(&lab, victim, Duration::from_secs(5), |r| {
        r.fence_requests_refused > before.fence_requests_refused
    });
    assert!(
        counted.is_some(),
        "the refused request is not counted\n{}",
        logs(&lab)
    );
    assert_stable(&lab, &lab.all(), Duration::from_secs(2 * T));
    let r = lab.query(victim).expect("query");
    assert!(r.hosts[master].heard, "the victim hears the master");
    assert!(
        r.dropped_packets.floors_lowered > before.dropped_packets.floors_lowered,
        "the raised floor was lowered: {:?}",
        r.dropped_packets
    );
    let log = lab.log(victim);
    assert!(
        log.contains(&format!("fence request from host {master} refused")),
        "the victim logs the refusal with its sender\n{log}"
    );
    eprintln!(
        "forged fence request: {} refused, {} floor(s) lowered, nobody fenced",
        r.fence_requests_refused, r.dropped_packets.floors_lowered
    );
    lab.stop().expect("clean stop");
}

/// Issue 9, section 4: a heartbeat forged with an incarnation one day ahead
/// of the wall clock is refused (counted as `future-incarnation`), not
/// adopted as the floor: the real peer stays heard.
#[test]
fn a_far_future_incarnation_is_refused_and_the_peer_stays_heard() {
    let (lab, master) = start(3);
    let target = non_master(&lab, master);
    let (codec, _incarnation, mut slot) = forger(&lab, master, lab.statefile());
    slot.sequence += 1;
    let day_us = 86_400 * 1_000_000;
    let packet = codec.encode(xha::daemon::incarnation::wall_clock_us() + day_us, 1, &slot);
    let before = lab.query(target).expect("query").dropped_packets;
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&packet, lab.info(target).address)
        .expect("send");
    // Longer than the heartbeat timeout (4T/25 = 1.6 s): an adopted floor
    // would have made the master unheard by now.
    let t0 = Instant::now();
    let timeout = Duration::from_millis(4 * T * 1000 / 25);
    while t0.elapsed() < timeout * 3 {
        let r = lab.query(target).expect("query");
        let age = r.hosts[master].last_heartbeat_age_ms.unwrap_or(u64::MAX);
        assert!(
            r.hosts[master].heard && age < 1000,
            "the master is not heard (last heartbeat {age} ms ago)\n{}",
            logs(&lab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = lab.query(target).expect("query").dropped_packets;
    assert_eq!(
        after.future_incarnation,
        before.future_incarnation + 1,
        "the refusal is counted: {after:?}"
    );
    assert_eq!(after.replayed, before.replayed, "no real packet dropped");
    assert_stable(&lab, &lab.all(), Duration::from_secs(2));
    lab.stop().expect("clean stop");
}

/// Issue 9, section 7: a host whose fencing is disarmed dies (SIGKILL). It
/// is never removed (its lease proves nothing), and its peers say so in
/// their liveset query ("silent while fencing disarmed") within T plus a
/// margin, logging it once.
#[test]
fn a_dead_disarmed_host_is_reported_by_its_peers() {
    let (lab, master) = start(3);
    let victim = non_master(&lab, master);
    let r = lab
        .request(victim, Request::DisarmFencing)
        .expect("disarm-fencing");
    assert!(r.ok, "{r:?}");
    let peers = others(&lab, &[victim]);
    for &p in &peers {
        let seen = poll_report(&lab, p, Duration::from_secs(5), |r| {
            r.hosts[victim].fencing_disarmed
        });
        assert!(seen.is_some(), "host {p} does not see the disarm");
    }
    let t0 = Instant::now();
    lab.kill_host(victim, Signal::SIGKILL).expect("SIGKILL");
    for &p in &peers {
        let bound = Duration::from_secs(T + 10).saturating_sub(t0.elapsed());
        let r = poll_report(&lab, p, bound, |r| {
            r.hosts[victim].silent_disarmed
                && r.warnings
                    .iter()
                    .any(|w| w.kind == WarningKind::SilentWhileDisarmed)
        });
        let r = r.unwrap_or_else(|| panic!("host {p} does not report it\n{}", logs(&lab)));
        assert!(r.liveset.contains(&lab.uuid(victim)), "never removed");
    }
    eprintln!("silent disarmed host reported after {:?}", t0.elapsed());
    std::thread::sleep(Duration::from_secs(T));
    for &p in &peers {
        let r = lab.query(p).expect("query");
        assert!(r.hosts[victim].silent_disarmed, "still reported");
        assert!(r.liveset.contains(&lab.uuid(victim)), "still not removed");
        let n = lab.log(p).matches("silent while fencing disarmed").count();
        assert_eq!(n, 1, "host {p} logged it {n} times\n{}", lab.log(p));
        assert!(lab.supervisor_exit(p, Duration::ZERO).is_none());
    }
    lab.stop().expect("clean stop");
}

/// Kill the master: the survivors agree on a new master that holds the lock
/// with a higher epoch.
#[test]
fn killing_the_master_elects_a_new_one_with_a_higher_epoch() {
    let (lab, master) = start(3);
    let epoch = lab.query(master).expect("query").master_epoch;
    assert!(epoch >= 1);
    let survivors = others(&lab, &[master]);
    let t0 = Instant::now();
    lab.kill_host(master, Signal::SIGKILL).expect("SIGKILL");
    wait_shrunk(&lab, &survivors, t0, shrink_bound(T));
    let new = lab
        .wait_master(&survivors, Duration::from_secs(3 * T))
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&lab)));
    assert_ne!(new, master);
    for &i in &survivors {
        let r = lab.query(i).expect("query");
        assert_eq!(r.master, Some(lab.uuid(new)));
        assert!(
            r.master_epoch > epoch,
            "host {i} reports epoch {} after the old master's {epoch}",
            r.master_epoch
        );
    }
    eprintln!("new master {new} after {:?}", t0.elapsed());
    assert_fenced(&lab, master, shrink_bound(T));
    lab.stop().expect("clean stop");
}

/// Busy loops, killed on drop.
struct Hogs(Vec<std::process::Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for h in &mut self.0 {
            let _ = h.kill();
            let _ = h.wait();
        }
    }
}

/// Twice as many busy loops as cores, at normal priority, for 2 T: no host
/// fences or leaves. As root `xhad` runs SCHED_RR (it asks at start-up);
/// otherwise the fair scheduler still gives it far more than it needs.
#[test]
fn cpu_hogs_cause_no_false_fencing() {
    let (lab, _master) = start(3);
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let hogs = Hogs(
        (0..2 * cores)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .expect("spawn a busy loop")
            })
            .collect(),
    );
    assert_stable(&lab, &lab.all(), Duration::from_secs(2 * T));
    drop(hogs);
    lab.stop().expect("clean stop");
}
