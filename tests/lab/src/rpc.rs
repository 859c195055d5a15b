//! A small JSON-RPC 2.0 client over plain HTTP/1.1 on loopback, for the
//! lab's agent pool (one request per connection, `Connection: close`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// How long one call may take (argon2 on login, a VM start on a loaded
/// machine).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("{method} to {addr}: {source}")]
    Io {
        method: String,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} to {addr}: not a JSON-RPC reply (HTTP {status}): {body}")]
    Reply {
        method: String,
        addr: SocketAddr,
        status: u16,
        body: String,
    },
    /// The API answered with an error: `[code, params...]`.
    #[error("{method} failed: {}", .error.join(" "))]
    Api { method: String, error: Vec<String> },
}

/// `method(params)` on the agent's plain HTTP listener `addr`; the result.
pub fn call(addr: SocketAddr, method: &str, params: Value) -> Result<Value, RpcError> {
    call_within(addr, method, params, CALL_TIMEOUT)
}

/// [`call`] with its own bound on connecting, sending and the reply (a
/// frozen agent accepts connections but never answers).
pub fn call_within(
    addr: SocketAddr,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, RpcError> {
    let io = |source| RpcError::Io {
        method: method.to_owned(),
        addr,
        source,
    };
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).to_string();
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let head = format!(
        "POST /jsonrpc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(io)?;
    s.write_all(body.as_bytes()).map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let text = String::from_utf8_lossy(&raw);
    let (headers, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let reply: Value = serde_json::from_str(body).map_err(|_| RpcError::Reply {
        method: method.to_owned(),
        addr,
        status,
        body: body.chars().take(200).collect(),
    })?;
    if let Some(e) = reply.get("error") {
        let mut error = vec![e["message"].as_str().unwrap_or("?").to_owned()];
        if let Some(data) = e["data"].as_array() {
            error.extend(
                data.iter()
                    .map(|d| d.as_str().map_or(d.to_string(), str::to_owned)),
            );
        }
        return Err(RpcError::Api {
            method: method.to_owned(),
            error,
        });
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}
