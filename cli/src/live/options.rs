//! Connection options, taken out of the command line before the command's
//! own arguments are parsed (as xe does, they may appear anywhere):
//! `-s HOST`, `-p PORT`, `-u USER`, `-pw PASSWORD`, `-pwf FILE`,
//! `--socket PATH`, `--trust-new`, `--fingerprint=AB:CD:...`.

use std::path::PathBuf;

use crate::error::UsageError;

/// The agent's Unix socket when neither `--socket` nor `XE_SOCKET` names
/// another (the agent's default `api.unix_socket`).
pub const DEFAULT_SOCKET: &str = "/run/xha/xapi-ha.sock";
/// The TLS port when `-p` is not given.
pub const DEFAULT_PORT: u16 = 443;

/// Where and how to connect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectOptions {
    /// `-s`: connect over TLS to this host instead of the Unix socket.
    pub server: Option<String>,
    /// `-p`.
    pub port: Option<u16>,
    /// `-u`.
    pub user: Option<String>,
    /// `-pw`.
    pub password: Option<String>,
    /// `-pwf`: a file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--trust-new`: accept and remember a server not seen before.
    pub trust_new: bool,
    /// `--fingerprint=`: the expected SHA-256 fingerprint.
    pub fingerprint: Option<String>,
}

/// Splits `args` into the connection options and the rest.
pub fn extract(args: &[String]) -> Result<(ConnectOptions, Vec<String>), UsageError> {
    let mut opts = ConnectOptions::default();
    let mut rest = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |flag: &'static str| {
            iter.next()
                .cloned()
                .ok_or(UsageError::MissingFlagValue { flag })
        };
        match arg.as_str() {
            "-s" => opts.server = Some(value("-s")?),
            "-p" => {
                let v = value("-p")?;
                let port = v.parse::<u16>().ok().filter(|p| *p != 0);
                opts.port = Some(port.ok_or(UsageError::InvalidValue {
                    key: "-p".into(),
                    expected: "a TCP port (1-65535)",
                    got: v,
                })?);
            }
            "-u" => opts.user = Some(value("-u")?),
            "-pw" => opts.password = Some(value("-pw")?),
            "-pwf" => opts.password_file = Some(PathBuf::from(value("-pwf")?)),
            "--socket" => opts.socket = Some(PathBuf::from(value("--socket")?)),
            "--trust-new" => opts.trust_new = true,
            _ => {
                if let Some(fp) = arg.strip_prefix("--fingerprint=") {
                    opts.fingerprint = Some(normalise_fingerprint(fp)?);
                } else {
                    rest.push(arg.clone());
                }
            }
        }
    }
    Ok((opts, rest))
}

/// Upper-case, colon-separated: what the agent logs and stores in
/// `host.other_config:tls_fingerprint`. Accepts lower case and no colons.
pub fn normalise_fingerprint(text: &str) -> Result<String, UsageError> {
    let hex: String = text.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(UsageError::InvalidValue {
            key: "--fingerprint".into(),
            expected: "a SHA-256 fingerprint (64 hex digits, colons allowed)",
            got: text.to_owned(),
        });
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Ok(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_anywhere() {
        let (o, rest) = extract(&v(&[
            "uuid=x",
            "-s",
            "h",
            "-p",
            "8443",
            "-u",
            "root",
            "-pw",
            "p w",
            "--trust-new",
        ]))
        .unwrap();
        assert_eq!(rest, ["uuid=x"]);
        assert_eq!(o.server.as_deref(), Some("h"));
        assert_eq!(o.port, Some(8443));
        assert_eq!(o.password.as_deref(), Some("p w"));
        assert!(o.trust_new);
        assert_eq!(
            extract(&v(&["-s"])).unwrap_err(),
            UsageError::MissingFlagValue { flag: "-s" }
        );
        assert!(extract(&v(&["-p", "0"])).is_err());
        assert!(extract(&v(&["--fingerprint=ab"])).is_err());
        let fp = "ab".repeat(32);
        let (o, _) = extract(&v(&[&format!("--fingerprint={fp}")])).unwrap();
        assert_eq!(o.fingerprint.unwrap(), vec!["AB"; 32].join(":"));
    }
}
