//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) and a few
//! hundred deterministic mutations of valid inputs through the same checks
//! the cargo-fuzz targets run (`fuzz/src/checks.rs`), so CI checks every
//! decoder of network and socket input (heartbeat packets, control
//! requests and replies, supervisor lines, the configuration) for panics and
//! broken properties even without cargo-fuzz.
//!
//! `REGENERATE_FUZZ_SEEDS=1 cargo test -p xha --test fuzz_corpus_replay
//! committed_seeds` rewrites the `seed-*` files of the corpora from [`seeds`].

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

#[path = "../../sr-heartbeat/tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

use std::path::PathBuf;
use std::time::Duration;

use sr_heartbeat::statefile::slot::off as slot_off;
use sr_heartbeat::statefile::{HostSet, Phase, Slot};
use xha::core::{ControlError, Timeouts};
use xha::daemon::control::{
    ErrorBody, Event, EventKind, HostReport, Latency, LivesetReport, Request, Response, Status,
    TimeoutsReport, WarningKind, WarningReport, parse_request,
};
use xha::daemon::supervisor::Command;
use xha::daemon::wire::{DropCounters, DropReason, PACKET_LEN, off};

use checks::{FUZZ_CONFIG_DIR, FUZZ_LOCAL, TARGETS, fuzz_codec, fuzz_hosts, sign};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

// ---------------------------------------------------------------- packet

const INCARNATION: u64 = 1_763_000_000_000_000;

fn slot_of(index: usize) -> Slot {
    Slot {
        host_uuid: fuzz_hosts()[index],
        host_index: index as u16,
        sequence: 991,
        heard: HostSet(0b111),
        seen: HostSet(0b101),
        liveset: HostSet(0b111),
        proposed: HostSet(0b011),
        lock_request: HostSet(0b001),
        lock_grant: HostSet(0b001),
        master_epoch: 7,
        fault_round: 3,
        phase: Phase::Agreeing,
        starting: true,
        statefile_access: true,
        net_round: 4,
        diag_time_ms: 1_763_000_000_000,
        // Fields added later keep their defaults: the seeds stay valid.
        ..Slot::default()
    }
}

fn packet(from: usize, incarnation: u64, sequence: u64, slot: &Slot) -> Vec<u8> {
    fuzz_codec(from)
        .encode(incarnation, sequence, slot)
        .to_vec()
}

/// A valid packet with byte `at` set to `v` and signed again.
fn resigned(mut p: Vec<u8>, at: usize, v: u8) -> Vec<u8> {
    p[at] = v;
    sign(&mut p);
    p
}

fn packet_seeds() -> Vec<Vec<u8>> {
    let one = packet(1, INCARNATION, 1, &slot_of(1));
    let mut fencing = slot_of(2);
    fencing.phase = Phase::Fencing;
    fencing.fence_request = true;
    fencing.excluded = true;
    fencing.fencing_disarmed = true;
    fencing.sequence = u64::MAX;
    let two = packet(2, INCARNATION + 5, 77, &fencing);
    // A stream: in order, a replay, another peer, a restarted peer.
    let stream = [
        packet(1, INCARNATION, 1, &slot_of(1)),
        packet(1, INCARNATION, 2, &slot_of(1)),
        packet(1, INCARNATION, 1, &slot_of(1)),
        packet(2, INCARNATION, 5, &slot_of(2)),
        packet(1, INCARNATION + 1, 1, &slot_of(1)),
    ]
    .concat();
    let mut oversized = one.clone();
    oversized.push(0);
    let mut flipped = one.clone();
    flipped[off::SLOT + slot_off::LIVESET] ^= 0b100;
    let mut foreign = one.clone();
    foreign[off::GENERATION] ^= 1;
    sign(&mut foreign);
    vec![
        one.clone(),
        two,
        stream,
        one[..200].to_vec(),
        oversized,
        flipped,
        resigned(one.clone(), off::VERSION, 1),
        foreign,
        packet(FUZZ_LOCAL, INCARNATION, 1, &slot_of(FUZZ_LOCAL)),
        resigned(one.clone(), off::SLOT + slot_off::PHASE, 9),
        resigned(one.clone(), off::SLOT + slot_off::STATUS_LEN, 1),
        resigned(one.clone(), off::RESERVED, 1),
        // A byte the slot format reserves: accepted, re-encoded as zero.
        resigned(one, off::SLOT + slot_off::NET_ROUND + 8, 0x42),
    ]
}

// ------------------------------------------------------- control request

