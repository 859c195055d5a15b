//! A logged-in session with the pool master: connect (Unix socket or
//! pinned TLS), `session.login_with_password`, follow `HOST_IS_SLAVE` to the
//! master, and `session.logout` at the end.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use xapi_ha::rpc::{Call, Rpc};

use super::known_hosts;
use super::options::{ConnectOptions, DEFAULT_PORT, DEFAULT_SOCKET};
use super::transport::{Transport, TransportError};
use crate::error::CliError;

/// How many `HOST_IS_SLAVE` redirections are followed before giving up
/// (a pool whose members point at each other).
const MAX_REDIRECTS: usize = 3;

/// A session on the master.
pub struct Session {
    transport: Transport,
    session: String,
}

fn connect_error(e: TransportError) -> CliError {
    CliError::Connect(e.to_string())
}

/// The socket path: `--socket`, else `$XE_SOCKET`, else the agent's default.
fn socket_path(opts: &ConnectOptions) -> PathBuf {
    opts.socket
        .clone()
        .or_else(|| std::env::var_os("XE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The user and password. On the Unix socket the agent logs a root peer
/// in without checking the password (docs/api.md), so none is needed there.
fn credentials(opts: &ConnectOptions) -> Result<(String, String), CliError> {
    let user = opts.user.clone().unwrap_or_else(|| "root".to_owned());
    let password = match (&opts.password, &opts.password_file) {
        (Some(p), _) => p.clone(),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file).map_err(|e| {
                CliError::Connect(format!("-pwf: cannot read {}: {e}", file.display()))
            })?;
            text.lines().next().unwrap_or("").to_owned()
        }
        (None, None) if opts.server.is_none() => String::new(),
        (None, None) => {
            return Err(CliError::Connect(
                "Username/password must be specified (-u USER -pw PASSWORD, or -pwf FILE)"
                    .to_owned(),
            ));
        }
    };
    Ok((user, password))
}

/// Opens a TLS connection to `host:port`, pinned to the fingerprint given
/// with `--fingerprint=` or remembered in the known-hosts file; a new
/// server is accepted (and remembered) only with `--trust-new` or a
/// matching `--fingerprint=`.
fn connect_tls(opts: &ConnectOptions, host: &str, port: u16) -> Result<Transport, CliError> {
    let target = format!("{host}:{port}");
    let file = known_hosts::path();
    let known = known_hosts::lookup(&file, &target)
        .map_err(|e| CliError::Connect(format!("cannot read {}: {e}", file.display())))?;
    let expected = opts.fingerprint.clone().or_else(|| known.clone());
    // Nothing matches the empty string: an unknown server is only looked
    // at (its fingerprint recorded), never sent a password.
    let pin = match (&expected, opts.trust_new) {
        (Some(fp), _) => Some(fp.clone()),
        (None, true) => None,
        (None, false) => Some(String::new()),
    };
    let seen = Arc::new(Mutex::new(None));
    let transport = match Transport::tls(host, port, pin, seen.clone()) {
        Ok(t) => t,
        Err(e) => {
            let seen = seen.lock().ok().and_then(|s| s.clone());
            return Err(match (seen, &expected) {
                (Some(got), Some(want)) if got != *want => CliError::Untrusted(format!(
                    "the certificate of {target} has the SHA-256 fingerprint {got}, not the expected {want}{}; \
                     nothing was sent. If the host's certificate really changed, check the new one on the host \
                     and run again with --fingerprint={got}",
                    if opts.fingerprint.is_some() {
                        " (--fingerprint)".to_owned()
                    } else {
                        format!(" (remembered in {})", file.display())
                    },
                )),
                (Some(got), None) => CliError::Untrusted(format!(
                    "{target} is not a known host; its certificate's SHA-256 fingerprint is {got}. \
                     Check it on the host (host other-config:tls_fingerprint, or the agent's log) and run again \
                     with --fingerprint={got} or --trust-new"
                )),
                _ => connect_error(e),
            });
        }
    };
    let seen = seen.lock().ok().and_then(|s| s.clone());
    if let Some(fp) = seen
        && known.as_deref() != Some(fp.as_str())
    {
        known_hosts::remember(&file, &target, &fp)
            .map_err(|e| CliError::Connect(format!("cannot write {}: {e}", file.display())))?;
    }
    Ok(transport)
}

impl Session {
    /// Connects and logs in, following `HOST_IS_SLAVE` to the master.
    pub fn open(opts: &ConnectOptions) -> Result<Session, CliError> {
        Session::open_following(opts, MAX_REDIRECTS)
    }

    /// emerg: a normal login on the host given only: a member's
    /// `HOST_IS_SLAVE` is an error (used to ask whether it is the master).
    pub fn open_no_redirect(opts: &ConnectOptions) -> Result<Session, CliError> {
        Session::open_following(opts, 0)
    }

    fn open_following(opts: &ConnectOptions, redirects: usize) -> Result<Session, CliError> {
        let (user, password) = credentials(opts)?;
        let port = opts.port.unwrap_or(DEFAULT_PORT);
        let mut transport = match &opts.server {
            Some(host) => connect_tls(opts, host, port)?,
            None => Transport::unix(&socket_path(opts)).map_err(connect_error)?,
        };
        let login = Call {
            method: "session.login_with_password".to_owned(),
            params: vec![
                Rpc::Str(user),
                Rpc::Str(password),
                Rpc::Str("1.1".to_owned()),
                Rpc::Str("xe".to_owned()),
            ],
        };
        for _ in 0..=redirects {
            match transport.call(&login).map_err(connect_error)? {
                Ok(Rpc::Str(session)) => return Ok(Session { transport, session }),
                Ok(other) => {
                    return Err(CliError::Connect(format!(
                        "{}: the login returned {other:?}, not a session",
                        transport.target
                    )));
                }
                Err(f) if f.code == "HOST_IS_SLAVE" && redirects > 0 => {
                    let Some(master) = f.params.first() else {
                        return Err(CliError::Api {
                            code: f.code,
                            params: f.params,
                        });
                    };
                    // The member names its master's address; the master
                    // serves TLS on the same port as the one asked. Every
                    // host has its own certificate, so `--fingerprint=`
                    // (given for the `-s` host) is not the master's: the
                    // master must be remembered, or `--trust-new` given.
                    let redirected = ConnectOptions {
                        fingerprint: None,
                        ..opts.clone()
                    };
                    transport = connect_tls(&redirected, master, port).map_err(|e| match e {
                        CliError::Untrusted(why) => CliError::Untrusted(format!(
                            "{} redirected to its pool master {master}: {why} (run xe -s {master} \
                             with --fingerprint= once to remember it, then go through the member \
                             again)",
                            transport.target
                        )),
                        other => other,
                    })?;
                }
                Err(f) => {
                    return Err(CliError::Api {
                        code: f.code,
                        params: f.params,
                    });
                }
            }
        }
        Err(CliError::Connect(format!(
            "more than {MAX_REDIRECTS} HOST_IS_SLAVE redirections; the pool's members disagree about the master"
        )))
    }

    /// emerg: a host-local session on the host given (`-s`, or the Unix
    /// socket) with `session.slave_local_login_with_password`: no redirect
    /// to the master; it works on a member and in emergency mode (the
    /// emergency commands, `emergency_cmds`). End it with
    /// [`Session::close_local`].
    pub fn open_local(opts: &ConnectOptions) -> Result<Session, CliError> {
        let (user, password) = credentials(opts)?;
        let port = opts.port.unwrap_or(DEFAULT_PORT);
        let mut transport = match &opts.server {
            Some(host) => connect_tls(opts, host, port)?,
            None => Transport::unix(&socket_path(opts)).map_err(connect_error)?,
        };
        let login = Call {
            method: "session.slave_local_login_with_password".to_owned(),
            params: vec![Rpc::Str(user), Rpc::Str(password)],
        };
        match transport.call(&login).map_err(connect_error)? {
            Ok(Rpc::Str(session)) => Ok(Session { transport, session }),
            Ok(other) => Err(CliError::Connect(format!(
                "{}: the login returned {other:?}, not a session",
                transport.target
            ))),
            Err(f) => Err(CliError::Api {
                code: f.code,
                params: f.params,
            }),
        }
    }

    /// emerg: ends a host-local session.
    pub fn close_local(mut self) {
        let _ = self.call("session.local_logout", Vec::new());
    }

    /// Calls `method` with the session and `params`.
    pub fn call(&mut self, method: &str, params: Vec<Rpc>) -> Result<Rpc, CliError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(Rpc::Str(self.session.clone()));
        all.extend(params);
        let call = Call {
            method: method.to_owned(),
            params: all,
        };
        match self.transport.call(&call).map_err(connect_error)? {
            Ok(v) => Ok(v),
            Err(f) => Err(CliError::Api {
                code: f.code,
                params: f.params,
            }),
        }
    }

    /// Logs out; a failure is of no consequence (the session expires).
    pub fn close(mut self) {
        let _ = self.call("session.logout", Vec::new());
    }
}
