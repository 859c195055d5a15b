//! A small QMP client: JSON lines over QEMU's Unix socket.
//!
//! One connection per exchange for commands (QEMU serves one client per QMP
//! socket at a time; connect + `qmp_capabilities` costs about 1 ms), and a
//! long-lived connection on a second socket for events.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// A failed QMP exchange, as text for [`crate::DriverError::Qmp`].
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: connection closed")]
    Closed { path: String },
    #[error("{path}: bad reply {line:?}")]
    BadReply { path: String, line: String },
    #[error("{command}: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

pub struct Qmp {
    path: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects, reads the greeting and negotiates capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let p = path.display().to_string();
        let io = |source| QmpError::Io {
            path: p.clone(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(io)?;
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut q = Qmp {
            path: p.clone(),
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::BadReply {
                path: p,
                line: greeting.to_string(),
            });
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    /// Changes the read timeout (None: wait for ever, for event streams).
    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), QmpError> {
        self.reader
            .get_ref()
            .set_read_timeout(t)
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Reads one message (reply or event).
    pub fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(QmpError::Closed {
                path: self.path.clone(),
            });
        }
        serde_json::from_str(&line).map_err(|_| QmpError::BadReply {
            path: self.path.clone(),
            line,
        })
    }

    /// Runs a command; returns its `return` value. Events that arrive
    /// before the reply are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        loop {
            let reply = self.read_message()?;
            if let Some(r) = reply.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = reply.get("error") {
                return Err(QmpError::Command {
                    command: command.into(),
                    class: e["class"].as_str().unwrap_or("?").into(),
                    desc: e["desc"].as_str().unwrap_or("?").into(),
                });
            }
            // An event: not ours to handle here.
        }
    }

    /// `query-status` -> the `status` string (`running`, `paused`, `inmigrate`, ...).
    pub fn status(&mut self) -> Result<String, QmpError> {
        let r = self.execute("query-status", None)?;
        r["status"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| QmpError::BadReply {
                path: self.path.clone(),
                line: r.to_string(),
            })
    }
}
