//! The email settings: the pool's `other_config` keys XenServer admins use
//! (`mail-destination`, `mail-sender`, `mail-min-priority`,
//! `mail-language`, `ssmtp-mailhub`) and ours for TLS, authentication,
//! timeouts, retries and coalescing (docs/alerts.md lists them). Each key
//! is checked on its own when it is set ([`check_changed`], from
//! `pool.set_other_config` / `add_to_other_config`), and the whole set
//! when it is used ([`MailSettings::from_db`]).

use std::path::PathBuf;
use std::str::FromStr as _;

use lettre::message::Mailbox;

use crate::api::ApiError;
use crate::api::error::code;
use crate::db::{Class, Database};
use crate::value::{Key, Value};

pub const DESTINATION: &str = "mail-destination";
pub const SENDER: &str = "mail-sender";
pub const MIN_PRIORITY: &str = "mail-min-priority";
pub const LANGUAGE: &str = "mail-language";
pub const MAILHUB: &str = "ssmtp-mailhub";
pub const TLS: &str = "mail-smtp-tls";
pub const USER: &str = "mail-smtp-user";
pub const PASSWORD_FILE: &str = "mail-smtp-password-file";
pub const CA_FILE: &str = "mail-smtp-ca-file";
pub const TIMEOUT: &str = "mail-smtp-timeout";
pub const RETRY: &str = "mail-retry-seconds";
pub const RETRY_MAX: &str = "mail-retry-max-seconds";
pub const COALESCE: &str = "mail-coalesce-seconds";

/// Every key read here, in the order docs/alerts.md lists them.
pub const KEYS: &[&str] = &[
    DESTINATION,
    SENDER,
    MIN_PRIORITY,
    LANGUAGE,
    MAILHUB,
    TLS,
    USER,
    PASSWORD_FILE,
    CA_FILE,
    TIMEOUT,
    RETRY,
    RETRY_MAX,
    COALESCE,
];

pub const DEFAULT_MIN_PRIORITY: i64 = 3;
pub const DEFAULT_LANGUAGE: &str = "en-US";
pub const DEFAULT_PORT: u16 = 25;
pub const DEFAULT_TIMEOUT: u64 = 30;
pub const DEFAULT_RETRY: i64 = 30;
pub const DEFAULT_RETRY_MAX: i64 = 1800;
pub const DEFAULT_COALESCE: i64 = 60;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (ssmtp's default).
    None,
    /// Plain, then STARTTLS, which is then required.
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
}

/// The settings as used to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailSettings {
    /// One or more addresses.
    pub destinations: Vec<Mailbox>,
    pub sender: Mailbox,
    /// Mail a message when its priority <= this.
    pub min_priority: i64,
    pub language: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub user: Option<String>,
    /// The password's file (root only; read when sending).
    pub password_file: Option<PathBuf>,
    /// Extra certificate authority to trust (PEM), e.g. a self-signed one.
    pub ca_file: Option<PathBuf>,
    pub timeout_seconds: u64,
    pub retry_seconds: i64,
    pub retry_max_seconds: i64,
    pub coalesce_seconds: i64,
    /// The name this host gives in `EHLO` (the master's host name).
    pub hello_name: String,
}

/// Why the settings cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// No `mail-destination`: nothing is mailed (as mail-alarm).
    #[error("pool:other-config:mail-destination not specified")]
    NoDestination,
    /// No `ssmtp-mailhub`: nowhere to send.
    #[error("pool:other-config:ssmtp-mailhub not specified")]
    NoMailhub,
    #[error("pool:other-config:{key} = {value:?}: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
}

impl SettingsError {
    /// As the API's `INVALID_VALUE [other_config:<key>; value; reason]`.
    #[must_use]
    pub fn to_api(&self) -> ApiError {
        match self {
            SettingsError::Invalid { key, value, reason } => ApiError::new(
                code::INVALID_VALUE,
                [format!("other_config:{key}"), value.clone(), reason.clone()],
            ),
            other => ApiError::new(
                code::INVALID_VALUE,
                [
                    match other {
                        SettingsError::NoMailhub => format!("other_config:{MAILHUB}"),
                        _ => format!("other_config:{DESTINATION}"),
                    },
                    String::new(),
                    other.to_string(),
                ],
            ),
        }
    }
}

