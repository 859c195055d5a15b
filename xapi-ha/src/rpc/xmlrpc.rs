//! XML-RPC: `methodCall` decoding and `methodResponse` encoding.
//!
//! Accepted in requests (as ocaml-rpc's parser accepts them): `int`, `i4`,
//! `i8`, `boolean` (`0`/`1`), `double`, `string`, `dateTime.iso8601`,
//! `base64` (decoded; must be UTF-8), `array`, `struct`, `nil`, and a bare
//! `<value>text</value>` as a string. Replies are always a successful
//! `methodResponse` holding `{Status: Success, Value}` or
//! `{Status: Failure, ErrorDescription: [CODE, ...]}` (never `<fault>`), in
//! xapi's non-strict style: strings and integers as bare text inside
//! `<value>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::{Call, DecodeError, Failure, MAX_DEPTH, Rpc};

/// A parsed element: its name and its children (elements and text).
#[derive(Debug)]
struct Element {
    name: String,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
}

impl Element {
    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// All text directly inside, concatenated.
    fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Non-whitespace text beside child elements is an error.
    fn check_no_stray_text(&self) -> Result<(), DecodeError> {
        for n in &self.children {
            if let Node::Text(t) = n
                && !t.trim().is_empty()
            {
                return Err(shape(format!(
                    "unexpected text {:?} inside <{}>",
                    clip(t),
                    self.name
                )));
            }
        }
        Ok(())
    }

    fn only_child(&self) -> Result<Option<&Element>, DecodeError> {
        self.check_no_stray_text()?;
        let mut it = self.elements();
        let first = it.next();
        if it.next().is_some() {
            return Err(shape(format!(
                "<{}> holds more than one element",
                self.name
            )));
        }
        Ok(first)
    }
}

fn shape(msg: String) -> DecodeError {
    DecodeError::Shape(msg)
}

/// The first 40 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Parses the whole document into one root element. Doctype declarations
/// are refused (no entity definitions are ever honoured).
fn parse_tree(text: &str) -> Result<Element, DecodeError> {
    let mut reader = Reader::from_str(text);
    let config = reader.config_mut();
    config.trim_text(false);
    config.check_end_names = true;
    config.expand_empty_elements = false;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| DecodeError::Xml(e.to_string()))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(DecodeError::Xml("content after the root element".into()));
                }
                // Arrays and structs take three levels each (value, array,
                // data); allow for that and the call's own wrapping.
                if stack.len() >= 3 * MAX_DEPTH + 8 {
                    return Err(DecodeError::TooDeep);
                }
                let name = element_name(start.name().as_ref())?;
                stack.push(Element {
                    name,
                    children: Vec::new(),
                });
            }
            Event::Empty(start) => {
                let name = element_name(start.name().as_ref())?;
                let el = Element {
                    name,
                    children: Vec::new(),
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None if root.is_none() => root = Some(el),
                    None => return Err(DecodeError::Xml("content after the root element".into())),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| DecodeError::Xml("unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| DecodeError::Xml(e.to_string()))?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(&c).map_err(|e| DecodeError::Xml(e.to_string()))?;
                push_text(&mut stack, s)?;
            }
            Event::DocType(_) => {
                return Err(DecodeError::Xml(
                    "DOCTYPE declarations are not accepted".into(),
                ));
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(DecodeError::Xml(format!(
            "unclosed element <{}>",
            stack[stack.len() - 1].name
        )));
    }
    root.ok_or_else(|| DecodeError::Xml("no root element".into()))
}

fn element_name(raw: &[u8]) -> Result<String, DecodeError> {
    std::str::from_utf8(raw)
        .map(str::to_owned)
        .map_err(|e| DecodeError::Xml(e.to_string()))
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), DecodeError> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(Node::Text(s.to_owned()));
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(DecodeError::Xml(format!(
            "text {:?} outside the root element",
            clip(s)
        ))),
    }
}

/// Decodes an XML-RPC `methodCall`.
pub fn decode_call(body: &[u8]) -> Result<Call, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    let root = parse_tree(text)?;
    if root.name != "methodCall" {
        return Err(shape(format!(
            "the root element is <{}>, not <methodCall>",
            root.name
        )));
    }
    root.check_no_stray_text()?;
    let mut method = None;
    let mut params = Vec::new();
    for el in root.elements() {
        match el.name.as_str() {
            "methodName" if method.is_none() => {
                if el.elements().next().is_some() {
                    return Err(shape("<methodName> holds an element".into()));
                }
                method = Some(el.text().trim().to_owned());
            }
            "params" if params.is_empty() => {
                el.check_no_stray_text()?;
                for p in el.elements() {
                    if p.name != "param" {
                        return Err(shape(format!("<params> holds <{}>, not <param>", p.name)));
                    }
                    let v = p
                        .only_child()?
                        .ok_or_else(|| shape("a <param> without a <value>".into()))?;
                    params.push(decode_value(v, 0)?);
                }
            }
            other => {
                return Err(shape(format!(
                    "unexpected or repeated <{other}> in <methodCall>"
                )));
            }
        }
    }
    let method = method.ok_or_else(|| shape("no <methodName>".into()))?;
    if method.is_empty() {
        return Err(shape("an empty <methodName>".into()));
    }
    Ok(Call { method, params })
}