fn control_request_seeds() -> Vec<Vec<u8>> {
    let all = Request::EXAMPLES;
    let mut out: Vec<Vec<u8>> = all
        .iter()
        .enumerate()
        .map(|(i, r)| r.to_line((i % 2 == 0).then_some(i as u64)).into_bytes())
        .collect();
    for bad in [
        r#"{"request":"stop","force":true}"#,
        r#"{"request":"set-pool-state","state":"on"}"#,
        r#"{"request":"propose-master","value":"yes","id":18446744073709551615}"#,
        r#"{"id":-1,"request":"watch"}"#,
        "[1]",
    ] {
        out.push(bad.as_bytes().to_vec());
    }
    out.push(vec![0xff, b'{']);
    out
}

// ----------------------------------------------------------- server line

fn report() -> LivesetReport {
    let t = Timeouts::derive(Duration::from_secs(10)).expect("timeouts");
    let mut lat = Latency::default();
    lat.record(2.5);
    lat.record(0.1);
    lat.record(1234.567);
    let host = |i: usize, address: &str| HostReport {
        uuid: fuzz_hosts()[i],
        index: i,
        address: address.parse().expect("address"),
        live: true,
        master: i == 0,
        heard: true,
        seen: i != 2,
        statefile_access: true,
        statefile_corrupted: i == 2,
        excluded: false,
        starting: i == 1,
        fencing_disarmed: i == 2,
        silent_disarmed: false,
        last_heartbeat_age_ms: (i != 0).then_some(40),
        last_statefile_update_age_ms: Some(120),
    };
    LivesetReport {
        status: Status::Online,
        pool_generation: checks::FUZZ_GENERATION,
        local_host: fuzz_hosts()[0],
        local_index: 0,
        fencing_armed: true,
        watchdog: "supervisor".into(),
        master: Some(fuzz_hosts()[0]),
        master_epoch: 3,
        liveset: fuzz_hosts(),
        hosts: vec![
            host(0, "127.0.0.1:694"),
            host(1, "10.0.0.2:7001"),
            host(2, "[fe80::1%2]:694"),
        ],
        statefile_latency: lat,
        heartbeat_latency: Latency::default(),
        dropped_packets: DropCounters {
            forged: 2,
            replayed: 1,
            ..DropCounters::default()
        },
        fence_requests_refused: 1,
        timeouts: TimeoutsReport::from(&t),
        warnings: vec![
            WarningReport {
                kind: WarningKind::StatefileApproachingTimeout,
                message: "statefile 0: I/O took 4100 ms".into(),
                host: None,
                statefile: Some(0),
            },
            WarningReport {
                kind: WarningKind::HeartbeatApproachingTimeout,
                message: "host 2: no heartbeat for 1500 ms".into(),
                host: Some(fuzz_hosts()[2]),
                statefile: None,
            },
        ],
    }
}

fn server_line_seeds() -> Vec<Vec<u8>> {
    let starting = LivesetReport {
        status: Status::Starting,
        master: None,
        liveset: vec![],
        warnings: vec![],
        ..report()
    };
    vec![
        Response::liveset(Some(1), report()).to_line().into_bytes(),
        Event {
            event: EventKind::Liveset,
            sequence: 4,
            liveset: starting,
        }
        .to_line()
        .into_bytes(),
        Response::error(None, ErrorBody::from(&ControlError::NotMaster))
            .to_line()
            .into_bytes(),
        Response::ok(Some(3)).to_line().into_bytes(),
    ]
}

// ------------------------------------------------------- supervisor line

fn supervisor_line_seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        Command::Arm(Duration::from_millis(5000)),
        Command::Kick(None),
        Command::Kick(Some(Duration::from_millis(2000))),
        Command::Disarm,
        Command::Fence,
    ]
    .into_iter()
    .map(|c| checks::command_line(c).into_bytes())
    .collect();
    for s in [
        "arm 5000\nkick\nkick 100\ndisarm\narm 3600000\nkick\nfence",
        "kick\narm 100\narm 200",
        "arm 99",
        "arm 3600001",
        "kick 100 200",
        "arm\tx",
    ] {
        out.push(s.as_bytes().to_vec());
    }
    out
}

// ---------------------------------------------------------------- config

fn config_text(host: &str, hosts: &[(&str, &str)], extra: &str) -> String {
    let mut s = format!(
        "pool-generation = \"11111111-2222-3333-4444-555555555555\"\nhost = \"{host}\"\n{extra}\n"
    );
    for (uuid, address) in hosts {
        s.push_str(&format!(
            "\n[[hosts]]\nuuid = \"{uuid}\"\naddress = \"{address}\"\n"
        ));
    }
    s
}

const A: &str = "00000000-0000-0000-0000-00000000000a";
const B: &str = "00000000-0000-0000-0000-00000000000b";
const C: &str = "00000000-0000-0000-0000-00000000000c";