/// The pool's `other_config` as pairs (empty without a pool).
#[must_use]
pub fn pool_other_config(db: &Database) -> Vec<(String, String)> {
    let Some((p, _)) = db.objects(Class::Pool).next() else {
        return Vec::new();
    };
    match db.field(Class::Pool, p, "other_config") {
        Some(Value::Map(pairs)) => pairs
            .into_iter()
            .filter_map(|(k, v)| match (k, v) {
                (Key::String(k), Value::String(v)) => Some((k, v)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn invalid(key: &'static str, value: &str, reason: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

fn mailboxes(key: &'static str, value: &str) -> Result<Vec<Mailbox>, SettingsError> {
    let parts: Vec<&str> = value
        .split([',', ' ', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        return Err(invalid(key, value, "no address given"));
    }
    parts
        .into_iter()
        .map(|p| {
            Mailbox::from_str(p)
                .map_err(|e| invalid(key, value, format!("{p:?} is not an email address: {e}")))
        })
        .collect()
}

fn int_in(key: &'static str, value: &str, lo: i64, hi: i64) -> Result<i64, SettingsError> {
    match value.trim().parse::<i64>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(invalid(
            key,
            value,
            format!("expected a whole number from {lo} to {hi}"),
        )),
    }
}

fn absolute_path(key: &'static str, value: &str) -> Result<PathBuf, SettingsError> {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(invalid(key, value, "expected an absolute path"))
    }
}

/// `host[:port]`; a bracketed IPv6 address may carry a port.
fn mailhub(value: &str) -> Result<(String, u16), SettingsError> {
    let bad = |why: &str| invalid(MAILHUB, value, why.to_owned());
    let v = value.trim();
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        match after.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if after.is_empty() => (h, None),
            None => return Err(bad("expected host:port")),
        }
    } else {
        match v.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (v, None),
        }
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad("expected host:port"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("the port must be from 1 to 65535")),
        },
    };
    Ok((host.to_owned(), port))
}

fn tls_mode(value: &str) -> Result<TlsMode, SettingsError> {
    match value.trim() {
        "none" => Ok(TlsMode::None),
        "starttls" => Ok(TlsMode::StartTls),
        "tls" => Ok(TlsMode::Tls),
        _ => Err(invalid(TLS, value, "expected none, starttls or tls")),
    }
}

/// Checks one key's value on its own (keys not read here pass).
pub fn check_key(key: &str, value: &str) -> Result<(), SettingsError> {
    match key {
        DESTINATION => mailboxes(DESTINATION, value).map(drop),
        SENDER => mailboxes(SENDER, value).and_then(|m| {
            if m.len() == 1 {
                Ok(())
            } else {
                Err(invalid(SENDER, value, "expected one address"))
            }
        }),
        MIN_PRIORITY => int_in(MIN_PRIORITY, value, 1, 5).map(drop),
        LANGUAGE => {
            if crate::alerts::lang::Language::get(value.trim()).is_some() {
                Ok(())
            } else {
                Err(invalid(
                    LANGUAGE,
                    value,
                    format!(
                        "no such language (known: {})",
                        crate::alerts::lang::LANGUAGES.join(", ")
                    ),
                ))
            }
        }
        MAILHUB => mailhub(value).map(drop),
        TLS => tls_mode(value).map(drop),
        USER => {
            if value.is_empty() || value.contains(['\r', '\n']) {
                Err(invalid(USER, value, "expected a user name on one line"))
            } else {
                Ok(())
            }
        }
        PASSWORD_FILE => absolute_path(PASSWORD_FILE, value).map(drop),
        CA_FILE => absolute_path(CA_FILE, value).map(drop),
        TIMEOUT => int_in(TIMEOUT, value, 1, 600).map(drop),
        RETRY => int_in(RETRY, value, 1, 86_400).map(drop),
        RETRY_MAX => int_in(RETRY_MAX, value, 1, 86_400).map(drop),
        COALESCE => int_in(COALESCE, value, 0, 86_400).map(drop),
        _ => Ok(()),
    }
}

/// Checks the mail keys whose value `new` changes from `old`: the error of
/// the first bad one (`INVALID_VALUE [other_config:<key>; value; why]`).
pub fn check_changed(old: &[(Key, Value)], new: &[(Key, Value)]) -> Result<(), ApiError> {
    for (k, v) in new {
        let (Key::String(key), Value::String(value)) = (k, v) else {
            continue;
        };
        if !KEYS.contains(&key.as_str()) || old.iter().any(|(ok, ov)| ok == k && ov == v) {
            continue;
        }
        check_key(key, value).map_err(|e| e.to_api())?;
    }
    Ok(())
}

/// The master's host name, for the default sender.
fn master_name(db: &Database) -> String {
    let master = db.objects(Class::Pool).next().and_then(|(p, _)| {
        match db.field(Class::Pool, p, "master") {
            Some(Value::Ref(m)) => Some(m),
            _ => None,
        }
    });
    let text = |f: &str| {
        master
            .and_then(|m| db.field(Class::Host, m, f))
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    let hostname = text("hostname");
    let name = if hostname.is_empty() {
        text("name_label")
    } else {
        hostname
    };
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

impl MailSettings {
    /// The settings of the pool in `db`.
    pub fn from_db(db: &Database) -> Result<MailSettings, SettingsError> {
        MailSettings::from_pairs(&pool_other_config(db), &master_name(db))
    }

    /// The settings from `other_config` pairs; `host_name` makes the
    /// default sender `noreply@<host_name>`.
    pub fn from_pairs(
        pairs: &[(String, String)],
        host_name: &str,
    ) -> Result<MailSettings, SettingsError> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        for key in KEYS {
            if let Some(v) = get(key) {
                check_key(key, v)?;
            }
        }
        let destinations = mailboxes(
            DESTINATION,
            get(DESTINATION).ok_or(SettingsError::NoDestination)?,
        )?;
        let (host, port) = mailhub(get(MAILHUB).ok_or(SettingsError::NoMailhub)?)?;
        let sender_text = get(SENDER).map_or_else(|| format!("noreply@{host_name}"), str::to_owned);
        let sender = mailboxes(SENDER, &sender_text)?
            .into_iter()
            .next()
            .ok_or_else(|| invalid(SENDER, &sender_text, "no address given"))?;
        let int = |k: &'static str, default: i64| {
            get(k).map_or(Ok(default), |v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| invalid(k, v, "not a number"))
            })
        };
        let retry_seconds = int(RETRY, DEFAULT_RETRY)?;
        let retry_max_seconds = int(RETRY_MAX, DEFAULT_RETRY_MAX.max(retry_seconds))?;
        if retry_max_seconds < retry_seconds {
            return Err(invalid(
                RETRY_MAX,
                &retry_max_seconds.to_string(),
                format!("less than {RETRY} ({retry_seconds})"),
            ));
        }
        Ok(MailSettings {
            destinations,
            sender,
            min_priority: int(MIN_PRIORITY, DEFAULT_MIN_PRIORITY)?,
            language: get(LANGUAGE).map_or(DEFAULT_LANGUAGE, str::trim).to_owned(),
            host,
            port,
            tls: get(TLS).map_or(Ok(TlsMode::None), tls_mode)?,
            user: get(USER).map(str::to_owned),
            password_file: get(PASSWORD_FILE).map(PathBuf::from),
            ca_file: get(CA_FILE).map(PathBuf::from),
            timeout_seconds: u64::try_from(int(
                TIMEOUT,
                i64::try_from(DEFAULT_TIMEOUT).unwrap_or(30),
            )?)
            .unwrap_or(DEFAULT_TIMEOUT),
            retry_seconds,
            retry_max_seconds,
            coalesce_seconds: int(COALESCE, DEFAULT_COALESCE)?,
            hello_name: host_name.to_owned(),
        })
    }

    /// Whether a message of this priority and name is mailed.
    #[must_use]
    pub fn mails(&self, name: &str, priority: i64) -> bool {
        priority <= self.min_priority && !crate::alerts::catalog::NOT_MAILED.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(kv: &[(&str, &str)]) -> Vec<(String, String)> {
        kv.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn defaults_and_several_destinations() {
        let s = MailSettings::from_pairs(
            &pairs(&[
                (DESTINATION, "a@example.com, b@example.com"),
                (MAILHUB, "mx.example.com"),
            ]),
            "master1",
        )
        .unwrap();
        assert_eq!(s.destinations.len(), 2);
        assert_eq!(s.sender.to_string(), "noreply@master1");
        assert_eq!(s.min_priority, 3);
        assert_eq!(s.language, "en-US");
        assert_eq!((s.host.as_str(), s.port), ("mx.example.com", 25));
        assert_eq!(s.tls, TlsMode::None);
        assert!(s.mails("HA_HOST_FAILED", 3));
        assert!(!s.mails("VM_STARTED", 5));
        assert!(!s.mails("MAIL_DELIVERY_FAILED", 1));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            (DESTINATION, "not an address"),
            (DESTINATION, ""),
            (SENDER, "a@b, c@d"),
            (MIN_PRIORITY, "9"),
            (MIN_PRIORITY, "three"),
            (LANGUAGE, "xx-XX"),
            (MAILHUB, "host:0"),
            (MAILHUB, "host:port"),
            (MAILHUB, ""),
            (TLS, "ssl"),
            (PASSWORD_FILE, "relative/file"),
            (TIMEOUT, "0"),
            (COALESCE, "-1"),
        ] {
            let e = check_key(k, v).unwrap_err();
            let api = e.to_api();
            assert_eq!(api.code, "INVALID_VALUE");
            assert_eq!(api.params[0], format!("other_config:{k}"), "{k}={v}");
            assert_eq!(api.params[1], v);
        }
        assert!(check_key("some-other-key", "anything").is_ok());
        assert_eq!(mailhub("[::1]:2525").unwrap(), ("::1".into(), 2525));
        assert_eq!(
            mailhub("127.0.0.1:2525").unwrap(),
            ("127.0.0.1".into(), 2525)
        );
    }

    proptest::proptest! {
        /// Any text for any key: no panic; accepted, or refused naming the
        /// key and the value; an accepted set of keys reads back.
        #[test]
        fn any_value_is_accepted_or_refused_by_name(
            i in 0..KEYS.len(),
            value in ".{0,40}",
            raw in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let key = KEYS[i];
            let raw = String::from_utf8_lossy(&raw).into_owned();
            for v in [value.as_str(), raw.as_str()] {
                match check_key(key, v) {
                    Ok(()) => {
                        let mut p = pairs(&[(DESTINATION, "a@b.c"), (MAILHUB, "mx")]);
                        p.retain(|(k, _)| k != key);
                        p.push((key.to_owned(), v.to_owned()));
                        // Only the retry pair is checked across keys.
                        if let Err(e) = MailSettings::from_pairs(&p, "h") {
                            proptest::prop_assert!(matches!(
                                e,
                                SettingsError::Invalid { key: RETRY_MAX, .. }
                            ), "{e}");
                        }
                    }
                    Err(e) => {
                        let api = e.to_api();
                        proptest::prop_assert_eq!(&api.params[0], &format!("other_config:{key}"));
                        proptest::prop_assert_eq!(&api.params[1], v);
                    }
                }
            }
        }
    }

    #[test]
    fn only_changed_keys_are_checked() {
        let s = |k: &str, v: &str| (Key::String(k.into()), Value::String(v.into()));
        let old = vec![s(MIN_PRIORITY, "9")];
        let new = vec![s(MIN_PRIORITY, "9"), s(DESTINATION, "a@b.c")];
        assert!(check_changed(&old, &new).is_ok());
        let new = vec![s(MIN_PRIORITY, "9"), s(TLS, "ssl")];
        assert_eq!(
            check_changed(&old, &new).unwrap_err().params[0],
            format!("other_config:{TLS}")
        );
    }
}