fn decode_value(el: &Element, depth: usize) -> Result<Rpc, DecodeError> {
    if el.name != "value" {
        return Err(shape(format!("<{}> where a <value> was expected", el.name)));
    }
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    let Some(typed) = el.elements().next() else {
        // A bare `<value>text</value>` (or an empty one) is a string.
        return Ok(Rpc::Str(el.text()));
    };
    el.only_child()?;
    let leaf = |what: &str| -> Result<String, DecodeError> {
        if typed.elements().next().is_some() {
            return Err(shape(format!("<{what}> holds an element")));
        }
        Ok(typed.text())
    };
    match typed.name.as_str() {
        "string" => Ok(Rpc::Str(leaf("string")?)),
        "int" | "i4" | "i8" => {
            let t = leaf(&typed.name)?;
            t.trim().parse::<i64>().map(Rpc::Int).map_err(|_| {
                shape(format!(
                    "<{}> holds {:?}, not a 64-bit integer",
                    typed.name,
                    clip(&t)
                ))
            })
        }
        "boolean" => match leaf("boolean")?.trim() {
            "0" | "false" => Ok(Rpc::Bool(false)),
            "1" | "true" => Ok(Rpc::Bool(true)),
            t => Err(shape(format!("<boolean> holds {:?}, not 0 or 1", clip(t)))),
        },
        "double" => {
            let t = leaf("double")?;
            t.trim()
                .parse::<f64>()
                .map(Rpc::Float)
                .map_err(|_| shape(format!("<double> holds {:?}, not a number", clip(&t))))
        }
        "dateTime.iso8601" => Ok(Rpc::DateTime(leaf("dateTime.iso8601")?.trim().to_owned())),
        "base64" => {
            let t: String = leaf("base64")?
                .chars()
                .filter(|c| !c.is_ascii_whitespace())
                .collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(t.as_bytes())
                .map_err(|e| shape(format!("<base64>: {e}")))?;
            String::from_utf8(bytes)
                .map(Rpc::Str)
                .map_err(|_| DecodeError::NotUtf8(0))
        }
        "nil" => {
            leaf("nil")?;
            Ok(Rpc::Nil)
        }
        "array" => {
            let data = typed
                .only_child()?
                .filter(|d| d.name == "data")
                .ok_or_else(|| shape("an <array> without <data>".into()))?;
            data.check_no_stray_text()?;
            data.elements()
                .map(|v| decode_value(v, depth + 1))
                .collect::<Result<_, _>>()
                .map(Rpc::Array)
        }
        "struct" => {
            typed.check_no_stray_text()?;
            let mut map = BTreeMap::new();
            for member in typed.elements() {
                if member.name != "member" {
                    return Err(shape(format!(
                        "<struct> holds <{}>, not <member>",
                        member.name
                    )));
                }
                member.check_no_stray_text()?;
                let mut name = None;
                let mut value = None;
                for part in member.elements() {
                    match part.name.as_str() {
                        "name" if name.is_none() => name = Some(part.text()),
                        "value" if value.is_none() => value = Some(decode_value(part, depth + 1)?),
                        other => {
                            return Err(shape(format!(
                                "unexpected or repeated <{other}> in <member>"
                            )));
                        }
                    }
                }
                match (name, value) {
                    (Some(n), Some(v)) => {
                        map.insert(n, v);
                    }
                    _ => return Err(shape("a <member> needs one <name> and one <value>".into())),
                }
            }
            Ok(Rpc::Struct(map))
        }
        other => Err(shape(format!("unknown value type <{other}>"))),
    }
}

