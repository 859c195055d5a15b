//! The properties every decoder of network and socket input must have, one
//! function per fuzz target: decoding arbitrary bytes never panics, and what
//! is accepted is exactly what the matching encoder produces (a pair check),
//! plus what each protocol promises on top (replay rejection, drop counts,
//! documented ranges, configuration invariants).
//!
//! Shared word for word by the cargo-fuzz targets (`fuzz_targets/*.rs`) and by
//! `xha/tests/fuzz_corpus_replay.rs`, which replays the committed corpora in
//! ordinary CI without cargo-fuzz. Depends only on `xha`, `sr_heartbeat`,
//! `uuid`, `hmac` and `sha2`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sr_heartbeat::statefile::MAX_HOSTS_LIMIT;
use sr_heartbeat::statefile::slot::off as slot_off;
use uuid::Uuid;
use xha::core::timeouts::{MAX_BASE, MIN_BASE};
use xha::daemon::config::{Config, MAX_STATEFILES, PoolSecret, WatchdogConfig};
use xha::daemon::control::{
    ErrorBody, MAX_REQUEST_LINE, REQUEST_NAMES, Request, Response, ServerLine, parse_request,
    parse_server_line,
};
use xha::daemon::supervisor::{
    Command, FenceCause, MAX_LINE, MAX_TIMEOUT, MIN_TIMEOUT, Outcome, Supervision,
};
use xha::daemon::wire::{Codec, DropReason, Heartbeat, PACKET_LEN, Receiver, off};

/// Largest input a check looks at: bounds the work per input.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;

fn bounded(data: &[u8]) -> &[u8] {
    &data[..data.len().min(MAX_INPUT_BYTES)]
}

// ---------------------------------------------------------------- packet

/// Pool generation the packet target decodes against (the committed seeds
/// are encoded with it, so fuzzing starts past the checks).
pub const FUZZ_GENERATION: Uuid = Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0003);

/// The pool secret of the packet target (32 bytes, the minimum).
pub const FUZZ_SECRET: [u8; 32] = *b"xha-fuzz: the pool secret 32 B.!";

/// The receiving host: index 0 of [`fuzz_hosts`].
pub const FUZZ_LOCAL: usize = 0;
/// The receiver's wall clock (microseconds) in the packet check: half the
/// range, so both accepted and too-far-ahead incarnations occur.
pub const FUZZ_WALL_US: u64 = 1 << 63;

/// The three hosts of the fuzzed pool, sorted (index = position).
#[must_use]
pub fn fuzz_hosts() -> Vec<Uuid> {
    [0x1111_u128, 0x2222, 0x3333]
        .into_iter()
        .map(|u| Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | u))
        .collect()
}

/// The codec of host `local` of the fuzzed pool.
#[must_use]
pub fn fuzz_codec(local: usize) -> Codec {
    let secret = PoolSecret::new(FUZZ_SECRET.to_vec()).expect("32-byte secret");
    Codec::new(FUZZ_GENERATION, fuzz_hosts(), local, &secret)
}

/// Stamp the MAC of a `PACKET_LEN`-byte packet under [`FUZZ_SECRET`]
/// (computed here, independently of the codec).
pub fn sign(packet: &mut [u8]) {
    assert_eq!(packet.len(), PACKET_LEN);
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&FUZZ_SECRET).expect("any key length");
    m.update(&packet[..off::MAC]);
    let tag = m.finalize().into_bytes();
    packet[off::MAC..].copy_from_slice(&tag);
}

/// Bytes of the embedded slot prefix that `docs/on-disk-format.md` marks
/// *zero*: written as zero, ignored by readers of this version so that a
/// later writer may use them. An authentic packet with something there is
/// accepted; its re-encoding has zeros there.
fn slot_zero_ranges() -> [std::ops::Range<usize>; 3] {
    [
        slot_off::PHASE + 1..slot_off::STATUS_LEN,
        slot_off::STATUS_LEN + 2..slot_off::DIAG_TIME_MS,
        slot_off::NET_ROUND + 8..slot_off::STATUS_TEXT,
    ]
}

