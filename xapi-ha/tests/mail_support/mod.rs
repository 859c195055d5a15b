//! A real SMTP server for the mail tests: `tests/python/smtp_sink.py` on
//! aiosmtpd, from the venv .ci/run makes (`target/smtp-venv`), on a
//! loopback port; and the agent-side helpers (settings, polling).

#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api_support::{call2, fail2};

/// The Python with aiosmtpd: `XAPI_HA_SMTP_PYTHON`, or the venv under
/// target/ that .ci/run makes.
pub fn python() -> Result<PathBuf, String> {
    crate::api_support::python_with("XAPI_HA_SMTP_PYTHON", "smtp-venv", "aiosmtpd", false)
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// TLS and AUTH variants of the server.
#[derive(Clone, Default)]
pub struct SinkOptions {
    pub starttls: Option<(PathBuf, PathBuf)>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: Option<String>,
}

/// A running SMTP server; stopped on drop.
pub struct Sink {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    pub out: PathBuf,
}

impl Sink {
    /// Starts the server on `port`, writing into `out`.
    pub fn start(python: &Path, port: u16, out: &Path, o: &SinkOptions) -> Sink {
        std::fs::create_dir_all(out).expect("sink dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/smtp_sink.py");
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .args(["--port", &port.to_string(), "--out"])
            .arg(out);
        if let Some((c, k)) = &o.starttls {
            cmd.arg("--starttls").arg(c).arg(k);
        }
        if let Some((c, k)) = &o.tls {
            cmd.arg("--tls").arg(c).arg(k);
        }
        if let Some(a) = &o.auth {
            cmd.args(["--auth", a]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start smtp_sink.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        match lines.next() {
            Some(Ok(l)) if l == "READY" => {}
            other => panic!("the SMTP server did not start: {other:?}"),
        }
        Sink {
            child,
            _stdin: stdin,
            port,
            out: out.to_owned(),
        }
    }

    /// What the server answers to DATA: "ok", "4xx" or "5xx".
    pub fn set_mode(&self, mode: &str) {
        std::fs::write(self.out.join("mode"), mode).expect("mode file");
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One received mail: the envelope and the DATA bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

impl Received {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = &mut out {
                if line.starts_with([' ', '\t']) {
                    v.push_str(line);
                    continue;
                }
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case(name)
            {
                out = Some(v.trim_start().to_owned());
            }
        }
        out
    }

    /// The body (after the blank line), as sent.
    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

/// Every mail the server accepted so far, in order.
pub fn received(out: &Path) -> Vec<Received> {
    let mut n = 1;
    let mut all = Vec::new();
    loop {
        let eml = out.join(format!("{n}.eml"));
        let Ok(data) = std::fs::read(&eml) else {
            return all;
        };
        let env = std::fs::read_to_string(out.join(format!("{n}.env"))).expect("envelope");
        let mut lines = env.lines().map(str::to_owned);
        all.push(Received {
            mail_from: lines.next().unwrap_or_default(),
            rcpt_to: lines.collect(),
            data: String::from_utf8(data).expect("utf-8 mail"),
        });
        n += 1;
    }
}

/// Polls `f` every 100 ms until it gives a value, for up to `secs`.
pub fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the server holds `n` mails; all of them.
pub fn wait_mails(sink: &Path, n: usize) -> Vec<Received> {
    wait_for(60, &format!("{n} mails"), || {
        let r = received(sink);
        (r.len() >= n).then_some(r)
    })
}

/// The pool's reference.
pub fn pool(a: SocketAddr, s: &str) -> String {
    call2(a, "pool.get_all", json!([s]))[0]
        .as_str()
        .expect("pool ref")
        .to_owned()
}

/// A field of the first object of `class`.
pub fn first_field(a: SocketAddr, s: &str, class: &str, field: &str) -> String {
    let r = call2(a, &format!("{class}.get_all"), json!([s]))[0].clone();
    call2(a, &format!("{class}.get_{field}"), json!([s, r]))
        .as_str()
        .expect("string field")
        .to_owned()
}

/// Sets the pool's `other_config` to exactly `pairs`.
pub fn set_other_config(a: SocketAddr, s: &str, pairs: &[(&str, &str)]) {
    let p = pool(a, s);
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    call2(a, "pool.set_other_config", json!([s, p, map]));
}

/// [`set_other_config`] that must fail; the error.
pub fn set_other_config_fails(a: SocketAddr, s: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    let p = pool(a, s);
    let map: serde_json::Map<String, Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    fail2(a, "pool.set_other_config", json!([s, p, map]))
}

/// Raises a message through `message.create`; its reference.
pub fn create_message(
    a: SocketAddr,
    s: &str,
    name: &str,
    priority: i64,
    cls: &str,
    obj_uuid: &str,
    body: &str,
) -> String {
    call2(
        a,
        "message.create",
        json!([s, name, priority, cls, obj_uuid, body]),
    )
    .as_str()
    .expect("message ref")
    .to_owned()
}

/// The mail queue's records (`mail.get_all_records`).
pub fn queue(a: SocketAddr, s: &str) -> Vec<Value> {
    call2(a, "mail.get_all_records", json!([s]))
        .as_object()
        .expect("records")
        .values()
        .cloned()
        .collect()
}

/// Every message record.
pub fn messages(a: SocketAddr, s: &str) -> Vec<Value> {
    call2(a, "message.get_all_records", json!([s]))
        .as_object()
        .expect("records")
        .values()
        .cloned()
        .collect()
}
