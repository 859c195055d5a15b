use super::*;

fn call(params: &str) -> String {
    format!(
        "<?xml version='1.0'?><methodCall><methodName>VM.set_order</methodName><params>{params}</params></methodCall>"
    )
}

#[test]
fn decodes_every_value_type() {
    let body = call(
        "<param><value>bare &amp; text</value></param>\
         <param><value><string>s</string></value></param>\
         <param><value><i4>-7</i4></value></param>\
         <param><value><int>7</int></value></param>\
         <param><value><i8>4294967296</i8></value></param>\
         <param><value><boolean>1</boolean></value></param>\
         <param><value><double>0.5</double></value></param>\
         <param><value><dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601></value></param>\
         <param><value><base64>aGk=</base64></value></param>\
         <param><value><nil/></value></param>\
         <param><value></value></param>\
         <param><value><array><data><value>a</value><value><int>1</int></value></data></array></value></param>\
         <param><value><struct><member><name>k</name><value><string>v</string></value></member></struct></value></param>",
    );
    let c = decode_call(body.as_bytes()).unwrap();
    assert_eq!(c.method, "VM.set_order");
    let expect = vec![
        Rpc::Str("bare & text".into()),
        Rpc::Str("s".into()),
        Rpc::Int(-7),
        Rpc::Int(7),
        Rpc::Int(4_294_967_296),
        Rpc::Bool(true),
        Rpc::Float(0.5),
        Rpc::DateTime("20250319T04:16:24Z".into()),
        Rpc::Str("hi".into()),
        Rpc::Nil,
        Rpc::Str(String::new()),
        Rpc::Array(vec![Rpc::Str("a".into()), Rpc::Int(1)]),
        Rpc::Struct([("k".to_owned(), Rpc::Str("v".into()))].into()),
    ];
    assert_eq!(c.params, expect);
}

#[test]
fn python_xmlrpc_client_layout_with_whitespace() {
    // What Python's xmlrpc.client sends (newlines between elements).
    let body = "<?xml version='1.0'?>\n<methodCall>\n<methodName>session.login_with_password</methodName>\n\
                <params>\n<param>\n<value><string>root</string></value>\n</param>\n<param>\n<value><string>pw</string></value>\n\
                </param>\n</params>\n</methodCall>\n";
    let c = decode_call(body.as_bytes()).unwrap();
    assert_eq!(
        c.params,
        vec![Rpc::Str("root".into()), Rpc::Str("pw".into())]
    );
}

#[test]
fn no_params_element_is_an_empty_list() {
    let c = decode_call(b"<methodCall><methodName>system.listMethods</methodName></methodCall>")
        .unwrap();
    assert!(c.params.is_empty());
}

#[test]
fn malformed_inputs_are_specific_errors() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "no root element"),
        (b"<methodCall><methodName>x</methodName>", "unclosed"),
        (b"<methodCall><methodName>x</methodNam></methodCall>", "malformed XML"),
        (b"<foo/>", "not <methodCall>"),
        (b"<methodCall><params/></methodCall>", "no <methodName>"),
        (b"<methodCall><methodName>x</methodName><params><param><value><int>x</int></value></param></params></methodCall>", "not a 64-bit integer"),
        (b"<methodCall><methodName>x</methodName><params><param><value><int>99999999999999999999</int></value></param></params></methodCall>", "not a 64-bit integer"),
        (b"<methodCall><methodName>x</methodName><params><param><value><boolean>2</boolean></value></param></params></methodCall>", "not 0 or 1"),
        (b"<methodCall><methodName>x</methodName><params><param><value><blob/></value></param></params></methodCall>", "unknown value type"),
        (b"<methodCall><methodName>x</methodName><params><param><value><string>a</string><string>b</string></value></param></params></methodCall>", "more than one"),
        (b"<!DOCTYPE x [<!ENTITY a 'b'>]><methodCall/>", "DOCTYPE"),
        (b"<methodCall><methodName>x</methodName><params><param><value>\xff</value></param></params></methodCall>", "UTF-8"),
    ];
    for (body, needle) in cases {
        let err = decode_call(body).unwrap_err().to_string();
        assert!(
            err.contains(needle),
            "{:?}: {err} lacks {needle}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let n = 10_000;
    let body = format!(
        "<methodCall><methodName>x</methodName><params><param>{}{}</param></params></methodCall>",
        "<value><array><data>".repeat(n),
        "</data></array></value>".repeat(n)
    );
    assert_eq!(decode_call(body.as_bytes()), Err(DecodeError::TooDeep));
}

#[test]
fn response_shapes_are_xapis() {
    let ok = encode_response(&Ok(Rpc::Int(4_294_967_296)));
    assert_eq!(
        ok,
        "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
         <member><name>Status</name><value>Success</value></member>\
         <member><name>Value</name><value>4294967296</value></member>\
         </struct></value></param></params></methodResponse>"
    );
    let err = encode_response(&Err(Failure::new(
        "HANDLE_INVALID",
        ["VM".into(), "OpaqueRef:x".into()],
    )));
    assert!(err.contains("<member><name>Status</name><value>Failure</value></member>"));
    assert!(err.contains(
        "<name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID</value>\
         <value>VM</value><value>OpaqueRef:x</value></data></array></value>"
    ));
}

#[test]
fn response_round_trips() {
    let mut rec = BTreeMap::new();
    rec.insert("name_label".to_owned(), Rpc::Str("a <b> & 'c'".into()));
    rec.insert("order".to_owned(), Rpc::Int(3));
    rec.insert("live".to_owned(), Rpc::Bool(false));
    rec.insert(
        "when".to_owned(),
        Rpc::DateTime("19700101T00:00:00Z".into()),
    );
    rec.insert("f".to_owned(), Rpc::Float(1.25));
    rec.insert("n".to_owned(), Rpc::Nil);
    rec.insert("set".to_owned(), Rpc::Array(vec![]));
    let v = Rpc::Struct(rec);
    let back = decode_response(encode_response(&Ok(v.clone())).as_bytes())
        .unwrap()
        .unwrap();
    // Integers travel as bare text (non-strict), so they come back as strings.
    let Rpc::Struct(mut m) = back else {
        panic!("not a struct")
    };
    assert_eq!(m.remove("order"), Some(Rpc::Str("3".into())));
    let Rpc::Struct(mut orig) = v else {
        unreachable!()
    };
    orig.remove("order");
    assert_eq!(m, orig);
    let f = Failure::new("SESSION_INVALID", ["OpaqueRef:s".into()]);
    assert_eq!(
        decode_response(encode_response(&Err(f.clone())).as_bytes()).unwrap(),
        Err(f)
    );
}

#[test]
fn encoded_calls_decode_to_themselves() {
    let c = Call {
        method: "VM.set_other_config".into(),
        params: vec![
            Rpc::Str("OpaqueRef:s".into()),
            Rpc::Int(-1),
            Rpc::Struct(
                [(
                    "a&b".to_owned(),
                    Rpc::Array(vec![Rpc::Bool(true), Rpc::Nil]),
                )]
                .into(),
            ),
        ],
    };
    assert_eq!(decode_call(encode_call(&c).as_bytes()).unwrap(), c);
}
