//! The heartbeat wire format under arbitrary input: round trips, decoding
//! never panics, every single-bit corruption is rejected, and a corpus of
//! hand-made datagrams each gets its expected drop reason. (The cargo-fuzz
//! crate belongs to `sr-heartbeat`; this is the daemon's equivalent, run by
//! `cargo test`.)

use proptest::prelude::*;
use sr_heartbeat::statefile::slot::off as slot_off;
use sr_heartbeat::statefile::{HostSet, Phase, Slot};
use uuid::Uuid;
use xha::daemon::config::PoolSecret;
use xha::daemon::wire::{
    Codec, DropKind, DropReason, PACKET_LEN, RECV_BUFFER_LEN, Receiver, ReplayFilter, Sender, off,
};

const HOSTS: usize = 5;

fn hosts() -> Vec<Uuid> {
    (1..=HOSTS as u128)
        .map(|i| Uuid::from_u128(i << 64 | i))
        .collect()
}
fn generation() -> Uuid {
    Uuid::from_u128(0x6e6e_0000_0000_0000_0000_0000_0000_0001)
}
fn secret() -> PoolSecret {
    PoolSecret::new(b"0123456789abcdef0123456789abcdef".to_vec()).unwrap()
}
fn codec(local: usize) -> Codec {
    Codec::new(generation(), hosts(), local, &secret())
}

fn phase() -> impl Strategy<Value = Phase> {
    prop_oneof![
        Just(Phase::Normal),
        Just(Phase::Stabilising),
        Just(Phase::Agreeing),
        Just(Phase::Deciding),
        Just(Phase::Fencing),
    ]
}

prop_compose! {
    fn slot_of(index: usize)(
        sequence: u64,
        sets in proptest::array::uniform6(any::<u64>()),
        master_epoch: u64,
        fault_round: u64,
        net_round: u64,
        diag_time_ms: u64,
        phase in phase(),
        flags in proptest::array::uniform5(any::<bool>()),
    ) -> Slot {
        // Every fixed field the tests know, plus defaults for fields the
        // slot may gain.
        Slot {
            host_uuid: hosts()[index],
            host_index: index as u16,
            sequence,
            heard: HostSet(sets[0]),
            seen: HostSet(sets[1]),
            liveset: HostSet(sets[2]),
            proposed: HostSet(sets[3]),
            lock_request: HostSet(sets[4]),
            lock_grant: HostSet(sets[5]),
            master_epoch,
            fault_round,
            phase,
            excluded: flags[0],
            starting: flags[1],
            fence_request: flags[2],
            statefile_access: flags[3],
            fencing_disarmed: flags[4],
            net_round,
            diag_time_ms,
            ..Slot::default()
        }
    }
}

