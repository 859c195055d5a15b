//! The properties the API's wire decoders must keep for any input, shared
//! by the cargo-fuzz targets and the corpus replay test
//! (`xapi-ha/tests/api_fuzz_replay.rs`):
//!
//! * decoding never panics (an error is an answer);
//! * what decodes re-encodes to a request that decodes to the same call
//!   (compared through its encoding, so a NaN double compares equal);
//! * a reply for it can always be encoded.

use xapi_ha::rpc::{Failure, jsonrpc, xmlrpc};

/// An XML-RPC `methodCall` body.
pub fn check_xmlrpc_call(data: &[u8]) {
    let Ok(call) = xmlrpc::decode_call(data) else {
        return;
    };
    let once = xmlrpc::encode_call(&call);
    let again = xmlrpc::decode_call(once.as_bytes())
        .unwrap_or_else(|e| panic!("a re-encoded call does not decode: {e}\n{once}"));
    assert_eq!(
        xmlrpc::encode_call(&again),
        once,
        "re-encoding changed the call"
    );
    let params = call
        .params
        .first()
        .cloned()
        .ok_or_else(|| Failure::new("X", ["y".to_owned()]));
    let reply = xmlrpc::encode_response(&params);
    if let Err(e) = xmlrpc::decode_response(reply.as_bytes()) {
        panic!("our own reply does not decode: {e}");
    }
}

/// A JSON-RPC request body.
pub fn check_jsonrpc_request(data: &[u8]) {
    let Ok(req) = jsonrpc::decode_request(data) else {
        return;
    };
    for p in &req.call.params {
        let back = jsonrpc::from_json(jsonrpc::to_json(p), 0).expect("our own JSON decodes");
        assert_eq!(
            jsonrpc::to_json(&back),
            jsonrpc::to_json(p),
            "a parameter changed through JSON"
        );
    }
    let reply = jsonrpc::encode_response(
        req.version,
        &req.id,
        &Err(Failure::new("X", [req.call.method.clone()])),
    );
    assert!(
        serde_json::from_str::<serde_json::Value>(&reply).is_ok(),
        "the reply is not JSON: {reply}"
    );
}

/// A check: panics when a property is broken.
pub type Check = fn(&[u8]);

/// The targets and their checks, for the replay test.
pub const TARGETS: &[(&str, Check)] = &[
    ("xmlrpc_call", check_xmlrpc_call),
    ("jsonrpc_request", check_jsonrpc_request),
    ("xmlrpc_response", check_xmlrpc_response),
];

/// An XML-RPC methodResponse body, as `xe` reads it from an agent (or
/// from anything answering on the agent's address): decoding never
/// panics, and a decoded reply re-encodes to one that decodes the same.
pub fn check_xmlrpc_response(data: &[u8]) {
    let Ok(reply) = xmlrpc::decode_response(data) else {
        return;
    };
    let once = xmlrpc::encode_response(&reply);
    let again = xmlrpc::decode_response(once.as_bytes())
        .unwrap_or_else(|e| panic!("a re-encoded reply does not decode: {e}\n{once}"));
    assert_eq!(
        xmlrpc::encode_response(&again),
        once,
        "re-encoding changed the reply"
    );
}