fn config_seeds() -> Vec<Vec<u8>> {
    vec![
        config_text(
            B,
            &[(C, "127.0.0.3"), (A, "127.0.0.1:7001"), (B, "127.0.0.2:7002")],
            "timeout = 10\nsecret-file = \"secret\"\nstatefiles = [\"/dev/sdx\"]\n\
             fence-action = \"kill-host\"\n\n[watchdog]\nbackend = \"supervisor\"\nsocket = \"sup.sock\"",
        ),
        config_text(
            A,
            &[(A, "fe80::1"), (B, "[fe80::2]:7002"), (C, "[fe80::3]")],
            "timeout = 3600\nsecret-file = \"/etc/xhad/secret\"\n\
             statefiles = [\"sf0\", \"/dev/sdy\", \"sf2\"]\nmaster-candidate = true\n\
             control-socket = \"/run/x/c.sock\"\nstate-dir = \"state\"\n\
             \n[watchdog]\nbackend = \"linux\"\ndevice = \"/dev/watchdog1\"",
        ),
        config_text(
            C,
            &[(C, "10.0.0.1")],
            "secret-file = \"s\"\nstatefiles = [\"a\", \"b\"]\nfence-action = \"reboot\"\n\
             \n[watchdog]\nbackend = \"none\"\nallow-no-watchdog = true",
        ),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "packet" => packet_seeds(),
        "control_request" => control_request_seeds(),
        "server_line" => server_line_seeds(),
        "supervisor_line" => supervisor_line_seeds(),
        "config" => config_seeds(),
        other => panic!("no seeds for target {other}"),
    }
}

/// The common mutations, plus inserting a token that matters to JSON, TOML
/// or the line protocols.
fn mutate(rng: &mut fuzz_harness::Rng, input: &[u8]) -> Vec<u8> {
    fn insert_token(rng: &mut fuzz_harness::Rng, v: &mut Vec<u8>) {
        const TOKENS: [&[u8]; 10] = [
            b"\n",
            b"\"",
            b"{",
            b"}",
            b"null",
            b"-1",
            b"1e999",
            b"99999999999999999999",
            b"[",
            b"=",
        ];
        let i = rng.below(v.len() + 1);
        let t = TOKENS[rng.below(TOKENS.len())];
        v.splice(i..i, t.iter().copied());
    }
    let m = fuzz_harness::Mutations {
        interesting: [0, 1, u64::from(u32::MAX), u64::MAX, 99, 3_600_001],
        max_extend: 600,
        special: insert_token,
    };
    fuzz_harness::mutate_with(&m, rng, input)
}

#[test]
fn committed_corpora_replay() {
    fuzz_harness::replay_corpora(TARGETS, &corpus_root());
}

#[test]
fn seeds_decode_and_mutations_never_panic() {
    fuzz_harness::mutations_never_panic(TARGETS, seeds, mutate);
}

#[test]
fn seeds_are_accepted_by_their_decoder() {
    // The seeds must reach past the MAC, the JSON and the TOML, or fuzzing
    // starts from nothing.
    let rx = fuzz_codec(FUZZ_LOCAL);
    let p = packet_seeds();
    assert!(rx.decode(&p[0]).is_ok());
    assert!(rx.decode(&p[1]).is_ok());
    let accepted = p[2]
        .chunks(PACKET_LEN)
        .filter(|c| rx.decode(c).is_ok())
        .count();
    assert_eq!(accepted, 5, "every packet of the stream is authentic");
    assert_eq!(rx.decode(&p[5]), Err(DropReason::Forged));
    assert!(rx.decode(p.last().expect("seeds")).is_ok());
    for s in control_request_seeds().iter().take(11) {
        assert!(parse_request(s).is_ok());
    }
    for s in server_line_seeds() {
        let line = String::from_utf8(s).expect("UTF-8");
        assert!(
            xha::daemon::control::parse_server_line(&line).is_ok(),
            "{line}"
        );
    }
    for s in supervisor_line_seeds().iter().take(5) {
        assert!(Command::parse(s).is_ok());
    }
    for s in config_seeds() {
        let text = String::from_utf8(s).expect("UTF-8");
        let parsed = xha::daemon::config::Config::parse(&text, FUZZ_CONFIG_DIR.as_ref());
        assert!(parsed.is_ok(), "{parsed:?}\n{text}");
    }
}

/// The committed `seed-N` files are exactly what the generators above
/// produce, so the corpus cannot drift from the formats. After a deliberate
/// format change, rewrite them with `REGENERATE_FUZZ_SEEDS=1 cargo test -p
/// xha --test fuzz_corpus_replay committed_seeds`.
#[test]
fn committed_seeds_match_the_generators() {
    fuzz_harness::check_seed_files(TARGETS, &corpus_root(), seeds);
}