/// An accepted packet re-encodes, by its sender's codec with its own
/// incarnation and sequence, to the same bytes (after clearing the slot's
/// reserved bytes and signing again), and the re-encoding decodes equal.
fn check_reencodes(datagram: &[u8], hb: &Heartbeat, rx: &Codec) {
    assert!(
        hb.from < fuzz_hosts().len() && hb.from != FUZZ_LOCAL,
        "accepted from {}",
        hb.from
    );
    assert_eq!(usize::from(hb.slot.host_index), hb.from, "slot index");
    assert_eq!(hb.slot.host_uuid, fuzz_hosts()[hb.from], "slot uuid");
    assert!(hb.slot.status.is_empty(), "a heartbeat carries no status");
    let again = fuzz_codec(hb.from).encode(hb.incarnation, hb.packet_sequence, &hb.slot);
    let mut canonical = datagram.to_vec();
    for r in slot_zero_ranges() {
        canonical[off::SLOT + r.start..off::SLOT + r.end].fill(0);
    }
    if canonical != datagram {
        sign(&mut canonical);
    }
    assert!(
        again[..] == canonical[..],
        "accepted packet does not re-encode to the same bytes"
    );
    assert_eq!(rx.decode(&again).as_ref(), Ok(hb), "packet pair check");
}

/// `Receiver::accept` (and `Codec::decode`) on the whole input as one
/// datagram, then on every `PACKET_LEN` chunk of it signed with the pool
/// secret (so the fuzzer reaches past the MAC), all through one receiver.
/// The receiver must accept exactly what the decoder accepts and a model of
/// the replay filter lets through; every accepted packet re-encodes to its
/// bytes and is refused as replayed when received again; the drop counters
/// add up to the refusals.
pub fn check_packet(data: &[u8]) {
    let data = bounded(data);
    let codec = fuzz_codec(FUZZ_LOCAL);
    let mut rx = Receiver::new(codec.clone());
    // A fixed time: floors never lower (that needs time to pass), and
    // incarnations beyond the wall clock's allowance are refused.
    rx.set_time(xha::core::Instant::from_nanos(0), FUZZ_WALL_US);
    let future = FUZZ_WALL_US + xha::daemon::replay::INCARNATION_AHEAD_MAX;
    let mut last: Vec<Option<(u64, u64)>> = vec![None; fuzz_hosts().len()];
    let mut refused = 0u64;
    let mut datagrams = vec![data.to_vec()];
    for chunk in data.chunks(PACKET_LEN) {
        let mut c = chunk.to_vec();
        if c.len() == PACKET_LEN {
            sign(&mut c);
        }
        datagrams.push(c);
    }
    for d in &datagrams {
        let decoded = codec.decode(d);
        let got = rx.accept(d);
        let hb = match decoded {
            Err(e) => {
                assert!(
                    !matches!(e, DropReason::Replayed { .. }),
                    "decode never checks replay"
                );
                assert_eq!(got, Err(e), "receiver and decoder disagree");
                refused += 1;
                continue;
            }
            Ok(hb) => hb,
        };
        let pair = (hb.incarnation, hb.packet_sequence);
        if pair.0 > future {
            assert_eq!(
                got,
                Err(DropReason::FutureIncarnation {
                    incarnation: pair.0,
                    wall_us: FUZZ_WALL_US,
                }),
                "an incarnation too far ahead must be refused"
            );
            refused += 1;
            continue;
        }
        if let Some(prev) = last[hb.from]
            && pair <= prev
        {
            assert_eq!(
                got,
                Err(DropReason::Replayed {
                    incarnation: pair.0,
                    sequence: pair.1,
                    last_incarnation: prev.0,
                    last_sequence: prev.1,
                }),
                "an old pair must be refused as replayed"
            );
            refused += 1;
            continue;
        }
        assert_eq!(got.as_ref(), Ok(&hb), "a newer pair must be accepted");
        last[hb.from] = Some(pair);
        check_reencodes(d, &hb, &codec);
        assert_eq!(
            rx.accept(d),
            Err(DropReason::Replayed {
                incarnation: pair.0,
                sequence: pair.1,
                last_incarnation: pair.0,
                last_sequence: pair.1,
            }),
            "a packet accepted once is refused the second time"
        );
        refused += 1;
    }
    assert_eq!(rx.counters().total(), refused, "drop counters");
}

// ------------------------------------------------------- control request

