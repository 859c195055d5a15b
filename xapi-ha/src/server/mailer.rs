//! The mail sender at the edge: on the master, a task that moves committed
//! messages into the mail queue and delivers due mails with `lettre` (SMTP
//! on tokio; TLS by rustls with ring), recording each outcome in the pool
//! database (`alerts::queue` decides everything; this only does the I/O
//! and reads the clock). Also `pool.send_test_email`, which sends one mail
//! at once and answers the server's reply.

use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Body;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::agent::{Agent, wall_clock};
use crate::alerts::format::{self, MailText};
use crate::alerts::queue::{self, Delivery, Mail};
use crate::alerts::settings::{MailSettings, SettingsError, TlsMode};
use crate::api::ApiError;
use crate::rpc::{Failure, Rpc};

/// The longest the sender sleeps without a commit (it wakes at every
/// commit and at the queue's next retry or window end anyway).
pub const IDLE: Duration = Duration::from_secs(30);

/// The error code of a test mail the server did not take (ours).
pub const MAIL_SEND_FAILED: &str = "MAIL_SEND_FAILED";

/// Starts the sender (on the master).
pub fn spawn(agent: Arc<Agent>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut commits = agent.watch_generation();
        let mut last_problem = None::<String>;
        loop {
            let wait = match round(&agent, &mut last_problem).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = ?e, "mail queue: commit failed");
                    IDLE
                }
            };
            tokio::select! {
                _ = commits.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Runs a database step off the async workers.
async fn transact<R: Send + 'static>(
    agent: &Arc<Agent>,
    f: impl FnOnce(&crate::db::Database) -> (Vec<crate::db::Change>, R) + Send + 'static,
) -> Result<R, Failure> {
    let a = Arc::clone(agent);
    tokio::task::spawn_blocking(move || a.transact(f))
        .await
        .map_err(|e| Failure::from(ApiError::internal(&e.to_string())))?
}

/// One round: queue new messages, drop expired windows, send what is due.
/// How long to sleep after.
async fn round(agent: &Arc<Agent>, last_problem: &mut Option<String>) -> Result<Duration, Failure> {
    let now = wall_clock();
    // First the queue takes in what was committed (and commits that);
    // then the due mails are read from the result, so a mail sent carries
    // every alert it stands for.
    let settings = transact(agent, move |db| {
        let settings = MailSettings::from_db(db);
        let usable = settings.as_ref().ok();
        let mut changes = queue::enqueue(db, usable, now, Uuid::new_v4());
        changes.extend(queue::expire(db, usable, now));
        (changes, settings)
    })
    .await?;
    let settings = match settings {
        Ok(s) => {
            *last_problem = None;
            s
        }
        Err(e) => {
            let text = e.to_string();
            if last_problem.as_deref() != Some(&text) && e != SettingsError::NoDestination {
                tracing::warn!(problem = %text, "email alerts are not sent");
            }
            *last_problem = Some(text);
            return Ok(IDLE);
        }
    };
    let s = settings.clone();
    let due: Vec<(Mail, MailText)> = transact(agent, move |db| {
        let due = queue::due(db, now)
            .into_iter()
            .map(|m| {
                let t = format::compose(db, &s, &m);
                (m, t)
            })
            .collect();
        (Vec::new(), due)
    })
    .await?;
    for (mail, text) in due {
        let outcome = deliver(&settings, &text).await;
        match &outcome {
            Delivery::Sent(a) => {
                tracing::info!(mail = %mail.name, count = mail.count, answer = %a, "mail sent")
            }
            Delivery::Transient(a) => {
                agent.metrics.mail_send_failure(false);
                tracing::warn!(mail = %mail.name, answer = %a, "mail not sent: will retry")
            }
            Delivery::Permanent(a) => {
                agent.metrics.mail_send_failure(true);
                tracing::error!(mail = %mail.name, answer = %a, "mail refused: dropped")
            }
        }
        let s = settings.clone();
        let now = wall_clock();
        transact(agent, move |db| {
            (
                queue::record(db, &mail, &outcome, &s, now, Uuid::new_v4()),
                (),
            )
        })
        .await?;
    }
    let s = settings.clone();
    let next = transact(agent, move |db| {
        (Vec::new(), queue::next_wakeup(db, Some(&s)))
    })
    .await?;
    let now = wall_clock();
    Ok(next.map_or(IDLE, |at| {
        let idle = i64::try_from(IDLE.as_secs()).unwrap_or(i64::MAX);
        let secs = (at.unix_seconds - now.unix_seconds).clamp(0, idle);
        // Whole-second dates: wake just after the second turns.
        Duration::from_secs(u64::try_from(secs).unwrap_or(0)) + Duration::from_millis(200)
    }))
}

