//! The campaign's API client: calls go to whichever host is the master now
//! (a member answers a login with `HOST_IS_SLAVE`), each within a short
//! bound (a frozen master accepts connections and never answers), and
//! hosts the runner knows to be down are skipped.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use xha_lab::agent_pool::USER;
use xha_lab::rpc::{self, RpcError};

/// How long one call may take before the runner counts it unanswered.
pub const CALL_BOUND: Duration = Duration::from_secs(8);

/// The master as last found: its index and a session on it.
#[derive(Default)]
pub struct Api {
    pub password: String,
    master: Option<(usize, String)>,
}

impl Api {
    #[must_use]
    pub fn new(password: &str) -> Api {
        Api {
            password: password.to_owned(),
            master: None,
        }
    }

    /// The master's index, as last found.
    #[must_use]
    pub fn master(&self) -> Option<usize> {
        self.master.as_ref().map(|m| m.0)
    }

    /// Forget the master (it was cut, frozen, or did not answer).
    pub fn forget(&mut self) {
        self.master = None;
    }

    /// Finds the master among `hosts` (index, HTTP address, up): the host
    /// that accepts a login.
    pub fn find_master(&mut self, hosts: &[(usize, SocketAddr, bool)]) -> Option<usize> {
        if let Some(m) = self.master() {
            if hosts.iter().any(|(i, _, up)| *i == m && *up) {
                return Some(m);
            }
            self.master = None;
        }
        for &(i, addr, up) in hosts {
            if !up {
                continue;
            }
            let login = rpc::call_within(
                addr,
                "session.login_with_password",
                json!([USER, self.password, "1.0", "campaign"]),
                CALL_BOUND,
            );
            if let Ok(s) = login {
                self.master = Some((i, s.as_str().unwrap_or_default().to_owned()));
                return Some(i);
            }
        }
        None
    }

    /// `method(params)` on the master's session; an error (the API's, or
    /// no answer) forgets the master when it is not the API's own answer.
    pub fn call(
        &mut self,
        hosts: &[(usize, SocketAddr, bool)],
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let Some(m) = self.find_master(hosts) else {
            return Err("no master answers".into());
        };
        let Some((_, addr, _)) = hosts.iter().find(|(i, _, _)| *i == m) else {
            return Err("no master".into());
        };
        let session = self
            .master
            .as_ref()
            .map(|x| x.1.clone())
            .unwrap_or_default();
        let mut all = vec![Value::String(session)];
        if let Value::Array(p) = params {
            all.extend(p);
        }
        match rpc::call_within(*addr, method, Value::Array(all), CALL_BOUND) {
            Ok(v) => Ok(v),
            Err(e @ RpcError::Api { .. }) => {
                // A session of an old master, or a member now: find again.
                let text = e.to_string();
                if text.contains("SESSION_INVALID") || text.contains("HOST_IS_SLAVE") {
                    self.forget();
                }
                Err(text)
            }
            Err(e) => {
                self.forget();
                Err(e.to_string())
            }
        }
    }
}