fn sender_and_slot() -> impl Strategy<Value = (usize, Slot, u64, u64)> {
    (1..HOSTS).prop_flat_map(|i| (Just(i), slot_of(i), any::<u64>(), any::<u64>()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip((from, slot, incarnation, seq) in sender_and_slot()) {
        let p = codec(from).encode(incarnation, seq, &slot);
        let hb = codec(0).decode(&p).unwrap();
        prop_assert_eq!(hb.from, from);
        prop_assert_eq!(hb.incarnation, incarnation);
        prop_assert_eq!(hb.packet_sequence, seq);
        prop_assert_eq!(hb.slot, slot);
    }

    #[test]
    fn every_single_bit_flip_is_rejected(
        (from, slot, incarnation, seq) in sender_and_slot(),
        bit in 0..PACKET_LEN * 8,
    ) {
        let mut p = codec(from).encode(incarnation, seq, &slot);
        p[bit / 8] ^= 1 << (bit % 8);
        let r = codec(0).decode(&p);
        prop_assert!(r.is_err(), "bit {} flipped and accepted", bit);
        // Flips outside magic, version and generation are caught by the MAC.
        let byte = bit / 8;
        if byte >= off::SENDER_INDEX && !(off::GENERATION..off::SENDER_UUID).contains(&byte) {
            prop_assert_eq!(r, Err(DropReason::Forged));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..RECV_BUFFER_LEN)) {
        let mut rx = Receiver::new(codec(0));
        prop_assert!(rx.accept(&bytes).is_err());
        prop_assert_eq!(rx.counters().total(), 1);
    }

    /// Datagrams that pass the cheap header checks (right magic, version
    /// and pool) but carry arbitrary contents: only the MAC stands between
    /// them and the core, and it holds.
    #[test]
    fn plausible_headers_with_arbitrary_bodies_are_forged(body in proptest::collection::vec(any::<u8>(), PACKET_LEN..=PACKET_LEN)) {
        let mut p = body;
        let valid = codec(1).encode(1, 1, &Slot { host_uuid: hosts()[1], host_index: 1, ..Slot::default() });
        p[..off::SENDER_INDEX].copy_from_slice(&valid[..off::SENDER_INDEX]);
        p[off::GENERATION..off::SENDER_UUID].copy_from_slice(&valid[off::GENERATION..off::SENDER_UUID]);
        prop_assert_eq!(codec(0).decode(&p), Err(DropReason::Forged));
    }

    /// The replay filter accepts exactly the pairs that beat every pair
    /// accepted before (a model check against a running maximum).
    #[test]
    fn replay_filter_matches_its_model(pairs in proptest::collection::vec((0u64..4, 0u64..6), 0..64)) {
        let mut f = ReplayFilter::default();
        let mut best: Option<(u64, u64)> = None;
        for (inc, seq) in pairs {
            let expect = best.is_none_or(|b| (inc, seq) > b);
            prop_assert_eq!(f.check(inc, seq).is_ok(), expect);
            if expect {
                best = Some((inc, seq));
            }
            prop_assert_eq!(f.last(), best);
        }
    }
}

/// A corpus of hand-made datagrams, each with the drop reason it must get.
#[test]
fn corpus() {
    let tx = codec(2);
    let slot = Slot {
        host_uuid: hosts()[2],
        host_index: 2,
        sequence: 9,
        ..Slot::default()
    };
    let valid = tx.encode(100, 5, &slot);
    let mut cases: Vec<(&str, Vec<u8>, DropKind)> = vec![
        ("empty", vec![], DropKind::Truncated),
        ("one byte", vec![0x58], DropKind::Truncated),
        (
            "one short",
            valid[..PACKET_LEN - 1].to_vec(),
            DropKind::Truncated,
        ),
        ("all zero", vec![0; PACKET_LEN], DropKind::BadMagic),
        ("all ones", vec![0xff; PACKET_LEN], DropKind::BadMagic),
        (
            "receive buffer full",
            vec![0; RECV_BUFFER_LEN],
            DropKind::Oversized,
        ),
        (
            "statefile slot",
            slot.to_bytes(generation()),
            DropKind::Oversized,
        ),
    ];
    let mut longer = valid.to_vec();
    longer.push(0);
    cases.push(("one long", longer, DropKind::Oversized));
    let mut v3 = valid;
    v3[off::VERSION] = 3;
    cases.push(("version 3", v3.to_vec(), DropKind::WrongVersion));
    let mut v1 = valid;
    v1[off::VERSION] = 1;
    cases.push(("version 1", v1.to_vec(), DropKind::WrongVersion));
    let foreign = Codec::new(Uuid::from_u128(77), hosts(), 2, &secret()).encode(1, 1, &slot);
    cases.push(("foreign pool", foreign.to_vec(), DropKind::ForeignPool));
    let other_secret = PoolSecret::new(vec![0x42; 32]).unwrap();
    let forged = Codec::new(generation(), hosts(), 2, &other_secret).encode(1, 1, &slot);
    cases.push(("wrong secret", forged.to_vec(), DropKind::Forged));
    let mut zero_mac = valid;
    zero_mac[off::MAC..].fill(0);
    cases.push(("zero MAC", zero_mac.to_vec(), DropKind::Forged));
    let mut edited = valid;
    edited[off::SLOT + slot_off::LIVESET] = 0xff;
    cases.push(("edited liveset", edited.to_vec(), DropKind::Forged));
    let own = codec(0).encode(
        1,
        1,
        &Slot {
            host_uuid: hosts()[0],
            host_index: 0,
            ..Slot::default()
        },
    );
    cases.push(("own packet", own.to_vec(), DropKind::WrongSender));

    for (name, bytes, kind) in cases {
        let mut rx = Receiver::new(codec(0));
        let r = rx.accept(&bytes);
        assert_eq!(
            r.as_ref().map_err(DropReason::kind).err(),
            Some(kind),
            "{name}: {r:?}"
        );
    }

    // Every truncation and extension of a valid packet.
    let rx = codec(0);
    for len in 0..PACKET_LEN {
        assert_eq!(
            rx.decode(&valid[..len]).map_err(|e| e.kind()).err(),
            Some(DropKind::Truncated)
        );
    }
    let mut long = valid.to_vec();
    for _ in 0..64 {
        long.push(0);
        assert_eq!(
            rx.decode(&long).map_err(|e| e.kind()).err(),
            Some(DropKind::Oversized)
        );
    }
}

/// A replay of a recorded packet after the sender restarted: rejected, and
/// counted, while the new incarnation's packets flow.
#[test]
fn replays_across_a_restart_are_counted() {
    let slot = Slot {
        host_uuid: hosts()[3],
        host_index: 3,
        ..Slot::default()
    };
    let mut old = Sender::new(codec(3), 1_000);
    let recorded: Vec<_> = (0..5).map(|_| old.packet(&slot)).collect();
    let mut rx = Receiver::new(codec(0));
    for p in &recorded {
        rx.accept(p).unwrap();
    }
    let mut new = Sender::new(codec(3), 2_000);
    rx.accept(&new.packet(&slot)).unwrap();
    for p in &recorded {
        assert!(matches!(rx.accept(p), Err(DropReason::Replayed { .. })));
    }
    rx.accept(&new.packet(&slot)).unwrap();
    assert_eq!(rx.counters().replayed, 5);
    assert_eq!(rx.counters().total(), 5);
}
