//! Wire codecs of the API: XML-RPC (`POST /`, `POST /RPC2`) and JSON-RPC 1.0
//! and 2.0 (`POST /jsonrpc`), as xapi speaks them (docs/api.md, "Wire").
//!
//! Both decode to the same [`Call`] of untyped wire values ([`Rpc`], the data
//! model XML-RPC and JSON share, like ocaml-rpc's `Rpc.t`); the typed XenAPI
//! values live one layer up. Decoders take untrusted bytes: every failure is
//! a [`DecodeError`] naming what was wrong, never a panic (fuzzed:
//! `xapi-ha/fuzz`).

pub mod convert;
pub mod jsonrpc;
pub mod xmlrpc;

use std::collections::BTreeMap;

/// Deepest nesting of arrays and structs a request may use. Real calls nest
/// three or four levels; the cap keeps a hostile body from exhausting the
/// stack of the recursive decoders.
pub const MAX_DEPTH: usize = 64;

/// One wire value, the data model common to XML-RPC and JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum Rpc {
    /// A string (XML-RPC `<string>` or bare text; base64 is decoded to one).
    Str(String),
    /// An integer (`<int>`, `<i4>`, `<i8>`, a JSON integer).
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An XML-RPC `dateTime.iso8601`, kept as sent (`YYYYMMDDTHH:MM:SSZ`).
    DateTime(String),
    /// `<nil/>` or JSON `null`.
    Nil,
    /// An array.
    Array(Vec<Rpc>),
    /// A struct (JSON object).
    Struct(BTreeMap<String, Rpc>),
}

/// A decoded method call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `Class.method`, as sent.
    pub method: String,
    /// Positional parameters (the session, when the call takes one, first).
    pub params: Vec<Rpc>,
}

/// The error description of a failed call: `[CODE, param, ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The xapi error name, e.g. `SESSION_INVALID`.
    pub code: String,
    /// Its parameters, all strings.
    pub params: Vec<String>,
}

impl Failure {
    /// A failure with the given code and parameters.
    pub fn new(code: &str, params: impl IntoIterator<Item = String>) -> Self {
        Failure {
            code: code.to_owned(),
            params: params.into_iter().collect(),
        }
    }
}

/// Why a request body could not be decoded. The server answers these with
/// HTTP 400 and the protocol's failure shape (docs/api.md, "Malformed requests").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not UTF-8 (at byte `0`).
    #[error("the request body is not valid UTF-8 (at byte {0})")]
    NotUtf8(usize),
    /// The XML is not well formed.
    #[error("malformed XML: {0}")]
    Xml(String),
    /// The JSON is not well formed.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// Well-formed, but not a method call of the protocol.
    #[error("not a method call: {0}")]
    Shape(String),
    /// Arrays or structs nested deeper than [`MAX_DEPTH`].
    #[error("values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}