/// `parse_request`: an accepted request's `to_line` parses back to the same
/// request line; a refused one gets a `bad-request` reply that is one line
/// and parses back (as the client reads it) to the same response.
pub fn check_control_request(data: &[u8]) {
    let data = bounded(data);
    match parse_request(data) {
        Ok(rl) => {
            assert!(data.len() <= MAX_REQUEST_LINE, "over-long line accepted");
            assert!(REQUEST_NAMES.contains(&rl.request.name()));
            let line = rl.request.to_line(rl.id);
            assert!(!line.contains('\n'), "request line has a newline");
            assert_eq!(
                parse_request(line.as_bytes()),
                Ok(rl),
                "request pair check: {line}"
            );
            assert_eq!(
                rl.request.to_core().is_none(),
                matches!(rl.request, Request::QueryLiveset | Request::Watch),
                "only query-liveset and watch bypass the core"
            );
        }
        Err(e) => {
            let reply = Response::error(None, ErrorBody::from(&e));
            let line = reply.to_line();
            assert!(!line.contains('\n'), "error reply has a newline");
            assert_eq!(
                parse_server_line(&line),
                Ok(ServerLine::Response(reply)),
                "error reply pair check"
            );
        }
    }
}

// ----------------------------------------------------------- server line

/// `parse_server_line` (the client side: pool agent, `xe lab`): a parsed
/// response or event serialises to one line that parses back equal.
pub fn check_server_line(data: &[u8]) {
    let text = String::from_utf8_lossy(bounded(data));
    if let Ok(v) = parse_server_line(&text) {
        let line = match &v {
            ServerLine::Response(r) => r.to_line(),
            ServerLine::Event(e) => e.to_line(),
        };
        assert!(!line.contains('\n'), "server line has a newline");
        assert_eq!(
            parse_server_line(&line),
            Ok(v),
            "server line pair check: {line}"
        );
    }
}

// ------------------------------------------------------- supervisor line

fn in_range(d: Duration) -> bool {
    (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d)
        && u64::try_from(d.as_millis()).is_ok_and(|ms| Duration::from_millis(ms) == d)
}

/// The canonical line of a command.
#[must_use]
pub fn command_line(c: Command) -> String {
    match c {
        Command::Arm(d) => format!("arm {}", d.as_millis()),
        Command::Kick(None) => "kick".into(),
        Command::Kick(Some(d)) => format!("kick {}", d.as_millis()),
        Command::Disarm => "disarm".into(),
        Command::Fence => "fence".into(),
    }
}

/// `Command::parse` on the whole input (timeouts within 100 ms ..= 1 h,
/// whole milliseconds; the canonical line parses back equal; an error reply
/// is one line), then the input's lines fed to a connected `Supervision`,
/// checked against a model of the documented protocol.
pub fn check_supervisor_line(data: &[u8]) {
    let data = bounded(data);
    match Command::parse(data) {
        Ok(c) => {
            assert!(data.len() <= MAX_LINE, "over-long line accepted");
            match c {
                Command::Arm(d) | Command::Kick(Some(d)) => {
                    assert!(in_range(d), "timeout {d:?} outside the documented range");
                }
                Command::Kick(None) | Command::Disarm | Command::Fence => {}
            }
            let line = command_line(c);
            assert_eq!(Command::parse(line.as_bytes()), Ok(c), "command pair check");
        }
        Err(e) => {
            let reply = format!("error {e}");
            assert!(!reply.contains(['\n', '\r']), "error reply is one line");
        }
    }

    let t0 = Instant::now();
    let mut s = Supervision::new(t0, Duration::from_secs(1));
    assert_eq!(s.connect(), Ok(()));
    assert!(s.connect().is_err(), "a second client is refused");
    // The model: the armed timeout, if any.
    let mut armed: Option<Duration> = None;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        // 1 ms per line: never past the shortest countdown within 64 KiB.
        let now = t0 + Duration::from_millis(i as u64);
        let out = s.line(now, line);
        match (Command::parse(line), armed) {
            (Err(_), _) | (Ok(Command::Arm(_)), Some(_)) => {
                assert!(
                    matches!(&out, Outcome::ReplyAndClose(r) if r.starts_with("error ")),
                    "a refused line closes with an error: {out:?}"
                );
                // The I/O loop closes the connection. A stray line never
                // ends the supervisor: armed, the countdown runs on and no
                // client may take it over; disarmed, it waits for its
                // daemon again.
                assert_eq!(
                    s.disconnect(),
                    Outcome::Continue,
                    "a bad line is not a clean stop"
                );
                assert_eq!(s.is_armed(), armed.is_some());
                assert_eq!(
                    s.connect().is_ok(),
                    armed.is_none(),
                    "a new client only while disarmed"
                );
                return;
            }
            (Ok(Command::Arm(d)), None) => {
                assert_eq!(out, Outcome::Reply("ok".into()));
                armed = Some(d);
            }
            (Ok(Command::Kick(t)), Some(d)) => {
                assert_eq!(out, Outcome::Continue);
                armed = Some(t.unwrap_or(d));
            }
            (Ok(Command::Kick(_)), None) => assert_eq!(out, Outcome::Continue),
            (Ok(Command::Disarm), _) => {
                assert_eq!(out, Outcome::Reply("ok".into()));
                armed = None;
            }
            (Ok(Command::Fence), _) => {
                assert_eq!(out, Outcome::Fence(FenceCause::Requested));
                return;
            }
        }
        assert_eq!(s.is_armed(), armed.is_some(), "armed state");
        assert_eq!(
            s.next_deadline(),
            armed.map(|d| now + d),
            "the countdown restarts at the last arm or kick"
        );
    }
}

