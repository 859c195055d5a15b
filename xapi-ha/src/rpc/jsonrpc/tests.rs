use super::*;

#[test]
fn v1_request_and_replies() {
    let r = decode_request(br#"{"method":"VM.get_all","params":["OpaqueRef:s"],"id":7}"#).unwrap();
    assert_eq!(r.version, Version::V1);
    assert_eq!(r.id, json!(7));
    assert_eq!(r.call.params, vec![Rpc::Str("OpaqueRef:s".into())]);
    let ok: Json = serde_json::from_str(&encode_response(
        r.version,
        &r.id,
        &Ok(Rpc::Int(4_294_967_296)),
    ))
    .unwrap();
    assert_eq!(
        ok,
        json!({"result": 4_294_967_296_i64, "error": null, "id": 7})
    );
    let f = Failure::new("SESSION_INVALID", ["OpaqueRef:s".into()]);
    let err: Json = serde_json::from_str(&encode_response(r.version, &r.id, &Err(f))).unwrap();
    assert_eq!(
        err,
        json!({"result": null, "error": ["SESSION_INVALID", "OpaqueRef:s"], "id": 7})
    );
}

#[test]
fn v2_request_and_replies() {
    let r = decode_request(br#"{"jsonrpc":"2.0","method":"VM.get_all","params":["s"],"id":"abc"}"#)
        .unwrap();
    assert_eq!(r.version, Version::V2);
    let ok: Json = serde_json::from_str(&encode_response(
        r.version,
        &r.id,
        &Ok(Rpc::Str("x".into())),
    ))
    .unwrap();
    assert_eq!(ok, json!({"jsonrpc": "2.0", "result": "x", "id": "abc"}));
    let f = Failure::new("HANDLE_INVALID", ["VM".into(), "OpaqueRef:x".into()]);
    let err: Json = serde_json::from_str(&encode_response(r.version, &r.id, &Err(f))).unwrap();
    assert_eq!(
        err,
        json!({"jsonrpc": "2.0", "error": {"code": 1, "message": "HANDLE_INVALID", "data": ["VM", "OpaqueRef:x"]}, "id": "abc"})
    );
    // v2 params: absent, null, or an object (one struct parameter).
    for body in [
        &br#"{"jsonrpc":"2.0","method":"m","id":1}"#[..],
        br#"{"jsonrpc":"2.0","method":"m","params":null,"id":1}"#,
    ] {
        assert!(decode_request(body).unwrap().call.params.is_empty());
    }
    let r = decode_request(br#"{"jsonrpc":"2.0","method":"m","params":{"a":1.5},"id":1}"#).unwrap();
    assert_eq!(
        r.call.params,
        vec![Rpc::Struct([("a".to_owned(), Rpc::Float(1.5))].into())]
    );
}

#[test]
fn malformed_requests_are_specific_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "malformed JSON"),
        (b"[1]", "not a JSON object"),
        (br#"{"method":"m","params":[]}"#, "notifications"),
        (br#"{"method":"m","params":[],"id":null}"#, "notifications"),
        (br#"{"method":"m","params":[],"id":1.5}"#, "\"id\""),
        (
            br#"{"method":"m","params":{},"id":1}"#,
            "must be an array in JSON-RPC 1.0",
        ),
        (
            br#"{"jsonrpc":"1.0","method":"m","params":[],"id":1}"#,
            "not \"2.0\"",
        ),
        (br#"{"params":[],"id":1}"#, "no \"method\""),
        (br#"{"method":3,"params":[],"id":1}"#, "\"method\""),
        (b"{\"method\":\"m\xff\",\"params\":[],\"id\":1}", "UTF-8"),
    ];
    for (body, needle) in cases {
        let err = decode_request(body).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{:?}: {err} lacks {needle}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn deep_nesting_is_refused() {
    // serde_json's own recursion limit (128) answers first for very deep input.
    let deep = format!(
        r#"{{"method":"m","params":{}1{},"id":1}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(decode_request(deep.as_bytes()), Err(DecodeError::TooDeep));
    let deeper = format!(
        r#"{{"method":"m","params":{}1{},"id":1}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(decode_request(deeper.as_bytes()).is_err());
}

#[test]
fn values_round_trip_through_json() {
    let v = Rpc::Struct(
        [
            ("i".to_owned(), Rpc::Int(-3)),
            (
                "s".to_owned(),
                Rpc::Array(vec![Rpc::Str("x".into()), Rpc::Bool(true), Rpc::Nil]),
            ),
            ("f".to_owned(), Rpc::Float(2.5)),
        ]
        .into(),
    );
    assert_eq!(from_json(to_json(&v), 0).unwrap(), v);
}
