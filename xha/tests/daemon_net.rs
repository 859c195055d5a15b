//! The UDP heartbeat transport on loopback: heartbeats flow between two
//! hosts' tasks; forged, replayed, foreign and garbage datagrams sent by the
//! test are dropped and counted, and accepted traffic is unaffected.

use std::time::Duration;

use sr_heartbeat::statefile::{HostSet, Slot};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;
use xha::daemon::config::PoolSecret;
use xha::daemon::net::{self, SendStats};
use xha::daemon::wire::{Codec, DropCounters, Receiver, Sender};

const WAIT: Duration = Duration::from_secs(30);

fn hosts() -> Vec<Uuid> {
    (1..=3u128).map(Uuid::from_u128).collect()
}
fn generation() -> Uuid {
    Uuid::from_u128(0x9e9)
}
fn secret(b: u8) -> PoolSecret {
    PoolSecret::new(vec![b; 32]).unwrap()
}
fn slot(index: usize, sequence: u64) -> Slot {
    Slot {
        host_uuid: hosts()[index],
        host_index: index as u16,
        sequence,
        liveset: HostSet(0b111),
        ..Slot::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_flow_and_bad_datagrams_are_counted() {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let sock0 = net::bind(loopback).await.unwrap();
    let sock1 = net::bind(loopback).await.unwrap();
    let addr0 = sock0.local_addr().unwrap();

    // Host 0 receives.
    let (hb_tx, mut hb_rx) = mpsc::channel(64);
    let (drops_tx, mut drops) = watch::channel(DropCounters::default());
    let (_evidence_tx, evidence) = watch::channel(Vec::new());
    let (dropping, _) = watch::channel(Vec::new());
    let origin = std::time::Instant::now();
    let ctx = net::ReceiveContext {
        now: Box::new(move || xha::core::Instant::from_nanos(origin.elapsed().as_nanos() as u64)),
        evidence,
        dropping,
        warn_every: Duration::from_secs(10),
    };
    let rx_task = net::spawn_receiver(
        sock0,
        Receiver::new(Codec::new(generation(), hosts(), 0, &secret(1))),
        hb_tx,
        drops_tx,
        ctx,
    );

    // Host 1 sends its state to host 0.
    let (state_tx, state_rx) = watch::channel(None);
    let (stats_tx, stats) = watch::channel(SendStats::default());
    let tx_task = net::spawn_sender(
        sock1,
        vec![addr0],
        Sender::new(Codec::new(generation(), hosts(), 1, &secret(1)), 500),
        state_rx,
        stats_tx,
    );
    state_tx.send_replace(Some(slot(1, 7)));
    let hb = tokio::time::timeout(WAIT, hb_rx.recv())
        .await
        .expect("heartbeat in time")
        .expect("channel open");
    assert_eq!((hb.from, hb.slot.sequence, hb.incarnation), (1, 7, 500));
    // The sender counts the state after its sends returned, possibly after
    // the receiver already delivered it: wait for the count.
    let mut stats = stats;
    tokio::time::timeout(WAIT, stats.wait_for(|s| s.states_sent == 1))
        .await
        .expect("state counted in time")
        .expect("sender alive");
    assert_eq!(stats.borrow().send_errors, 0);

    // The test plays host 2 and an attacker.
    let test_sock = UdpSocket::bind(loopback).await.unwrap();
    let mut host2 = Sender::new(Codec::new(generation(), hosts(), 2, &secret(1)), 900);
    let good = host2.packet(&slot(2, 1));
    test_sock.send_to(&good, addr0).await.unwrap();
    let hb = tokio::time::timeout(WAIT, hb_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hb.from, 2);
    // Replayed, forged (another secret), foreign pool, garbage.
    test_sock.send_to(&good, addr0).await.unwrap();
    let mut forger = Sender::new(Codec::new(generation(), hosts(), 2, &secret(2)), 901);
    test_sock
        .send_to(&forger.packet(&slot(2, 2)), addr0)
        .await
        .unwrap();
    let mut foreign = Sender::new(Codec::new(Uuid::from_u128(5), hosts(), 2, &secret(1)), 902);
    test_sock
        .send_to(&foreign.packet(&slot(2, 3)), addr0)
        .await
        .unwrap();
    test_sock.send_to(b"hello", addr0).await.unwrap();
    test_sock.send_to(&[0u8; 1500], addr0).await.unwrap();

    let expected = DropCounters {
        replayed: 1,
        forged: 1,
        foreign_pool: 1,
        truncated: 1,
        oversized: 1,
        ..DropCounters::default()
    };
    tokio::time::timeout(WAIT, async {
        while *drops.borrow_and_update() != expected {
            drops.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("counters {:?}", *drops.borrow()));

    // Host 1's next state still gets through, after all that.
    state_tx.send_replace(Some(slot(1, 8)));
    let hb = tokio::time::timeout(WAIT, hb_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((hb.from, hb.slot.sequence, hb.packet_sequence), (1, 8, 2));
    assert!(hb_rx.try_recv().is_err(), "nothing else was accepted");

    // Closing the channels ends both tasks.
    drop(state_tx);
    drop(hb_rx);
    tokio::time::timeout(WAIT, tx_task).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, rx_task).await.unwrap().unwrap();
}
