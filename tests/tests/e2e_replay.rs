//! Issue 9, section 4: a replay floor that cannot be lowered warns on both
//! sides. Real `xhad` processes, T = 10 s; each host reaches the shared
//! statefile through its own `faultfs` mount (needs FUSE: root in CI;
//! otherwise the test prints why it skips).
//!
//! A packet forged as the master with a packet number far above the
//! master's raises a non-master's replay floor; that host's storage hangs
//! at the same moment, so it has no fresh statefile evidence to lower the
//! floor. It warns "dropping host M's packets as replayed" (`replay-dropping`)
//! and the master, which still hears it, sees from its heartbeats that it is
//! not heard and warns `not-heard-by`. (With storage, the floor falls back
//! within a few intervals: `e2e_loopback.rs`.)

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use ha_tests::e2e::{
    assert_fenced, forger, logs, non_master, others, poll_report, shrink_bound, wait_shrunk,
};
use ha_tests::faultfs::{Mode, fuse_available};
use ha_tests::storage_lab::StorageLab;
use xha::daemon::control::WarningKind;

const T: u64 = 10;

#[test]
fn lasting_replay_drops_warn_on_both_sides() {
    if let Err(why) = fuse_available() {
        eprintln!("skipping: {why}");
        return;
    }
    let (s, master) = StorageLab::start(3, T, Path::new(env!("CARGO_BIN_EXE_faultfs")));
    let (lab, mounts) = (&s.lab, &s.mounts);
    let victim = non_master(lab, master);
    let (codec, incarnation, mut slot) = forger(lab, master, &s.backing);
    slot.sequence += 1;
    let packet = codec.encode(incarnation, 1 << 32, &slot);
    mounts[victim].set_mode(Mode::Hang).expect("hang mode");
    let t0 = Instant::now();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(&packet, lab.info(victim).address)
        .expect("send");
    let master_uuid = lab.uuid(master);
    let victim_uuid = lab.uuid(victim);
    // 4 intervals (0.8 s) of drops, then the warning; well before the
    // victim's lease runs out (0.7 T).
    let receiver_side = poll_report(lab, victim, Duration::from_secs(5), |r| {
        r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::ReplayDropping && w.host == Some(master_uuid))
    });
    let receiver_at = t0.elapsed();
    assert!(
        receiver_side.is_some(),
        "the victim does not report the drops\n{}",
        logs(lab)
    );
    // The victim's heard set loses the master after the heartbeat timeout
    // (1.6 s); the master warns half a timeout later.
    let sender_side = poll_report(lab, master, Duration::from_secs(6), |r| {
        r.warnings
            .iter()
            .any(|w| w.kind == WarningKind::NotHeardBy && w.host == Some(victim_uuid))
    });
    let sender_at = t0.elapsed();
    assert!(
        sender_side.is_some(),
        "the master does not warn that the victim does not hear it\n{}",
        logs(lab)
    );
    assert!(
        lab.log(victim)
            .contains(&format!("dropping host {master}'s packets as replayed")),
        "{}",
        lab.log(victim)
    );
    eprintln!(
        "replay drops reported by the receiver after {receiver_at:?}, by the sender after {sender_at:?}"
    );
    // Its storage hangs: it fences at its lease end and the others shrink,
    // as for any such host.
    wait_shrunk(lab, &others(lab, &[victim]), t0, shrink_bound(T));
    assert_fenced(lab, victim, shrink_bound(T));
    // A process blocked in a hung FUSE request cannot die until the request
    // is answered (as in e2e_storage.rs): release it, let it exit, then stop.
    mounts[victim].set_mode(Mode::Ok).expect("ok mode");
    let status = lab.daemon_exit(victim, Duration::from_secs(10));
    assert!(status.is_some(), "the fenced daemon did not exit");
    s.stop();
}
