//! The packet format's tests: layout, every drop reason, replay order.

use super::*;
use crate::daemon::config::PoolSecret;
use sr_heartbeat::le::get_u16;
use sr_heartbeat::statefile::{HostSet, Phase};

fn hosts() -> Vec<Uuid> {
    (1..=3).map(|i| Uuid::from_u128(i * 0x1111)).collect()
}
fn secret(b: u8) -> PoolSecret {
    PoolSecret::new(vec![b; 32]).unwrap()
}
fn gen_uuid() -> Uuid {
    Uuid::from_u128(0xabcdef)
}
/// A subset of the fields plus defaults, so that fields the slot gains
/// keep their defaults without touching this test.
fn slot_of(index: u16) -> Slot {
    Slot {
        host_uuid: hosts()[usize::from(index)],
        host_index: index,
        sequence: 42,
        heard: HostSet(0b111),
        seen: HostSet(0b101),
        liveset: HostSet(0b111),
        proposed: HostSet(0b011),
        lock_request: HostSet(0b001),
        lock_grant: HostSet(0b001),
        master_epoch: 9,
        fault_round: 2,
        phase: Phase::Agreeing,
        starting: true,
        fence_request: true,
        statefile_access: true,
        net_round: 4,
        diag_time_ms: 1_700_000_000_000,
        ..Slot::default()
    }
}

#[test]
fn round_trip_and_layout() {
    let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
    let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
    let p = tx.encode(7, 8, &slot_of(1));
    assert_eq!(&p[..8], b"XHANET\0\0");
    assert_eq!(get_u16(&p, off::SENDER_INDEX), 1);
    let hb = rx.decode(&p).unwrap();
    assert_eq!(hb.from, 1);
    assert_eq!((hb.incarnation, hb.packet_sequence), (7, 8));
    assert_eq!(hb.slot, slot_of(1));
    // The status text is not sent.
    let mut with_text = slot_of(1);
    with_text.status = "busy".into();
    assert_eq!(
        rx.decode(&tx.encode(7, 9, &with_text)).unwrap().slot,
        slot_of(1)
    );
}

#[test]
fn each_check_has_its_reason() {
    let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
    let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
    let p = tx.encode(7, 8, &slot_of(1));
    assert_eq!(
        rx.decode(&p[..100]),
        Err(DropReason::Truncated { len: 100 })
    );
    let mut big = p.to_vec();
    big.push(0);
    assert_eq!(
        rx.decode(&big),
        Err(DropReason::Oversized {
            len: PACKET_LEN + 1
        })
    );
    let mut q = p;
    q[0] ^= 1;
    assert!(matches!(rx.decode(&q), Err(DropReason::BadMagic { .. })));
    let mut q = p;
    q[off::VERSION] = 1;
    assert_eq!(rx.decode(&q), Err(DropReason::WrongVersion { found: 1 }));
    let foreign = Codec::new(Uuid::from_u128(5), hosts(), 1, &secret(1));
    assert!(matches!(
        rx.decode(&foreign.encode(1, 1, &slot_of(1))),
        Err(DropReason::ForeignPool { .. })
    ));
    let other_key = Codec::new(gen_uuid(), hosts(), 1, &secret(2));
    assert_eq!(
        rx.decode(&other_key.encode(1, 1, &slot_of(1))),
        Err(DropReason::Forged)
    );
    // From host 0 to itself.
    let own = rx.encode(1, 1, &slot_of(0));
    assert_eq!(rx.decode(&own), Err(DropReason::FromSelf { index: 0 }));
    // A host list where index 1 has another UUID.
    let mut wrong_hosts = hosts();
    wrong_hosts[1] = Uuid::from_u128(0x9999);
    let liar = Codec::new(gen_uuid(), wrong_hosts.clone(), 1, &secret(1));
    let mut s = slot_of(1);
    s.host_uuid = wrong_hosts[1];
    assert!(matches!(
        rx.decode(&liar.encode(1, 1, &s)),
        Err(DropReason::SenderMismatch { index: 1, .. })
    ));
    // Index 3 in a 3-host pool (sender believes in 4 hosts).
    let mut four = hosts();
    four.push(Uuid::from_u128(0xffff));
    let extra = Codec::new(gen_uuid(), four.clone(), 3, &secret(1));
    let mut s = slot_of(0);
    s.host_index = 3;
    s.host_uuid = four[3];
    assert_eq!(
        rx.decode(&extra.encode(1, 1, &s)),
        Err(DropReason::UnknownSender { index: 3, hosts: 3 })
    );
}

