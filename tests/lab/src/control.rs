//! Requests to a host's daemon over its control socket, with errors that
//! name the host and quote its log.

use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use xha_control::client::{self, ClientError};
use xha_control::{LivesetReport, Request, Response};

use crate::{Lab, LabError};

impl Lab {
    fn control_error(&self, i: usize, request: &'static str, e: ClientError) -> LabError {
        let uuid = self.hosts[i].info.uuid;
        match e {
            ClientError::Transport(reason) => LabError::Control {
                host: i,
                uuid,
                request,
                reason,
            },
            ClientError::Refused { code, message } => LabError::Refused {
                host: i,
                uuid,
                request,
                code,
                message,
            },
        }
    }

    pub(crate) fn request_with(
        &self,
        i: usize,
        req: Request,
        timeout: Duration,
    ) -> Result<Response, LabError> {
        let host = self.host(i)?;
        client::request(&host.info.control_socket, req, timeout)
            .map_err(|e| self.control_error(i, req.name(), e))
    }

    /// Send one control request to host `i` (not `watch`: see
    /// [`Lab::watch`]). A refusal is [`LabError::Refused`].
    pub fn request(&self, i: usize, req: Request) -> Result<Response, LabError> {
        self.request_with(i, req, client::REQUEST_TIMEOUT)
    }

    /// Host `i`'s liveset report.
    pub fn query(&self, i: usize) -> Result<LivesetReport, LabError> {
        self.request(i, Request::QueryLiveset)?
            .result
            .ok_or_else(|| LabError::Control {
                host: i,
                uuid: self.hosts[i].info.uuid,
                request: "query-liveset",
                reason: "the answer has no report".into(),
            })
    }

    /// Watch host `i`: every report it publishes, stamped on arrival, from
    /// a background thread, until the daemon closes the stream or the lab
    /// stops. The first report is the current one.
    pub fn watch(&self, i: usize) -> Result<Receiver<(Instant, LivesetReport)>, LabError> {
        let host = self.host(i)?;
        let (watcher, rx) =
            client::watch(&host.info.control_socket, Arc::clone(&self.stop_watchers))
                .map_err(|e| self.control_error(i, "watch", e))?;
        self.watchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(watcher.thread);
        Ok(rx)
    }
}

/// Whether the `xhad` answering on `socket` is online and counts `host` in
/// its liveset (a booted host has rejoined).
#[must_use]
pub fn online_in_liveset(socket: &std::path::Path, host: uuid::Uuid) -> bool {
    client::request(socket, Request::QueryLiveset, client::REQUEST_TIMEOUT)
        .ok()
        .and_then(|r| r.result)
        .is_some_and(|r| r.status == xha_control::Status::Online && r.liveset.contains(&host))
}
