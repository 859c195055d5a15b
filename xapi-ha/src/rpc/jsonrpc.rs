//! JSON-RPC 1.0 and 2.0 on `POST /jsonrpc`, with xapi's result and error
//! shapes (docs/api.md, "JSON-RPC"):
//!
//! * v1 (no `jsonrpc` member): `params` an array; replies
//!   `{"result": v, "error": null, "id": id}` or
//!   `{"result": null, "error": ["CODE", ...], "id": id}`.
//! * v2 (`"jsonrpc": "2.0"`): `params` absent, null, an array or an object
//!   (one struct parameter); replies `{"jsonrpc": "2.0", "result": v, "id": id}`
//!   or `{"jsonrpc": "2.0", "error": {"code": 1, "message": "CODE",
//!   "data": [...]}, "id": id}`.
//! * `id` is an integer or a string and is echoed with its JSON type; a
//!   missing or null `id` (a notification) is refused, as xapi refuses it.

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value as Json, json};

use super::{Call, DecodeError, Failure, MAX_DEPTH, Rpc};

/// The protocol version a request used; the reply uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// JSON-RPC 1.0 (no `jsonrpc` member).
    V1,
    /// JSON-RPC 2.0.
    V2,
}

/// A decoded JSON-RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Which version to answer in.
    pub version: Version,
    /// The request's `id`, echoed in the reply (an integer or a string).
    pub id: Json,
    /// The call.
    pub call: Call,
}

fn shape(msg: impl Into<String>) -> DecodeError {
    DecodeError::Shape(msg.into())
}

/// Decodes one JSON-RPC request object.
pub fn decode_request(body: &[u8]) -> Result<Request, DecodeError> {
    let text = std::str::from_utf8(body).map_err(|e| DecodeError::NotUtf8(e.valid_up_to()))?;
    let json: Json = serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Json::Object(mut obj) = json else {
        return Err(shape("the request is not a JSON object"));
    };
    let version = match obj.remove("jsonrpc") {
        None => Version::V1,
        Some(Json::String(s)) if s == "2.0" => Version::V2,
        Some(other) => return Err(shape(format!("\"jsonrpc\" is {other}, not \"2.0\""))),
    };
    let method = match obj.remove("method") {
        Some(Json::String(m)) if !m.is_empty() => m,
        Some(_) => return Err(shape("\"method\" is not a non-empty string")),
        None => return Err(shape("no \"method\"")),
    };
    let id = match obj.remove("id") {
        Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Json::Number(n),
        Some(Json::String(s)) => Json::String(s),
        Some(Json::Null) | None => return Err(shape("no \"id\" (notifications are not accepted)")),
        Some(_) => return Err(shape("\"id\" is not an integer or a string")),
    };
    let params = match (version, obj.remove("params")) {
        (_, Some(Json::Array(items))) => items
            .into_iter()
            .map(|v| from_json(v, 0))
            .collect::<Result<_, _>>()?,
        (Version::V2, None | Some(Json::Null)) => Vec::new(),
        (Version::V2, Some(obj @ Json::Object(_))) => vec![from_json(obj, 0)?],
        (Version::V1, _) => return Err(shape("\"params\" must be an array in JSON-RPC 1.0")),
        (Version::V2, Some(_)) => return Err(shape("\"params\" must be an array or an object")),
    };
    Ok(Request {
        version,
        id,
        call: Call { method, params },
    })
}

/// A JSON value as a wire value: integers that fit an i64 are `Int`, other
/// numbers `Float`.
pub fn from_json(v: Json, depth: usize) -> Result<Rpc, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError::TooDeep);
    }
    Ok(match v {
        Json::Null => Rpc::Nil,
        Json::Bool(b) => Rpc::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Rpc::Int(i),
            None => Rpc::Float(
                n.as_f64()
                    .ok_or_else(|| shape(format!("the number {n} is out of range")))?,
            ),
        },
        Json::String(s) => Rpc::Str(s),
        Json::Array(items) => Rpc::Array(
            items
                .into_iter()
                .map(|i| from_json(i, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => Rpc::Struct(
            map.into_iter()
                .map(|(k, v)| Ok((k, from_json(v, depth + 1)?)))
                .collect::<Result<BTreeMap<_, _>, DecodeError>>()?,
        ),
    })
}

/// A wire value as JSON: integers as number literals, dates as strings.
/// A non-finite float has no JSON form and is written as `null`.
pub fn to_json(v: &Rpc) -> Json {
    match v {
        Rpc::Str(s) | Rpc::DateTime(s) => Json::String(s.clone()),
        Rpc::Int(i) => Json::Number((*i).into()),
        Rpc::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Rpc::Bool(b) => Json::Bool(*b),
        Rpc::Nil => Json::Null,
        Rpc::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Rpc::Struct(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Encodes the reply in the request's version.
pub fn encode_response(version: Version, id: &Json, reply: &Result<Rpc, Failure>) -> String {
    let body = match (version, reply) {
        (Version::V1, Ok(v)) => json!({"result": to_json(v), "error": null, "id": id}),
        (Version::V1, Err(f)) => {
            let desc: Vec<&str> = std::iter::once(f.code.as_str())
                .chain(f.params.iter().map(String::as_str))
                .collect();
            json!({"result": null, "error": desc, "id": id})
        }
        (Version::V2, Ok(v)) => json!({"jsonrpc": "2.0", "result": to_json(v), "id": id}),
        (Version::V2, Err(f)) => json!({
            "jsonrpc": "2.0",
            "error": {"code": 1, "message": f.code, "data": f.params},
            "id": id,
        }),
    };
    body.to_string()
}

/// The error code of an undecodable JSON-RPC body.
pub const UNMARSHAL_FAILURE: &str = "JSONRPC_UNMARSHAL_FAILURE";

#[cfg(test)]
mod tests;