fn resign(c: &Codec, p: &mut [u8; PACKET_LEN]) {
    let t = c.tag(&p[..off::MAC]);
    p[off::MAC..].copy_from_slice(&t);
}

#[test]
fn authentic_but_malformed_fields() {
    let tx = Codec::new(gen_uuid(), hosts(), 1, &secret(1));
    let rx = Codec::new(gen_uuid(), hosts(), 0, &secret(1));
    let corrupt = |at: usize, v: u8| {
        let mut p = tx.encode(1, 1, &slot_of(1));
        p[at] = v;
        resign(&tx, &mut p);
        rx.decode(&p)
    };
    assert!(matches!(
        corrupt(off::SLOT + slot_off::PHASE, 9),
        Err(DropReason::Malformed { field: "slot", .. })
    ));
    assert!(matches!(
        corrupt(off::SLOT + slot_off::FLAGS, 0x80),
        Err(DropReason::Malformed { field: "slot", .. })
    ));
    assert!(matches!(
        corrupt(off::SLOT + slot_off::HOST_INDEX, 2),
        Err(DropReason::Malformed { field: "slot", .. })
    ));
    assert!(matches!(
        corrupt(off::SLOT + slot_off::HOST_UUID, 0xee),
        Err(DropReason::Malformed {
            field: "slot.host_uuid",
            ..
        })
    ));
    assert!(matches!(
        corrupt(off::SLOT + slot_off::STATUS_LEN, 1),
        Err(DropReason::Malformed {
            field: "slot.status_len",
            ..
        })
    ));
    assert!(matches!(
        corrupt(off::RESERVED + 3, 1),
        Err(DropReason::Malformed {
            field: "reserved",
            ..
        })
    ));
}

#[test]
fn replay_filter_orders_incarnations_then_sequences() {
    let mut f = ReplayFilter::default();
    assert!(f.check(100, 1).is_ok());
    assert!(f.check(100, 2).is_ok());
    assert!(matches!(f.check(100, 2), Err(DropReason::Replayed { .. })));
    assert!(matches!(f.check(100, 1), Err(DropReason::Replayed { .. })));
    // A restarted peer: new incarnation, sequence starts again.
    assert!(f.check(200, 1).is_ok());
    // A recording of the old incarnation, even with a high sequence.
    assert!(matches!(
        f.check(100, 999),
        Err(DropReason::Replayed { .. })
    ));
    assert_eq!(f.last(), Some((200, 1)));
}

#[test]
fn receiver_counts_every_reason() {
    let mut tx = Sender::new(Codec::new(gen_uuid(), hosts(), 1, &secret(1)), 50);
    let mut rx = Receiver::new(Codec::new(gen_uuid(), hosts(), 0, &secret(1)));
    let p1 = tx.packet(&slot_of(1));
    let p2 = tx.packet(&slot_of(1));
    assert!(rx.accept(&p1).is_ok());
    assert!(rx.accept(&p2).is_ok());
    assert!(matches!(rx.accept(&p1), Err(DropReason::Replayed { .. })));
    assert!(rx.accept(&[1, 2, 3]).is_err());
    let mut forged = p2;
    forged[off::SLOT + slot_off::LIVESET] ^= 4;
    assert_eq!(rx.accept(&forged), Err(DropReason::Forged));
    let c = rx.counters();
    assert_eq!((c.replayed, c.truncated, c.forged, c.total()), (1, 1, 1, 3));
    // A restarted sender is accepted at once.
    let mut tx2 = Sender::new(Codec::new(gen_uuid(), hosts(), 1, &secret(1)), 51);
    assert!(rx.accept(&tx2.packet(&slot_of(1))).is_ok());
    assert!(matches!(rx.accept(&p2), Err(DropReason::Replayed { .. })));
}