/// Why a connection cannot even be tried (a local problem: the mail stays
/// queued).
fn transport(s: &MailSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls_params = || -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(s.host.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| format!("{}: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls().map_err(|e| format!("TLS set-up: {e}"))
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout_seconds)))
        .hello_name(ClientId::Domain(s.hello_name.clone()));
    b = match s.tls {
        TlsMode::None => b.tls(Tls::None),
        TlsMode::StartTls => b.tls(Tls::Required(tls_params()?)),
        TlsMode::Tls => b.tls(Tls::Wrapper(tls_params()?)),
    };
    if let Some(user) = &s.user {
        let password = match &s.password_file {
            Some(p) => read_password(p)?,
            None => String::new(),
        };
        b = b.credentials(Credentials::new(user.clone(), password));
    }
    Ok(b.build())
}

/// The password file's first line; the file must be readable by its
/// owner only.
fn read_password(path: &std::path::Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{}: the password file must be readable by root only (mode {:o})",
            path.display(),
            meta.mode() & 0o777
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

fn message(s: &MailSettings, text: &MailText) -> Result<Message, String> {
    let mut b = Message::builder().from(s.sender.clone());
    for to in &s.destinations {
        b = b.to(to.clone());
    }
    // As mail-alarm sends it: the text as is, not quoted-printable, when
    // every line fits SMTP's 998 octets (RFC 5321; labelled 8bit, RFC
    // 6152); else lettre picks an encoding.
    let fits = text.body.lines().all(|l| l.len() <= 998);
    let body = if fits {
        Body::new_with_encoding(text.body.clone(), ContentTransferEncoding::Binary)
            .unwrap_or_else(|_| Body::new(text.body.clone()))
    } else {
        Body::new(text.body.clone())
    };
    let mut m = b
        .subject(text.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("building the mail: {e}"))?;
    if fits {
        m.headers_mut().set(ContentTransferEncoding::EightBit);
    }
    Ok(m)
}

/// Sends one mail; the server's verdict.
pub async fn deliver(s: &MailSettings, text: &MailText) -> Delivery {
    let t = match transport(s) {
        Ok(t) => t,
        Err(why) => return Delivery::Transient(why),
    };
    let m = match message(s, text) {
        Ok(m) => m,
        Err(why) => return Delivery::Permanent(why),
    };
    // lettre's timeout bounds each read but not every step (a server that
    // never answers AUTH held it): the whole exchange gets a deadline too.
    let deadline = Duration::from_secs(s.timeout_seconds.saturating_mul(3));
    let Ok(sent) = tokio::time::timeout(deadline, t.send(m)).await else {
        return Delivery::Transient(format!(
            "no complete answer from {}:{} within {} s",
            s.host,
            s.port,
            deadline.as_secs()
        ));
    };
    match sent {
        Ok(r) => Delivery::Sent(format!(
            "{} {}",
            r.code(),
            r.message().collect::<Vec<_>>().join(" ")
        )),
        Err(e) if e.is_permanent() => Delivery::Permanent(e.to_string()),
        Err(e) => Delivery::Transient(e.to_string()),
    }
}

/// `pool.send_test_email()`: sends a test mail now, to the pool's
/// settings; answers the server's reply, or `MAIL_SEND_FAILED
/// [host:port; what went wrong]`. Bad or missing settings:
/// `INVALID_VALUE [other_config:<key>; value; why]`; nothing is sent.
pub async fn send_test(agent: &Arc<Agent>) -> Result<Rpc, Failure> {
    let now = wall_clock();
    let (settings, text) = transact(agent, move |db| {
        let r = MailSettings::from_db(db).map(|s| {
            let t = format::test_mail(db, &s, now);
            (s, t)
        });
        (Vec::new(), r)
    })
    .await?
    .map_err(|e| Failure::from(e.to_api()))?;
    match deliver(&settings, &text).await {
        Delivery::Sent(answer) => Ok(Rpc::Str(answer)),
        Delivery::Transient(why) | Delivery::Permanent(why) => Err(Failure::from(ApiError::new(
            MAIL_SEND_FAILED,
            [format!("{}:{}", settings.host, settings.port), why],
        ))),
    }
}

/// The destinations as text (logs, reports).
#[must_use]
pub fn destinations(s: &MailSettings) -> String {
    s.destinations
        .iter()
        .map(Mailbox::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