/// Encodes the reply to a call: `{Status: Success, Value}` or
/// `{Status: Failure, ErrorDescription}` in a `methodResponse`.
pub fn encode_response(reply: &Result<Rpc, Failure>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version=\"1.0\"?><methodResponse><params><param>");
    let mut fields = BTreeMap::new();
    match reply {
        Ok(value) => {
            fields.insert("Status".to_owned(), Rpc::Str("Success".into()));
            fields.insert("Value".to_owned(), value.clone());
        }
        Err(f) => {
            fields.insert("Status".to_owned(), Rpc::Str("Failure".into()));
            let desc = std::iter::once(f.code.clone())
                .chain(f.params.iter().cloned())
                .map(Rpc::Str)
                .collect();
            fields.insert("ErrorDescription".to_owned(), Rpc::Array(desc));
        }
    }
    encode_value(&mut out, &Rpc::Struct(fields));
    out.push_str("</param></params></methodResponse>");
    out
}

/// Encodes a request (`methodCall`), for clients and tests; strings go in
/// `<string>` tags, the strict form every XML-RPC server accepts.
pub fn encode_call(call: &Call) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?><methodCall><methodName>");
    out.push_str(&escape(call.method.as_str()));
    out.push_str("</methodName><params>");
    for p in &call.params {
        out.push_str("<param>");
        encode_value_with(&mut out, p, true);
        out.push_str("</param>");
    }
    out.push_str("</params></methodCall>");
    out
}

/// Appends one `<value>` in xapi's non-strict style.
pub fn encode_value(out: &mut String, v: &Rpc) {
    encode_value_with(out, v, false);
}

fn encode_value_with(out: &mut String, v: &Rpc, strict: bool) {
    out.push_str("<value>");
    match v {
        Rpc::Str(s) if strict => {
            let _ = write!(out, "<string>{}</string>", escape(s.as_str()));
        }
        Rpc::Str(s) => out.push_str(&escape(s.as_str())),
        Rpc::Int(i) if strict => {
            let _ = write!(out, "<i8>{i}</i8>");
        }
        Rpc::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Rpc::Float(f) => {
            let _ = write!(out, "<double>{f}</double>");
        }
        Rpc::Bool(b) => {
            let _ = write!(out, "<boolean>{}</boolean>", u8::from(*b));
        }
        Rpc::DateTime(d) => {
            let _ = write!(
                out,
                "<dateTime.iso8601>{}</dateTime.iso8601>",
                escape(d.as_str())
            );
        }
        Rpc::Nil => out.push_str("<nil/>"),
        Rpc::Array(items) => {
            out.push_str("<array><data>");
            for item in items {
                encode_value_with(out, item, strict);
            }
            out.push_str("</data></array>");
        }
        Rpc::Struct(map) => {
            out.push_str("<struct>");
            for (k, item) in map {
                let _ = write!(out, "<member><name>{}</name>", escape(k.as_str()));
                encode_value_with(out, item, strict);
                out.push_str("</member>");
            }
            out.push_str("</struct>");
        }
    }
    out.push_str("</value>");
}

/// Decodes a `methodResponse` as [`encode_response`] writes it (for tests
/// and host-to-host clients): the `Value`, or the failure.
pub fn decode_response(body: &[u8]) -> Result<Result<Rpc, Failure>, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    let root = parse_tree(text)?;
    if root.name != "methodResponse" {
        return Err(shape(format!(
            "the root element is <{}>, not <methodResponse>",
            root.name
        )));
    }
    let params = root
        .only_child()?
        .filter(|p| p.name == "params")
        .ok_or_else(|| shape("no <params>".into()))?;
    let param = params
        .only_child()?
        .filter(|p| p.name == "param")
        .ok_or_else(|| shape("no <param>".into()))?;
    let value = param
        .only_child()?
        .ok_or_else(|| shape("no <value>".into()))?;
    let Rpc::Struct(mut fields) = decode_value(value, 0)? else {
        return Err(shape("the reply is not a struct".into()));
    };
    match fields.remove("Status") {
        Some(Rpc::Str(s)) if s == "Success" => fields
            .remove("Value")
            .map(Ok)
            .ok_or_else(|| shape("Success without Value".into())),
        Some(Rpc::Str(s)) if s == "Failure" => match fields.remove("ErrorDescription") {
            Some(Rpc::Array(items)) => {
                let mut strings = items.into_iter().map(|i| match i {
                    Rpc::Str(s) => Ok(s),
                    other => Err(shape(format!("ErrorDescription holds {other:?}"))),
                });
                let code = strings
                    .next()
                    .ok_or_else(|| shape("empty ErrorDescription".into()))??;
                Ok(Err(Failure {
                    code,
                    params: strings.collect::<Result<_, _>>()?,
                }))
            }
            _ => Err(shape("Failure without an ErrorDescription array".into())),
        },
        _ => Err(shape("no Status Success or Failure".into())),
    }
}

#[cfg(test)]
mod tests;
