//! Replays the committed fuzz corpora of the API's wire decoders
//! (`fuzz/corpus/<target>/`) and a few hundred deterministic mutations of
//! valid requests through the checks the cargo-fuzz targets run
//! (`fuzz/src/wire_checks.rs`), so `cargo test` checks the decoders for
//! panics and broken properties even without cargo-fuzz.
//!
//! `REGENERATE_FUZZ_SEEDS=1 cargo test -p xapi_ha --test api_fuzz_replay
//! committed_seeds` rewrites the `seed-*` files from [`seeds`].

#[path = "../fuzz/src/wire_checks.rs"]
mod wire_checks;

#[path = "../../sr-heartbeat/tests/fuzz_harness/mod.rs"]
mod fuzz_harness;

use std::path::PathBuf;

use fuzz_harness::{Mutations, Rng, mutate_with};
use wire_checks::TARGETS;
use xapi_ha::rpc::{Call, Rpc, xmlrpc};

fn corpus_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "xmlrpc_call" => {
            let calls = [
                Call {
                    method: "session.login_with_password".into(),
                    params: vec![Rpc::Str("root".into()), Rpc::Str("pw".into()), Rpc::Str("1.0".into())],
                },
                Call {
                    method: "VM.create".into(),
                    params: vec![
                        Rpc::Str("OpaqueRef:s".into()),
                        Rpc::Struct(
                            [
                                ("name_label".to_owned(), Rpc::Str("vm".into())),
                                ("memory_static_max".to_owned(), Rpc::Int(1 << 30)),
                                ("ha_always_run".to_owned(), Rpc::Bool(true)),
                                ("other_config".to_owned(), Rpc::Struct(Default::default())),
                                ("tags".to_owned(), Rpc::Array(vec![Rpc::Str("a".into()), Rpc::Nil])),
                                ("t".to_owned(), Rpc::DateTime("20250319T04:16:24Z".into())),
                                ("f".to_owned(), Rpc::Float(0.25)),
                            ]
                            .into(),
                        ),
                    ],
                },
            ];
            let mut out: Vec<Vec<u8>> = calls.iter().map(|c| xmlrpc::encode_call(c).into_bytes()).collect();
            out.push(
                b"<?xml version='1.0'?>\n<methodCall>\n<methodName>VM.set_order</methodName>\n<params>\n\
                  <param>\n<value>bare</value>\n</param>\n<param>\n<value><i4>3</i4></value>\n</param>\n\
                  <param><value><base64>aGk=</base64></value></param>\n</params>\n</methodCall>\n"
                    .to_vec(),
            );
            out
        }
        "jsonrpc_request" => vec![
            br#"{"method":"session.login_with_password","params":["root","pw"],"id":1}"#.to_vec(),
            br#"{"jsonrpc":"2.0","method":"VM.set_order","params":["OpaqueRef:s","OpaqueRef:v",3],"id":"x"}"#
                .to_vec(),
            br#"{"jsonrpc":"2.0","method":"event.from","params":{"classes":["vm"],"token":"","timeout":1.5,"n":null,"b":true},"id":9}"#
                .to_vec(),
        ],
        "xmlrpc_response" => {
            let replies = [
                Ok(Rpc::Str("OpaqueRef:6a1c0e2f-2c5b-4a43-9d1e-0f6b7c1d2e3f".into())),
                Ok(Rpc::Struct(
                    [
                        ("uuid".to_owned(), Rpc::Str("u".into())),
                        ("memory_total".to_owned(), Rpc::Int(1 << 33)),
                        ("tags".to_owned(), Rpc::Array(vec![Rpc::Str("a".into())])),
                    ]
                    .into(),
                )),
                Err(xapi_ha::rpc::Failure::new(
                    "HOST_IS_SLAVE",
                    ["192.0.2.1".to_owned()],
                )),
            ];
            replies.iter().map(|r| xmlrpc::encode_response(r).into_bytes()).collect()
        }
        other => panic!("no seeds for {other}"),
    }
}

fn special(rng: &mut Rng, v: &mut Vec<u8>) {
    const TOKENS: &[&[u8]] = &[
        b"<value>",
        b"</value>",
        b"<array><data>",
        b"<struct><member><name>",
        b"<nil/>",
        b"&amp;",
        b"&#xFFFF;",
        b"<![CDATA[x]]>",
        b"{\"a\":[",
        b"]}",
        b"\"\\ud800\"",
        b"1e999",
        b"\xff",
    ];
    let at = rng.below(v.len() + 1);
    let tok = TOKENS[rng.below(TOKENS.len())];
    v.splice(at..at, tok.iter().copied());
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let m = Mutations {
        interesting: [0, 1, u64::MAX, 0x3c3e, 0x2022, 0x7b7d],
        max_extend: 64,
        special,
    };
    mutate_with(&m, rng, input)
}

#[test]
fn committed_seeds() {
    fuzz_harness::check_seed_files(TARGETS, &corpus_root(), seeds);
}

#[test]
fn corpora_replay() {
    fuzz_harness::replay_corpora(TARGETS, &corpus_root());
}

#[test]
fn mutations_never_panic() {
    fuzz_harness::mutations_never_panic(TARGETS, seeds, mutate);
}