// ---------------------------------------------------------------- config

/// The directory relative paths of the fuzzed configuration resolve against.
pub const FUZZ_CONFIG_DIR: &str = "/etc/xhad";

/// `Config::parse` on the input as UTF-8 (lossy): an accepted configuration
/// satisfies every invariant the daemon relies on.
pub fn check_config(data: &[u8]) {
    let text = String::from_utf8_lossy(bounded(data));
    let base = Path::new(FUZZ_CONFIG_DIR);
    let Ok(c) = Config::parse(&text, base) else {
        return;
    };
    let n = c.hosts.len();
    assert!((1..=MAX_HOSTS_LIMIT).contains(&n), "{n} hosts");
    for (i, h) in c.hosts.iter().enumerate() {
        assert_eq!(h.index, i, "host index is its position");
        assert!(!h.uuid.is_nil(), "nil host uuid");
        if i > 0 {
            assert!(c.hosts[i - 1].uuid < h.uuid, "hosts sorted, unique");
        }
        check_address(h.address, c.hosts[c.local_index.min(n - 1)].address);
    }
    let mut addresses: Vec<SocketAddr> = c.hosts.iter().map(|h| h.address).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), n, "duplicate address accepted");
    assert!(c.local_index < n, "local index");
    assert_eq!(c.hosts[c.local_index].uuid, c.local_uuid, "local host");
    assert_eq!(c.local().uuid, c.local_uuid);
    assert!(!c.pool_generation.is_nil(), "nil pool generation");
    assert!(
        (1..=MAX_STATEFILES).contains(&c.statefiles.len()),
        "{} statefiles",
        c.statefiles.len()
    );
    for (i, p) in c.statefiles.iter().enumerate() {
        assert!(p.is_absolute(), "statefile path not resolved");
        assert!(!c.statefiles[..i].contains(p), "duplicate statefile");
    }
    for p in [&c.secret_file, &c.control_socket, &c.state_dir] {
        assert!(p.is_absolute(), "path not resolved: {}", p.display());
    }
    match &c.watchdog {
        WatchdogConfig::Linux { device: p } | WatchdogConfig::Supervisor { socket: p } => {
            assert!(p.is_absolute(), "watchdog path not resolved");
        }
        WatchdogConfig::None => {}
    }
    let base_t = c.timeouts.base;
    assert!(
        (MIN_BASE..=MAX_BASE).contains(&base_t) && base_t.subsec_nanos() == 0,
        "timeout {base_t:?}"
    );
    assert!(
        c.boot_join_timeout >= base_t && c.boot_join_timeout.subsec_nanos() == 0,
        "boot-join-timeout {:?} below T",
        c.boot_join_timeout
    );
    let core = c.core_config(0);
    assert_eq!(
        core.validate(),
        Ok(()),
        "the core refuses the configuration"
    );
    assert_eq!(
        Config::parse(&text, base).as_ref(),
        Ok(&c),
        "parsing is deterministic"
    );
}

fn check_address(a: SocketAddr, local: SocketAddr) {
    assert_ne!(a.port(), 0, "port 0 accepted");
    let ip = a.ip().to_canonical();
    assert!(!ip.is_unspecified(), "unspecified address accepted");
    assert!(!ip.is_multicast(), "multicast address accepted");
    assert!(
        !matches!(ip, std::net::IpAddr::V4(v4) if v4.is_broadcast()),
        "broadcast address accepted"
    );
    assert_eq!(a.is_ipv6(), local.is_ipv6(), "mixed address families");
}

// --------------------------------------------------------------- targets

/// A decoder check: panics on a violated property.
pub type Check = fn(&[u8]);

/// Every target: (name = the fuzz target and corpus directory, check).
pub const TARGETS: &[(&str, Check)] = &[
    ("packet", check_packet),
    ("control_request", check_control_request),
    ("server_line", check_server_line),
    ("supervisor_line", check_supervisor_line),
    ("config", check_config),
];
