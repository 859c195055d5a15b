//! Property tests: random slots, pool blocks and headers round-trip, through
//! memory and through a real statefile; the decoders never panic on
//! arbitrary bytes, whatever their length.

use proptest::prelude::*;
use sr_heartbeat::io::{BlockDevice, OpenMode};
use sr_heartbeat::statefile::header::HEADER_SIZE;
use sr_heartbeat::statefile::pool::POOL_BLOCK_SIZE;
use sr_heartbeat::statefile::slot::SLOT_SIZE;
use sr_heartbeat::statefile::{
    Header, HostSet, Phase, PoolBlock, PoolState, STATEFILE_SIZE, Slot, Statefile, StatefileRead,
};
use uuid::Uuid;

fn phase() -> impl Strategy<Value = Phase> {
    (0u8..=4).prop_map(|v| Phase::from_u8(v).expect("phase"))
}

fn slot() -> impl Strategy<Value = Slot> {
    (
        (any::<u128>(), 0u16..64, any::<u64>(), any::<[u64; 6]>()),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            phase(),
            any::<[bool; 5]>(),
        ),
        ("\\PC{0,60}", any::<u64>()),
    )
        .prop_map(
            |((uuid, index, sequence, sets), (epoch, round, net, phase, f), (status, t))| Slot {
                host_uuid: Uuid::from_u128(uuid),
                host_index: index,
                sequence,
                heard: HostSet(sets[0]),
                seen: HostSet(sets[1]),
                liveset: HostSet(sets[2]),
                proposed: HostSet(sets[3]),
                lock_request: HostSet(sets[4]),
                lock_grant: HostSet(sets[5]),
                master_epoch: epoch,
                fault_round: round,
                net_round: net,
                phase,
                excluded: f[0],
                starting: f[1],
                fence_request: f[2],
                statefile_access: f[3],
                fencing_disarmed: f[4],
                status: status.chars().take(60).collect::<String>(),
                diag_time_ms: t,
            },
        )
}

fn pool() -> impl Strategy<Value = PoolBlock> {
    (
        1u8..=3,
        proptest::option::of(1u128..),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(s, m, epoch, seq)| PoolBlock {
            state: PoolState::from_u8(s).expect("state"),
            master: m.map(Uuid::from_u128),
            master_epoch: epoch,
            update_seq: seq,
        })
}

proptest! {
    #[test]
    fn slot_round_trips(s in slot(), g in any::<u128>()) {
        let g = Uuid::from_u128(g);
        let bytes = s.to_bytes(g);
        prop_assert_eq!(Slot::decode(&bytes, g, s.host_index), Ok(s));
    }

    #[test]
    fn pool_round_trips(p in pool(), g in any::<u128>()) {
        let g = Uuid::from_u128(g);
        prop_assert_eq!(PoolBlock::decode(&p.to_bytes(g), g), Ok(p));
    }

    #[test]
    fn header_round_trips(g in any::<u128>(), ss in 9u32..=12, hosts in 1u16..=64, t in any::<u64>()) {
        let h = Header { generation: Uuid::from_u128(g), sector_size: 1 << ss, max_hosts: hosts, format_time_ms: t };
        prop_assert_eq!(Header::decode(&h.to_bytes()), Ok(h));
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..5000), g in any::<u128>(), pos in any::<u16>()) {
        let g = Uuid::from_u128(g);
        let _ = Slot::decode(&bytes, g, pos);
        let _ = PoolBlock::decode(&bytes, g);
        let _ = Header::decode(&bytes);
        let read = StatefileRead::decode(&bytes, g, pos % 65);
        prop_assert_eq!(read.slots.len(), usize::from(pos % 65));
    }

    #[test]
    fn full_blocks_never_panic(block in proptest::collection::vec(any::<u8>(), SLOT_SIZE), g in any::<u128>()) {
        // Right length, arbitrary content (and the same with a valid magic,
        // to get past the first check).
        let g = Uuid::from_u128(g);
        let mut variants = vec![block.clone()];
        for magic in [b"XHASLOT\0", b"XHAPOOL\0", b"XHASTATE"] {
            let mut b = block.clone();
            b[..8].copy_from_slice(magic);
            variants.push(b);
        }
        for b in &variants {
            let _ = Slot::decode(b, g, 0);
            let _ = PoolBlock::decode(&b[..POOL_BLOCK_SIZE], g);
            let _ = Header::decode(&b[..HEADER_SIZE]);
        }
        let mut all = block.clone();
        all.extend_from_slice(&block);
        let read = StatefileRead::decode(&all, g, 1);
        prop_assert_eq!(read.slots.len(), 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Through the real O_DIRECT path: write random slots, read them all back.
    #[test]
    fn slots_round_trip_on_disk(slots in proptest::collection::vec(slot(), 1..8)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("statefile");
        std::fs::File::create(&path).and_then(|f| f.set_len(STATEFILE_SIZE)).expect("image");
        let g = Uuid::new_v4();
        let sf = Statefile::format(BlockDevice::open(&path, OpenMode::ReadWrite).expect("open"), g, 64)
            .expect("format");
        let mut last = std::collections::BTreeMap::new();
        for s in &slots {
            sf.write_slot(s).expect("write");
            last.insert(s.host_index, s.clone());
        }
        let read = sf.read_all().expect("read_all");
        for (i, got) in read.slots.iter().enumerate() {
            match last.get(&(i as u16)) {
                Some(want) => prop_assert_eq!(got.as_ref(), Ok(want)),
                None => prop_assert!(got.is_err()),
            }
        }
    }
}
